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
from pathlib import Path

import numpy as np
import torch
from cv_cellcycle_real import format_row

from cellvision.metrics import BalancedClassificationMetrics, ClassificationReport
from cellvision.recipes.cellcycle import TABLE_METRICS, CrossValidationResult, _fold_table

META_KEYS = ("targets", "class_names", "fold_of")


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


def result_of(
    proba: np.ndarray, targets: np.ndarray, folds: np.ndarray, names: tuple[str, ...]
) -> CrossValidationResult:
    """The probabilities scored as :func:`~cellvision.recipes.cellcycle.cross_validate` does."""
    scores = torch.from_numpy(np.log(np.clip(proba, 1e-12, None)))  # softmax gives proba back
    y = torch.from_numpy(targets).long()

    def report(part: torch.Tensor) -> ClassificationReport:
        metric = BalancedClassificationMetrics(len(names), class_names=names)
        return metric.update(scores[part], y[part]).compute()

    reports = [report(torch.from_numpy(folds == k)) for k in np.unique(folds)]
    return CrossValidationResult(
        fold_reports=reports,
        pooled=report(torch.ones(len(y), dtype=torch.bool)),
        oof_proba=torch.from_numpy(proba),
        fold_of=folds,
        table=_fold_table(reports),
    )


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
    header = f"{'row':24s} " + " ".join(f"{s:>12s}" for _, s in TABLE_METRICS)
    print(header + "  recall " + " ".join(f"{n[:5]:>5s}" for n in names) + "  seconds")
    rows = [(name, proba) for name, proba, *_ in read]
    if len(read) > 1:
        rows.append(("mean of the rows above", np.mean([p for _, p in rows], axis=0)))
    for name, proba in rows:
        # No training or prediction here: the seconds column is 0.
        print(format_row(name, result_of(proba, targets, folds, names), 0.0, names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
