"""examples/ddp_cellcycle.py with two gloo processes through torch.distributed.run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.examples._run import TINY, check_study_outputs, run_script


@pytest.mark.slow
def test_two_process_run_syncs_metrics_and_rank0_writes(tmp_path: Path) -> None:
    proc = run_script(
        "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
        "examples/ddp_cellcycle.py", *TINY, "--baseline-epochs", "1", "--out", str(tmp_path),
    )  # fmt: skip
    results = check_study_outputs(tmp_path, "cellcycle_convnet", baseline=True)
    # Each rank evaluates half of the validation/test cells; synced metrics count all of them.
    for entry in results["models"].values():
        assert entry["test"]["per_class_support"] == results["split_counts"]["test"]
        last = entry["history"]["records"][-1]
        assert last["val_per_class_support"] == results["split_counts"]["val"]
        # The two ranks together draw one training split's worth of samples per epoch.
        assert last["train_samples"] >= sum(results["split_counts"]["train"])
    # Only rank 0 prints the table.
    assert proc.stdout.count("Test split") == 1
    assert (tmp_path / "checkpoint.pt").stat().st_size > 0
