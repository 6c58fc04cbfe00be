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
    ("--tau", "tau", float, "strength of --loss logit_adjusted"),
    ("--focal-gamma", "focal_gamma", float, "focusing exponent of --loss focal"),
    (
        "--logit-adjust",
        "logit_adjust",
        float,
        "post-hoc logit adjustment at prediction (0: off)",
    ),
    (
        "--tta-confidence",
        "tta_confidence",
        float,
        "with --tta d4, cells whose one-view top probability is above this skip the views",
    ),
    ("--mixup", "mixup", float, "mixup Beta(alpha, alpha) strength (0: off)"),
    ("--cutmix", "cutmix", float, "CutMix Beta(alpha, alpha) strength (0: off)"),
    (
        "--defer-epochs",
        "defer_epochs",
        int,
        "deferred re-balancing: the first N epochs draw with --early-alpha (0: off)",
    ),
    ("--early-alpha", "early_alpha", float, "sampler alpha of the deferred epochs"),
    ("--ema", "ema", float, "decay of the predicted-with moving average of the weights (0: off)"),
    (
        "--max-rotation",
        "max_rotation",
        float,
        "largest random rotation of the augmentation, degrees (0: off)",
    ),
    (
        "--intensity-jitter",
        "intensity_jitter",
        float,
        "strength of the augmentation's random intensity change (0: off)",
    ),
    (
        "--channel-dropout",
        "channel_dropout",
        float,
        "probability that a training cell loses one channel (set to its mean; 0: off)",
    ),
    (
        "--auxiliary-channel",
        "auxiliary_channel",
        str,
        "a channel the network learns to predict while training and never sees, e.g. Ch4 "
        "(the DNA stain: predictions stay label-free); the data must hold it",
    ),
    (
        "--auxiliary-weight",
        "auxiliary_weight",
        float,
        "weight of --auxiliary-channel's mean squared error in the loss",
    ),
    (
        "--n-models",
        "n_models",
        int,
        "ensemble size (seeds seed, seed+1, ...)",
    ),
)
#: (option, dest, choices, help) of the recipe's choice fields.
_CHOICE_OPTIONS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("--loss", "loss", ("cross_entropy", "logit_adjusted", "balanced_softmax", "focal",
                        "one_vs_all"), "training loss"),
    ("--tta", "tta", ("none", "d4"), "test-time augmentation (d4: 8 dihedral views averaged)"),
    ("--amp", "amp", ("none", "bf16", "auto"), "prediction precision (bf16: bfloat16 "
     "autocast; auto: bf16 where the CPU/GPU computes it natively, else float32)"),
    ("--rotation-interpolation", "rotation_interpolation", ("nearest", "bilinear"),
     "resampling of --max-rotation (nearest keeps each pixel's value; bilinear smooths)"),
    ("--train-labels", "train_labels", ("merged", "release"), "classes the network learns "
     "(release: G1, S, G2 apart, summed into Interphase when predicting)"),
)  # fmt: skip


def _recipe_defaults_text() -> dict[str, str]:
    from cellvision.recipes.cellcycle import default_recipe

    full, quick = default_recipe(), default_recipe(quick=True)
    out = {}
    options = [o[:2] for o in _RECIPE_OPTIONS] + [o[:2] for o in _CHOICE_OPTIONS]
    for _, dest in options:
        a, b = getattr(full, dest), getattr(quick, dest)
        out[dest] = f"default: {a}" + (f", with --quick {b}" if a != b else "")
    return out


def _add_data_options(parser: argparse.ArgumentParser, *, folder_help: str) -> Any:
    group = parser.add_argument_group("data")
    group.add_argument("--data-dir", type=Path, metavar="DIR", help=folder_help)
    group.add_argument(
        "--synthetic",
        action="store_true",
        help="synthetic cells instead of the embedded real sample (fast demos and tests)",
    )
    group.add_argument(
        "--channels",
        nargs="+",
        default=None,
        metavar="CH",
        help="image channels to stack (default: the recipe's, Ch3 Ch6: brightfield and "
        "darkfield, label-free; Ch4 is the DNA stain the labels come from, NOT label-free)",
    )
    return group


