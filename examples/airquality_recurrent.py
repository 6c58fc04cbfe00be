"""Forecast next-hour benzene with RNN, GRU and LSTM cells on month folds (the library API).

The study lives in :mod:`cellvision.recipes.forecasting` (``cellvision benzene`` is the
installed command with every option); this script shows the API it rests on: build a
:class:`~cellvision.recipes.forecasting.ForecastRecipe`, run
:func:`~cellvision.recipes.forecasting.run_month_folds`, print the table, save
``results.json`` and the learning curves.

Examples::

    python examples/airquality_recurrent.py --quick
    python examples/airquality_recurrent.py --cells lstm --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from cellvision.data.airquality import load_air_quality
from cellvision.recipes.forecasting import (
    CELLS,
    ForecastRecipe,
    run_month_folds,
    save_learning_curves,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the options; those left out keep the recipe's defaults."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="an AirQualityUCI CSV (default: bundled)")
    parser.add_argument("--cells", nargs="+", choices=CELLS, help="default: all three")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: 0")
    parser.add_argument("--folds", type=int, nargs="+", help="fold indices (default: all six)")
    parser.add_argument("--epochs", type=int, help="default: 12 (--quick: 6)")
    parser.add_argument("--ensemble", type=int, help="models per cell and fold (default: 4)")
    parser.add_argument("--window", type=int, help="input hours (default: 48, --quick: 24)")
    parser.add_argument("--lags", type=int, nargs="*", help="lags in hours (default: 23)")
    parser.add_argument(
        "--val-fraction", type=float, help="validation share of the training windows (0)"
    )
    parser.add_argument("--no-scale", action="store_true", help="train on raw units")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--workers", type=int, default=2, help="processes (default: 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    parser.add_argument("--out", type=Path, default=Path("runs/airquality"))
    return parser.parse_args(argv)


def build_recipe(args: argparse.Namespace) -> ForecastRecipe:
    """The recipe the options ask for (the quick preset with ``--quick``)."""
    given = {
        "cells": args.cells,
        "seeds": args.seeds,
        "folds": args.folds,
        "epochs": args.epochs,
        "ensemble_size": args.ensemble,
        "window": args.window,
        "lags": args.lags,
        "val_fraction": args.val_fraction,
        "scale": False if args.no_scale else None,
    }
    overrides = {
        k: tuple(v) if isinstance(v, list) else v for k, v in given.items() if v is not None
    }
    return ForecastRecipe.quick(**overrides) if args.quick else ForecastRecipe.from_dict(overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the study; print the table to stdout and progress to stderr."""
    args = parse_args(argv)
    try:
        recipe = build_recipe(args)
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    air_quality = None if args.data is None else load_air_quality(args.data)
    out: Path = args.out
    result = run_month_folds(
        recipe,
        air_quality,
        progress=True,
        workers=args.workers,
        checkpoint_dir=out / "checkpoints",
    )
    figures = [] if args.no_plots else [p.name for p in save_learning_curves(result, out)]
    out.mkdir(parents=True, exist_ok=True)
    summary = {**result.to_dict(), "figures": figures}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(result.table())
    print(f"done in {result.wall_seconds:.0f} s; outputs in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
