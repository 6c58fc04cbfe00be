"""``examples/airquality_recurrent.py``: a thin script over ``cellvision.recipes.forecasting``."""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.examples._run import EXAMPLES, env

SCRIPT = EXAMPLES / "airquality_recurrent.py"
# Tiny: one fold, one epoch, two cells.
ARGS = ["--quick", "--cells", "gru", "lstm", "--folds", "2", "--epochs", "1", "--workers", "1"]


def _run(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        env={**env(), "MPLBACKEND": "Agg"},
        timeout=600,
        check=False,
    )


def test_is_thin_and_imports_only_the_library() -> None:
    source = SCRIPT.read_text()
    assert len(source.splitlines()) <= 120
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
    local = {p.stem for p in EXAMPLES.glob("*.py")}
    assert not modules & local
    assert "cellvision" in modules


def test_help_lists_the_main_options() -> None:
    proc = _run("--help")
    assert proc.returncode == 0, proc.stderr
    for flag in ("--data", "--cells", "--no-scale", "--seeds", "--out", "--quick"):
        assert flag in proc.stdout


def test_bad_arguments_are_rejected() -> None:
    proc = _run("--val-fraction", "0.7")
    assert proc.returncode == 2
    assert "val_fraction must be in [0, 0.5), got 0.7" in proc.stderr
    proc = _run("--lags", "23", "0")
    assert proc.returncode == 2
    assert "lags must be a positive integer, got 0" in proc.stderr


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
    rows = {}
    for line in first.stdout.splitlines():
        fields = line.split()
        if fields and fields[0] in {"May-Jun", "mean"}:
            rows[fields[0]] = [float(f) for f in fields[1:]]
    assert rows["May-Jun"][1:] == rows["mean"]  # one fold: the mean is that fold
    assert all(math.isfinite(v) and v > 0 for v in rows["mean"])
    results = json.loads((out / "results.json").read_text())
    assert results["mean_test_mse"]["lstm"] == pytest.approx(rows["mean"][2], abs=0.006)
    assert results["folds"]["May-Jun"]["test"] == rows["May-Jun"][0]
    second = _run(*ARGS, "--no-plots", "--out", tmp_path / "b")
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
