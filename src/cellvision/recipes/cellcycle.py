"""The cell-cycle study: classify imaging-flow-cytometry cells into five phases.

The recipe, top to bottom:

1. **data**: the package's default cells (:func:`load_data`; today synthetic cells from
   :func:`cellvision.data.make_synthetic_cells`) or a Jurkat ``CellCycle`` folder (G1/S/G2
   merged into Interphase), held in memory;
2. **split**: stratified train / validation / test indices
   (:func:`cellvision.splits.train_val_test_split`); the per-channel normalisation is fitted on
   the training cells only and travels with the trained model;
3. **sampler**: :class:`~cellvision.sampling.ClassBalancedSampler` (``alpha``) over the
   training labels, sharded under DDP;
4. **augmentation**: dihedral flips/rotations, reflected shifts and intensity jitter, run on
   the device by the engine's ``batch_transform``;
5. **model**: the registered model with its head initialised to the class prior of the
   training batches (:func:`~cellvision.sampling.expected_class_distribution`), AdamW and a
   linear warm-up + cosine schedule stepped per batch (:mod:`cellvision.optim`);
6. **training**: :func:`cellvision.engine.fit`, with a balanced report on the validation cells
   every epoch; ``select="last"`` keeps the last epoch, ``select="best"`` restores the epoch
   with the best validation balanced accuracy;
7. **testing**: :func:`evaluate` on cells that neither trained nor selected anything.

:func:`train` returns a :class:`TrainedClassifier` that predicts new cells and saves itself to
one safe checkpoint; :func:`cross_validate` repeats the recipe over stratified folds;
:func:`run_study` is the whole study of the ``cellvision cellcycle train`` command (model,
raw-pixel baseline, test table, ``results.json`` and figures); :func:`sweep_objective` is the
Optuna objective of ``cellvision sweep cellcycle``.

Epochs are counted from 1 everywhere (logs, history records, figures, checkpoints).

Examples
--------
>>> from cellvision.data import make_synthetic_cells
>>> from cellvision.splits import stratified_split
>>> data = make_synthetic_cells([40, 12, 8, 8, 8], size=32, seed=0)
>>> train_idx, test_idx = stratified_split(data.targets, 0.25, seed=0)
>>> recipe = CellCycleRecipe(epochs=1, batch_size=16, width=8, depth=2)
>>> trained = train(recipe, subset(data, train_idx), device="cpu", progress=False)
>>> trained.predict_proba(data.images[test_idx]).shape
torch.Size([19, 5])
>>> report = evaluate(trained, subset(data, test_idx))
>>> 0.0 <= report.balanced_accuracy <= 1.0
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from cellvision.checkpoint import load_checkpoint, save_checkpoint
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
    to_float_images,
)
from cellvision.engine import History, fit
from cellvision.engine import evaluate as evaluate_model
from cellvision.engine import predict as predict_outputs
from cellvision.layers import init_class_prior_
from cellvision.metrics import BalancedClassificationMetrics, ClassificationReport
from cellvision.models import create_model
from cellvision.optim import param_groups, warmup_cosine
from cellvision.sampling import ClassBalancedSampler, expected_class_distribution
from cellvision.splits import StratifiedKFoldSplitter, stratified_split, train_val_test_split

__all__ = [
    "MODELS",
    "QUICK_COUNTS",
    "SWEEP_SPACE",
    "TABLE_METRICS",
    "CellCycleRecipe",
    "CrossValidationResult",
    "RawPixelLinear",
    "StudyResult",
    "TrainedClassifier",
    "build_model",
    "cross_validate",
    "default_recipe",
    "evaluate",
    "load_data",
    "load_unlabelled",
    "run_study",
    "subset",
    "sweep_objective",
    "train",
    "train_pixel_baseline",
]

#: Registered models the recipe knows how to size.
MODELS = ("cellcycle_convnet", "cellcycle_vit")
#: Cells per class of a ``--quick`` synthetic run (Interphase ... Telophase).
QUICK_COUNTS = (300, 100, 40, 24, 30)
#: Metrics shown in the tables, in order, with their column titles.
TABLE_METRICS = (
    ("balanced_accuracy", "bal_acc"),
    ("macro_f1", "macro_f1"),
    ("cohen_kappa", "kappa"),
    ("roc_auc", "auroc"),
)
#: The search space of :func:`sweep_objective`: name -> (kind, arguments).
#: ``examples/sweep_wandb.yaml`` declares the same space for wandb.
SWEEP_SPACE: dict[str, tuple[str, tuple[Any, ...]]] = {
    "lr": ("log_float", (3e-4, 1e-2)),
    "batch_size": ("categorical", (32, 64, 128)),
    "dropout": ("float", (0.0, 0.3)),
    "alpha": ("float", (0.5, 1.0)),
    "width": ("categorical", (16, 24, 32, 48)),
}
_EVAL_BATCH = 256
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


# --------------------------------------------------------------------------- the recipe
@dataclasses.dataclass(frozen=True, kw_only=True)
class CellCycleRecipe(Config):
    """Every setting of one cell-cycle run (flat, so sweeps build it with ``from_flat_dict``).

    Parameters
    ----------
    model : {"cellcycle_convnet", "cellcycle_vit"}
        Registered model name.
    width : int
        ConvNet ``channels`` (and MLP width) / ViT ``emb_size`` (the ViT MLP is twice as wide).
    depth : int
        ConvNet ``n_blocks`` / ViT ``n_blks``.
    kernel_size, pool_every : int
        ConvNet kernel side and a max-pool after every this many blocks (ignored by the ViT).
    patch_size, n_heads : int
        ViT patch side and attention heads (ignored by the ConvNet).
    dropout : float
        Model dropout.
    model_overrides : tuple of (str, value) pairs
        Further model config fields, applied last, e.g. ``(("pool", "cls"),)`` for the ViT.
    channels : tuple of str
        Image channels read from a Jurkat folder (``("Ch3",)`` brightfield); synthetic cells
        get the same number of channels.
    epochs, batch_size : int
        Training length and per-process batch size.
    lr, weight_decay : float
        AdamW peak learning rate and decoupled weight decay.
    decay_all : bool
        ``True`` decays every parameter; ``False`` exempts biases, normalisation weights,
        position embeddings and the class token (:func:`cellvision.optim.param_groups`).
    schedule : {"warmup_cosine", "constant"}
        Learning-rate schedule, stepped per batch.
    warmup_fraction : float
        Fraction of the steps spent warming up (``"warmup_cosine"``).
    alpha : float
        :class:`~cellvision.sampling.ClassBalancedSampler` rebalancing strength in ``[0, 1]``.
    val_fraction, test_fraction : float
        Stratified fractions of every class held out for validation and test.
    select : {"last", "best"}
        Which epoch's weights are kept: the last, or the best by validation balanced accuracy.
    augment : bool
        Augment training batches.
    max_shift : int
        Largest random shift of the augmentation, in pixels.
    baseline_epochs : int
        Epochs of the raw-pixel linear baseline of :func:`run_study` (0 skips it).
    seed : int
        Seed of the split, sampler, augmentation and weights.

    Raises
    ------
    ValueError, TypeError
        If a field is out of range or has the wrong type (the message names the field).

    Examples
    --------
    >>> recipe = CellCycleRecipe(epochs=5, width=16)
    >>> CellCycleRecipe.from_json(recipe.to_json()) == recipe
    True
    >>> CellCycleRecipe.from_flat_dict(recipe.to_flat_dict() | {"lr": "0.001"}).lr
    0.001
    """

    model: str = "cellcycle_convnet"
    width: int = 32
    depth: int = 4
    kernel_size: int = 3
    pool_every: int = 1
    patch_size: int = 11
    n_heads: int = 4
    dropout: float = 0.0
    model_overrides: tuple[tuple[str, Any], ...] = ()
    channels: tuple[str, ...] = ("Ch3",)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    decay_all: bool = True
    schedule: str = "warmup_cosine"
    warmup_fraction: float = 0.2
    alpha: float = 0.9
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    select: str = "last"
    augment: bool = True
    max_shift: int = 4
    baseline_epochs: int = 12
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("model", self.model, MODELS)
        for name in ("width", "depth", "kernel_size", "pool_every", "patch_size", "n_heads"):
            check_positive_int(name, getattr(self, name))
        check_probability("dropout", self.dropout)
        for item in self.model_overrides:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise ValueError(
                    f"model_overrides must be (name, value) pairs, got {self.model_overrides!r}"
                )
        if not self.channels or not all(isinstance(c, str) for c in self.channels):
            raise ValueError(f"channels must be a non-empty tuple of str, got {self.channels!r}")
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_positive_float("lr", self.lr)
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        check_choice("schedule", self.schedule, ("warmup_cosine", "constant"))
        if not (isinstance(self.warmup_fraction, (int, float)) and 0 <= self.warmup_fraction <= 1):
            raise ValueError(f"warmup_fraction must be in [0, 1], got {self.warmup_fraction!r}")
        if not (isinstance(self.alpha, (int, float)) and 0.0 <= self.alpha <= 1.0):
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha!r}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 < value < 0.5):
                raise ValueError(f"{name} must be in (0, 0.5), got {value!r}")
        check_choice("select", self.select, ("last", "best"))
        check_non_negative_int("max_shift", self.max_shift)
        check_non_negative_int("baseline_epochs", self.baseline_epochs)
        check_non_negative_int("seed", self.seed)


#: Tuned defaults per model (the dataclass defaults are the ConvNet's), and what ``--quick``
#: changes on top of them.
_MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "cellcycle_convnet": {},
    "cellcycle_vit": {"epochs": 100, "lr": 1e-3, "weight_decay": 0.05, "width": 64, "depth": 4,
                      "n_heads": 4, "patch_size": 11, "baseline_epochs": 0},
}  # fmt: skip
_QUICK: dict[str, dict[str, Any]] = {
    "cellcycle_convnet": {"epochs": 10, "baseline_epochs": 10, "batch_size": 32, "width": 16,
                          "depth": 3},
    "cellcycle_vit": {"epochs": 10, "batch_size": 32, "width": 32, "depth": 2, "patch_size": 8},
}  # fmt: skip


def default_recipe(
    model: str = "cellcycle_convnet", *, quick: bool = False, **changes: Any
) -> CellCycleRecipe:
    """The tuned default recipe of a model, optionally the small ``--quick`` variant.

    The ConvNet's defaults are the dataclass defaults; the ViT learns the cell shapes more
    slowly and gets 100 epochs, a lower learning rate, stronger weight decay, width 64 and no
    baseline. ``quick`` shortens the schedule and shrinks the model (about a minute on one
    CPU core with the quick data of :func:`load_data`).

    Parameters
    ----------
    model : {"cellcycle_convnet", "cellcycle_vit"}
        Registered model name.
    quick : bool, default False
        The small variant.
    **changes
        Further field values (they win over both).

    Returns
    -------
    CellCycleRecipe
        The recipe.

    Raises
    ------
    ValueError
        If ``model`` is unknown or a change is invalid.

    Examples
    --------
    >>> default_recipe().epochs, default_recipe(quick=True).epochs
    (30, 10)
    >>> default_recipe("cellcycle_vit", quick=True, epochs=3).width
    32
    """
    check_choice("model", model, MODELS)
    values = _MODEL_DEFAULTS[model] | (_QUICK[model] if quick else {}) | changes
    return CellCycleRecipe(model=model, **values)


# --------------------------------------------------------------------------- data
def load_data(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    quick: bool = False,
    channels: Sequence[str] = ("Ch3",),
    counts: Sequence[int] | None = None,
    size: int | None = None,
    seed: int = 0,
) -> tuple[CellImageDataset, str]:
    """Return labelled cells in memory and a description of where they come from.

    This is the one place that decides what "the default data" is. With ``data_dir`` the
    Jurkat folder is read with the five merged classes (problem files skipped with a
    warning); without it the package's embedded default is used: today synthetic cells
    (2000/400/120/60/80 cells of 66x66 pixels, or :data:`QUICK_COUNTS` cells of 48x48 with
    ``quick``).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        A folder with one sub-folder per phase (see :class:`~cellvision.data.CellCycleFolder`).
    quick : bool, default False
        The small default data set.
    channels : sequence of str, default ("Ch3",)
        Channels to stack (folder) or their number (synthetic).
    counts : sequence of int, optional
        Synthetic cells per class (overrides ``quick``).
    size : int, optional
        Synthetic image side (overrides ``quick``).
    seed : int, default 0
        Seed of the synthetic cells.

    Returns
    -------
    data : CellImageDataset
        Images, labels and class names.
    description : str
        One line saying what the data are.

    Raises
    ------
    FileNotFoundError
        If ``data_dir`` is not a directory.
    ValueError
        If the folder holds no usable cells.

    Examples
    --------
    >>> data, text = load_data(counts=[4, 2, 2, 2, 2], size=16)
    >>> len(data), text
    (12, 'synthetic cells 16x16, seed 0')
    """
    if data_dir is not None:
        folder = CellCycleFolder(data_dir, channels=channels, on_error="skip")
        return folder.load_into_memory(), f"Jurkat folder {data_dir} ({', '.join(channels)})"
    side = size if size is not None else (48 if quick else 66)
    if counts is None and quick:
        counts = QUICK_COUNTS
    data = make_synthetic_cells(
        list(counts) if counts is not None else None, size=side, channels=len(channels), seed=seed
    )
    return data, f"synthetic cells {side}x{side}, seed {seed}"


def load_unlabelled(
    data_dir: str | os.PathLike[str], *, channels: Sequence[str] = ("Ch3",)
) -> tuple[Tensor, list[str]]:
    """Read cells to classify: ``(N, C, H, W)`` images and one id per cell.

    Two layouts are accepted. A folder with phase sub-folders is read with
    :class:`~cellvision.data.CellCycleFolder` (the labels are ignored; ids are
    ``"<phase>/<cell id>"``). Otherwise the folder itself holds the files
    ``<cell id>_<channel>.<ext>`` (jpg, png or tif; ids are the cell ids, in natural order).

    Parameters
    ----------
    data_dir : str or os.PathLike
        The folder.
    channels : sequence of str, default ("Ch3",)
        Channels to stack, as the classifier was trained.

    Returns
    -------
    images : Tensor
        ``uint8``/``uint16`` or float images.
    ids : list of str
        One id per image.

    Raises
    ------
    FileNotFoundError
        If ``data_dir`` is not a directory.
    ValueError
        If no cell is found, a cell lacks a channel or the image sizes differ.
    ImportError
        If Pillow is not installed.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> folder = Path(tempfile.mkdtemp())
    >>> for cell in ("7", "12"):
    ...     Image.new("L", (8, 8), color=30).save(folder / f"{cell}_Ch3.png")
    >>> images, ids = load_unlabelled(folder)
    >>> images.shape, ids
    (torch.Size([2, 1, 8, 8]), ['7', '12'])
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data_dir must be an existing directory, got {str(data_dir)!r}")
    if any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir()):
        folder = CellCycleFolder(root, channels=channels, on_error="raise")
        data = folder.load_into_memory()
        return data.images, [f"{r.phase}/{r.cell_id}" for r in folder.records]
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(
            'reading cell images needs Pillow; install it with: pip install "cellvision[images]"'
        ) from exc
    keys = {f"ch{int(c[2:])}": i for i, c in enumerate(channels) if re.fullmatch(r"(?i)ch\d+", c)}
    if len(keys) != len(channels):
        raise ValueError(f"channels must be names like 'Ch3', got {tuple(channels)!r}")
    pattern = re.compile(r"^(?P<cell>.+)_(?P<ch>[Cc][Hh]\d+)(?:\.ome)?$")
    cells: dict[str, dict[int, Path]] = {}
    for path in root.iterdir():
        if path.suffix.lower() not in _IMAGE_SUFFIXES:
            continue
        match = pattern.match(path.name[: -len(path.suffix)])
        if match is None:
            continue
        key = f"ch{int(match['ch'][2:])}"
        if key in keys:
            cells.setdefault(match["cell"], {})[keys[key]] = path
    if not cells:
        raise ValueError(
            f"data_dir must hold <cell id>_<channel> image files or phase folders, got none in "
            f"{str(root)!r}"
        )
    ids = sorted(cells, key=lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)])
    planes: list[np.ndarray[Any, Any]] = []
    for cell in ids:
        missing = [channels[i] for i in range(len(channels)) if i not in cells[cell]]
        if missing:
            raise ValueError(f"cell {cell!r} in {str(root)!r} lacks channel(s) {missing}")
        with_channels = [np.asarray(Image.open(cells[cell][i])) for i in range(len(channels))]
        planes.append(np.stack(with_channels))
    if len({p.shape for p in planes}) != 1:
        raise ValueError(f"images in {str(root)!r} must share one size, got {len(planes)} cells "
                         f"with sizes {sorted({p.shape[1:] for p in planes})}")  # fmt: skip
    return torch.from_numpy(np.stack(planes)), ids


