"""The benzene recipe end to end, against references rebuilt by hand from the raw data."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pytest
import torch

from cellvision.data.airquality import load_air_quality
from cellvision.recipes import forecasting
from cellvision.recipes.forecasting import (
    ForecastRecipe,
    build_windows,
    month_folds,
    predict,
    run_month_folds,
    sweep_objective,
    train,
)
from cellvision.splits import MonthFoldSplitter

TINY = {"cells": ("gru", "lstm"), "folds": (2,), "epochs": 1, "ensemble_size": 2}


@pytest.fixture(scope="module")
def tiny() -> forecasting.MonthFoldResult:
    return run_month_folds(ForecastRecipe.quick(**TINY))


def test_recipe_defaults_quick_and_round_trip() -> None:
    recipe = ForecastRecipe()
    assert (recipe.window, recipe.lags, recipe.ensemble_size, recipe.epochs) == (48, (23,), 4, 12)
    assert recipe.cells == ("rnn", "gru", "lstm")
    quick = ForecastRecipe.quick(epochs=2)
    assert (quick.window, quick.hidden_size, quick.num_layers, quick.epochs) == (24, 32, 1, 2)
    assert ForecastRecipe.from_json(quick.to_json()) == quick
    assert ForecastRecipe.from_flat_dict({"lags": "[]", "folds": "[1, 2]"}).folds == (1, 2)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"val_fraction": 0.5}, ValueError, r"val_fraction must be in \[0, 0.5\), got 0.5"),
        ({"folds": (6,)}, ValueError, r"folds must be indices in \[0, 6\), got \(6,\)"),
        ({"folds": (1, 1)}, ValueError, "folds must not repeat an entry"),
        ({"cells": ("gru", "gru")}, ValueError, "cells must not repeat an entry"),
        ({"drop_columns": ("C6H6(GT)",)}, ValueError, "drop_columns must not hold the target"),
        ({"lags": (0,)}, ValueError, "lags must be a positive integer, got 0"),
        ({"window": 0}, ValueError, "window must be a positive integer, got 0"),
        ({"fill": "linear"}, ValueError, "fill must be one of"),
        ({"schedule": "cosine"}, ValueError, "schedule must be one of"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay must be a number >= 0"),
        ({"warmup_fraction": 0.0}, ValueError, r"warmup_fraction must be in \(0, 1\)"),
        ({"seeds": (-1,)}, ValueError, "seeds must be a non-negative integer"),
    ],
)
def test_recipe_rejects_bad_fields(
    changes: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ForecastRecipe(**changes)


def test_inputs_never_read_the_target_hour() -> None:
    # Naive reference: rebuild each input row from the forward-filled readings by hand.
    windows = build_windows(ForecastRecipe())
    aq = load_air_quality(drop_columns=["NMHC(GT)"])
    filled = aq.fill_missing("ffill")
    names = list(windows.columns or ())
    hours = aq.timestamps.astype("datetime64[h]").astype(np.int64) % 24
    weekday = (aq.timestamps.astype("datetime64[D]").astype(np.int64) + 3) % 7
    picks = np.random.default_rng(0).choice(len(windows), size=40, replace=False)
    x, y = windows[picks]
    lagged = ("C6H6(GT)", "PT08.S2(NMHC)", "CO(GT)", "NOx(GT)")
    assert names[-4:] == [f"{c}_lag23" for c in lagged]
    for sample, t in enumerate(windows.end_rows[picks]):
        t = int(t)
        assert y[sample, 0].item() == pytest.approx(aq["C6H6(GT)"][t + 1])  # target: hour t + 1
        for step in range(windows.window):
            row = t - (windows.window - 1) + step  # never beyond t, the hour before the target
            got = x[sample, step].numpy()
            for column in aq.columns:
                assert got[names.index(column)] == pytest.approx(filled[column][row])
                if column in lagged:
                    assert got[names.index(f"{column}_lag23")] == pytest.approx(
                        filled[column][row - 23]
                    )
            assert got[names.index(f"hour_{hours[row]:02d}")] == 1.0
            assert got[[re.fullmatch(r"hour_\d\d", n) is not None for n in names]].sum() == 1.0
            assert got[names.index("weekend")] == float(weekday[row] >= 5)


def test_missing_indicators_and_no_fill() -> None:
    aq = load_air_quality(drop_columns=["NMHC(GT)"])
    windows = build_windows(ForecastRecipe(missing_indicators=True, lags=()))
    names = list(windows.columns or ())
    with_gaps = [c for c in aq.columns if np.isnan(aq[c]).any()]
    assert names[-len(with_gaps) :] == [f"{c}_missing" for c in with_gaps]
    column = names.index("CO(GT)_missing")
    np.testing.assert_array_equal(
        windows.series[:, column].numpy(), np.isnan(aq["CO(GT)"]).astype(np.float32)
    )
    unfilled = build_windows(ForecastRecipe(fill="none", lags=()))
    assert len(unfilled) < len(windows)
    assert not torch.isnan(unfilled[np.arange(len(unfilled))][0]).any()


def test_default_trains_on_every_training_window() -> None:
    recipe = ForecastRecipe(window=24, folds=(1, 4))
    windows = build_windows(recipe)
    spans = windows.sample_timestamps
    reference = list(MonthFoldSplitter(months_per_fold=2).split(spans, groups=spans))
    folds = month_folds(recipe, windows)
    assert [(f.index, f.name) for f in folds] == [(1, "Mar-Apr"), (4, "Sep-Oct")]
    for fold in folds:
        assert fold.val.size == 0
        np.testing.assert_array_equal(fold.fit, reference[fold.index][0])
        np.testing.assert_array_equal(fold.test, reference[fold.index][1])


def test_validation_slice_is_carved_from_training_months_with_a_gap() -> None:
    recipe = ForecastRecipe(window=24, folds=(1, 4), val_fraction=0.1)
    windows = build_windows(recipe)
    for fold in month_folds(recipe, windows):
        fit_rows, val_rows = windows.covered_rows(fold.fit), windows.covered_rows(fold.val)
        test_rows = windows.covered_rows(fold.test)
        assert not set(fit_rows) & set(val_rows)
        assert not set(test_rows) & (set(fit_rows) | set(val_rows))
        # validation is the latest part of the training windows, a full window after the fit
        assert val_rows.min() - fit_rows.max() > windows.window
        assert 0.08 < fold.val.size / (fold.fit.size + fold.val.size) < 0.12


def test_tiny_run_scores_ensembles_and_persistence_by_hand(
    tiny: forecasting.MonthFoldResult,
) -> None:
    recipe = ForecastRecipe.quick(**TINY)
    aq = load_air_quality(drop_columns=["NMHC(GT)"])
    benzene = aq["C6H6(GT)"].astype(np.float64)
    windows = build_windows(recipe)
    [fold] = month_folds(recipe, windows)
    ends = windows.end_rows[fold.test]
    truth = benzene[ends + 1]
    last = []
    for t in ends:  # walk back from the window's last hour to the latest reading
        s = int(t)
        while np.isnan(benzene[s]):
            s -= 1
        last.append(benzene[s])
    assert tiny.persistence[2] == pytest.approx(np.mean((np.array(last) - truth) ** 2), rel=1e-9)
    assert tiny.fold_names == {2: "May-Jun"}
    for cell in TINY["cells"]:
        r = tiny.result(cell, 2, 0)
        assert len(r.members) == 2
        average = (r.members[0].test_pred + r.members[1].test_pred) / 2
        assert r.test_mse == pytest.approx(np.mean((average - truth) ** 2), rel=1e-9)
        assert r.member_test_mse == pytest.approx(
            [np.mean((m.test_pred - truth) ** 2) for m in r.members], rel=1e-9
        )
        assert r.val_mse is None
        assert tiny.mean_test_mse(cell) == r.test_mse
        assert 0 < r.test_mse < tiny.persistence[2]
    # the table, and results.json data that survive JSON
    rows = {line.split()[0]: line.split()[1:] for line in tiny.table().splitlines()[3:]}
    assert rows["May-Jun"][0] == str(fold.test.size)
    assert float(rows["mean"][1]) == pytest.approx(tiny.mean_test_mse("gru"), abs=0.006)
    assert "single" in rows
    data = json.loads(json.dumps(tiny.to_dict()))
    assert data["folds"]["May-Jun"]["gru_seed0"]["best_epochs"] == [1, 1]  # epochs count from 1
    assert data["recipe"]["cells"] == ["gru", "lstm"]


def test_runs_are_reproducible_and_on_epoch_counts_every_epoch(
    tiny: forecasting.MonthFoldResult,
) -> None:
    calls: list[tuple[int, float]] = []
    again = run_month_folds(
        ForecastRecipe.quick(**TINY), on_epoch=lambda step, mse: calls.append((step, mse))
    )
    assert again.table() == tiny.table()
    assert [step for step, _ in calls] == [0, 1, 2, 3]  # 2 cells x 2 members x 1 epoch
    first = tiny.result("gru", 2, 0).members[0].curve[0]["train_mse"]
    assert calls[0][1] == pytest.approx(first)


def test_on_epoch_may_stop_the_run() -> None:
    class StopRunError(Exception):
        pass

    def stop(step: int, value: float) -> None:
        raise StopRunError

    with pytest.raises(StopRunError):
        run_month_folds(ForecastRecipe.quick(**TINY), on_epoch=stop)
    with pytest.raises(ValueError, match="workers must be 1 when on_epoch is given"):
        run_month_folds(ForecastRecipe.quick(**TINY), on_epoch=stop, workers=2)


def test_train_and_predict_one_fold_by_hand() -> None:
    recipe = ForecastRecipe.quick(folds=(3,), epochs=2, val_fraction=0.1)
    windows = build_windows(recipe)
    [fold] = month_folds(recipe, windows)
    seen: list[int] = []
    trained = train(recipe, windows, fold, cell="rnn", seed=1, on_epoch=lambda e, v: seen.append(e))
    assert seen == [1, 2]  # epochs count from 1
    val = [r["val_mse"] for r in trained.curve]
    assert trained.best_epoch == val.index(min(val)) + 1
    # independent prediction: scale by hand from the fit rows, run the model, scale back
    rows = windows.covered_rows(fold.fit)
    series = windows.series.double().numpy()
    mean, std = series[rows].mean(0), series[rows].std(0)
    target = windows.target_columns[0]
    x, _ = windows[fold.test[:50]]
    scaled = torch.as_tensor((x.double().numpy() - mean) / std, dtype=torch.float32)
    trained.model.eval()
    with torch.no_grad():
        by_hand = trained.model(scaled)[:, 0].double().numpy() * std[target] + mean[target]
    np.testing.assert_allclose(predict(trained, fold.test[:50]), by_hand, rtol=1e-4, atol=1e-3)
    assert predict(trained, []).shape == (0,)


class FakeTrial:
    """Duck-typed stand-in for ``optuna.trial.Trial``: first choices, recorded reports."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.params: dict[str, Any] = {}
        self.reports: list[tuple[int, float]] = []
        self.prune_at = prune_at

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        self.params[name] = math.sqrt(low * high) if log else (low + high) / 2
        return float(self.params[name])

    def suggest_int(self, name: str, low: int, high: int) -> int:
        self.params[name] = low
        return low

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        self.params[name] = choices[-1]
        return choices[-1]

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.prune_at is not None and len(self.reports) > self.prune_at


