"""End-to-end runs of ``examples/airquality_recurrent.py`` in ``--quick`` mode."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.examples._run import EXAMPLES, env

SCRIPT = EXAMPLES / "airquality_recurrent.py"
# Tiny: one fold, one epoch, two cells (the second one on the same fold).
ARGS = ["--quick", "--cells", "gru", "lstm", "--folds", "2", "--epochs", "1", "--no-progress"]


def _run(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        env={**env(), "MPLBACKEND": "Agg"},
        timeout=600,
        check=False,
    )


def _table_rows(stdout: str) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {}
    for line in stdout.splitlines():
        fields = line.split()
        if fields and fields[0] in {"May-Jun", "mean"}:
            rows[fields[0]] = [float(f) for f in fields[1:]]
    return rows


def test_help_lists_the_main_options() -> None:
    proc = _run("--help")
    assert proc.returncode == 0, proc.stderr
    for flag in ("--data", "--cells", "--no-scale", "--seed", "--seeds", "--out", "--quick"):
        assert flag in proc.stdout


@pytest.mark.slow
def test_quick_run_writes_outputs_and_is_reproducible(tmp_path: Path) -> None:
    first = _run(*ARGS, "--out", tmp_path / "a")
    assert first.returncode == 0, first.stderr
    out = tmp_path / "a"
    for name in ("results.json", "learning_curves.png", "learning_curves_gru.png"):
        assert (out / name).stat().st_size > 0, name
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "gru_fold2_seed0_m0.pt",
        "lstm_fold2_seed0_m0.pt",
    ]
    rows = _table_rows(first.stdout)
    # fold row: n_test, persistence, gru, lstm; mean row: persistence, gru, lstm
    assert len(rows["May-Jun"]) == 4
    assert len(rows["mean"]) == 3
    assert all(math.isfinite(v) and v > 0 for v in rows["May-Jun"] + rows["mean"])
    assert rows["May-Jun"][1:] == rows["mean"]  # one fold: the mean is that fold

    results = json.loads((out / "results.json").read_text())
    fold = results["folds"]["May-Jun"]
    assert fold["lstm_seed0"]["member_test_mse"] == [results["mean_test_mse"]["lstm"]]
    # default: no validation slice, the last epoch of the fixed schedule is the model
    assert fold["val"] == 0
    assert fold["lstm_seed0"]["val_mse"] is None
    assert fold["lstm_seed0"]["best_epochs"] == [0]  # --epochs 1
    assert all(set(r) == {"epoch", "train_mse"} for r in fold["lstm_seed0"]["curves"][0])
    assert fold["fit"] < 9357
    assert fold["test"] == rows["May-Jun"][0]
    assert results["mean_test_mse"]["lstm"] == pytest.approx(rows["mean"][2], abs=0.006)
    # timings go to stderr, never into the table
    assert not re.search(r"\bs\b|seconds", first.stdout)

    second = _run(*ARGS, "--out", tmp_path / "b")
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout


@pytest.mark.slow
def test_no_scale_seeds_ensemble_and_workers(tmp_path: Path) -> None:
    args = ["--quick", "--cells", "rnn", "--folds", "2", "--epochs", "2", "--no-progress",
            "--no-scale", "--seeds", "0", "1", "--ensemble", "2",
            "--val-fraction", "0.1"]  # fmt: skip
    serial = _run(*args, "--no-plots", "--out", tmp_path / "serial")
    assert serial.returncode == 0, serial.stderr
    assert "sd/seeds" in serial.stdout
    assert "single" in serial.stdout
    assert not (tmp_path / "serial" / "learning_curves.png").exists()
    assert len(list((tmp_path / "serial" / "checkpoints").iterdir())) == 4
    # with a validation slice each member keeps its epoch of lowest validation MSE
    fold = json.loads((tmp_path / "serial" / "results.json").read_text())["folds"]["May-Jun"]
    assert fold["val"] > 0
    for curves, best in zip(fold["rnn_seed0"]["curves"], fold["rnn_seed0"]["best_epochs"],
                            strict=True):  # fmt: skip
        val = [r["val_mse"] for r in curves]
        assert best == val.index(min(val))
    assert math.isfinite(fold["rnn_seed0"]["val_mse"])
    # worker processes train the same models: the same table (plots change nothing in it)
    parallel = _run(*args, "--workers", "2", "--out", tmp_path / "parallel")
    assert parallel.returncode == 0, parallel.stderr
    assert parallel.stdout == serial.stdout
    for name in ("learning_curves.png", "learning_curves_rnn.png"):
        assert (tmp_path / "parallel" / name).stat().st_size > 0, name


def test_bad_arguments_are_rejected() -> None:
    for bad in ("0.7", "-0.1"):
        proc = _run("--val-fraction", bad)
        assert proc.returncode == 2
        assert f"--val-fraction must be in [0, 0.5), got {float(bad)!r}" in proc.stderr
    proc = _run("--lags", "23", "0")
    assert proc.returncode == 2
    assert "--lags must be positive integers, got [23, 0]" in proc.stderr


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("airquality_recurrent", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_default_trains_on_every_training_window() -> None:
    script = _load_script()
    args = script.parse_args(["--folds", "1", "4", "--window", "24"])
    assert args.val_fraction == 0.0
    study = script.build_study(args)
    ds = study.ds
    spans = ds.sample_timestamps
    reference = list(script.MonthFoldSplitter(months_per_fold=2).split(spans, groups=spans))
    for k, (fit_idx, val_idx, test_idx) in study.splits.items():
        assert val_idx.size == 0
        np.testing.assert_array_equal(fit_idx, reference[k][0])
        np.testing.assert_array_equal(test_idx, reference[k][1])


def test_validation_slice_is_carved_from_training_months_with_a_gap() -> None:
    script = _load_script()
    args = script.parse_args(["--folds", "1", "4", "--window", "24", "--val-fraction", "0.1"])
    study = script.build_study(args)
    ds = study.ds
    for k, (fit_idx, val_idx, test_idx) in study.splits.items():
        fit_rows, val_rows = ds.covered_rows(fit_idx), ds.covered_rows(val_idx)
        test_rows = ds.covered_rows(test_idx)
        # no shared reading between any two of the three sets
        assert not set(fit_rows) & set(val_rows), k
        assert not set(test_rows) & (set(fit_rows) | set(val_rows)), k
        # validation is the latest part of the training windows, a full window after the fit
        assert val_rows.min() - fit_rows.max() > ds.window
        assert 0.08 < val_idx.size / (fit_idx.size + val_idx.size) < 0.12


def test_persistence_is_the_last_observed_value() -> None:
    script = _load_script()
    study = script.build_study(script.parse_args(["--folds", "0"]))
    ds = study.ds
    aq = script.load_air_quality(drop_columns=["NMHC(GT)"])
    benzene = aq["C6H6(GT)"].astype(np.float64)
    test_idx = study.splits[0][2]
    # naive reference: walk back from the window's last hour to the latest reading
    errors = []
    for t in ds.end_rows[test_idx]:
        s = int(t)
        while np.isnan(benzene[s]):
            s -= 1
        errors.append((benzene[s] - benzene[t + 1]) ** 2)
    assert script.persistence_mse(ds, test_idx) == pytest.approx(np.mean(errors), rel=1e-9)


def test_inputs_never_read_the_target_hour() -> None:
    # Naive reference: rebuild each input row from the forward-filled readings by hand.
    script = _load_script()
    args = script.parse_args(["--folds", "3"])
    # the defaults
    assert args.hour_one_hot
    assert args.lags == [23]
    assert args.window == 48
    study = script.build_study(args)
    ds = study.ds
    aq = script.load_air_quality(drop_columns=["NMHC(GT)"])
    filled = aq.fill_missing("ffill")
    names = list(ds.columns)
    hours = aq.timestamps.astype("datetime64[h]").astype(np.int64) % 24
    rng = np.random.default_rng(0)
    picks = rng.choice(len(ds), size=50, replace=False)
    x, y = ds[picks]
    for sample, t in enumerate(ds.end_rows[picks]):
        t = int(t)
        assert y[sample, 0].item() == pytest.approx(aq["C6H6(GT)"][t + 1])  # target: hour t + 1
        for step in range(ds.window):
            row = t - (ds.window - 1) + step  # never beyond t, the hour before the target
            got = x[sample, step].numpy()
            for column in aq.columns:
                assert got[names.index(column)] == pytest.approx(filled[column][row])
                lag_name = f"{column}_lag23"
                if lag_name in names:
                    assert got[names.index(lag_name)] == pytest.approx(filled[column][row - 23])
            assert got[names.index(f"hour_{hours[row]:02d}")] == 1.0
            assert got[[re.fullmatch(r"hour_\d\d", n) is not None for n in names]].sum() == 1.0
