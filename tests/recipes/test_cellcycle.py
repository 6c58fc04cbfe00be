"""cellvision.recipes.cellcycle: recipe, train/predict/save/load, evaluate, CV, sweeps."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cellvision.checkpoint import save_checkpoint
from cellvision.data import make_synthetic_cells
from cellvision.models import create_model
from cellvision.recipes.cellcycle import (
    SWEEP_SPACE,
    CellCycleRecipe,
    TrainedClassifier,
    cross_validate,
    default_recipe,
    evaluate,
    load_unlabelled,
    run_study,
    subset,
    sweep_objective,
    train,
)

sk_metrics = pytest.importorskip("sklearn.metrics")

TINY = CellCycleRecipe(epochs=2, batch_size=16, width=8, depth=2, baseline_epochs=1)


@pytest.fixture(scope="module")
def data() -> Any:
    return make_synthetic_cells([40, 12, 8, 8, 8], size=24, seed=0)


@pytest.fixture(scope="module")
def trained(data: Any) -> TrainedClassifier:
    return train(
        TINY,
        subset(data, np.arange(0, 76, 2)),
        subset(data, np.arange(1, 76, 2)),
        device="cpu",
        progress=False,
    )


def test_recipe_validates_fields_and_round_trips() -> None:
    assert CellCycleRecipe.from_json(TINY.to_json()) == TINY
    flat = TINY.to_flat_dict() | {"lr": "0.001", "width": "24"}
    assert (
        CellCycleRecipe.from_flat_dict(flat).lr,
        CellCycleRecipe.from_flat_dict(flat).width,
    ) == (
        0.001,
        24,
    )
    for bad, match in [
        ({"alpha": 1.5}, "alpha must be in"),
        ({"select": "test"}, "select must"),
        ({"model": "resnet"}, "model must"),
        ({"schedule": "step"}, "schedule"),
    ]:
        with pytest.raises(ValueError, match=match):
            CellCycleRecipe(**bad)
    assert default_recipe("cellcycle_vit").baseline_epochs == 0


def test_train_keeps_training_normalisation_and_history(
    data: Any, trained: TrainedClassifier
) -> None:
    assert data.images.dtype == torch.uint8  # stored compactly, used as value / 255
    train_images = data.images[np.arange(0, 76, 2)].double() / 255
    torch.testing.assert_close(trained.mean, train_images.mean(dim=(0, 2, 3)))
    assert [r["epoch"] for r in trained.history] == [1, 2]
    assert trained.epoch == 2
    assert "val_balanced_accuracy" in set(trained.history.keys())
    assert trained.class_names == data.class_names


def test_predict_proba_is_softmax_of_the_normalised_forward(
    data: Any, trained: TrainedClassifier
) -> None:
    images = data.images[:9]
    proba = trained.predict_proba(images)
    x = (images.float() / 255 - trained.mean.float().view(1, -1, 1, 1)) / trained.std.float().view(
        1, -1, 1, 1
    )
    with torch.no_grad():
        expected = torch.softmax(trained.model.eval()(x), dim=-1)
    torch.testing.assert_close(proba, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(trained.predict(images), proba.argmax(1))
    # bf16 autocast + channels_last (the real-time path) stays close.
    fast = trained.predict_proba(images, amp_dtype=torch.bfloat16, channels_last=True)
    torch.testing.assert_close(fast, proba, atol=0.05, rtol=0.05)
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1, H, W\)"):
        trained.predict_proba(torch.zeros(2, 3, 24, 24))


def test_save_load_round_trip_and_rejects_other_checkpoints(
    tmp_path: Path, data: Any, trained: TrainedClassifier
) -> None:
    again = TrainedClassifier.load(trained.save(tmp_path / "cells.pt"))
    assert torch.equal(again.predict_proba(data.images), trained.predict_proba(data.images))
    assert again.recipe == trained.recipe
    assert again.history.records == trained.history.records
    other = save_checkpoint(tmp_path / "plain.pt", create_model("cellcycle_convnet", n_classes=5))
    with pytest.raises(ValueError, match="TrainedClassifier.save"):
        TrainedClassifier.load(other)


def test_evaluate_agrees_with_sklearn(data: Any, trained: TrainedClassifier) -> None:
    test = subset(data, np.arange(76))
    report = evaluate(trained, test)
    predicted = trained.predict(test.images).numpy()
    expected = sk_metrics.balanced_accuracy_score(test.targets.numpy(), predicted)
    assert report.balanced_accuracy == pytest.approx(expected)
    assert report.cohen_kappa == pytest.approx(
        sk_metrics.cohen_kappa_score(test.targets.numpy(), predicted)
    )


def test_same_seed_gives_the_same_history(data: Any, trained: TrainedClassifier) -> None:
    again = train(
        TINY,
        subset(data, np.arange(0, 76, 2)),
        subset(data, np.arange(1, 76, 2)),
        device="cpu",
        progress=False,
    )
    assert again.history.records == trained.history.records


def test_cross_validate_pools_out_of_fold_predictions(data: Any) -> None:
    recipe = TINY.replace(epochs=1)
    result = cross_validate(recipe, data, n_splits=3, seed=0, device="cpu")
    assert sorted(np.bincount(result.fold_of).tolist()) == [25, 25, 26]
    y = data.targets.numpy()
    pooled = sk_metrics.balanced_accuracy_score(y, result.oof_proba.argmax(1).numpy())
    assert result.pooled.balanced_accuracy == pytest.approx(pooled)
    folds = [r.balanced_accuracy for r in result.fold_reports]
    for k, report in enumerate(result.fold_reports):
        mask = result.fold_of == k
        fold_pred = result.oof_proba[mask].argmax(1).numpy()
        assert report.balanced_accuracy == pytest.approx(
            sk_metrics.balanced_accuracy_score(y[mask], fold_pred)
        )
    mean, sd = result.table["balanced_accuracy"]
    assert mean == pytest.approx(np.mean(folds))
    assert sd == pytest.approx(np.std(folds, ddof=1))
    assert "pooled" in result.format_table()


def test_run_study_tests_both_models_once(data: Any) -> None:
    lines: list[str] = []
    result = run_study(TINY, data, device="cpu", progress=False, log=lines.append)
    assert set(result.summary["models"]) == {"cellcycle_convnet", "linear (raw pixels)"}
    assert result.summary["models"]["cellcycle_convnet"]["tested_epoch"] == 2
    assert sum(result.summary["split_counts"]["test"]) == int(
        result.test["cellcycle_convnet"].confusion_matrix.sum()
    )
    assert any(line.startswith("Test split") for line in lines)


class FakeTrial:
    """Just enough of an Optuna trial: suggestions from the space's first options."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.reports: list[tuple[float, int]] = []
        self.params: dict[str, Any] = {}
        self.attrs: dict[str, Any] = {}
        self.prune_at = prune_at

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        self.params[name] = low
        return low

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        self.params[name] = choices[0]
        return choices[0]

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return self.prune_at is not None and len(self.reports) >= self.prune_at

    def set_user_attr(self, key: str, value: Any) -> None:
        self.attrs[key] = value


