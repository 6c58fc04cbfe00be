"""Run an example script end to end in a subprocess (shared by the example tests)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
#: Tiny synthetic data and one short epoch: the tests check the plumbing, not the accuracy.
TINY = ["--quick", "--counts", "40", "12", "8", "8", "8", "--size", "32", "--epochs", "1",
        "--batch-size", "16", "--no-progress"]  # fmt: skip


def env() -> dict[str, str]:
    """The environment of a script: this checkout's ``src`` first on ``PYTHONPATH``."""
    out = dict(os.environ)
    parts = [str(ROOT / "src"), out.get("PYTHONPATH", "")]
    out["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    out.setdefault("OMP_NUM_THREADS", "1")
    return out


def run_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python <args>`` from the repository root; fail with its output if it fails."""
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def finite_numbers(data: Any) -> list[float]:
    """Every int/float inside nested JSON data (``None`` marks an undefined metric)."""
    if isinstance(data, bool):
        return []
    if isinstance(data, (int, float)):
        return [float(data)]
    if isinstance(data, dict):
        return [x for v in data.values() for x in finite_numbers(v)]
    if isinstance(data, list):
        return [x for v in data for x in finite_numbers(v)]
    return []


def check_study_outputs(out: Path, model: str, *, baseline: bool) -> dict[str, Any]:
    """Assert the files of a cell-cycle study exist and its numbers are finite."""
    for name in ("confusion_matrix.png", "curves.png", "pca_val.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) == ({model, "linear (raw pixels)"} if baseline else {model})
    for entry in results["models"].values():
        test = entry["test"]
        for key in ("balanced_accuracy", "macro_f1", "cohen_kappa", "roc_auc"):
            assert test[key] is not None, key
            assert math.isfinite(test[key]), key
        assert 0.0 <= test["balanced_accuracy"] <= 1.0
        # Every test cell is counted once in the confusion matrix.
        assert sum(map(sum, test["confusion_matrix"])) == sum(results["split_counts"]["test"])
        records = entry["history"]["records"]
        assert records
        assert all(math.isfinite(r["train_loss"]) for r in records)
        assert all(math.isfinite(x) for x in finite_numbers(records))
    return results
