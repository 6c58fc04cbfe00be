"""``cellvision benzene``: the month-fold benzene study on the bundled Air Quality data.

Thin argument parsing over :func:`cellvision.recipes.forecasting.run_month_folds`: options
left out keep the :class:`~cellvision.recipes.forecasting.ForecastRecipe` defaults (or its
:meth:`~cellvision.recipes.forecasting.ForecastRecipe.quick` values with ``--quick``). The
table goes to stdout; progress goes to stderr; ``results.json``, the learning-curve figures
and one checkpoint per model go under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cellvision.recipes.forecasting import CELLS, ForecastRecipe

__all__ = ["add_parser", "main", "run"]

_DEFAULT = ForecastRecipe()
_QUICK = ForecastRecipe.quick()
#: Recipe fields the command sets (the option is the field name with dashes).
_FIELDS: tuple[str, ...] = (
    "cells",
    "seeds",
    "folds",
    "val_fraction",
    "window",
    "lags",
    "hour_one_hot",
    "missing_indicators",
    "drop_columns",
    "scale",
    "hidden_size",
    "num_layers",
    "dropout",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "grad_clip_norm",
    "ensemble_size",
)


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value) if value else "none"
    return str(value)


def _default(field: str) -> str:
    """The recipe default of ``field`` (and its --quick value where that differs)."""
    value, quick = getattr(_DEFAULT, field), getattr(_QUICK, field)
    text = f"default: {_shown(value)}"
    if quick != value:
        text += f"; --quick: {_shown(quick)}"
    return f" ({text})"


def add_parser(
    subparsers: Any, formatter_class: type[argparse.HelpFormatter]
) -> argparse.ArgumentParser:
    """Create the ``benzene`` subcommand's parser.

    Recipe options default to :data:`argparse.SUPPRESS`: an option left out keeps the
    recipe's own default (written once in its help), so ``--quick`` can replace the sizes
    that were not set explicitly.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``.
    formatter_class : type
        Help formatter of the ``cellvision`` command.

    Returns
    -------
    argparse.ArgumentParser
        The subparser, with ``func=run`` as its default.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "benzene",
        help="forecast next-hour benzene with RNN/GRU/LSTM cells on month folds",
        description=(
            "Forecast next-hour benzene C6H6(GT) of the UCI Air Quality data from the "
            "previous hours with RNN, GRU and LSTM regressors on six folds that each withhold "
            "two calendar months, next to the persistence baseline. Prints the test-MSE table; "
            "writes results.json, learning curves and checkpoints under --out."
        ),
        formatter_class=formatter_class,
    )
    hide = argparse.SUPPRESS
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        type=Path,
        default=hide,
        metavar="CSV",
        help="an AirQualityUCI CSV file (default: the copy bundled with cellvision)",
    )
    data.add_argument(
        "--drop",
        dest="drop_columns",
        nargs="*",
        default=hide,
        metavar="COLUMN",
        help="input columns to leave out" + _default("drop_columns"),
    )
    data.add_argument(
        "--window",
        type=int,
        default=hide,
        metavar="H",
        help="input hours per sample" + _default("window"),
    )
    data.add_argument(
        "--lags",
        type=int,
        nargs="*",
        default=hide,
        metavar="L",
        help="also give benzene, its sensor, CO and NOx shifted back L hours; no value for "
        "none" + _default("lags"),
    )
    data.add_argument(
        "--no-hour-one-hot",
        dest="hour_one_hot",
        action="store_false",
        default=hide,
        help="leave out the one-hot hour-of-day inputs",
    )
    data.add_argument(
        "--missing-indicators",
        action="store_true",
        default=hide,
        help="add a 0/1 input per column with gaps marking the missing readings",
    )
    data.add_argument(
        "--no-scale",
        dest="scale",
        action="store_false",
        default=hide,
        help="no per-fold z-transform (train on raw units)",
    )
    data.add_argument(
        "--folds",
        type=int,
        nargs="+",
        default=hide,
        metavar="K",
        help="run only these folds, 0 = Jan-Feb ... 5 = Nov-Dec (default: all six)",
    )
    data.add_argument(
        "--val-fraction",
        type=float,
        default=hide,
        metavar="F",
        help="hold out the latest F of each fold's training windows to choose each model's "
        "epoch; 0: train on all of them and keep the last epoch" + _default("val_fraction"),
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--cells",
        nargs="+",
        choices=CELLS,
        default=hide,
        help="recurrent cells to compare" + _default("cells"),
    )
    for field, kind, what in (
        ("hidden_size", int, "recurrent state width"),
        ("num_layers", int, "stacked recurrent layers"),
        ("dropout", float, "dropout probability"),
    ):
        model.add_argument(
            "--" + field.replace("_", "-"),
            type=kind,
            default=hide,
            metavar="N" if kind is int else "X",
            help=what + _default(field),
        )
    training = parser.add_argument_group("training")
    for field, kind, what in (
        ("epochs", int, "training epochs"),
        ("batch_size", int, "training windows per batch"),
        ("lr", float, "peak learning rate of the one-cycle schedule"),
        ("weight_decay", float, "AdamW weight decay"),
        ("grad_clip_norm", float, "gradient-norm clip"),
    ):
        training.add_argument(
            "--" + field.replace("_", "-"),
            type=kind,
            default=hide,
            metavar="N" if kind is int else "X",
            help=what + _default(field),
        )
    training.add_argument(
        "--ensemble",
        dest="ensemble_size",
        type=int,
        default=hide,
        metavar="N",
        help="models per cell and fold; their predictions are averaged" + _default("ensemble_size"),
    )
    training.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=hide,
        metavar="S",
        help="run every seed; the table gives the mean and spread" + _default("seeds"),
    )
    run_group = parser.add_argument_group("run")
    run_group.add_argument(
        "--quick",
        action="store_true",
        default=hide,
        help="a small smoke run: 24-hour windows, one 1x32 model per cell and fold, 6 epochs "
        "at lr 5e-3",
    )
    run_group.add_argument(
        "--out",
        type=Path,
        default=Path("runs/benzene"),
        metavar="DIR",
        help="output directory (default: %(default)s)",
    )
    run_group.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        metavar="N",
        help="models trained at once in separate processes; the results do not depend on it "
        "(default: %(default)s)",
    )
    run_group.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch CPU threads per process (default: %(default)s)",
    )
    run_group.add_argument(
        "--no-figures",
        dest="figures",
        action="store_false",
        default=hide,
        help="do not draw the learning-curve figures",
    )
    parser.set_defaults(func=run)
    return parser