def test_sweep_objective_reports_every_epoch_and_prunes(data: Any) -> None:
    trial = FakeTrial()
    value = sweep_objective(trial, data=data, epochs=2)
    assert set(trial.params) == set(SWEEP_SPACE)
    assert [step for _, step in trial.reports] == [1, 2]
    assert value == trial.reports[-1][0]
    assert 0.0 <= value <= 1.0 or math.isnan(value)
    assert CellCycleRecipe.from_json(trial.attrs["recipe"]).width == 16
    optuna = pytest.importorskip("optuna")
    with pytest.raises(optuna.TrialPruned):
        sweep_objective(FakeTrial(prune_at=1), data=data, epochs=2)


def test_load_unlabelled_reads_a_flat_folder(tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    for cell, level in (("10", 5), ("2", 7), ("3", 9)):
        image.new("L", (8, 8), color=level).save(tmp_path / f"{cell}_Ch3.png")
    (tmp_path / "notes.txt").write_text("not an image")
    images, ids = load_unlabelled(tmp_path)
    assert ids == ["2", "3", "10"]  # natural order
    assert images.shape == (3, 1, 8, 8)
    assert images[:, 0, 0, 0].tolist() == [7, 9, 5]
    with pytest.raises(ValueError, match="lacks channel"):
        load_unlabelled(tmp_path, channels=("Ch3", "Ch6"))
