"""The shared cell-cycle recipe behind ``cellcycle_convnet.py``, ``cellcycle_vit.py``,
``ddp_cellcycle.py`` and ``sweep_optuna.py``.

One function, :func:`run_study`, does the whole study with the library's building blocks:

1. data: synthetic cells (:func:`cellvision.data.make_synthetic_cells`) or a Jurkat
   ``CellCycle`` folder (:class:`cellvision.data.CellCycleFolder`, G1/S/G2 merged into
   Interphase), held in memory;
2. a stratified train / validation / test split (:func:`cellvision.splits.stratified_split`
   twice); the per-channel normalisation is fitted on the training images only;
3. ``ClassBalancedSampler(alpha=0.9)`` over the training labels (sharded under DDP);
4. batched augmentation (dihedral flips/rotations, reflected shifts, intensity jitter) run on
   the device by the engine's ``batch_transform``;
5. the model from the registry with its head initialised to the class prior of the training
   batches (the training class counts reweighted by the sampler,
   :func:`~cellvision.sampling.expected_class_distribution`), AdamW and a linear warm-up +
   cosine learning-rate schedule stepped per batch;
6. :func:`cellvision.engine.fit` with a per-epoch
   :class:`~cellvision.metrics.BalancedClassificationMetrics` report on the validation split;
7. the reported numbers come from the test split, evaluated once at the end. By default the
   last epoch is reported (``select="last"``: validation is only watched); with
   ``select="best"`` the epoch with the best validation balanced accuracy is restored first.
   Either way the validation split never trains the model and the test split never chooses
   anything.

Alongside the main model the study trains a linear classifier on raw (normalised) pixels on
the same split with the same sampler, optimizer and loop, as the baseline the network has to
beat.

This module is imported by the example scripts (they put ``examples/`` on ``sys.path`` by
being run from it); it is not part of the installed library.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from cellvision.checkpoint import save_checkpoint
from cellvision.config import (
    Config,
    check_choice,
    check_non_negative_int,
    check_positive_float,
    check_positive_int,
    check_probability,
)
from cellvision.data import (
    CellCycleFolder,
    CellImageDataset,
    Compose,
    Normalize,
    RandomDihedral,
    RandomIntensity,
    RandomTranslate,
    channel_stats,
    make_synthetic_cells,
)
from cellvision.engine import History, evaluate, fit
from cellvision.layers import init_class_prior_
from cellvision.metrics import BalancedClassificationMetrics, ClassificationReport
from cellvision.models import create_model, unwrap_model
from cellvision.sampling import ClassBalancedSampler, expected_class_distribution
from cellvision.splits import stratified_split

#: Cells per class of a ``--quick`` synthetic run (Interphase ... Telophase).
QUICK_COUNTS = (300, 100, 40, 24, 30)
#: Metrics shown in the tables, in order, with their column titles.
TABLE_METRICS = (
    ("balanced_accuracy", "bal_acc"),
    ("macro_f1", "macro_f1"),
    ("cohen_kappa", "kappa"),
    ("roc_auc", "auroc"),
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CellCycleRecipe(Config):
    """Every setting of one cell-cycle run (flat, so sweeps build it with ``from_flat_dict``).

    Parameters
    ----------
    model : str
        Registered model name (``"cellcycle_convnet"`` or ``"cellcycle_vit"``).
    epochs, batch_size : int
        Training length and per-process batch size.
    lr, weight_decay : float
        AdamW peak learning rate (warm-up + cosine schedule) and decoupled weight decay.
    dropout : float
        Model dropout.
    width : int
        ConvNet ``channels`` / ViT ``emb_size`` (the ViT MLP is twice as wide).
    depth : int
        ConvNet ``n_blocks`` / ViT ``n_blks``.
    kernel_size : int
        ConvNet kernel side (ignored by the ViT).
    pool_every : int
        ConvNet ``pool_every``: a max-pool after every this many blocks (ignored by the ViT).
    patch_size : int
        ViT patch side (ignored by the ConvNet).
    n_heads : int
        ViT attention heads (ignored by the ConvNet).
    alpha : float
        ``ClassBalancedSampler`` rebalancing strength.
    val_fraction, test_fraction : float
        Stratified fractions of every class held out for validation and test.
    select : {"last", "best"}
        Which epoch's weights are tested: the last, or the best by validation balanced
        accuracy.
    augment : bool
        Apply the batched augmentation to training batches.
    max_shift : int
        Largest random shift of the augmentation, in pixels.
    baseline_epochs : int
        Epochs of the linear raw-pixel baseline (0 skips it).
    seed : int
        Seed of the data, split, sampler, augmentation and weights.
    """

    model: str = "cellcycle_convnet"
    epochs: int = 12
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dropout: float = 0.1
    width: int = 32
    depth: int = 4
    kernel_size: int = 3
    pool_every: int = 1
    patch_size: int = 11
    n_heads: int = 4
    alpha: float = 0.9
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    select: str = "last"
    augment: bool = True
    max_shift: int = 4
    baseline_epochs: int = 12
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("model", self.model, ("cellcycle_convnet", "cellcycle_vit"))
        for name in ("epochs", "batch_size", "width", "depth", "kernel_size"):
            check_positive_int(name, getattr(self, name))
        for name in ("pool_every", "patch_size", "n_heads"):
            check_positive_int(name, getattr(self, name))
        check_positive_float("lr", self.lr)
        check_non_negative_int("max_shift", self.max_shift)
        check_non_negative_int("baseline_epochs", self.baseline_epochs)
        check_non_negative_int("seed", self.seed)
        check_probability("dropout", self.dropout)
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not (isinstance(self.alpha, (int, float)) and 0.0 <= self.alpha <= 1.0):
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha!r}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 < value < 0.5):
                raise ValueError(f"{name} must be in (0, 0.5), got {value!r}")
        check_choice("select", self.select, ("last", "best"))


# --------------------------------------------------------------------------- data
def load_cells(
    data_dir: str | None,
    *,
    channels: Sequence[str] = ("Ch3",),
    counts: Sequence[int] | None = None,
    size: int = 66,
    seed: int = 0,
) -> tuple[CellImageDataset, str]:
    """Return the in-memory cells and a description of where they come from.

    With ``data_dir`` the Jurkat folder is read with the merged five classes (problem files
    skipped with a warning); otherwise synthetic cells are drawn.
    """
    if data_dir is not None:
        folder = CellCycleFolder(data_dir, channels=channels, on_error="skip")
        return folder.load_into_memory(), f"Jurkat folder {data_dir} ({', '.join(channels)})"
    data = make_synthetic_cells(
        list(counts) if counts is not None else None, size=size, channels=len(channels), seed=seed
    )
    return data, f"synthetic cells {size}x{size}, seed {seed}"


def three_way_split(
    labels: Tensor, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Stratified train / validation / test indices (test first, then validation)."""
    rest, test = stratified_split(labels, test_fraction, seed=seed)
    train_local, val_local = stratified_split(
        labels[torch.from_numpy(rest)], val_fraction / (1.0 - test_fraction), seed=seed + 1
    )
    return rest[train_local], rest[val_local], test


