"""Average the out-of-fold probabilities of cross-validation runs: an ensemble across recipes.

``cv_cellcycle_real.py --oof FILE`` keeps the pooled out-of-fold probabilities of each row,
the labels and the fold of every cell. This script reads rows from one or more such files
(``FILE:ROW``; ``FILE`` alone takes its first row), checks that they hold the same cells in
the same folds, and scores each row and the arithmetic mean of their probabilities (equal
weights, no tuning) exactly as the cross-validation table does: mean +- sd over the folds of
balanced accuracy, macro F1, Cohen's kappa and AUROC (:class:`cellvision.metrics.
BalancedClassificationMetrics`), and the per-class recall pooled out of fold.

The mean of two recipes is what an ensemble of their networks would predict on those folds
(each member's prediction after its own post-hoc adjustment and test-time views), so it
measures what recipes that differ more than by their seed, for example in the channels they
see, add to each other, without training anything again.

Example (from the repository root; each command trains one recipe on the same folds)::

    PYTHONPATH=src python benchmarks/cv_cellcycle_real.py --threads 2 --rows default \\
        --oof runs/both.npz
    PYTHONPATH=src python benchmarks/cv_cellcycle_real.py --threads 2 --rows default \\
        --set 'channels=["Ch3"]' --oof runs/ch3.npz
    python benchmarks/blend_oof.py runs/both.npz:default runs/ch3.npz:default
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from cellvision.metrics import BalancedClassificationMetrics

META_KEYS = ("targets", "class_names", "fold_of")
METRICS = ("balanced_accuracy", "macro_f1", "cohen_kappa", "roc_auc")


def read_row(spec: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read ``FILE[:ROW]``: its name, probabilities, labels, folds and class names."""
    path_text, sep, row = spec.rpartition(":")
    if not sep or not Path(path_text).is_file():  # no ROW given (or a ':' in the path)
        path_text, row = spec, ""
    path = Path(path_text)
    if not path.is_file():
        raise SystemExit(f"blend_oof: no such file {str(path)!r} (from {spec!r})")
    with np.load(path) as data:
        rows = [k for k in data.files if k not in META_KEYS]
        if not rows:
            raise SystemExit(f"blend_oof: {str(path)!r} holds no rows")
        row = row or rows[0]
        if row not in rows:
            raise SystemExit(f"blend_oof: {str(path)!r} has rows {rows}, got {row!r}")
        names = tuple(str(n) for n in data["class_names"])
        return f"{path.stem}:{row}", data[row], data["targets"], data["fold_of"], names


def score(proba: np.ndarray, targets: np.ndarray, folds: np.ndarray, n: int) -> str:
    """One table line: mean +- sd over the folds of each metric, then pooled recall."""
    scores = torch.from_numpy(np.log(np.clip(proba, 1e-12, None)))  # softmax gives proba back
    y = torch.from_numpy(targets).long()
    per_fold = []
    for k in np.unique(folds):
        part = torch.from_numpy(folds == k)
        report = BalancedClassificationMetrics(n).update(scores[part], y[part]).compute()
        per_fold.append([float(getattr(report, m)) for m in METRICS])
    table = np.asarray(per_fold)
    pooled = BalancedClassificationMetrics(n).update(scores, y).compute()
    cells = [
        f"{m:.3f}+-{s:.3f}" if math.isfinite(m) else "n/a"
        for m, s in zip(table.mean(0), table.std(0, ddof=1), strict=True)
    ]
    recall = " ".join(f"{v:5.2f}" for v in pooled.per_class_recall.tolist())
    return " ".join(f"{c:>12s}" for c in cells) + f"  {recall}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rows", nargs="+", metavar="FILE[:ROW]")
    args = parser.parse_args(argv)
    read = [read_row(spec) for spec in args.rows]
    _, _, targets, folds, names = read[0]
    for name, proba, other_targets, other_folds, other_names in read:
        if not (
            np.array_equal(other_targets, targets)
            and np.array_equal(other_folds, folds)
            and other_names == names
            and proba.shape == (len(targets), len(names))
        ):
            raise SystemExit(
                f"blend_oof: {name} holds other cells, folds or classes than {read[0][0]}; "
                "blend runs of the same data with the same --folds and --seed"
            )
    header = " ".join(f"{m[:12]:>12s}" for m in METRICS)
    print(f"{'row':40s} {header}  recall " + " ".join(f"{n[:5]:>5s}" for n in names))
    for name, proba, *_ in read:
        print(f"{name[:40]:40s} {score(proba, targets, folds, len(names))}")
    if len(read) > 1:
        mean = np.mean([proba for _, proba, *_ in read], axis=0)
        print(f"{'mean of the rows above':40s} {score(mean, targets, folds, len(names))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
