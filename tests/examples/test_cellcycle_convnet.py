"""End-to-end runs of examples/cellcycle_convnet.py (tiny --quick settings)."""

from __future__ import annotations

from pathlib import Path

import torch

from cellvision.checkpoint import load_checkpoint
from cellvision.models import ConvNet
from tests.examples._run import TINY, check_study_outputs, run_script

SCRIPT = "examples/cellcycle_convnet.py"


def test_help() -> None:
    out = run_script(SCRIPT, "--help").stdout
    for flag in ("--data-dir", "--seed", "--out", "--quick", "--no-progress", "--alpha"):
        assert flag in out


def test_quick_run_writes_outputs_and_same_seed_prints_same_table(tmp_path: Path) -> None:
    first = run_script(SCRIPT, *TINY, "--baseline-epochs", "1", "--out", str(tmp_path / "a"))
    results = check_study_outputs(tmp_path / "a", "cellcycle_convnet", baseline=True)
    assert "Test split" in first.stdout
    assert "linear (raw pixels)" in first.stdout
    assert "study time" in first.stderr
    assert "study time" not in first.stdout

    checkpoint = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert isinstance(checkpoint.model, ConvNet)
    assert checkpoint.config.channels == results["recipe"]["width"]
    assert checkpoint.extra["class_names"] == results["class_names"]
    logits = checkpoint.model.eval()(torch.zeros(2, 1, 32, 32))
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()

    second = run_script(SCRIPT, *TINY, "--baseline-epochs", "1", "--out", str(tmp_path / "b"))
    assert second.stdout == first.stdout