def subset(data: CellImageDataset, index: np.ndarray[Any, Any], transform: Any) -> CellImageDataset:
    """An in-memory data set of ``data[index]`` with ``transform`` applied on access."""
    idx = torch.from_numpy(index)
    return CellImageDataset(
        data.images[idx], data.targets[idx], data.class_names, transform=transform
    )


def augmentation(max_shift: int, *, seed: int) -> Callable[[Tensor], Tensor]:
    """The training-batch augmentation as an engine ``batch_transform`` (seeded)."""
    steps: list[Any] = [RandomDihedral()]
    if max_shift:
        steps.append(RandomTranslate(max_shift))
    steps.append(RandomIntensity(scale=(0.9, 1.1), offset=(-0.1, 0.1)))
    # Draw on the CPU generator: the same augmentation whether batches live on CPU or GPU.
    generator = torch.Generator().manual_seed(seed)
    return functools.partial(Compose(steps, chunk_size=None), generator=generator)


class RawPixelLinear(nn.Module):
    """Baseline: one linear layer on the flattened pixels (multinomial logistic regression)."""

    def __init__(self, n_pixels: int, n_classes: int, class_freqs: Sequence[float]) -> None:
        super().__init__()
        self.linear = nn.Linear(n_pixels, n_classes)
        init_class_prior_(self.linear, class_freqs)

    def forward_features(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.forward_features(x))  # type: ignore[no-any-return]


