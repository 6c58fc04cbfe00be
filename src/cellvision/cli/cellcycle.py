"""``cellvision cellcycle {train,cv,predict}``: the cell-cycle study from the command line.

Only argument parsing and printing live here; the study is :mod:`cellvision.recipes.cellcycle`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from cellvision.cli._common import EpochProgress
from cellvision.engine import History

__all__ = ["add_parser", "run_cv", "run_predict", "run_train"]

# (option, dest, type, help) of the recipe fields a command line may change; defaults come
# from cellvision.recipes.cellcycle.default_recipe (per model, with or without --quick).
_RECIPE_OPTIONS: tuple[tuple[str, str, type, str], ...] = (
    ("--epochs", "epochs", int, "training epochs"),
    ("--batch-size", "batch_size", int, "batch size (per process)"),
    ("--lr", "lr", float, "AdamW peak learning rate (warm-up + cosine schedule)"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay"),
    ("--dropout", "dropout", float, "model dropout"),
    ("--width", "width", int, "ConvNet channels / ViT embedding size"),
    ("--depth", "depth", int, "ConvNet blocks / ViT blocks"),
    ("--alpha", "alpha", float, "ClassBalancedSampler alpha (0: natural mix, 1: balanced)"),
    ("--baseline-epochs", "baseline_epochs", int, "epochs of the raw-pixel baseline (0: skip)"),
    ("--seed", "seed", int, "seed of the split, sampler, augmentation and weights"),
)


def _recipe_defaults_text() -> dict[str, str]:
    from cellvision.recipes.cellcycle import default_recipe

    full, quick = default_recipe(), default_recipe(quick=True)
    out = {}
    for _, dest, _, _ in _RECIPE_OPTIONS:
        a, b = getattr(full, dest), getattr(quick, dest)
        out[dest] = f"default: {a}" + (f", with --quick {b}" if a != b else "")
    return out


def _add_data_options(parser: argparse.ArgumentParser, *, folder_help: str) -> Any:
    group = parser.add_argument_group("data")
    group.add_argument("--data-dir", type=Path, metavar="DIR", help=folder_help)
    group.add_argument(
        "--channels",
        nargs="+",
        default=None,
        metavar="CH",
        help="image channels to stack (default: Ch3)",
    )
    return group


def _add_recipe_options(parser: argparse.ArgumentParser) -> None:
    defaults = _recipe_defaults_text()
    group = parser.add_argument_group(
        "recipe", "Defaults are the ConvNet's; --model cellcycle_vit has its own (Recipes guide)."
    )
    group.add_argument(
        "--model",
        choices=("cellcycle_convnet", "cellcycle_vit"),
        default="cellcycle_convnet",
        help="registered model",
    )
    for flag, dest, kind, text in _RECIPE_OPTIONS:
        group.add_argument(
            flag,
            dest=dest,
            type=kind,
            metavar="N" if kind is int else "X",
            help=f"{text} ({defaults[dest]})",
        )
    group.add_argument(
        "--select",
        choices=("last", "best"),
        default=None,
        help="keep the last epoch or the best by validation balanced accuracy (default: last)",
    )
    group.add_argument("--no-augment", action="store_true", help="train without augmentation")
    group.add_argument(
        "--recipe",
        type=Path,
        metavar="FILE",
        help="start from this CellCycleRecipe JSON (options above still win)",
    )


def _add_run_options(parser: argparse.ArgumentParser, out: str) -> None:
    group = parser.add_argument_group("run")
    group.add_argument(
        "--quick",
        action="store_true",
        help="small default data and a short schedule (about a minute)",
    )
    group.add_argument("--out", type=Path, default=Path(out), metavar="DIR", help="output folder")
    group.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1")
    group.add_argument("--no-progress", action="store_true", help="no per-epoch progress output")
    group.add_argument("--threads", type=int, metavar="N", help="torch CPU threads")


def add_parser(
    subparsers: Any, formatter_class: type[argparse.HelpFormatter]
) -> argparse.ArgumentParser:
    """Register ``cellvision cellcycle`` and its ``train``/``cv``/``predict`` subcommands.

    Parameters
    ----------
    subparsers : argparse subparsers action
        From ``parser.add_subparsers()``.
    formatter_class : type
        The shared help formatter.

    Returns
    -------
    argparse.ArgumentParser
        The ``cellcycle`` parser.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "cellcycle",
        help="cell-cycle phase classification (train, cv, predict)",
        description="Cell-cycle phase classification of imaging-flow-cytometry cells.",
        formatter_class=formatter_class,
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train",
        help="train the recipe, test it once, write results.json, checkpoint and figures",
        description=(
            "Train the cell-cycle recipe on labelled cells and test it once.\n\n"
            "Without --data-dir the package's default cells are used (synthetic today). The\n"
            "cells are split into train/validation/test (stratified); with --test-dir the\n"
            "test report comes from that folder and --data-dir is split into train and\n"
            "validation only. Writes results.json, checkpoint.pt (for `cellcycle predict`),\n"
            "confusion_matrix.png, curves.png and pca_val.png to --out."
        ),
        formatter_class=formatter_class,
    )
    data_group = _add_data_options(
        train,
        folder_help="Jurkat CellCycle folder (one "
        "sub-folder per phase); default: the package's default cells",
    )
    data_group.add_argument(
        "--test-dir", type=Path, metavar="DIR", help="separately labelled test folder"
    )
    _add_recipe_options(train)
    _add_run_options(train, "runs/cellcycle-train")
    train.add_argument("--no-figures", action="store_true", help="skip the figures")
    train.set_defaults(func=run_train)

    cv = commands.add_parser(
        "cv",
        help="stratified k-fold cross-validation of the recipe",
        description=(
            "Stratified k-fold cross-validation: every fold trains the recipe on the other\n"
            "folds and predicts its own cells. Prints per-fold, mean, sd and pooled\n"
            "out-of-fold metrics; writes results.json to --out."
        ),
        formatter_class=formatter_class,
    )
    _add_data_options(
        cv, folder_help="Jurkat CellCycle folder; default: the package's default cells"
    )
    cv.add_argument("--folds", type=int, default=5, metavar="K", help="number of folds")
    _add_recipe_options(cv)
    _add_run_options(cv, "runs/cellcycle-cv")
    cv.set_defaults(func=run_cv)

    predict = commands.add_parser(
        "predict",
        help="classify cells with a trained checkpoint, write one CSV row per cell",
        description=(
            "Classify cells with a checkpoint written by `cellvision cellcycle train`.\n\n"
            "--data-dir holds either <cell id>_<channel>.<ext> files (unlabelled cells) or\n"
            "phase sub-folders; without it, fresh default cells are drawn. Writes one CSV row\n"
            "per cell (id, predicted phase, one probability column per class) and prints the\n"
            "phase fractions."
        ),
        formatter_class=formatter_class,
    )
    predict.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        metavar="FILE",
        help="checkpoint.pt written by `cellvision cellcycle train`",
    )
    predict.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="folder of cells to classify; default: fresh default cells",
    )
    predict.add_argument(
        "--out",
        type=Path,
        default=Path("runs/cellcycle-predict/predictions.csv"),
        metavar="FILE.csv",
        help="CSV file to write",
    )
    predict.add_argument(
        "--batch-size", type=int, default=256, metavar="N", help="cells per forward pass"
    )
    predict.add_argument("--device", default="cpu", help="torch device")
    predict.set_defaults(func=run_predict)
    return parser