def subset(data: CellImageDataset, index: np.ndarray[Any, Any] | Sequence[int]) -> CellImageDataset:
    """The cells ``data[index]`` as a new in-memory data set (no transform).

    Parameters
    ----------
    data : CellImageDataset
        Labelled cells.
    index : array-like of int
        Positions to keep.

    Returns
    -------
    CellImageDataset
        The selected images, labels and the same class names.

    Examples
    --------
    >>> data = make_synthetic_cells([3, 2, 2, 2, 2], size=16)
    >>> part = subset(data, [0, 3])
    >>> len(part), part.targets.tolist() == data.targets[[0, 3]].tolist()
    (2, True)
    """
    idx = torch.as_tensor(np.asarray(index), dtype=torch.int64)
    return CellImageDataset(data.images[idx], data.targets[idx], data.class_names)


def _shard(n: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """This rank's interleaved share of ``range(n)`` (all of it without a process group)."""
    index = np.arange(n, dtype=np.int64)
    if dist.is_available() and dist.is_initialized():
        return index[dist.get_rank() :: dist.get_world_size()]
    return index


def _is_main_process() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class _NormalizedBatches:
    """A re-iterable loader of normalised ``(images, labels)`` batches from memory."""

    def __init__(
        self, images: Tensor, labels: Tensor | None, normalize: Normalize, batch_size: int
    ) -> None:
        self.images, self.labels = images, labels
        self.normalize, self.batch_size = normalize, batch_size

    def __len__(self) -> int:
        return math.ceil(self.images.shape[0] / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor] | Tensor]:
        for start in range(0, self.images.shape[0], self.batch_size):
            x = self.normalize(to_float_images(self.images[start : start + self.batch_size]))
            if self.labels is None:
                yield x
            else:
                yield x, self.labels[start : start + self.batch_size]