def build_model(
    recipe: CellCycleRecipe, *, n_classes: int, in_channels: int, img_size: int,
    class_freqs: Sequence[float],
) -> nn.Module:  # fmt: skip
    """Build the registered model with the recipe's width/depth and the training prior."""
    common: dict[str, Any] = {
        "n_classes": n_classes,
        "in_channels": in_channels,
        "img_size": img_size,
        "dropout": recipe.dropout,
        "class_freqs": class_freqs,
    }
    if recipe.model == "cellcycle_convnet":
        return create_model(
            recipe.model,
            channels=recipe.width,
            n_blocks=recipe.depth,
            kernel_size=recipe.kernel_size,
            pool_every=recipe.pool_every,
            mlp_hidden=recipe.width,
            **common,
        )
    return create_model(
        recipe.model,
        emb_size=recipe.width,
        n_blks=recipe.depth,
        n_heads=recipe.n_heads,
        hidden_size=2 * recipe.width,
        patch_size=recipe.patch_size,
        pool="mean",
        **common,
    )


def _shard(index: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """This rank's interleaved share of ``index`` (all of it without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return index[dist.get_rank() :: dist.get_world_size()]
    return index


def is_main_process() -> bool:
    """True on rank 0 (or without a process group)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _train_loader(
    dataset: Dataset[Any], labels: Tensor, recipe: CellCycleRecipe, seed: int
) -> DataLoader[Any]:
    # The sampler shards itself under a process group (num_replicas/rank from it) and gives
    # every rank the same number of indices, so the ranks run the same number of steps.
    sampler = ClassBalancedSampler(labels, alpha=recipe.alpha, seed=seed)
    return DataLoader(dataset, batch_size=recipe.batch_size, sampler=sampler)


def _eval_loader(dataset: CellImageDataset) -> DataLoader[Any]:
    return DataLoader(dataset, batch_size=256)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.2
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the peak rate, then cosine decay to zero, stepped per batch.

    (One-cycle in spirit; written as a ``LambdaLR`` so it also works for a handful of steps.)
    """
    warmup = max(1, round(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclasses.dataclass
class ModelResult:
    """What one trained model produced: its history and its test report."""

    name: str
    history: History
    tested_epoch: int
    test: ClassificationReport
    model: nn.Module


def train_and_test(
    name: str,
    model: nn.Module,
    recipe: CellCycleRecipe,
    *,
    epochs: int,
    train_loader: DataLoader[Any],
    val_loader: DataLoader[Any],
    test_loader: DataLoader[Any],
    class_names: Sequence[str],
    device: torch.device,
    batch_transform: Callable[[Tensor], Tensor] | None,
    progress: bool,
    log: Callable[[str], None],
) -> ModelResult:
    """Fit ``model`` with the engine, then evaluate it once on the test split."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    scheduler = warmup_cosine(optimizer, epochs * len(train_loader))
    metric = BalancedClassificationMetrics(len(class_names), class_names=class_names)

    def report(history: History) -> None:
        r = history[-1]
        values = "  ".join(f"{short} {_fmt(r.get('val_' + key))}" for key, short in TABLE_METRICS)
        log(f"{name} epoch {r['epoch'] + 1:3d}/{epochs}: train_loss {r['train_loss']:.4f}  "
            f"val_loss {r['val_loss']:.4f}  {values}")  # fmt: skip
        t = history.timings[-1]
        _stderr(f"  ({t['train_seconds']:.1f} s train, {t['val_seconds']:.1f} s validation)")

    history = fit(
        model,
        train_loader,
        optimizer,
        epochs=epochs,
        val_loader=val_loader,
        metrics=metric,
        device=device,
        batch_transform=batch_transform,
        scheduler=scheduler,
        monitor="val_balanced_accuracy",
        mode="max",
        restore_best=recipe.select == "best",
        progress=progress,
        on_epoch_end=report,
    )
    tested = history.best_epoch() if recipe.select == "best" else history[-1]["epoch"]
    result = evaluate(model, test_loader, metrics=metric, device=device)
    test = result.reports["balanced_classification_metrics"]
    return ModelResult(name, history, int(tested), test, model)


def _fmt(value: object) -> str:
    return "  n/a" if value is None or not math.isfinite(float(value)) else f"{value:.3f}"  # type: ignore[arg-type]


def _stderr(text: str) -> None:
    if is_main_process():
        print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the study
def run_study(
    recipe: CellCycleRecipe,
    data: CellImageDataset,
    *,
    data_description: str,
    out_dir: Path | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    pca_plot: bool = True,
    verbose: bool = True,
) -> dict[str, Any]:
    """Run the whole recipe and return the JSON-ready results (see the module description).

    On rank 0 the outputs are written to ``out_dir`` (when given): ``results.json``,
    ``checkpoint.pt``, ``confusion_matrix.png``, ``curves.png`` and ``pca_val.png``.
    """
    device = torch.device(device)
    main = is_main_process()
    start_cpu, start_wall = time.process_time(), time.perf_counter()

    def log(text: str) -> None:
        if verbose and main:
            print(text, flush=True)

    train_idx, val_idx, test_idx = three_way_split(
        data.targets, recipe.val_fraction, recipe.test_fraction, recipe.seed
    )
    # Normalisation statistics from the training images only.
    mean, std = channel_stats(data.images[torch.from_numpy(train_idx)])
    normalize = Normalize(mean.float(), std.float().clamp(min=1e-6))
    train_set = subset(data, train_idx, normalize)
    val_set = subset(data, _shard(val_idx), normalize)
    test_set = subset(data, _shard(test_idx), normalize)
    names = data.class_names
    # The head starts at the class prior of the training batches: the training class counts
    # reweighted by the sampler (never the validation or test counts). A class absent from
    # training still needs a positive entry.
    batch_prior = expected_class_distribution(train_set.targets, recipe.alpha)
    class_freqs = [1e-6] * len(names)
    class_freqs[: len(batch_prior)] = batch_prior.clamp(min=1e-6).tolist()
    split_counts = {
        split: torch.bincount(data.targets[torch.from_numpy(idx)], minlength=len(names)).tolist()
        for split, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx))
    }
    log(f"data: {data_description}; classes {list(names)}")
    for split, counts in split_counts.items():
        log(f"  {split:5s} {sum(counts):6d} cells {counts}")

    in_channels, img_size = int(data.images.shape[1]), int(data.images.shape[-1])
    val_loader, test_loader = _eval_loader(val_set), _eval_loader(test_set)
    augment = augmentation(recipe.max_shift, seed=recipe.seed) if recipe.augment else None

    torch.manual_seed(recipe.seed)
    model = build_model(
        recipe,
        n_classes=len(names),
        in_channels=in_channels,
        img_size=img_size,
        class_freqs=class_freqs,
    ).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {recipe.model} ({n_params:,d} parameters); recipe {recipe.to_json(indent=None)}")

    # The model and the pixel baseline share the splits, the recipe and the reporting; each
    # gets a fresh training loader with the same seed, hence the same batches.
    def train(
        name: str, net: nn.Module, epochs: int, transform: Callable[[Tensor], Tensor] | None
    ) -> ModelResult:
        return train_and_test(
            name,
            _maybe_ddp(net, device),
            recipe,
            epochs=epochs,
            train_loader=_train_loader(train_set, train_set.targets, recipe, recipe.seed),
            val_loader=val_loader,
            test_loader=test_loader,
            class_names=names,
            device=device,
            batch_transform=transform,
            progress=progress and main,
            log=log,
        )

    main_result = train(recipe.model, model, recipe.epochs, augment)
    results = [main_result]
    if recipe.baseline_epochs:
        torch.manual_seed(recipe.seed)
        linear = RawPixelLinear(in_channels * img_size * img_size, len(names), class_freqs)
        # No augmentation for the pixel baseline: a linear model cannot use rotated or shifted
        # copies (it has no invariance to learn them into), they only blur its templates.
        baseline = train("linear (raw pixels)", linear.to(device), recipe.baseline_epochs, None)
        results.append(baseline)

    cpu_seconds, wall_seconds = time.process_time() - start_cpu, time.perf_counter() - start_wall
    summary = {
        "data": data_description,
        "class_names": list(names),
        "split_counts": split_counts,
        "recipe": recipe.to_dict(),
        "reported_split": "test",
        "reported_epoch": (
            "last epoch" if recipe.select == "last" else "best validation balanced accuracy"
        ),
        "models": {
            r.name: {
                "tested_epoch": r.tested_epoch + 1,
                "test": r.test.to_dict(),
                "history": r.history.to_dict(),
            }
            for r in results
        },
        "n_parameters": n_params,
    }
    log("")
    log(format_table(summary))
    log("")
    log(f"{recipe.model} on the test split:")
    log(main_result.test.format(digits=3))
    if verbose:
        _stderr(
            f"{recipe.model} study time: {wall_seconds:.1f} s wall, "
            f"{cpu_seconds:.1f} s CPU in this process "
            f"(torch threads: {torch.get_num_threads()}, load average {_loadavg()})"
        )
    if out_dir is not None and main:
        write_outputs(out_dir, summary, main_result, val_set, device, pca_plot=pca_plot)
        _stderr(f"outputs written to {out_dir}")
    summary["seconds"] = {"wall": wall_seconds, "cpu": cpu_seconds}
    return summary


