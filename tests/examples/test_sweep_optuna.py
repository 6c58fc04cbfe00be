"""examples/sweep_optuna.py with two TPE trials on tiny data, and the wandb twin's space."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cellvision.recipes.cellcycle import SWEEP_SPACE
from tests.examples._run import EXAMPLES, run_script

pytest.importorskip("optuna")


def test_two_trials_print_best_config(tmp_path: Path) -> None:
    proc = run_script(
        "examples/sweep_optuna.py", "--quick", "--n-trials", "2", "--epochs", "1",
        "--counts", "40", "12", "8", "8", "8", "--size", "32", "--out", str(tmp_path),
    )  # fmt: skip
    assert proc.stdout.count("trial ") >= 2
    assert "best trial" in proc.stdout
    best = json.loads((tmp_path / "best_config.json").read_text())
    trials = json.loads((tmp_path / "trials.json").read_text())
    assert len(trials) == 2
    # The printed config JSON is the best trial's recipe, with the searched values in it.
    assert json.dumps(best, indent=2) in proc.stdout
    best_trial = max(trials, key=lambda t: t["val_balanced_accuracy"])
    for name, value in best_trial["params"].items():
        assert best[name] == value
    assert 16 <= best["width"] <= 48
    assert 0.5 <= best["alpha"] <= 1.0


def test_wandb_sweep_has_the_same_search_space() -> None:
    yaml = pytest.importorskip("yaml")
    params = yaml.safe_load((EXAMPLES / "sweep_wandb.yaml").read_text())["parameters"]
    for name, (kind, spec) in SWEEP_SPACE.items():
        wandb = params[name]
        if kind == "categorical":
            assert tuple(wandb["values"]) == spec
        else:
            assert (wandb["min"], wandb["max"]) == spec
            expected = "log_uniform_values" if kind == "log_float" else "uniform"
            assert wandb["distribution"] == expected