def recipe_from_args(args: argparse.Namespace) -> ForecastRecipe:
    """Return the recipe the parsed options ask for.

    Parameters
    ----------
    args : argparse.Namespace
        From the ``benzene`` parser.

    Returns
    -------
    ForecastRecipe
        The defaults (or the quick values with ``--quick``), with the given options on top.

    Raises
    ------
    ValueError, TypeError
        If an option value is invalid for the recipe.
    """
    overrides: dict[str, Any] = {}
    for field in _FIELDS:
        if hasattr(args, field):
            value = getattr(args, field)
            overrides[field] = tuple(value) if isinstance(value, list) else value
    if getattr(args, "quick", False):
        return ForecastRecipe.quick(**overrides)
    return ForecastRecipe.from_dict(overrides)


def run(args: argparse.Namespace) -> int:
    """Run the study the options describe; return the exit status.

    Parameters
    ----------
    args : argparse.Namespace
        From the ``benzene`` parser.

    Returns
    -------
    int
        0 on success.

    Raises
    ------
    ValueError, TypeError
        On invalid options (one line, naming the option's recipe field).
    """
    from cellvision.data.airquality import load_air_quality
    from cellvision.recipes.forecasting import run_month_folds, save_learning_curves

    recipe = recipe_from_args(args)
    for name in ("workers", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(args, name)!r}")
    torch.set_num_threads(args.threads)
    path = getattr(args, "data", None)
    air_quality = None if path is None else load_air_quality(path)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    result = run_month_folds(
        recipe,
        air_quality,
        progress=True,
        workers=args.workers,
        checkpoint_dir=out / "checkpoints",
    )
    figures: list[str] = []
    if getattr(args, "figures", True):
        try:
            figures = [p.name for p in save_learning_curves(result, out)]
        except ImportError:
            print(
                'figures skipped: matplotlib is not installed (pip install "cellvision[plot]")',
                file=sys.stderr,
            )
    summary = {**result.to_dict(), "data": str(path) if path else "bundled", "figures": figures}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(result.table())
    print(f"done in {result.wall_seconds:.0f} s; outputs in {out}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cellvision benzene`` on its own (``python -m cellvision.cli.benzene``).

    Parameters
    ----------
    argv : sequence of str, optional
        The options (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status; invalid options print ``cellvision benzene: error: ...`` and
        return 2.
    """
    parser = argparse.ArgumentParser(prog="cellvision")
    subparsers = parser.add_subparsers()
    sub = add_parser(subparsers, argparse.HelpFormatter)
    args = parser.parse_args(["benzene", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run(args)
    except (ValueError, TypeError) as exc:
        sub.exit(2, f"{sub.prog}: error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