def _loadavg() -> str:
    try:
        return "/".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


def _maybe_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    if not (dist.is_available() and dist.is_initialized()):
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def format_table(summary: dict[str, Any]) -> str:
    """The final table: one row per model, test-split metrics (deterministic text)."""
    header = f"{'model':22s} {'epoch':>5s} " + " ".join(f"{s:>8s}" for _, s in TABLE_METRICS)
    lines = [
        f"Test split ({sum(summary['split_counts']['test'])} cells), "
        f"weights of the {summary['reported_epoch']}; validation never trains the model.",
        header,
        "-" * len(header),
    ]
    rows = summary["models"]
    for name, entry in rows.items():
        test = entry["test"]
        cells = " ".join(f"{_fmt(test[key]):>8s}" for key, _ in TABLE_METRICS)
        lines.append(f"{name:22s} {entry['tested_epoch']:5d} {cells}")
    if len(rows) == 2:
        (a, first), (_, second) = rows.items()
        gap = first["test"]["balanced_accuracy"] - second["test"]["balanced_accuracy"]
        lines.append(f"{a} - linear balanced accuracy: {gap:+.3f}")
    return "\n".join(lines)


def write_outputs(
    out_dir: Path,
    summary: dict[str, Any],
    result: ModelResult,
    val_set: CellImageDataset,
    device: torch.device,
    *,
    pca_plot: bool,
) -> None:
    """Write results JSON, the checkpoint and the figures of the main model."""
    from cellvision.features import extract_features, pca
    from cellvision.plotting import plot_confusion_matrix, plot_embedding, plot_history

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(summary, indent=2, allow_nan=True))
    save_checkpoint(
        out_dir / "checkpoint.pt",
        unwrap_model(result.model),
        epoch=result.tested_epoch,
        extra={"class_names": list(summary["class_names"]), "recipe": summary["recipe"]},
    )
    names = summary["class_names"]
    fig = plot_confusion_matrix(
        result.test.confusion_matrix, names, title=f"{result.name}: test split (recall per row)"
    )
    fig.savefig(out_dir / "confusion_matrix.png", dpi=100, bbox_inches="tight")

    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    plot_history(result.history, ["train_loss", "val_loss"], ax=left, title="loss")
    keys = [f"val_{key}" for key, _ in TABLE_METRICS]
    plot_history(result.history, keys, ax=right, title="validation metrics")
    fig.savefig(out_dir / "curves.png", dpi=100)

    if pca_plot:
        loader = DataLoader(val_set, batch_size=256)
        features, labels = extract_features(result.model, loader, device=device)
        points, ratio = pca(features, 2)
        fig = plot_embedding(
            points,
            labels,
            names,
            explained_variance_ratio=ratio,
            title=f"{result.name}: validation embeddings (PCA)",
        )
        fig.savefig(out_dir / "pca_val.png", dpi=100, bbox_inches="tight")


