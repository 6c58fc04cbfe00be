"""Benchmark ``BalancedClassificationMetrics`` against torcheval and scikit-learn.

Streams N predictions (5 classes, 97% of targets in class 0) in batches of 4,096 and then
computes, for:

* ours: one ``BalancedClassificationMetrics`` (``auroc="none"``, ``"exact"``, ``"binned"``);
* the torcheval set giving the same numbers: ``MulticlassAccuracy(average="macro")``,
  ``MulticlassPrecision``/``MulticlassRecall``/``MulticlassF1Score`` (macro),
  ``MulticlassConfusionMatrix`` and, with AUROC, ``MulticlassAUROC`` on softmax scores;
* scikit-learn on the full arrays: ``accuracy_score``, ``balanced_accuracy_score``,
  ``precision_recall_fscore_support(average="macro")``, ``f1_score(average="weighted")``,
  ``cohen_kappa_score``, ``confusion_matrix`` and, with AUROC, ``roc_auc_score(ovr)``.

It prints wall times and the ratios baseline / ours, then the peak memory (resident set,
measured in a fresh subprocess per mode) of exact vs binned AUROC. Not run in CI.

Usage::

    PYTHONPATH=src python benchmarks/bench_metrics.py            # 1e6 and 1e7
    PYTHONPATH=src python benchmarks/bench_metrics.py --quick    # 1e5, seconds
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn import metrics as skm
from torcheval import metrics as tm

from cellvision.metrics import BalancedClassificationMetrics

NUM_CLASSES = 5


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (n, 5) float32 and imbalanced targets (97% class 0) correlated with them."""
    g = torch.Generator().manual_seed(seed)
    rare = torch.rand(n, generator=g) < 0.03
    target = torch.where(rare, torch.randint(1, NUM_CLASSES, (n,), generator=g), 0)
    logits = torch.randn(n, NUM_CLASSES, generator=g)
    logits += 2.0 * torch.nn.functional.one_hot(target, NUM_CLASSES).float()
    return logits, target


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def run_ours(logits: torch.Tensor, target: torch.Tensor, batch: int, auroc: str) -> Any:
    metric = BalancedClassificationMetrics(NUM_CLASSES, auroc=auroc)  # type: ignore[arg-type]
    for start in range(0, logits.shape[0], batch):
        metric.update(logits[start : start + batch], target[start : start + batch])
    return metric.compute()


def run_torcheval(logits: torch.Tensor, target: torch.Tensor, batch: int, auroc: bool) -> Any:
    c = NUM_CLASSES
    count_metrics = {
        "balanced_accuracy": tm.MulticlassAccuracy(average="macro", num_classes=c),
        "macro_precision": tm.MulticlassPrecision(average="macro", num_classes=c),
        "macro_recall": tm.MulticlassRecall(average="macro", num_classes=c),
        "macro_f1": tm.MulticlassF1Score(average="macro", num_classes=c),
        "confusion_matrix": tm.MulticlassConfusionMatrix(c),
    }
    auroc_metric = tm.MulticlassAUROC(num_classes=c, average="macro") if auroc else None
    for start in range(0, logits.shape[0], batch):
        x, y = logits[start : start + batch], target[start : start + batch]
        for m in count_metrics.values():
            m.update(x, y)
        if auroc_metric is not None:
            # Softmax over a contiguous class-major copy: the fast path (ours does the same).
            auroc_metric.update(torch.softmax(x.t().contiguous(), dim=0).t(), y)
    out = {name: m.compute() for name, m in count_metrics.items()}
    if auroc_metric is not None:
        out["roc_auc"] = auroc_metric.compute()
    return out