# --------------------------------------------------------------------------- helpers
def _recipe(args: argparse.Namespace) -> Any:
    from cellvision.recipes.cellcycle import CellCycleRecipe, default_recipe

    changes: dict[str, Any] = {
        dest: getattr(args, dest)
        for _, dest, _, _ in _RECIPE_OPTIONS
        if getattr(args, dest) is not None
    }
    if args.select is not None:
        changes["select"] = args.select
    if args.no_augment:
        changes["augment"] = False
    if args.channels is not None:
        changes["channels"] = tuple(args.channels)
    if args.recipe is not None:
        base = CellCycleRecipe.from_json(Path(args.recipe).read_text())
        return base.replace(**changes)
    return default_recipe(args.model, quick=args.quick, **changes)


def _setup(args: argparse.Namespace) -> None:
    if args.threads is not None:
        torch.set_num_threads(args.threads)


def _epoch_text(record: dict[str, Any]) -> str:
    from cellvision.recipes.cellcycle import TABLE_METRICS

    parts = [f"train_loss {record['train_loss']:.4f}"]
    if "val_loss" in record:
        parts.append(f"val_loss {record['val_loss']:.4f}")
        for key, short in TABLE_METRICS:
            value = record.get("val_" + key)
            parts.append(f"{short} " + ("  n/a" if value is None else f"{value:.3f}"))
    return "  ".join(parts)


def _progress_hook(args: argparse.Namespace, totals: dict[str, int]) -> Any:
    if args.no_progress:
        return None
    progress = EpochProgress()

    def on_epoch(name: str, history: History) -> None:
        record = history[-1]
        if progress.name != name:
            progress.start(name, totals.get(name, 0))
        progress.epoch(int(record["epoch"]), _epoch_text(record))
        if record["epoch"] == totals.get(name):
            progress.close()

    return on_epoch


