"""Two real processes (gloo) synced with torcheval's ``sync_and_compute``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from torcheval.metrics.toolkit import sync_and_compute

from cellvision.metrics import BalancedClassificationMetrics, RegressionMetrics
from tests._distributed import free_port, gloo_group

WORLD_SIZE = 2
N, C = 500, 4
# Uneven shards; in the "rank1_empty" scenario rank 1 sees no data at all.
SPLITS = {"uneven": 180, "rank1_empty": N}


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    target = torch.randint(0, C, (N,), generator=g)
    logits = torch.randn(N, C, generator=g) + torch.nn.functional.one_hot(target, C)
    y = torch.randn(N, 3, generator=g)
    y[::7, 1] = float("nan")
    y_hat = y.nan_to_num(0.0) + 0.3 * torch.randn(N, 3, generator=g)
    return logits, target, y_hat, y


def _shard(rank: int | None, cut: int) -> slice:
    if rank is None:
        return slice(0, N)
    return slice(0, cut) if rank == 0 else slice(cut, N)


def _scenarios(rank: int | None) -> dict[str, Any]:
    """Reports per scenario; rank None computes on all data in one process."""
    logits, target, y_hat, y = _data()
    out: dict[str, Any] = {}
    for split_name, cut in SPLITS.items():
        part = _shard(rank, cut)
        for auroc in ("exact", "binned", "none"):
            metric = BalancedClassificationMetrics(C, auroc=auroc)
            # Several updates per rank, so list states hold several tensors before the sync.
            idx = torch.arange(N)[part]
            for chunk in idx.split(64):
                metric.update(logits[chunk], target[chunk])
            report = metric.compute() if rank is None else sync_and_compute(metric)
            out[f"{split_name}/{auroc}"] = report.to_dict()
        labels = BalancedClassificationMetrics(C)
        labels.update(logits[part].argmax(1), target[part])
        report = labels.compute() if rank is None else sync_and_compute(labels)
        out[f"{split_name}/labels"] = report.to_dict()
        regression = RegressionMetrics(nan_policy="omit").update(y_hat[part], y[part])
        report = regression.compute() if rank is None else sync_and_compute(regression)
        out[f"{split_name}/regression"] = report.to_dict()
    return out


def _worker(rank: int, port: int, out_dir: str) -> None:
    with gloo_group(rank, WORLD_SIZE, port):
        results = _scenarios(rank)
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(results))


def _assert_same(got: Any, expected: Any, where: str) -> None:
    if isinstance(expected, float) and isinstance(got, float):
        # Exact AUROC sums ranks in another order after the gather: last-bit differences.
        assert got == pytest.approx(expected, abs=1e-12), where
    elif isinstance(expected, dict):
        assert got.keys() == expected.keys(), where
        for key in expected:
            _assert_same(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            _assert_same(g, e, f"{where}[{i}]")
    else:
        assert got == expected, where


@pytest.mark.slow
def test_two_process_gloo_sync_equals_single_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    expected = _scenarios(None)
    for rank in range(WORLD_SIZE):
        got = json.loads(Path(tmp_path, f"rank{rank}.json").read_text())
        assert got.keys() == expected.keys()
        for key in expected:
            _assert_same(got[key], expected[key], f"rank{rank}:{key}")
    # The scenarios exercise what they claim to: AUROC computed, and unavailable for labels.
    assert expected["uneven/exact"]["roc_auc"] is not None
    assert expected["uneven/labels"]["roc_auc"] is None
    assert expected["uneven/regression"]["num_ignored"] > 0