def test_sweep_objective_reports_every_epoch_and_never_scores_test_months(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    predicted: list[np.ndarray[Any, Any]] = []
    real_predict = forecasting.predict

    def spy(trained: forecasting.TrainedForecaster, indices: Any) -> Any:
        predicted.append(np.asarray(indices))
        return real_predict(trained, indices)

    monkeypatch.setattr(forecasting, "predict", spy)
    trial = FakeTrial()
    value = sweep_objective(trial, quick=True)
    assert set(trial.params) == {
        "cell",
        "lr",
        "weight_decay",
        "hidden_size",
        "num_layers",
        "dropout",
    }
    recipe = ForecastRecipe.quick(
        folds=forecasting.SWEEP_FOLDS[True], val_fraction=0.1, cells=(trial.params["cell"],)
    )
    windows = build_windows(recipe)
    [fold] = month_folds(recipe, windows)
    assert [s for s, _ in trial.reports] == list(range(recipe.epochs))
    assert [len(p) for p in predicted] == [fold.val.size]
    np.testing.assert_array_equal(predicted[0], fold.val)
    assert not set(predicted[0]) & set(fold.test)
    assert math.isfinite(value)
    assert value > 0


def test_sweep_objective_prunes() -> None:
    optuna = pytest.importorskip("optuna")
    trial = FakeTrial(prune_at=1)
    with pytest.raises(optuna.TrialPruned):
        sweep_objective(trial, quick=True)
    assert len(trial.reports) == 2


@pytest.mark.slow
def test_workers_do_not_change_the_results(tiny: forecasting.MonthFoldResult) -> None:
    parallel = run_month_folds(ForecastRecipe.quick(**TINY), workers=2)
    assert parallel.table() == tiny.table()
