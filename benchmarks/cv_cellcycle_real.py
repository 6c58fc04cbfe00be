"""Cross-validation of cell-cycle recipes on real Jurkat cells: the table and the ablation.

Every row is 5-fold stratified cross-validation (:func:`cellvision.recipes.cellcycle.
cross_validate`, the same folds for every row: they depend on the labels and ``--seed`` only)
on a labelled montage folder of the release, by default ``../shared/data/jurkat/Experiment_1``
(the developer copy; ``$CELLVISION_SHARED/data/jurkat/Experiment_1`` when that variable is
set; a clear message and exit status 0 when it is absent). For each row it
prints mean +- sd over the folds of balanced accuracy, macro F1, Cohen's kappa and AUROC,
the per-class recall pooled out of fold, and the wall time.

Rows are given by name (``--rows``):

- ``legacy``: the 0.1.0 recipe (ConvNet, brightfield Ch3, cross-entropy, no TTA), the
  baseline of the issue; ``default``, ``realtime``, ``accurate``: the named presets of
  :func:`~cellvision.recipes.cellcycle.default_recipe`;
- a loss on the default recipe: ``ce`` (cross-entropy), ``logit_adjusted`` (``la``),
  ``balanced_softmax`` (``bs``), ``focal``, ``one_vs_all`` (``ova``);
- any of these with ``+tta`` (D4 test-time augmentation of every cell) or ``+tta@C`` (only
  of the cells whose one-view top probability is at most ``C``, the ``tta_confidence``
  gate) and/or ``+posthoc`` (post-hoc logit adjustment against the training batch mix, tau
  ``--posthoc-tau``) or ``+posthoc@TAU`` (that tau, e.g. ``ce+posthoc@2``; ``@0`` turns a
  preset's adjustment off).

The ``+tta``/``+posthoc`` variants are NOT retrained: each base row is trained once per fold
and its variants are evaluated from the same trained classifiers
(:meth:`~cellvision.recipes.cellcycle.CrossValidationResult.with_options`), so a variant's
difference is the inference option alone. The wall time of a base row is its whole
cross-validation (training + prediction); a variant's is its extra prediction time.

Examples (from the repository root)::

    PYTHONPATH=src python benchmarks/cv_cellcycle_real.py --threads 2
    PYTHONPATH=src python benchmarks/cv_cellcycle_real.py --epochs 1 --rows legacy ce+tta
    PYTHONPATH=src python benchmarks/cv_cellcycle_real.py --rows ce ce+tta ce+posthoc \\
        focal focal+tta focal+posthoc --json runs/ablation.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cellvision.data import INTERPHASE_MERGE, CellImageDataset, merge_labels
from cellvision.recipes.cellcycle import (
    TABLE_METRICS,
    CellCycleRecipe,
    CrossValidationResult,
    cross_validate,
    default_recipe,
    load_data,
)

REPO = Path(__file__).resolve().parents[1]
# The shared folder sits next to the repository; CELLVISION_SHARED points elsewhere (a worktree).
SHARED = Path(os.environ.get("CELLVISION_SHARED", REPO.parent / "shared"))
DEFAULT_DATA = SHARED / "data" / "jurkat" / "Experiment_1"
#: Row base name -> how to build its recipe from the default recipe.
LOSS_ALIASES = {
    "ce": "cross_entropy",
    "cross_entropy": "cross_entropy",
    "la": "logit_adjusted",
    "logit_adjusted": "logit_adjusted",
    "bs": "balanced_softmax",
    "balanced_softmax": "balanced_softmax",
    "focal": "focal",
    "ova": "one_vs_all",
    "one_vs_all": "one_vs_all",
}
PRESET_ROWS = ("legacy", "default", "realtime", "accurate")
SUFFIXES = ("tta", "posthoc")  # "posthoc@TAU" gives the tau of one row
DEFAULT_ROWS = (
    "legacy", "default",
    "ce", "ce+tta", "ce+posthoc",
    "la", "la+tta",
    "bs", "bs+tta",
    "focal", "focal+tta", "focal+posthoc",
    "ova", "ova+tta", "ova+posthoc",
)  # fmt: skip


def parse_row(name: str) -> tuple[str, tuple[str, ...]]:
    """Split ``"focal+tta+posthoc"`` into the base ``"focal"`` and its suffixes."""
    base, *suffixes = name.split("+")
    if base not in PRESET_ROWS and base not in LOSS_ALIASES:
        known = ", ".join((*PRESET_ROWS, *LOSS_ALIASES))
        raise ValueError(f"row base must be one of {known}, got {name!r}")
    for suffix in suffixes:
        kind, _, value = suffix.partition("@")
        if kind not in SUFFIXES or (value and not _is_float(value)):
            raise ValueError(
                f"row suffixes must be among {SUFFIXES}, posthoc@TAU or tta@CONFIDENCE, "
                f"got {name!r}"
            )
    return base, tuple(sorted(set(suffixes)))


def _is_float(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def parse_set(text: str) -> tuple[str, str]:
    """``"seed=1"`` -> ``("seed", "1")``; the recipe coerces the value to its field's type."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set takes FIELD=VALUE, got {text!r}")
    return key, value


def base_recipe(base: str, changes: dict[str, Any]) -> CellCycleRecipe:
    """The recipe trained for a base row (inference options reset, then ``changes``: field
    values, or strings that :meth:`~cellvision.config.Config.from_flat_dict` coerces)."""
    if base in PRESET_ROWS:
        recipe = default_recipe(preset=None if base == "default" else base)
    else:
        recipe = default_recipe().replace(
            loss=LOSS_ALIASES[base], tta="none", tta_confidence=1.0, logit_adjust=0.0
        )
    return CellCycleRecipe.from_flat_dict(recipe.to_flat_dict() | changes) if changes else recipe