def _add_recipe_options(parser: argparse.ArgumentParser) -> None:
    defaults = _recipe_defaults_text()
    group = parser.add_argument_group(
        "recipe",
        "Defaults are the realtime preset's; --preset or --model start from another recipe "
        "(Recipes guide).",
    )
    model_or_preset = group.add_mutually_exclusive_group()
    model_or_preset.add_argument(
        "--preset",
        choices=("realtime", "accurate", "legacy"),
        default=None,
        help="named recipe (default: realtime; legacy is the 0.1.0 ConvNet recipe)",
    )
    model_or_preset.add_argument(
        "--model",
        choices=("cellcycle_convnet", "cellcycle_vit", "cellcycle_resnet"),
        default=None,
        help="start from this model's tuned defaults instead of a preset",
    )
    for flag, dest, choices, text in _CHOICE_OPTIONS:
        group.add_argument(flag, dest=dest, choices=choices, default=None,
                           help=f"{text} ({defaults[dest]})")  # fmt: skip
    group.add_argument(
        "--channels-last",
        dest="channels_last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="predict in channels_last memory format (default: the recipe's)",
    )
    for flag, dest, kind, text in _RECIPE_OPTIONS:
        group.add_argument(
            flag,
            dest=dest,
            type=kind,
            metavar={int: "N", str: "NAME"}.get(kind, "X"),
            help=f"{text} ({defaults[dest]})",
        )
    group.add_argument(
        "--select",
        choices=("last", "best"),
        default=None,
        help="keep the last epoch or the best by validation balanced accuracy (default: last)",
    )
    group.add_argument(
        "--member-channels",
        nargs="+",
        default=None,
        metavar="CH[,CH]",
        help="the channels each ensemble member sees, the first being --channels, e.g. "
        "'Ch3,Ch6 Ch3' for a two-channel and a brightfield-only member (--n-models defaults "
        "to their number)",
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
            "Without --data-dir the embedded sample of real Jurkat cells is used (--synthetic:\n"
            "synthetic cells). The channels used are printed with their signal; a run with a\n"
            "channel that is not label-free (Ch4, the DNA stain) says so. The\n"
            "cells are split into train/validation/test (stratified); with --test-dir the\n"
            "test report comes from that folder and --data-dir is split into train and\n"
            "validation only. Writes results.json, checkpoint.pt (for `cellcycle predict`),\n"
            "confusion_matrix.png, curves.png and pca_val.png to --out."
        ),
        formatter_class=formatter_class,
    )
    data_group = _add_data_options(
        train,
        folder_help="labelled Jurkat folder (one sub-folder per phase, montages or per-cell "
        "files); default: the embedded real sample",
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
    _add_data_options(cv, folder_help="labelled Jurkat folder; default: the embedded real sample")
    cv.add_argument("--folds", type=int, default=5, metavar="K", help="number of folds")
    _add_recipe_options(cv)
    _add_run_options(cv, "runs/cellcycle-cv")
    cv.set_defaults(func=run_cv)

    predict = commands.add_parser(
        "predict",
        help="classify cells with a trained checkpoint, write one CSV row per cell",
        description=(
            "Classify cells with a checkpoint written by `cellvision cellcycle train`.\n\n"
            "--data-dir holds unlabelled cells as montages (Ch3_CP0001.tif, ...) or per-cell\n"
            "files (<cell id>_Ch3.png, ...), or phase sub-folders; it must have the channels\n"
            "the checkpoint was trained on. Without it the embedded real sample is classified\n"
            "(--synthetic: synthetic cells). Writes one CSV row per cell (id, predicted phase,\n"
            "one probability column per class) and prints the fraction of cells in each\n"
            "phase and the mitotic fraction (every phase but Interphase)."
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
        help="folder of cells to classify; default: the embedded real sample",
    )
    predict.add_argument(
        "--synthetic", action="store_true", help="classify fresh synthetic cells instead"
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

    dests = [o[1] for o in _RECIPE_OPTIONS] + [o[1] for o in _CHOICE_OPTIONS]
    dests.append("channels_last")
    changes: dict[str, Any] = {
        dest: getattr(args, dest) for dest in dests if getattr(args, dest) is not None
    }
    if args.select is not None:
        changes["select"] = args.select
    if args.no_augment:
        changes["augment"] = False
    if args.channels is not None:
        changes["channels"] = tuple(args.channels)
    if args.member_channels is not None:
        changes["member_channels"] = tuple(
            tuple(name for name in entry.split(",") if name) for entry in args.member_channels
        )
        changes.setdefault("n_models", len(args.member_channels))
    if args.recipe is not None:
        base = CellCycleRecipe.from_json(Path(args.recipe).read_text())
        return base.replace(**changes)
    return default_recipe(args.model, preset=args.preset, quick=args.quick, **changes)


def _setup(args: argparse.Namespace) -> None:
    if args.threads is not None:
        torch.set_num_threads(args.threads)


def _say_channels(channels: Any, auxiliary: str | None = None) -> None:
    from cellvision.recipes.cellcycle import channel_report

    for line in channel_report(channels, auxiliary=auxiliary):
        print(line, file=sys.stderr if line.startswith("WARNING") else sys.stdout, flush=True)


def _load(args: argparse.Namespace, recipe: Any) -> tuple[Any, str]:
    from cellvision.recipes.cellcycle import load_data

    return load_data(
        args.data_dir,
        synthetic=args.synthetic,
        quick=args.quick,
        channels=recipe.data_channels,
        seed=recipe.seed,
        release_labels=recipe.train_labels == "release",
    )


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
    _say_channels(recipe.channels, recipe.auxiliary_channel)
    data, description = _load(args, recipe)
    test_data = None
    if args.test_dir is not None:
        test_data, test_description = load_data(
            args.test_dir,
            channels=recipe.channels,
            release_labels=recipe.train_labels == "release",
        )
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
    from cellvision.data import is_label_free
    from cellvision.recipes.cellcycle import cross_validate

    _setup(args)
    recipe = _recipe(args)
    _say_channels(recipe.channels, recipe.auxiliary_channel)
    data, description = _load(args, recipe)
    start = time.perf_counter()
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
    seconds = time.perf_counter() - start
    print()
    print(result.format_table())
    print("recall per class (pooled out of fold): " + ", ".join(
        f"{name} {value:.3f}" for name, value in zip(
            result.pooled.class_names, result.pooled.per_class_recall.tolist(),
            strict=True)))  # fmt: skip
    print(f"cross-validation wall time: {seconds:.1f} s (torch threads: {torch.get_num_threads()})")
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "data": description,
        "recipe": recipe.to_dict(),
        "channels": list(recipe.channels),
        "label_free": is_label_free(recipe.channels),
        "class_names": list(result.pooled.class_names),
        "seconds": seconds,
    } | result.to_dict()
    (args.out / "results.json").write_text(json.dumps(summary, indent=2, allow_nan=True))
    print(f"outputs written to {args.out}", file=sys.stderr)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """``cellvision cellcycle predict``: one CSV row per cell; returns the exit status."""
    from cellvision.data import load_jurkat_sample
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
    channels = trained.channels
    if len(channels) != trained.mean.numel():
        raise ValueError(
            f"--checkpoint must record the channels its model reads ({trained.mean.numel()}), "
            f"got channels {channels!r} in {str(args.checkpoint)!r}"
        )
    _say_channels(channels)
    img_size = trained.image_size
    if args.data_dir is not None:
        images, ids = load_unlabelled(args.data_dir, channels=channels)
        source = str(args.data_dir)
    elif args.synthetic:
        data, source = load_data(
            counts=QUICK_COUNTS, size=img_size, channels=channels, seed=trained.recipe.seed + 1
        )
        images, ids = data.images, [f"cell-{i:05d}" for i in range(len(data))]
    else:
        sample = load_jurkat_sample(channels=channels)
        images, ids = sample.images, list(sample.ids or ())
        source = "the embedded real Jurkat sample"
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
    n = max(len(ids), 1)
    print(f"{len(ids)} cells from {source} classified with {args.checkpoint}")
    print("fraction of cells per phase:")
    for name, count in zip(names, counts.tolist(), strict=True):
        print(f"  {name:12s} {count:6d}  {count / n:6.1%}")
    if "Interphase" in names:
        mitotic = int(len(ids) - counts[names.index("Interphase")])
        print(f"  {'mitotic':12s} {mitotic:6d}  {mitotic / n:6.1%}  (every phase but Interphase)")
    print(f"predictions written to {out}", file=sys.stderr)
    return 0