# --------------------------------------------------------------------------- command line
class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the script docstring's layout and show every default."""


def build_parser(
    description: str, *, model: str, defaults: dict[str, Any]
) -> argparse.ArgumentParser:
    """The command line shared by the cell-cycle scripts; ``defaults`` override the recipe's."""
    base = CellCycleRecipe(model=model, **defaults)
    p = argparse.ArgumentParser(description=description, formatter_class=_HelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", default=None, help="Jurkat CellCycle folder (phase subfolders); "
                   "default: synthetic cells")  # fmt: skip
    g.add_argument("--channels", nargs="+", default=["Ch3"], help="channels to stack")
    g.add_argument("--counts", type=int, nargs=5, default=None, metavar="N",
                   help="synthetic cells per class (Interphase..Telophase); default 2000 400 "
                   "120 60 80, --quick: " + " ".join(map(str, QUICK_COUNTS)))  # fmt: skip
    g.add_argument("--size", type=int, default=None, help="synthetic image side (default 66, "
                   "--quick: 48)")  # fmt: skip
    g = p.add_argument_group("recipe")
    for name, kind, text in (
        ("epochs", int, "training epochs"),
        ("batch_size", int, "batch size (per process)"),
        ("lr", float, "AdamW peak learning rate (warm-up + cosine)"),
        ("weight_decay", float, "AdamW weight decay"),
        ("dropout", float, "model dropout"),
        ("width", int, "ConvNet channels / ViT embedding size"),
        ("depth", int, "ConvNet blocks / ViT blocks"),
        ("kernel_size", int, "ConvNet kernel size"),
        ("pool_every", int, "ConvNet: max-pool after every this many blocks"),
        ("patch_size", int, "ViT patch size"),
        ("n_heads", int, "ViT attention heads"),
        ("alpha", float, "ClassBalancedSampler alpha"),
        ("val_fraction", float, "validation fraction per class"),
        ("test_fraction", float, "test fraction per class"),
        ("max_shift", int, "largest augmentation shift (pixels)"),
        ("baseline_epochs", int, "epochs of the linear raw-pixel baseline (0: skip it)"),
        ("seed", int, "random seed"),
    ):
        # Both spellings: --batch-size for people, --batch_size for sweep agents (wandb).
        flags = dict.fromkeys(["--" + name.replace("_", "-"), "--" + name])
        g.add_argument(*flags, dest=name, type=kind, default=getattr(base, name), help=text)
    g.add_argument("--select", choices=("last", "best"), default=base.select,
                   help="test the last epoch or the best by val. balanced accuracy")  # fmt: skip
    g.add_argument("--no-augment", action="store_true", help="train without augmentation")
    g = p.add_argument_group("run")
    g.add_argument("--quick", action="store_true",
                   help="small synthetic data, short schedule (well under 2 minutes)")  # fmt: skip
    g.add_argument("--out", type=Path, default=Path("runs") / model, help="output folder")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--no-pca", action="store_true", help="skip the PCA plot of embeddings")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return p


