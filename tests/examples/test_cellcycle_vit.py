"""End-to-end run of examples/cellcycle_vit.py (tiny --quick settings)."""

from __future__ import annotations

from pathlib import Path

from cellvision.checkpoint import load_checkpoint
from cellvision.models import ViT
from tests.examples._run import TINY, check_study_outputs, run_script

SCRIPT = "examples/cellcycle_vit.py"


def test_quick_run_writes_outputs(tmp_path: Path) -> None:
    proc = run_script(SCRIPT, *TINY, "--out", str(tmp_path))
    results = check_study_outputs(tmp_path, "cellcycle_vit", baseline=False)
    assert "cellcycle_vit" in proc.stdout
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert isinstance(checkpoint.model, ViT)
    assert checkpoint.config.emb_size == results["recipe"]["width"]
    # The head starts from the training batches' prior, never from validation/test counts.
    assert len(checkpoint.config.class_freqs) == 5