def run_sklearn(logits: np.ndarray, target: np.ndarray, auroc: bool) -> dict[str, Any]:
    pred = logits.argmax(axis=1)
    out: dict[str, Any] = {
        "accuracy": skm.accuracy_score(target, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(target, pred),
        "macro_prf": skm.precision_recall_fscore_support(
            target, pred, average="macro", zero_division=0
        ),
        "weighted_f1": skm.f1_score(target, pred, average="weighted", zero_division=0),
        "cohen_kappa": skm.cohen_kappa_score(target, pred),
        "confusion_matrix": skm.confusion_matrix(target, pred),
    }
    if auroc:
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        out["roc_auc"] = skm.roc_auc_score(target, probs, multi_class="ovr", average="macro")
    return out


def check_agreement(ours: Any, te: dict[str, Any], sk: dict[str, Any]) -> float:
    """Largest absolute difference between our numbers and both baselines."""
    diffs = [
        abs(ours.balanced_accuracy - float(te["balanced_accuracy"])),
        abs(ours.macro_precision - float(te["macro_precision"])),
        abs(ours.macro_recall - float(te["macro_recall"])),
        abs(ours.macro_f1 - float(te["macro_f1"])),
        float((ours.confusion_matrix - te["confusion_matrix"].long()).abs().max()),
        abs(ours.balanced_accuracy - sk["balanced_accuracy"]),
        abs(ours.macro_f1 - sk["macro_prf"][2]),
        abs(ours.weighted_f1 - sk["weighted_f1"]),
        abs(ours.cohen_kappa - sk["cohen_kappa"]),
    ]
    if "roc_auc" in te:
        diffs += [abs(ours.roc_auc - float(te["roc_auc"])), abs(ours.roc_auc - sk["roc_auc"])]
    return float(max(diffs))


def proc_status_kib(key: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not found in /proc/self/status")


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0); getrusage's ru_maxrss cannot be reset
    and even carries the parent's peak across exec."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def memory_child(mode: str, n: int, batch: int) -> None:
    """Stream n predictions generated batch by batch; print peak RSS growth in MiB as JSON."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    # Warm-up on two full batches: lazy allocator and kernel set-up is not the metric's memory.
    for warm_mode in ("exact", "binned"):
        warm = BalancedClassificationMetrics(NUM_CLASSES, auroc=warm_mode)
        for _ in range(2):
            warm.update(
                torch.randn(batch, NUM_CLASSES, generator=g),
                torch.randint(0, NUM_CLASSES, (batch,), generator=g),
            )
        warm.compute()
    del warm
    reset_peak_rss()
    base = proc_status_kib("VmRSS")
    metric = BalancedClassificationMetrics(NUM_CLASSES, auroc=mode)  # type: ignore[arg-type]
    for start in range(0, n, batch):
        size = min(batch, n - start)
        metric.update(
            torch.randn(size, NUM_CLASSES, generator=g),
            torch.randint(0, NUM_CLASSES, (size,), generator=g),
        )
    states = [getattr(metric, name) for name in metric._state_name_to_default]
    state_bytes = sum(
        t.numel() * t.element_size()
        for value in states
        for t in (value if isinstance(value, list) else [value])
        if isinstance(t, torch.Tensor)
    )
    metric.compute()
    peak = proc_status_kib("VmHWM")
    print(json.dumps({"peak_mib": (peak - base) / 1024, "state_mib": state_bytes / 2**20}))


def measure_memory(mode: str, n: int, batch: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--memory-child", mode]
    command += ["--sizes", str(n), "--batch", str(batch)]
    out = subprocess.run(
        command,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def bench_size(n: int, args: argparse.Namespace) -> None:
    """Time ours, the torcheval set and scikit-learn on n predictions; print one table."""
    logits, target = make_data(n, seed=0)
    np_logits, np_target = logits.numpy(), target.numpy()
    print(f"\nN = {n:.0e}")
    header = f"{'mode':<13}{'ours s':>9}{'torcheval s':>13}{'sklearn s':>11}"
    print(header + f"{'x torcheval':>13}{'x sklearn':>11}{'max |diff|':>12}")
    ours: Any = None
    for label, mode in (("no AUROC", "none"), ("exact AUROC", "exact")):
        with_auc = mode != "none"
        t_ours, ours = best_time(
            functools.partial(run_ours, logits, target, args.batch, mode), args.repeats
        )
        t_te, te = best_time(
            functools.partial(run_torcheval, logits, target, args.batch, with_auc), args.repeats
        )
        if args.no_sklearn:
            t_sk, sk_text, diff = float("nan"), "-", float("nan")
        else:
            t_sk, sk = best_time(
                functools.partial(run_sklearn, np_logits, np_target, with_auc), args.repeats
            )
            sk_text, diff = f"{t_sk:.3f}", check_agreement(ours, te, sk)
        print(
            f"{label:<13}{t_ours:>9.3f}{t_te:>13.3f}{sk_text:>11}"
            f"{t_te / t_ours:>12.1f}x{t_sk / t_ours:>10.1f}x{diff:>12.1e}"
        )
    t_binned, binned = best_time(
        functools.partial(run_ours, logits, target, args.batch, "binned"), args.repeats
    )
    print(
        f"{'binned AUROC':<13}{t_binned:>9.3f}  (|binned - exact| macro AUROC = "
        f"{abs(binned.roc_auc - ours.roc_auc):.1e})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small size (1e5)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10**6, 10**7])
    parser.add_argument("--batch", type=int, default=4096, help="update batch size")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn")
    parser.add_argument("--memory-child", choices=["exact", "binned"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.sizes[0], args.batch)
        return
    sizes = [10**5] if args.quick else args.sizes
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, "
        f"{NUM_CLASSES} classes, best of {args.repeats}"
    )
    for n in sizes:
        bench_size(n, args)
        for mode in ("exact", "binned"):
            mem = measure_memory(mode, n, args.batch)
            print(
                f"peak memory {mode:<7} AUROC: {mem['peak_mib']:8.1f} MiB over baseline "
                f"(state {mem['state_mib']:.2f} MiB)"
            )


if __name__ == "__main__":
    main()
