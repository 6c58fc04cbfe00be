"""Overhead of cellvision.engine against a hand-written loop doing the same work.

Baseline: the minimal PyTorch epoch loop (zero_grad, forward, loss, backward, step; and a
no-grad evaluation loop accumulating the loss and a torcheval metric). Target: the engine's
``train_one_epoch``/``evaluate`` within 5 % of the baseline's time (ratio <= 1.05), i.e. the
device-side loss accumulation, mode restore and validation add no per-batch host work.

Run:  PYTHONPATH=src python benchmarks/bench_engine.py [--quick] [--threads N]
Not run in CI; timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torcheval.metrics import MulticlassAccuracy

from cellvision.engine import evaluate, train_one_epoch


def baseline_train(
    model: nn.Module, loader: DataLoader[Any], optimizer: torch.optim.Optimizer
) -> float:
    model.train()
    total, count = 0.0, 0
    for x, y in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        torch.autograd.backward(loss)
        optimizer.step()
        total += loss.item() * len(y)
        count += len(y)
    return total / count


def baseline_evaluate(model: nn.Module, loader: DataLoader[Any]) -> float:
    model.eval()
    metric = MulticlassAccuracy()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            total += F.cross_entropy(out, y).item() * len(y)
            count += len(y)
            metric.update(out, y)
    metric.compute()
    model.train()
    return total / count


def timed(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    samples = 1024 if args.quick else args.samples
    repeats = 3 if args.quick else args.repeats

    g = torch.Generator().manual_seed(0)
    x = torch.randn(samples, 64, generator=g)
    y = torch.randint(0, 5, (samples,), generator=g)
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch_size)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 5))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    metric = MulticlassAccuracy()

    rows = [
        (
            "train epoch",
            timed(lambda: baseline_train(model, loader, optimizer), repeats),
            timed(lambda: train_one_epoch(model, loader, optimizer, device="cpu"), repeats),
        ),
        (
            "evaluate",
            timed(lambda: baseline_evaluate(model, loader), repeats),
            timed(
                lambda: evaluate(
                    model, loader, metrics=metric, loss_fn=F.cross_entropy, device="cpu"
                ),
                repeats,
            ),
        ),
    ]
    print(
        f"{samples} samples, batch {args.batch_size}, {torch.get_num_threads()} threads, "
        f"median of {repeats}"
    )
    print(f"{'pass':<12} {'hand loop (s)':>14} {'engine (s)':>11} {'ratio':>6}")
    for name, base, ours in rows:
        print(f"{name:<12} {base:>14.4f} {ours:>11.4f} {ours / base:>6.3f}")


if __name__ == "__main__":
    main()