def format_row(
    name: str, result: CrossValidationResult, seconds: float, class_names: tuple[str, ...]
) -> str:
    cells = []
    for key, _ in TABLE_METRICS:
        mean, sd = result.table[key]
        cells.append("   n/a      " if not math.isfinite(mean) else f"{mean:.3f}+-{sd:.3f}")
    recall = " ".join(f"{v:5.2f}" for v in result.pooled.per_class_recall.tolist())
    return f"{name:24s} " + " ".join(f"{c:>12s}" for c in cells) + f"  {recall}  {seconds:7.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "data_dir", nargs="?", type=Path, default=DEFAULT_DATA,
        help=f"labelled montage folder (default: {DEFAULT_DATA})",
    )  # fmt: skip
    parser.add_argument("--rows", nargs="+", default=list(DEFAULT_ROWS), metavar="ROW")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds")
    parser.add_argument("--epochs", type=int, help="override every row's epochs (quick checks)")
    parser.add_argument("--posthoc-tau", type=float, default=1.0, help="tau of +posthoc")
    parser.add_argument(
        "--set", type=parse_set, action="append", default=[], metavar="FIELD=VALUE",
        help="change a recipe field of every row, e.g. --set seed=1 --set n_models=2",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the table here")
    parser.add_argument(
        "--oof", type=Path, metavar="FILE",
        help="also write each row's out-of-fold probabilities here (.npz: targets, class_names, "
        "fold_of, one array per row)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not Path(args.data_dir).is_dir():
        print(
            f"cv_cellcycle_real: no data at {args.data_dir} (the developer copy of the Jurkat "
            "release, ../shared/data/jurkat/Experiment_1); nothing to do."
        )
        return 0
    try:
        rows = [(name, *parse_row(name)) for name in args.rows]
    except ValueError as exc:
        parser.error(str(exc))
    changes: dict[str, Any] = dict(args.set)
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    try:
        base_recipe(rows[0][1], changes)  # a bad --set fails here, before any training
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))

    cache: dict[tuple[str, ...], CellImageDataset] = {}

    def data_for(recipe: CellCycleRecipe) -> CellImageDataset:
        if recipe.data_channels not in cache:
            # Release labels (G1/S/G2 apart): recipes that train on merged classes merge them.
            cache[recipe.data_channels], _ = load_data(
                args.data_dir, channels=recipe.data_channels, release_labels=True
            )
        return cache[recipe.data_channels]

    trained: dict[str, tuple[CrossValidationResult, float]] = {}
    header = f"{'row':24s} " + " ".join(f"{s:>12s}" for _, s in TABLE_METRICS)
    print(f"data: {args.data_dir}; {args.folds} stratified folds, seed {args.seed}; "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    names: tuple[str, ...] = ()
    header_printed = False
    table: dict[str, Any] = {}
    oof: dict[str, Any] = {}
    for name, base, suffixes in rows:
        recipe = base_recipe(base, changes)
        data = data_for(recipe)
        names = merge_labels(data.targets, INTERPHASE_MERGE, class_names=data.class_names)[1]
        if not header_printed:
            header += "  recall " + " ".join(f"{n[:5]:>5s}" for n in names) + "  seconds"
            print(header)
            print("-" * len(header))
            header_printed = True
        options: dict[str, Any] = {}
        for suffix in suffixes:
            kind, _, value = suffix.partition("@")
            if kind == "tta":
                options["tta"] = "d4"
                options["tta_confidence"] = float(value) if value else 1.0
            else:
                options["logit_adjust"] = float(value) if value else args.posthoc_tau
        try:
            recipe.replace(**options)  # an invalid variant is skipped before any training
        except ValueError as exc:  # e.g. post-hoc adjustment on a loss that adjusts already
            print(f"{name:24s} skipped: {exc}")
            continue
        if base not in trained:
            print(f"# {base}: {json.dumps(recipe.to_dict())}", flush=True)
            start = time.perf_counter()
            result = cross_validate(
                recipe, data, args.folds, args.seed, device=args.device, keep_classifiers=True
            )
            trained[base] = (result, time.perf_counter() - start)
        result, seconds = trained[base]
        if options:
            start = time.perf_counter()
            result = result.with_options(data, **options)
            seconds = time.perf_counter() - start
        print(format_row(name, result, seconds, names), flush=True)
        oof[name] = result.oof_proba.numpy()
        oof["fold_of"] = result.fold_of
        table[name] = {
            "recipe": recipe.replace(**options).to_dict() if options else recipe.to_dict(),
            "retrained": not options,
            "seconds": seconds,
            "table": {k: {"mean": m, "sd": s} for k, (m, s) in result.table.items()},
            "pooled_recall": dict(zip(names, result.pooled.per_class_recall.tolist(), strict=True)),
        }
    print("base rows: seconds = the whole cross-validation; +tta/+posthoc rows: seconds = the "
          "extra prediction time (same trained folds, not retrained)")  # fmt: skip
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(table, indent=2, allow_nan=True))
        print(f"written to {args.json}", file=sys.stderr)
    if args.oof is not None:
        targets = merge_labels(data.targets, INTERPHASE_MERGE, class_names=data.class_names)[0]
        args.oof.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            args.oof, targets=np.asarray(targets), class_names=np.array(names), **oof
        )
        print(f"out-of-fold probabilities written to {args.oof}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
