"""End-to-end runs of examples/cellcycle_convnet.py (tiny --quick settings)."""

from __future__ import annotations

from pathlib import Path

import torch

from cellvision.checkpoint import load_checkpoint
from cellvision.models import ConvNet
from cellvision.recipes.cellcycle import TrainedClassifier
from tests.examples._run import TINY, check_study_outputs, run_script

SCRIPT = "examples/cellcycle_convnet.py"


def test_help_lists_convnet_options_once_and_no_vit_options() -> None:
    out = run_script(SCRIPT, "--help").stdout
    for flag in ("--data-dir", "--seed", "--out", "--quick", "--no-progress", "--alpha"):
        assert flag in out, flag
    for absent in ("--batch_size", "--patch-size", "--n-heads", "PYTHONPATH", "(default: None)"):
        assert absent not in out, absent


def test_quick_run_writes_outputs_and_same_seed_prints_same_table(tmp_path: Path) -> None:
    first = run_script(SCRIPT, *TINY, "--baseline-epochs", "1", "--out", str(tmp_path / "a"))
    results = check_study_outputs(tmp_path / "a", "cellcycle_convnet", baseline=True)
    assert "Test split" in first.stdout
    assert "linear (raw pixels)" in first.stdout
    assert "study time" in first.stderr
    assert "study time" not in first.stdout
    # Epochs are counted from 1 in the records, the table and the checkpoint alike.
    entry = results["models"]["cellcycle_convnet"]
    assert [r["epoch"] for r in entry["history"]["records"]] == [1]
    assert entry["tested_epoch"] == 1

    checkpoint = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert isinstance(checkpoint.model, ConvNet)
    assert checkpoint.epoch == 1
    assert checkpoint.config.channels == results["recipe"]["width"]
    assert checkpoint.extra["class_names"] == results["class_names"]
    logits = checkpoint.model.eval()(torch.zeros(2, 1, 32, 32))
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    # The same file is a TrainedClassifier with the training normalisation.
    trained = TrainedClassifier.load(tmp_path / "a" / "checkpoint.pt")
    assert trained.predict_proba(torch.zeros(3, 1, 32, 32)).sum(1).allclose(torch.ones(3))

    second = run_script(SCRIPT, *TINY, "--baseline-epochs", "1", "--out", str(tmp_path / "b"))
    assert second.stdout == first.stdout


def test_field_value_overrides_reach_the_recipe(tmp_path: Path) -> None:
    run_script(SCRIPT, *TINY, "--baseline-epochs", "0", "weight_decay=0.02", "decay_all=false",
               "--out", str(tmp_path))  # fmt: skip
    results = check_study_outputs(tmp_path, "cellcycle_convnet", baseline=False)
    assert results["recipe"]["weight_decay"] == 0.02
    assert results["recipe"]["decay_all"] is False