# --------------------------------------------------------------------------- commands
def run_train(args: argparse.Namespace) -> int:
    """``cellvision cellcycle train``: the whole study; returns the exit status."""
    from cellvision.recipes.cellcycle import load_data, run_study

    _setup(args)
    recipe = _recipe(args)
    data, description = load_data(
        args.data_dir, quick=args.quick, channels=recipe.channels, seed=recipe.seed
    )
    test_data = None
    if args.test_dir is not None:
        test_data, test_description = load_data(args.test_dir, channels=recipe.channels)
        description += f"; test: {test_description}"
    totals = {recipe.model: recipe.epochs, "linear (raw pixels)": recipe.baseline_epochs}
    start = time.perf_counter()
    result = run_study(
        recipe,
        data,
        test_data=test_data,
        data_description=description,
        device=args.device,
        progress=False,
        on_epoch=_progress_hook(args, totals),
    )
    written = result.save(args.out, figures=not args.no_figures)
    print(
        f"{recipe.model} study time: {time.perf_counter() - start:.1f} s "
        f"(torch threads: {torch.get_num_threads()})",
        file=sys.stderr,
    )
    print(f"outputs written to {args.out}: {', '.join(p.name for p in written)}", file=sys.stderr)
    return 0


def run_cv(args: argparse.Namespace) -> int:
    """``cellvision cellcycle cv``: k-fold cross-validation; returns the exit status."""
    from cellvision.recipes.cellcycle import cross_validate, load_data

    _setup(args)
    recipe = _recipe(args)
    data, description = load_data(
        args.data_dir, quick=args.quick, channels=recipe.channels, seed=recipe.seed
    )
    print(
        f"data: {description}; {len(data)} cells; {args.folds} folds; recipe "
        f"{recipe.to_json(indent=None)}"
    )

    def on_fold(fold: int, report: Any) -> None:
        if not args.no_progress:
            print(
                f"fold {fold}/{args.folds}: balanced accuracy {report.balanced_accuracy:.3f}",
                flush=True,
            )

    result = cross_validate(
        recipe, data, n_splits=args.folds, seed=recipe.seed, device=args.device, on_fold=on_fold
    )
    print()
    print(result.format_table())
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "data": description,
        "recipe": recipe.to_dict(),
        "class_names": list(data.class_names),
    } | result.to_dict()
    (args.out / "results.json").write_text(json.dumps(summary, indent=2, allow_nan=True))
    print(f"outputs written to {args.out}", file=sys.stderr)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """``cellvision cellcycle predict``: one CSV row per cell; returns the exit status."""
    from cellvision.recipes.cellcycle import (
        QUICK_COUNTS,
        TrainedClassifier,
        load_data,
        load_unlabelled,
    )

    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(
            f"--checkpoint must be an existing file, got {str(args.checkpoint)!r}"
        )
    trained = TrainedClassifier.load(args.checkpoint, map_location=args.device)
    img_size = trained.image_size
    if args.data_dir is not None:
        images, ids = load_unlabelled(args.data_dir, channels=trained.recipe.channels)
        source = str(args.data_dir)
    else:
        data, source = load_data(
            counts=QUICK_COUNTS,
            size=img_size,
            channels=trained.recipe.channels,
            seed=trained.recipe.seed + 1,
        )
        images, ids = data.images, [f"cell-{i:05d}" for i in range(len(data))]
    if tuple(images.shape[-2:]) != (img_size, img_size):
        raise ValueError(
            f"--data-dir images must be {img_size}x{img_size} like the training "
            f"cells, got {images.shape[-2]}x{images.shape[-1]}"
        )
    proba = trained.predict_proba(images, batch_size=args.batch_size, device=args.device)
    labels = proba.argmax(dim=1)
    names = trained.class_names
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "predicted_phase", *(f"p_{name}" for name in names)])
        for cell, label, row in zip(ids, labels.tolist(), proba.tolist(), strict=True):
            writer.writerow([cell, names[label], *(f"{p:.6f}" for p in row)])
    counts = torch.bincount(labels, minlength=len(names))
    print(f"{len(ids)} cells from {source} classified with {args.checkpoint}")
    for name, count in zip(names, counts.tolist(), strict=True):
        print(f"  {name:12s} {count:6d}  {count / len(ids):6.1%}")
    print(f"predictions written to {out}", file=sys.stderr)
    return 0