def parse_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, quick: dict[str, Any]
) -> argparse.Namespace:
    """Parse ``argv``; with ``--quick`` the settings in ``quick`` become the defaults, so
    options given on the command line still win."""
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args


def recipe_from_args(args: argparse.Namespace, *, model: str) -> CellCycleRecipe:
    """Build the recipe from parsed arguments."""
    fields = [name for name in CellCycleRecipe.field_names() if hasattr(args, name)]
    values: dict[str, Any] = {name: getattr(args, name) for name in fields}
    values["model"] = model
    values["augment"] = not args.no_augment
    return CellCycleRecipe.from_dict(values)


def main(
    argv: Sequence[str] | None,
    *,
    description: str,
    model: str,
    defaults: dict[str, Any],
    quick: dict[str, Any],
) -> dict[str, Any]:
    """Parse the command line, load the data and run the study (single process)."""
    parser = build_parser(description, model=model, defaults=defaults)
    args = parse_args(parser, argv, quick)
    return run_from_args(parser, args, model=model)


def run_from_args(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    *,
    model: str,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Run the study described by parsed arguments (also used by the DDP script)."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        recipe = recipe_from_args(args, model=model)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    counts = args.counts if args.counts is not None else (QUICK_COUNTS if args.quick else None)
    size = args.size if args.size is not None else (48 if args.quick else 66)
    data, description = load_cells(
        args.data_dir, channels=args.channels, counts=counts, size=size, seed=recipe.seed
    )
    return run_study(
        recipe,
        data,
        data_description=description,
        out_dir=args.out,
        device=device if device is not None else args.device,
        progress=not args.no_progress,
        pca_plot=not args.no_pca,
    )
