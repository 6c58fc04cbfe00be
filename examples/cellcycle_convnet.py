"""Cell-cycle phase classification with the ConvNet (the original study's network).

A thin script over :mod:`cellvision.recipes.cellcycle` (the study of ``cellvision cellcycle
train``): synthetic cells or a Jurkat ``CellCycle`` folder (``--data-dir``), stratified
train/validation/test split, class-balanced sampling, augmentation, AdamW with warm-up +
cosine, and the test table next to a linear classifier on raw pixels. Other recipe fields
are set as ``FIELD=VALUE`` (a sweep agent's flat parameters, wandb's ``${args_no_hyphens}``).
Outputs under ``--out``: ``results.json``, ``checkpoint.pt`` (for ``cellvision cellcycle
predict``), ``confusion_matrix.png``, ``curves.png``, ``pca_val.png``.

Examples::

    python examples/cellcycle_convnet.py --quick
    python examples/cellcycle_convnet.py --data-dir /data/CellCycle --epochs 20
    python examples/cellcycle_convnet.py --quick lr=0.001 weight_decay=0.01
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cellvision.engine import History
from cellvision.recipes.cellcycle import CellCycleRecipe, default_recipe, load_data, run_study

MODEL = "cellcycle_convnet"
OUT = Path("runs/cellcycle-convnet")
#: Options of this script that set recipe fields (dest, type, help).
RECIPE_OPTIONS = (
    ("epochs", int, "training epochs"),
    ("batch_size", int, "batch size"),
    ("lr", float, "AdamW peak learning rate"),
    ("width", int, "channels of every convolution block"),
    ("depth", int, "convolution blocks"),
    ("kernel_size", int, "convolution kernel side"),
    ("alpha", float, "ClassBalancedSampler alpha"),
    ("baseline_epochs", int, "epochs of the raw-pixel baseline (0: skip it)"),
    ("seed", int, "seed of the data, split, sampler and weights"),
)


def build_parser() -> argparse.ArgumentParser:
    """The command line: data, the ConvNet's recipe fields, outputs."""
    full, quick = default_recipe(MODEL), default_recipe(MODEL, quick=True)
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-dir", help="Jurkat CellCycle folder (default: synthetic cells)")
    p.add_argument("--counts", type=int, nargs=5, metavar="N", help="synthetic cells per class")
    p.add_argument("--size", type=int, help="synthetic image side (default 66, --quick 48)")
    for dest, kind, text in RECIPE_OPTIONS:
        a, b = getattr(full, dest), getattr(quick, dest)
        hint = f"default {a}" + (f", --quick {b}" if a != b else "")
        p.add_argument("--" + dest.replace("_", "-"), type=kind, help=f"{text} ({hint})")
    p.add_argument("--select", choices=("last", "best"), help="epoch kept (default last)")
    p.add_argument("overrides", nargs="*", metavar="FIELD=VALUE", help="other recipe fields")
    p.add_argument("--quick", action="store_true", help="small data, short schedule (~1 min)")
    p.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no per-epoch lines")
    return p


def make_recipe(args: argparse.Namespace, parser: argparse.ArgumentParser) -> CellCycleRecipe:
    """The recipe: tuned defaults, then the options given, then ``FIELD=VALUE`` pairs."""
    given: dict[str, Any] = {d: getattr(args, d) for d, _, _ in RECIPE_OPTIONS}
    given["select"] = args.select
    pairs = [item.partition("=") for item in args.overrides]
    if any(not sep for _, sep, _ in pairs):
        parser.error(f"overrides must be FIELD=VALUE, got {args.overrides!r}")
    try:
        recipe = default_recipe(
            MODEL, quick=args.quick, **{k: v for k, v in given.items() if v is not None}
        )
        return CellCycleRecipe.from_flat_dict(recipe.to_flat_dict() | {k: v for k, _, v in pairs})
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))


def print_epoch(name: str, history: History) -> None:
    """One line per epoch (epochs counted from 1)."""
    r = history[-1]
    bal = r["val_balanced_accuracy"]
    print(
        f"{name} epoch {r['epoch']:3d}: train_loss {r['train_loss']:.4f}  val_loss "
        f"{r['val_loss']:.4f}  bal_acc {'n/a' if bal is None else f'{bal:.3f}'}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv``, run the study and write its outputs."""
    parser = build_parser()
    args = parser.parse_args(argv)
    recipe = make_recipe(args, parser)
    data, description = load_data(
        args.data_dir, quick=args.quick, counts=args.counts, size=args.size, seed=recipe.seed
    )
    start = time.perf_counter()
    result = run_study(
        recipe,
        data,
        data_description=description,
        device=args.device,
        progress=False,
        on_epoch=None if args.no_progress else print_epoch,
    )
    result.save(args.out)
    print(f"study time: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(f"outputs written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