# --------------------------------------------------------------------------- model
class RawPixelLinear(nn.Module):
    """Baseline: one linear layer on the flattened pixels (multinomial logistic regression).

    Parameters
    ----------
    n_pixels : int
        ``channels * height * width``.
    n_classes : int
        Number of classes.
    class_freqs : sequence of float
        Class prior for the bias (see :func:`cellvision.layers.init_class_prior_`).

    Examples
    --------
    >>> RawPixelLinear(16, 3, [0.5, 0.3, 0.2])(torch.zeros(2, 1, 4, 4)).softmax(-1)[0]
    tensor([0.5000, 0.3000, 0.2000], grad_fn=<SelectBackward0>)
    """

    def __init__(self, n_pixels: int, n_classes: int, class_freqs: Sequence[float]) -> None:
        super().__init__()
        self.linear = nn.Linear(n_pixels, n_classes)
        init_class_prior_(self.linear, class_freqs)

    def forward_features(self, x: Tensor) -> Tensor:
        """Flatten the images: ``(B, C, H, W) -> (B, C*H*W)``."""
        return x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of the flattened images."""
        return self.linear(self.forward_features(x))  # type: ignore[no-any-return]


def build_model(
    recipe: CellCycleRecipe,
    *,
    n_classes: int,
    in_channels: int,
    img_size: int,
    class_freqs: Sequence[float],
) -> nn.Module:
    """Build the recipe's registered model, sized by its fields, head at ``class_freqs``.

    Parameters
    ----------
    recipe : CellCycleRecipe
        Model name, width/depth and ``model_overrides``.
    n_classes, in_channels, img_size : int
        Shape of the problem.
    class_freqs : sequence of float
        Class prior of the head.

    Returns
    -------
    torch.nn.Module
        A freshly initialised model (seed the global RNG first for reproducible weights).

    Examples
    --------
    >>> model = build_model(CellCycleRecipe(width=8, depth=2), n_classes=5, in_channels=1,
    ...                     img_size=32, class_freqs=[0.6, 0.1, 0.1, 0.1, 0.1])
    >>> model.config.channels, model(torch.zeros(1, 1, 32, 32)).shape
    (8, torch.Size([1, 5]))
    """
    common: dict[str, Any] = {
        "n_classes": n_classes,
        "in_channels": in_channels,
        "img_size": img_size,
        "dropout": recipe.dropout,
        "class_freqs": class_freqs,
    }
    if recipe.model == "cellcycle_convnet":
        sized: dict[str, Any] = {
            "channels": recipe.width,
            "n_blocks": recipe.depth,
            "kernel_size": recipe.kernel_size,
            "pool_every": recipe.pool_every,
            "mlp_hidden": recipe.width,
        }
    else:
        sized = {
            "emb_size": recipe.width,
            "n_blks": recipe.depth,
            "n_heads": recipe.n_heads,
            "hidden_size": 2 * recipe.width,
            "patch_size": recipe.patch_size,
            "pool": "mean",
        }
    return create_model(recipe.model, **(common | sized | dict(recipe.model_overrides)))


def _batch_prior(targets: Tensor, alpha: float, n_classes: int) -> list[float]:
    # The class mix of the training batches (counts reweighted by the sampler), never the
    # validation or test counts. A class absent from training still needs a positive entry.
    prior = expected_class_distribution(targets, alpha)
    freqs = [1e-6] * n_classes
    freqs[: len(prior)] = prior.clamp(min=1e-6).tolist()
    return freqs


def _augmentation(max_shift: int, *, seed: int) -> Callable[[Tensor], Tensor]:
    steps: list[Any] = [RandomDihedral()]
    if max_shift:
        steps.append(RandomTranslate(max_shift))
    steps.append(RandomIntensity(scale=(0.9, 1.1), offset=(-0.1, 0.1)))
    # Draw on a CPU generator: the same augmentation whether batches live on CPU or GPU.
    generator = torch.Generator().manual_seed(seed)
    return functools.partial(Compose(steps, chunk_size=None), generator=generator)


def _resolve_device(device: torch.device | str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto' or a torch device, got {device!r}") from exc


def _resolve_progress(progress: bool) -> bool:
    if not progress:
        return False
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return _is_main_process()


# --------------------------------------------------------------------------- trained model
@dataclasses.dataclass
class TrainedClassifier:
    """A trained cell classifier with everything needed to classify new cells.

    Parameters
    ----------
    model : torch.nn.Module
        The network (unwrapped from DDP), returning logits.
    history : cellvision.engine.History
        Per-epoch records of the training run.
    mean, std : Tensor
        Per-channel normalisation fitted on the training cells.
    class_names : tuple of str
        Name of every class, indexed by label.
    recipe : CellCycleRecipe
        The recipe that trained it.
    class_prior : tuple of float
        Class mix of the training batches (the head's initial prior).
    epoch : int
        Epoch of the kept weights (counted from 1).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> data = make_synthetic_cells([20, 6, 4, 4, 4], size=24, seed=1)
    >>> trained = train(CellCycleRecipe(epochs=1, width=8, depth=2), data, device="cpu",
    ...                 progress=False)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = trained.save(pathlib.Path(tmp) / "cells.pt")
    ...     again = TrainedClassifier.load(path)
    >>> torch.equal(again.predict_proba(data.images), trained.predict_proba(data.images))
    True
    >>> again.class_names[:2], again.epoch
    (('Interphase', 'Prophase'), 1)
    """

    model: nn.Module
    history: History
    mean: Tensor
    std: Tensor
    class_names: tuple[str, ...]
    recipe: CellCycleRecipe
    class_prior: tuple[float, ...]
    epoch: int

    @property
    def normalize(self) -> Normalize:
        """The input normalisation (fitted on the training cells)."""
        return Normalize(self.mean.float(), self.std.float().clamp(min=1e-6))

    @property
    def image_size(self) -> int:
        """Side of the square images the model expects (its config's ``img_size``)."""
        size = getattr(getattr(self.model, "config", None), "img_size", None)
        if not isinstance(size, int):
            raise ValueError(f"model must have a config with an int img_size, got {size!r}")
        return size

    def _images(self, images: Tensor | np.ndarray[Any, Any] | CellImageDataset) -> Tensor:
        if isinstance(images, CellImageDataset):
            return images.images
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
        if not isinstance(images, Tensor):
            raise TypeError(
                f"images must be a Tensor, numpy array or CellImageDataset, got {images!r}"
            )
        if images.ndim == 3:
            images = images.unsqueeze(1)
        expected = self.mean.numel()
        if images.ndim != 4 or images.shape[1] != expected:
            raise ValueError(
                f"images must have shape (N, {expected}, H, W), got {tuple(images.shape)!r}"
            )
        return images

    def logits(
        self,
        images: Tensor | np.ndarray[Any, Any] | CellImageDataset,
        *,
        batch_size: int = _EVAL_BATCH,
        device: torch.device | str | None = None,
        amp_dtype: torch.dtype | None = None,
        channels_last: bool = False,
    ) -> Tensor:
        """Class logits of ``images`` (normalised as in training), float32 on the CPU.

        This is the single inference path: :meth:`predict_proba` and :meth:`predict` build
        on it (later inference options of the recipe, such as test-time augmentation or
        post-hoc logit adjustment, go here).

        Parameters
        ----------
        images : Tensor, numpy.ndarray or CellImageDataset
            ``(N, C, H, W)`` (or ``(N, H, W)``) raw images: ``uint8``/``uint16`` or float in
            ``[0, 1]``, as the training cells were.
        batch_size : int, default 256
            Cells per forward pass.
        device : torch.device or str, optional
            Defaults to the model's device.
        amp_dtype : torch.dtype, optional
            Forward under autocast with this dtype (``torch.bfloat16``).
        channels_last : bool, default False
            Feed the batches in ``channels_last`` memory format.

        Returns
        -------
        Tensor
            ``(N, n_classes)`` logits.

        Raises
        ------
        TypeError, ValueError
            If the images have the wrong type or shape.
        """
        check_positive_int("batch_size", batch_size)
        x = self._images(images)
        return predict_outputs(
            self.model,
            _NormalizedBatches(x, None, self.normalize, batch_size),
            device=device,
            amp_dtype=amp_dtype,
            channels_last=channels_last,
        )

    def predict_proba(
        self,
        images: Tensor | np.ndarray[Any, Any] | CellImageDataset,
        *,
        batch_size: int = _EVAL_BATCH,
        device: torch.device | str | None = None,
        amp_dtype: torch.dtype | None = None,
        channels_last: bool = False,
    ) -> Tensor:
        """Class probabilities of ``images``: softmax of :meth:`logits` (same arguments).

        Returns
        -------
        Tensor
            ``(N, n_classes)`` float32 probabilities; rows sum to 1.
        """
        logits = self.logits(
            images,
            batch_size=batch_size,
            device=device,
            amp_dtype=amp_dtype,
            channels_last=channels_last,
        )
        return torch.softmax(logits, dim=-1)

    def predict(
        self,
        images: Tensor | np.ndarray[Any, Any] | CellImageDataset,
        *,
        batch_size: int = _EVAL_BATCH,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Predicted class index of every image (argmax of :meth:`logits`).

        Returns
        -------
        Tensor
            ``(N,)`` int64 labels; ``class_names[label]`` names them.
        """
        return self.logits(images, batch_size=batch_size, device=device).argmax(dim=-1)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write one safe checkpoint (:func:`cellvision.checkpoint.save_checkpoint`).

        It holds the model config and weights, the normalisation, the class names, the class
        prior, the recipe and the history; :meth:`load` needs nothing else.

        Parameters
        ----------
        path : str or os.PathLike
            Destination file; its directory must exist.

        Returns
        -------
        pathlib.Path
            The written path.

        Raises
        ------
        ValueError
            If the model is not a registered model (e.g. the raw-pixel baseline).
        """
        extra = {
            "kind": "cellvision.recipes.cellcycle.TrainedClassifier",
            "class_names": list(self.class_names),
            "mean": self.mean.double().tolist(),
            "std": self.std.double().tolist(),
            "class_prior": list(self.class_prior),
            "recipe": self.recipe.to_dict(),
            "history": self.history.to_dict(),
        }
        return save_checkpoint(path, self.model, epoch=self.epoch, extra=extra)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, map_location: torch.device | str = "cpu"
    ) -> TrainedClassifier:
        """Read a checkpoint written by :meth:`save` (safe loading, no pickled code).

        Parameters
        ----------
        path : str or os.PathLike
            The checkpoint.
        map_location : torch.device or str, default "cpu"
            Where the weights go.

        Returns
        -------
        TrainedClassifier
            The classifier, in eval mode.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not a checkpoint of a trained cell classifier.
        """
        checkpoint = load_checkpoint(path, map_location=map_location)
        extra = checkpoint.extra
        if not (isinstance(extra, dict) and extra.get("kind") == "cellvision.recipes."
                "cellcycle.TrainedClassifier"):  # fmt: skip
            raise ValueError(
                f"path must be a checkpoint written by TrainedClassifier.save, got {str(path)!r}"
            )
        return cls(
            model=checkpoint.model.eval(),
            history=History.from_dict(extra["history"]),
            mean=torch.tensor(extra["mean"], dtype=torch.float64),
            std=torch.tensor(extra["std"], dtype=torch.float64),
            class_names=tuple(extra["class_names"]),
            recipe=CellCycleRecipe.from_dict(extra["recipe"]),
            class_prior=tuple(float(p) for p in extra["class_prior"]),
            epoch=int(checkpoint.epoch or 0),
        )


# --------------------------------------------------------------------------- training
def _fit_classifier(
    recipe: CellCycleRecipe,
    make_model: Callable[[list[float]], nn.Module],
    train_data: CellImageDataset,
    val_data: CellImageDataset | None,
    *,
    epochs: int,
    augment: bool,
    device: torch.device | str,
    progress: bool,
    on_epoch: Callable[[History], object] | None,
) -> TrainedClassifier:
    if not isinstance(train_data, CellImageDataset):
        raise TypeError(f"train_data must be a CellImageDataset, got {type(train_data).__name__}")
    if val_data is not None and not isinstance(val_data, CellImageDataset):
        raise TypeError(f"val_data must be a CellImageDataset, got {type(val_data).__name__}")
    dev = _resolve_device(device)
    names = train_data.class_names
    # Normalisation statistics from the training cells only.
    mean, std = channel_stats(train_data.images)
    normalize = Normalize(mean.float(), std.float().clamp(min=1e-6))
    prior = _batch_prior(train_data.targets, recipe.alpha, len(names))

    torch.manual_seed(recipe.seed)
    model = make_model(prior).to(dev)
    net: nn.Module = model
    if dist.is_available() and dist.is_initialized():
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    # The sampler shards itself under a process group and gives every rank the same number
    # of indices, so the ranks run the same number of steps.
    train_set = CellImageDataset(train_data.images, train_data.targets, names, transform=normalize)
    sampler = ClassBalancedSampler(train_set.targets, alpha=recipe.alpha, seed=recipe.seed)
    train_loader = DataLoader(train_set, batch_size=recipe.batch_size, sampler=sampler)
    val_loader = None
    if val_data is not None:
        part = torch.from_numpy(_shard(len(val_data)))
        val_loader = _NormalizedBatches(
            val_data.images[part], val_data.targets[part], normalize, _EVAL_BATCH
        )
    groups = model.parameters() if recipe.decay_all else param_groups(model, recipe.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = (
        warmup_cosine(optimizer, epochs * len(train_loader), recipe.warmup_fraction)
        if recipe.schedule == "warmup_cosine"
        else None
    )
    select_best = recipe.select == "best" and val_loader is not None
    history = fit(
        net,
        train_loader,
        optimizer,
        epochs=epochs,
        val_loader=val_loader,
        metrics=BalancedClassificationMetrics(len(names), class_names=names),
        device=dev,
        batch_transform=_augmentation(recipe.max_shift, seed=recipe.seed) if augment else None,
        scheduler=scheduler,
        monitor="val_balanced_accuracy" if val_loader is not None else None,
        mode="max" if val_loader is not None else "min",
        restore_best=select_best,
        progress=_resolve_progress(progress),
        on_epoch_end=on_epoch,
    )
    kept = history.best_epoch() if select_best else int(history[-1]["epoch"])
    return TrainedClassifier(
        model=model.eval(),
        history=history,
        mean=mean.double(),
        std=std.double(),
        class_names=tuple(names),
        recipe=recipe,
        class_prior=tuple(prior),
        epoch=kept,
    )


def train(
    recipe: CellCycleRecipe,
    train_data: CellImageDataset,
    val_data: CellImageDataset | None = None,
    *,
    device: torch.device | str = "auto",
    progress: bool = True,
    on_epoch: Callable[[History], object] | None = None,
) -> TrainedClassifier:
    """Train the recipe's model on ``train_data`` (see the module description).

    Under an initialised :mod:`torch.distributed` process group the model is wrapped in
    :class:`~torch.nn.parallel.DistributedDataParallel`, the sampler shards the training
    draw and the validation cells are split between the ranks (the engine synchronises the
    metrics), so every rank gets the same history.

    Parameters
    ----------
    recipe : CellCycleRecipe
        The settings.
    train_data : CellImageDataset
        Training cells (raw images; the normalisation is fitted on them).
    val_data : CellImageDataset, optional
        Validation cells, evaluated every epoch (``val_*`` history keys); needed for
        ``select="best"`` (without them the last epoch is kept).
    device : torch.device or str, default "auto"
        ``"auto"`` picks CUDA when available, else the CPU.
    progress : bool, default True
        Progress bars over batches when tqdm is installed (and this is rank 0).
    on_epoch : callable, optional
        Called as ``on_epoch(history)`` after every epoch (logging, pruning).

    Returns
    -------
    TrainedClassifier
        The model with its history, normalisation, class names and recipe.

    Raises
    ------
    TypeError
        If the data are not :class:`~cellvision.data.CellImageDataset` objects.
    ValueError
        If ``device`` is invalid.

    Examples
    --------
    >>> data = make_synthetic_cells([30, 10, 6, 6, 6], size=24, seed=0)
    >>> train_idx, val_idx = stratified_split(data.targets, 0.25, seed=0)
    >>> seen = []
    >>> trained = train(CellCycleRecipe(epochs=2, width=8, depth=2), subset(data, train_idx),
    ...                 subset(data, val_idx), device="cpu", progress=False,
    ...                 on_epoch=lambda history: seen.append(history[-1]["epoch"]))
    >>> seen, trained.epoch, "val_balanced_accuracy" in trained.history[-1]
    ([1, 2], 2, True)
    """
    in_channels, img_size = int(train_data.images.shape[1]), int(train_data.images.shape[-1])

    def make_model(prior: list[float]) -> nn.Module:
        return build_model(
            recipe,
            n_classes=len(train_data.class_names),
            in_channels=in_channels,
            img_size=img_size,
            class_freqs=prior,
        )

    return _fit_classifier(
        recipe,
        make_model,
        train_data,
        val_data,
        epochs=recipe.epochs,
        augment=recipe.augment,
        device=device,
        progress=progress,
        on_epoch=on_epoch,
    )


def train_pixel_baseline(
    recipe: CellCycleRecipe,
    train_data: CellImageDataset,
    val_data: CellImageDataset | None = None,
    *,
    device: torch.device | str = "auto",
    progress: bool = True,
    on_epoch: Callable[[History], object] | None = None,
) -> TrainedClassifier:
    """Train :class:`RawPixelLinear` with the recipe's sampler, optimizer and schedule.

    The baseline the network has to beat: ``recipe.baseline_epochs`` epochs, no augmentation
    (a linear model has no invariance to learn rotated or shifted copies into; they only blur
    its templates). Arguments as :func:`train`. Its :meth:`TrainedClassifier.save` raises
    ``ValueError`` (the baseline is not a registered model).

    Returns
    -------
    TrainedClassifier
        The trained baseline.

    Raises
    ------
    ValueError
        If ``recipe.baseline_epochs`` is 0.

    Examples
    --------
    >>> data = make_synthetic_cells([20, 6, 4, 4, 4], size=16, seed=0)
    >>> baseline = train_pixel_baseline(CellCycleRecipe(baseline_epochs=1), data, device="cpu",
    ...                                 progress=False)
    >>> type(baseline.model).__name__, baseline.epoch
    ('RawPixelLinear', 1)
    """
    if recipe.baseline_epochs == 0:
        raise ValueError("recipe.baseline_epochs must be positive to train the baseline, got 0")
    n_pixels = int(np.prod(train_data.images.shape[1:]))
    n_classes = len(train_data.class_names)
    return _fit_classifier(
        recipe,
        lambda prior: RawPixelLinear(n_pixels, n_classes, prior),
        train_data,
        val_data,
        epochs=recipe.baseline_epochs,
        augment=False,
        device=device,
        progress=progress,
        on_epoch=on_epoch,
    )


def evaluate(
    trained: TrainedClassifier, data: CellImageDataset, *, batch_size: int = _EVAL_BATCH
) -> ClassificationReport:
    """The balanced classification report of ``trained`` on labelled ``data``.

    Under an initialised process group every rank evaluates its share of the cells and the
    report covers all of them.

    Parameters
    ----------
    trained : TrainedClassifier
        The classifier.
    data : CellImageDataset
        Labelled cells with the same class names.
    batch_size : int, default 256
        Cells per forward pass.

    Returns
    -------
    cellvision.metrics.ClassificationReport
        Balanced accuracy, macro F1, Cohen's kappa, ROC AUC, per-class values, confusion.

    Raises
    ------
    TypeError
        If ``data`` is not a :class:`~cellvision.data.CellImageDataset`.
    ValueError
        If the class names differ from the classifier's.

    Examples
    --------
    >>> data = make_synthetic_cells([20, 6, 4, 4, 4], size=16, seed=0)
    >>> trained = train(CellCycleRecipe(epochs=1, width=8, depth=2), data, device="cpu",
    ...                 progress=False)
    >>> report = evaluate(trained, data)
    >>> int(report.confusion_matrix.sum()), 0.0 <= report.balanced_accuracy <= 1.0
    (38, True)
    """
    if not isinstance(data, CellImageDataset):
        raise TypeError(f"data must be a CellImageDataset, got {type(data).__name__}")
    if tuple(data.class_names) != trained.class_names:
        raise ValueError(
            f"data.class_names must be the classifier's {trained.class_names!r}, "
            f"got {tuple(data.class_names)!r}"
        )
    check_positive_int("batch_size", batch_size)
    part = torch.from_numpy(_shard(len(data)))
    loader = _NormalizedBatches(
        trained._images(data.images[part]), data.targets[part], trained.normalize, batch_size
    )
    metric = BalancedClassificationMetrics(len(trained.class_names), class_names=data.class_names)
    result = evaluate_model(trained.model, loader, metrics=metric)
    report: ClassificationReport = result.reports["balanced_classification_metrics"]
    return report


def _report_from_logits(
    logits: Tensor, targets: Tensor, class_names: Sequence[str]
) -> ClassificationReport:
    metric = BalancedClassificationMetrics(len(class_names), class_names=class_names)
    return metric.update(logits, targets).compute()


# --------------------------------------------------------------------------- cross-validation
@dataclasses.dataclass
class CrossValidationResult:
    """What :func:`cross_validate` returns (see its example).

    Attributes
    ----------
    fold_reports : list of ClassificationReport
        One report per fold, on the fold's held-out cells.
    pooled : ClassificationReport
        One report over every cell's out-of-fold prediction.
    oof_proba : Tensor
        ``(N, n_classes)`` out-of-fold probabilities (each cell predicted by the model that
        did not train on it).
    fold_of : numpy.ndarray
        The fold that held out each cell.
    table : dict of str to (float, float)
        Mean and sample standard deviation over the folds of every metric of
        :data:`TABLE_METRICS` (NaN folds skipped).
    """

    fold_reports: list[ClassificationReport]
    pooled: ClassificationReport
    oof_proba: Tensor
    fold_of: np.ndarray[Any, np.dtype[np.int64]]
    table: dict[str, tuple[float, float]]

    def format_table(self) -> str:
        """The mean/sd table and the pooled row as text.

        Returns
        -------
        str
            One row per fold, ``mean``, ``sd`` and ``pooled``.
        """
        header = f"{'fold':8s} " + " ".join(f"{s:>8s}" for _, s in TABLE_METRICS)
        lines = [header, "-" * len(header)]
        for k, report in enumerate(self.fold_reports):
            cells = " ".join(f"{_fmt(getattr(report, key)):>8s}" for key, _ in TABLE_METRICS)
            lines.append(f"{k + 1:<8d} {cells}")
        for label, at in (("mean", 0), ("sd", 1)):
            cells = " ".join(f"{_fmt(self.table[key][at]):>8s}" for key, _ in TABLE_METRICS)
            lines.append(f"{label:8s} {cells}")
        cells = " ".join(f"{_fmt(getattr(self.pooled, key)):>8s}" for key, _ in TABLE_METRICS)
        lines.append(f"{'pooled':8s} {cells}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready results (reports, fold of every cell, mean/sd table).

        Returns
        -------
        dict
            ``folds``, ``pooled``, ``fold_of``, ``table`` and ``oof_proba``.
        """
        return {
            "folds": [r.to_dict() for r in self.fold_reports],
            "pooled": self.pooled.to_dict(),
            "fold_of": self.fold_of.tolist(),
            "table": {k: {"mean": _json(m), "sd": _json(s)} for k, (m, s) in self.table.items()},
            "oof_proba": self.oof_proba.tolist(),
        }


def cross_validate(
    recipe: CellCycleRecipe,
    data: CellImageDataset,
    n_splits: int = 5,
    seed: int = 0,
    *,
    device: torch.device | str = "auto",
    progress: bool = False,
    on_fold: Callable[[int, ClassificationReport], object] | None = None,
) -> CrossValidationResult:
    """Stratified k-fold cross-validation of the recipe.

    Every fold trains :func:`train` on the other folds (with ``select="best"`` a stratified
    validation split of them, ``recipe.val_fraction``, chooses the epoch; otherwise the last
    epoch is kept) and predicts its held-out cells. The folds come from
    :class:`~cellvision.splits.StratifiedKFoldSplitter`.

    Parameters
    ----------
    recipe : CellCycleRecipe
        The settings of every fold.
    data : CellImageDataset
        All labelled cells.
    n_splits : int, default 5
        Number of folds.
    seed : int, default 0
        Seed of the folds (the recipe's seed drives the training).
    device, progress
        As in :func:`train`.
    on_fold : callable, optional
        Called as ``on_fold(fold, report)`` after each fold (fold counted from 1).

    Returns
    -------
    CrossValidationResult
        Per-fold reports, pooled out-of-fold report, out-of-fold probabilities, mean/sd table.

    Raises
    ------
    TypeError, ValueError
        If the data or ``n_splits`` are invalid.

    Examples
    --------
    >>> data = make_synthetic_cells([24, 8, 6, 6, 6], size=24, seed=0)
    >>> result = cross_validate(CellCycleRecipe(epochs=1, width=8, depth=2), data,
    ...                         n_splits=3, device="cpu")
    >>> len(result.fold_reports), tuple(result.oof_proba.shape)
    (3, (50, 5))
    """
    if not isinstance(data, CellImageDataset):
        raise TypeError(f"data must be a CellImageDataset, got {type(data).__name__}")
    splitter = StratifiedKFoldSplitter(n_splits, seed=seed)
    names = data.class_names
    logits = torch.zeros(len(data), len(names))
    fold_of = np.full(len(data), -1, dtype=np.int64)
    reports: list[ClassificationReport] = []
    for k, (train_idx, test_idx) in enumerate(splitter.split(data.images, data.targets)):
        val = None
        if recipe.select == "best":
            inner_train, inner_val = stratified_split(
                data.targets[torch.from_numpy(train_idx)], recipe.val_fraction, seed=seed + k
            )
            train_idx, val = train_idx[inner_train], subset(data, train_idx[inner_val])
        trained = train(recipe, subset(data, train_idx), val, device=device, progress=progress)
        fold_logits = trained.logits(data.images[torch.from_numpy(test_idx)])
        logits[torch.from_numpy(test_idx)] = fold_logits
        fold_of[test_idx] = k
        report = _report_from_logits(fold_logits, data.targets[test_idx], names)
        reports.append(report)
        if on_fold is not None:
            on_fold(k + 1, report)
    table: dict[str, tuple[float, float]] = {}
    for key, _ in TABLE_METRICS:
        values = np.array([float(getattr(r, key)) for r in reports], dtype=np.float64)
        finite = values[np.isfinite(values)]
        mean = float(finite.mean()) if finite.size else math.nan
        sd = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
        table[key] = (mean, sd)
    return CrossValidationResult(
        fold_reports=reports,
        pooled=_report_from_logits(logits, data.targets, names),
        oof_proba=torch.softmax(logits, dim=-1),
        fold_of=fold_of,
        table=table,
    )


# --------------------------------------------------------------------------- the study
def _fmt(value: object) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "  n/a"
    return f"{value:.3f}"


def _json(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclasses.dataclass
class StudyResult:
    """The outcome of :func:`run_study` (see its example): models, test reports, JSON summary.

    Attributes
    ----------
    trained : TrainedClassifier
        The recipe's model.
    baseline : TrainedClassifier or None
        The raw-pixel linear baseline (``None`` with ``baseline_epochs=0``).
    test : dict of str to ClassificationReport
        Test report of every model, by display name.
    summary : dict
        JSON-ready results (what ``results.json`` holds).
    val_data : CellImageDataset or None
        The validation cells (for the embedding figure).
    """

    trained: TrainedClassifier
    baseline: TrainedClassifier | None
    test: dict[str, ClassificationReport]
    summary: dict[str, Any]
    val_data: CellImageDataset | None

    def format_table(self) -> str:
        """The final table: one row per model, test metrics (deterministic text).

        Returns
        -------
        str
            The table.
        """
        header = f"{'model':22s} {'epoch':>5s} " + " ".join(f"{s:>8s}" for _, s in TABLE_METRICS)
        summary = self.summary
        lines = [
            f"Test split ({sum(summary['split_counts']['test'])} cells), "
            f"weights of the {summary['reported_epoch']}; validation never trains the model.",
            header,
            "-" * len(header),
        ]
        rows = summary["models"]
        for name, entry in rows.items():
            cells = " ".join(f"{_fmt(entry['test'][key]):>8s}" for key, _ in TABLE_METRICS)
            lines.append(f"{name:22s} {entry['tested_epoch']:5d} {cells}")
        if len(rows) == 2:
            (a, first), (_, second) = rows.items()
            gap = first["test"]["balanced_accuracy"] - second["test"]["balanced_accuracy"]
            lines.append(f"{a} - linear balanced accuracy: {gap:+.3f}")
        return "\n".join(lines)

    def save(self, out_dir: str | os.PathLike[str], *, figures: bool = True) -> list[Path]:
        """Write ``results.json``, ``checkpoint.pt`` and (with matplotlib) the figures.

        The figures are ``confusion_matrix.png`` (test split), ``curves.png`` (losses and
        validation metrics per epoch) and ``pca_val.png`` (validation embeddings); they are
        skipped when matplotlib is not installed.

        Parameters
        ----------
        out_dir : str or os.PathLike
            Output folder (created).
        figures : bool, default True
            Also draw the figures.

        Returns
        -------
        list of pathlib.Path
            The written files.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "results.json", out / "checkpoint.pt"]
        written[0].write_text(json.dumps(self.summary, indent=2, allow_nan=True))
        self.trained.save(written[1])
        if figures:
            # matplotlib is optional (the ``plot`` extra): without it there are no figures.
            with contextlib.suppress(ImportError):
                written += self._figures(out)
        return written

    def _figures(self, out: Path) -> list[Path]:
        from matplotlib.figure import Figure

        from cellvision.features import extract_features, pca
        from cellvision.plotting import plot_confusion_matrix, plot_embedding, plot_history

        name, trained = self.trained.recipe.model, self.trained
        paths = [out / "confusion_matrix.png", out / "curves.png"]
        fig = plot_confusion_matrix(
            self.test[name].confusion_matrix,
            trained.class_names,
            title=f"{name}: test split (recall per row)",
        )
        fig.savefig(paths[0], dpi=100, bbox_inches="tight")
        fig = Figure(figsize=(10, 4), layout="constrained")
        left, right = fig.subplots(1, 2)
        recorded = set(trained.history.keys())
        losses = [k for k in ("train_loss", "val_loss") if k in recorded]
        plot_history(trained.history, losses, ax=left, title="loss")
        keys = [f"val_{key}" for key, _ in TABLE_METRICS if f"val_{key}" in recorded]
        if keys:
            plot_history(trained.history, keys, ax=right, title="validation metrics")
        fig.savefig(paths[1], dpi=100)
        if self.val_data is not None:
            loader = _NormalizedBatches(
                self.val_data.images, self.val_data.targets, trained.normalize, _EVAL_BATCH
            )
            features, labels = extract_features(trained.model, loader)
            points, ratio = pca(features, 2)
            fig = plot_embedding(
                points,
                labels,
                trained.class_names,
                explained_variance_ratio=ratio,
                title=f"{name}: validation embeddings (PCA)",
            )
            paths.append(out / "pca_val.png")
            fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
        return paths


def run_study(
    recipe: CellCycleRecipe,
    data: CellImageDataset,
    *,
    test_data: CellImageDataset | None = None,
    data_description: str = "",
    device: torch.device | str = "auto",
    progress: bool = True,
    on_epoch: Callable[[str, History], object] | None = None,
    log: Callable[[str], object] | None = print,
) -> StudyResult:
    """The whole study: split, train the model and the pixel baseline, test both once.

    Without ``test_data`` the cells are split with
    :func:`~cellvision.splits.train_val_test_split`; with it, ``data`` is split into training
    and validation cells only and the test report comes from ``test_data`` (a separately
    labelled folder). The validation cells never train a model; the test cells never choose
    anything. Under a process group only rank 0 logs.

    Parameters
    ----------
    recipe : CellCycleRecipe
        The settings (``baseline_epochs=0`` skips the baseline).
    data : CellImageDataset
        Labelled cells.
    test_data : CellImageDataset, optional
        Separate test cells (same class names).
    data_description : str, optional
        Where the data come from (logged and stored in the summary).
    device, progress
        As in :func:`train`.
    on_epoch : callable, optional
        Called as ``on_epoch(model_name, history)`` after every epoch of either model.
    log : callable or None, default print
        Receives the text lines of the study (data, splits, model, table).

    Returns
    -------
    StudyResult
        Trained models, test reports and the JSON summary.

    Examples
    --------
    >>> data = make_synthetic_cells([40, 12, 8, 8, 8], size=24, seed=0)
    >>> recipe = CellCycleRecipe(epochs=1, width=8, depth=2, baseline_epochs=1)
    >>> result = run_study(recipe, data, device="cpu", progress=False, log=None)
    >>> list(result.summary["models"]), result.summary["split_counts"]["test"]
    (['cellcycle_convnet', 'linear (raw pixels)'], [6, 2, 1, 1, 1])
    >>> print(result.format_table().splitlines()[1])
    model                  epoch  bal_acc macro_f1    kappa    auroc
    """

    def say(text: str) -> None:
        if log is not None and _is_main_process():
            log(text)

    start_cpu, start_wall = time.process_time(), time.perf_counter()
    names = data.class_names
    if test_data is None:
        train_idx, val_idx, test_idx = train_val_test_split(
            data.targets, recipe.val_fraction, recipe.test_fraction, recipe.seed
        )
        test_part = subset(data, test_idx)
    else:
        train_idx, val_idx = stratified_split(data.targets, recipe.val_fraction, seed=recipe.seed)
        test_part = test_data
    train_part, val_part = subset(data, train_idx), subset(data, val_idx)
    split_counts = {
        split: torch.bincount(part.targets, minlength=len(names)).tolist()
        for split, part in (("train", train_part), ("val", val_part), ("test", test_part))
    }
    say(f"data: {data_description}; classes {list(names)}")
    for split, counts in split_counts.items():
        say(f"  {split:5s} {sum(counts):6d} cells {counts}")
    say(f"model: {recipe.model}; recipe {recipe.to_json(indent=None)}")

    def hook(name: str) -> Callable[[History], object] | None:
        return None if on_epoch is None else functools.partial(on_epoch, name)

    models: list[tuple[str, TrainedClassifier]] = []
    trained = train(
        recipe, train_part, val_part, device=device, progress=progress, on_epoch=hook(recipe.model)
    )
    models.append((recipe.model, trained))
    baseline = None
    if recipe.baseline_epochs:
        name = "linear (raw pixels)"
        baseline = train_pixel_baseline(
            recipe, train_part, val_part, device=device, progress=progress, on_epoch=hook(name)
        )
        models.append((name, baseline))
    test = {name: evaluate(model, test_part) for name, model in models}
    n_params = sum(p.numel() for p in trained.model.parameters())
    summary: dict[str, Any] = {
        "data": data_description,
        "class_names": list(names),
        "split_counts": split_counts,
        "recipe": recipe.to_dict(),
        "reported_split": "test" if test_data is None else "test folder",
        "reported_epoch": (
            "last epoch" if recipe.select == "last" else "best validation balanced accuracy"
        ),
        "epochs_counted_from": 1,
        "models": {
            name: {
                "tested_epoch": model.epoch,
                "test": test[name].to_dict(),
                "history": model.history.to_dict(),
            }
            for name, model in models
        },
        "n_parameters": n_params,
    }
    result = StudyResult(trained, baseline, test, summary, val_part)
    say("")
    say(result.format_table())
    say("")
    say(f"{recipe.model} on the test split:")
    say(test[recipe.model].format(digits=3))
    summary["seconds"] = {
        "wall": time.perf_counter() - start_wall,
        "cpu": time.process_time() - start_cpu,
    }
    return result


# --------------------------------------------------------------------------- sweeps
def _suggest(trial: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, (kind, spec) in SWEEP_SPACE.items():
        if kind == "log_float":
            params[name] = trial.suggest_float(name, *spec, log=True)
        elif kind == "float":
            params[name] = trial.suggest_float(name, *spec)
        else:
            params[name] = trial.suggest_categorical(name, list(spec))
    return params


def sweep_objective(
    trial: Any,
    *,
    quick: bool = False,
    seed: int = 0,
    data: CellImageDataset | None = None,
    epochs: int | None = None,
) -> float:
    """Optuna objective: the validation balanced accuracy of one drawn recipe.

    Draws the parameters of :data:`SWEEP_SPACE` from ``trial`` (any object with Optuna's
    ``suggest_float``/``suggest_categorical``/``report``/``should_prune``), trains on the
    training split and reports the validation balanced accuracy after every epoch; when
    ``trial.should_prune()`` says so, raises ``optuna.TrialPruned`` (Optuna is imported only
    then). The test split of :func:`~cellvision.splits.train_val_test_split` is never looked
    at. The drawn recipe is stored as the trial's user attribute ``"recipe"`` (JSON).

    Parameters
    ----------
    trial : optuna.trial.Trial or compatible
        The trial.
    quick : bool, default False
        The quick data and 2 epochs per trial (8 otherwise).
    seed : int, default 0
        Seed of the data, split and training.
    data : CellImageDataset, optional
        Cells to use instead of :func:`load_data`'s default.
    epochs : int, optional
        Epochs per trial (overrides ``quick``).

    Returns
    -------
    float
        The last epoch's validation balanced accuracy.

    Raises
    ------
    optuna.TrialPruned
        When the trial's pruner stops it.

    Examples
    --------
    >>> import optuna  # the ``tune`` extra
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> data = make_synthetic_cells([40, 12, 8, 8, 8], size=24, seed=0)
    >>> study = optuna.create_study(direction="maximize")
    >>> study.optimize(lambda trial: sweep_objective(trial, data=data, epochs=1), n_trials=1)
    >>> len(study.trials), sorted(study.best_params) == sorted(SWEEP_SPACE)
    (1, True)
    """
    if data is None:
        data, _ = load_data(quick=quick, seed=seed)
    base = CellCycleRecipe(
        epochs=epochs if epochs is not None else (2 if quick else 8), baseline_epochs=0, seed=seed
    )
    recipe = CellCycleRecipe.from_flat_dict(base.to_flat_dict() | _suggest(trial))
    # The test cells of the split are set aside and never looked at while searching.
    train_idx, val_idx, _ = train_val_test_split(
        data.targets, recipe.val_fraction, recipe.test_fraction, seed
    )
    set_user_attr = getattr(trial, "set_user_attr", None)
    if callable(set_user_attr):
        set_user_attr("recipe", recipe.to_json(indent=None))

    def report(history: History) -> None:
        record = history[-1]
        value = record["val_balanced_accuracy"]
        trial.report(float(value) if value is not None else math.nan, int(record["epoch"]))
        if trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"pruned at epoch {record['epoch']}")

    trained = train(
        recipe,
        subset(data, train_idx),
        subset(data, val_idx),
        progress=False,
        on_epoch=report,
    )
    value = trained.history[-1]["val_balanced_accuracy"]
    return float(value) if value is not None else math.nan
