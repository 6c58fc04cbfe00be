"""Cell-cycle image data: phases, channels, label merging, the Jurkat folder reader and an
in-memory data set.

Imaging-flow-cytometry releases of Jurkat cells come in two layouts, both read by
:class:`CellCycleFolder` and :func:`load_cells`, which tell them apart by the file names:

**Per-cell files** (Eulenberg et al., 2017): one image per cell and channel::

    <root>/<Phase>/<cell id>_Ch<k>.<ext>         e.g.  G1/1234_Ch3.ome.jpg

**Montages** (Blasi et al., 2016, as published in ``minh-doan/MLCP``): per phase and channel,
CellProfiler-stitched grids of single-cell tiles; the montage number ties the channels of one
montage together::

    <root>/<Phase>/Ch<k>_<montage>.tif           e.g.  Prophase/Ch3_CP0001.tif

Without phase folders (files directly in ``<root>``) the cells are read unlabelled, for
prediction. The phases are the seven of :data:`CELL_CYCLE_PHASES`; G1, S and G2 are usually
merged into one "Interphase" class (:data:`INTERPHASE_MERGE`), leaving five classes.

Channels (:data:`CHANNEL_SIGNALS`): ``Ch3`` is brightfield and ``Ch6`` darkfield (side
scatter), both label-free (:data:`LABEL_FREE_CHANNELS`). ``Ch4`` is the DNA stain from which the
phase labels were derived: a model that sees it is not doing label-free classification
(:func:`is_label_free`).

References
----------
- Eulenberg, P. et al. Reconstructing cell cycle and disease progression using deep
  learning. Nat. Commun. 8, 463 (2017).
- Blasi, T. et al. Label-free cell cycle analysis for high-throughput imaging flow
  cytometry. Nat. Commun. 7, 10256 (2016).
"""

from __future__ import annotations

import collections
import importlib.resources
import operator
import os
import re
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from cellvision.data.montage import (
    TILE_ORDERS,
    find_duplicate_tiles,
    infer_tile_size,
    padding_tile_mask,
    split_montage,
)
from cellvision.data.transforms import to_float_images

__all__ = [
    "CELL_CYCLE_PHASES",
    "CHANNEL_SIGNALS",
    "DEFAULT_CHANNELS",
    "INTERPHASE_MERGE",
    "JURKAT_PHASE_COUNTS",
    "LABEL_FREE_CHANNELS",
    "MERGED_CELL_CYCLE_PHASES",
    "UNLABELLED",
    "CellCycleFolder",
    "CellImageDataset",
    "CellRecord",
    "canonical_phase",
    "channel_name",
    "is_label_free",
    "load_cells",
    "load_jurkat_sample",
    "merge_labels",
]

#: The seven phase folders of the Jurkat release, in cell-cycle order.
CELL_CYCLE_PHASES: tuple[str, ...] = (
    "G1",
    "S",
    "G2",
    "Prophase",
    "Metaphase",
    "Anaphase",
    "Telophase",
)

#: Merge map used in the literature: the interphase stages G1, S and G2 become "Interphase".
INTERPHASE_MERGE: Mapping[str, str] = types.MappingProxyType(
    {"G1": "Interphase", "S": "Interphase", "G2": "Interphase"}
)

#: The five classes after :data:`INTERPHASE_MERGE`, in the order :func:`merge_labels` gives.
MERGED_CELL_CYCLE_PHASES: tuple[str, ...] = (
    "Interphase",
    "Prophase",
    "Metaphase",
    "Anaphase",
    "Telophase",
)

#: Number of cells per merged class in the Jurkat release (Eulenberg et al., 2017).
JURKAT_PHASE_COUNTS: Mapping[str, int] = types.MappingProxyType(
    {"Interphase": 31550, "Prophase": 606, "Metaphase": 68, "Anaphase": 15, "Telophase": 27}
)

#: What each channel of the Jurkat release records. Ch4 is the DNA stain from which the
#: phase labels were derived (DNA content and shape), so it is not label-free.
CHANNEL_SIGNALS: Mapping[str, str] = types.MappingProxyType(
    {
        "Ch3": "brightfield",
        "Ch4": "DNA stain (the label source, not label-free)",
        "Ch6": "darkfield (side scatter)",
    }
)

#: Channels that do not reveal the label: brightfield and darkfield.
LABEL_FREE_CHANNELS: tuple[str, ...] = ("Ch3", "Ch6")

#: Default channels of :class:`CellCycleFolder`, :func:`load_cells` and
#: :func:`load_jurkat_sample`: both label-free channels, brightfield first.
DEFAULT_CHANNELS: tuple[str, ...] = ("Ch3", "Ch6")

#: Target value of an unlabelled cell (read from a folder without phase folders).
UNLABELLED: int = -1

_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "tif", "tiff")
_FILE_PATTERN = re.compile(
    r"^(?P<cell>.+)_(?P<channel>ch\d+)\.(?:ome\.)?(?P<ext>jpg|jpeg|png|tif|tiff)$", re.IGNORECASE
)
_MONTAGE_PATTERN = re.compile(
    r"^(?P<channel>ch\d+)_(?P<montage>[^.]+)\.(?:ome\.)?(?P<ext>png|tif|tiff)$", re.IGNORECASE
)
_CHANNEL_PATTERN = re.compile(r"^(?:ch)?(\d+)$", re.IGNORECASE)
_ON_ERROR = ("raise", "skip")
_LAYOUTS = ("auto", "per-cell", "montage")
_ACCEPTED_LAYOUTS = (
    "per-cell files <root>/<Phase>/<cell id>_Ch<k>.<ext> (e.g. G1/1234_Ch3.ome.jpg; "
    "ext jpg, jpeg, png, tif or tiff), "
    "montages <root>/<Phase>/Ch<k>_<montage>.tif (e.g. Prophase/Ch3_CP0001.tif; "
    "also .tiff or .png), "
    "or either kind directly in <root> for unlabelled cells (e.g. 1234_Ch3.png, Ch3_CP0001.tif)"
)
_SAMPLE_FILE = "jurkat_sample.npz"
_Match = tuple[Path, "re.Match[str]"]


def channel_name(channel: str | int) -> str:
    """Return the canonical name ``"Ch<k>"`` of a channel given by name or number.

    Parameters
    ----------
    channel : str or int
        ``"Ch3"``, ``"ch03"``, ``"3"`` or ``3`` (numpy integers accepted).

    Returns
    -------
    str
        ``"Ch3"`` and so on.

    Raises
    ------
    TypeError
        If ``channel`` is neither a string nor an integer.
    ValueError
        If it does not name a channel.

    Examples
    --------
    >>> channel_name("ch03"), channel_name(6)
    ('Ch3', 'Ch6')
    """
    if isinstance(channel, str):
        match = _CHANNEL_PATTERN.match(channel.strip())
        if match is None:
            raise ValueError(f"channel must be a name like 'Ch3' or a number, got {channel!r}")
        return f"Ch{int(match.group(1))}"
    if isinstance(channel, bool):
        raise TypeError(f"channel must be a str or an int, got {channel!r}")
    try:
        number = operator.index(channel)
    except TypeError:
        raise TypeError(f"channel must be a str or an int, got {channel!r}") from None
    if number < 0:
        raise ValueError(f"channel must be a non-negative number, got {channel!r}")
    return f"Ch{number}"


def _channel_names(channels: Sequence[str | int] | str | int) -> tuple[str, ...]:
    if isinstance(channels, (str, int, np.integer)):
        channels = (channels,)
    try:
        names = tuple(channel_name(c) for c in channels)
    except (TypeError, ValueError):
        raise ValueError(
            f"channels must be a non-empty sequence of names like 'Ch3' or numbers, "
            f"got {channels!r}"
        ) from None
    if not names:
        raise ValueError(f"channels must be a non-empty sequence of channels, got {channels!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"channels must not repeat a channel, got {channels!r}")
    return names


def is_label_free(channels: Sequence[str | int] | str | int) -> bool:
    """Whether a channel selection is label-free: every channel in :data:`LABEL_FREE_CHANNELS`.

    The phase labels of the Jurkat data were derived from the DNA stain (``Ch4``), so a model
    that sees ``Ch4`` learns the labelling rule rather than classifying label-free. Channels
    of unknown meaning are not counted as label-free either.

    Parameters
    ----------
    channels : sequence of str or int, or one channel
        Channel names or numbers, as accepted by :func:`channel_name`.

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        If a channel name is invalid.

    Examples
    --------
    >>> is_label_free(("Ch3", "Ch6")), is_label_free(["Ch3", "Ch4"]), is_label_free(4)
    (True, False, False)
    """
    return all(name in LABEL_FREE_CHANNELS for name in _channel_names(channels))


def _phase_key(name: str) -> str:
    key = re.sub(r"[\s_\-]+", "", name.strip().lower())
    # "S_phase", "g2-phase", "Prophase" -> "s", "g2", "pro"; the bare word "phase" stays.
    return key[: -len("phase")] if key.endswith("phase") and key != "phase" else key


_PHASE_ALIASES: dict[str, str] = {_phase_key(p): p for p in CELL_CYCLE_PHASES}


def canonical_phase(name: str) -> str | None:
    """Return the canonical phase for a folder name, or ``None`` if it is not a phase.

    Matching ignores case, spaces, ``_``/``-`` and a trailing "phase", so ``S_phase``,
    ``s``, ``g1``, ``G2 phase`` and ``metaphase`` are all recognised.

    Parameters
    ----------
    name : str
        Folder name.

    Returns
    -------
    str or None
        One of :data:`CELL_CYCLE_PHASES`, or ``None``.

    Examples
    --------
    >>> canonical_phase("S_phase"), canonical_phase("metaphase"), canonical_phase("debris")
    ('S', 'Metaphase', None)
    """
    return _PHASE_ALIASES.get(_phase_key(name))


def merge_labels(
    labels: Sequence[str] | Sequence[int] | np.ndarray[Any, Any] | Tensor,
    mapping: Mapping[str, str] | None,
    *,
    class_names: Sequence[str] | None = None,
) -> tuple[Tensor, tuple[str, ...]]:
    """Merge classes by name and relabel.

    Every original class ``name`` becomes ``mapping.get(name, name)``. The merged classes are
    ordered by the first original class (in ``class_names`` order) that maps to them, so merging
    :data:`CELL_CYCLE_PHASES` with :data:`INTERPHASE_MERGE` gives
    :data:`MERGED_CELL_CYCLE_PHASES`. Keys of ``mapping`` that are not classes are ignored, so
    one map serves data sets that lack some classes.

    Parameters
    ----------
    labels : sequence of str, or 1-D integer array/tensor
        Class names, or indices into ``class_names``.
    mapping : mapping of str to str, or None
        Old name -> new name; ``None`` keeps every class.
    class_names : sequence of str, optional
        Names (and order) of the original classes. Required for integer labels; for string
        labels it defaults to the canonical phase order for phases followed by the other
        names sorted alphabetically.

    Returns
    -------
    new_labels : Tensor
        1-D int64 tensor of merged class indices.
    new_class_names : tuple of str
        Names of the merged classes.

    Raises
    ------
    TypeError
        If ``mapping`` is not a mapping of strings or integer labels lack ``class_names``.
    ValueError
        If a label is out of range or not in ``class_names``, or ``class_names`` repeats a name.

    Examples
    --------
    >>> labels, names = merge_labels(["S", "Anaphase", "G1"], INTERPHASE_MERGE)
    >>> labels.tolist(), names
    ([0, 1, 0], ('Interphase', 'Anaphase'))
    >>> merge_labels([0, 1, 2, 6], INTERPHASE_MERGE, class_names=CELL_CYCLE_PHASES)
    (tensor([0, 0, 0, 4]), ('Interphase', 'Prophase', 'Metaphase', 'Anaphase', 'Telophase'))
    """
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise TypeError(f"mapping must be a mapping from str to str or None, got {mapping!r}")
    if isinstance(labels, Tensor):
        labels = labels.detach().cpu().numpy()
    values: list[object] = list(labels) if not isinstance(labels, np.ndarray) else labels.tolist()
    if values and all(isinstance(v, str) for v in values):
        str_values = [str(v) for v in values]
        if class_names is None:
            present = set(str_values)
            class_names = [p for p in CELL_CYCLE_PHASES if p in present]
            class_names += sorted(present - set(class_names))
        names = tuple(class_names)
        position = {n: i for i, n in enumerate(names)}
        unknown = sorted({v for v in str_values if v not in position})
        if unknown:
            raise ValueError(f"labels must be among class_names {names!r}, got {unknown!r}")
        indices = [position[v] for v in str_values]
    else:
        indices = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"labels must be all str or all int, got {labels!r}")
            indices.append(int(v))
        if class_names is None:
            raise TypeError("class_names must be given for integer labels, got None")
        names = tuple(class_names)
        bad = [v for v in indices if not 0 <= v < len(names)]
        if bad:
            raise ValueError(f"labels must be in [0, {len(names)}), got {bad[:5]!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique, got {names!r}")
    new_names: list[str] = []
    old_to_new = []
    for name in names:
        target = mapping.get(name, name)
        if target not in new_names:
            new_names.append(target)
        old_to_new.append(new_names.index(target))
    lookup = torch.tensor(old_to_new, dtype=torch.int64)
    new_labels = lookup[torch.tensor(indices, dtype=torch.int64)]
    return new_labels, tuple(new_names)


class _ClassDatasetMixin:
    """Shared class bookkeeping: ``targets``, ``class_names``, ``classes`` and ``counts``."""

    targets: Tensor
    class_names: tuple[str, ...]

    @property
    def classes(self) -> int:
        """Number of classes (``len(class_names)``), the name used in the original notebook."""
        return len(self.class_names)

    @property
    def counts(self) -> tuple[tuple[str, int], ...]:
        """``(class name, number of samples)`` for every class, in label order.

        Unlabelled samples (target :data:`UNLABELLED`) are not counted.
        """
        labelled = self.targets[self.targets >= 0]
        counts = torch.bincount(labelled, minlength=len(self.class_names)).tolist()
        return tuple(zip(self.class_names, counts, strict=True))

    @property
    def is_labelled(self) -> bool:
        """True when no sample has the target :data:`UNLABELLED` (``-1``)."""
        return bool((self.targets >= 0).all())


class CellImageDataset(_ClassDatasetMixin, Dataset[tuple[Tensor, int]]):
    """In-memory image classification data set.

    Images are kept as given (``uint8``/``uint16`` stays compact) and converted to float32 on
    access with :func:`~cellvision.data.transforms.to_float_images` (integer images are mapped
    to ``[0, 1]``). :meth:`get_batch` returns whole batches with one indexing operation and
    applies a batched transform once per batch, which is much faster than a ``DataLoader`` over
    single samples.

    Parameters
    ----------
    images : Tensor or numpy.ndarray
        ``(N, C, H, W)`` images, or ``(N, H, W)`` for one channel; dtype ``uint8``, ``uint16`` or
        floating point.
    labels : sequence of int, numpy.ndarray or Tensor
        ``N`` class indices in ``[0, len(class_names))``, or :data:`UNLABELLED` (``-1``) for
        cells without a label (e.g. read for prediction).
    class_names : sequence of str
        Name of every class, indexed by label.
    transform : callable, optional
        Called as ``transform(image)`` on every ``(C, H, W)`` float image in ``__getitem__``,
        and as ``transform(batch, generator=generator)`` in :meth:`get_batch`; the batched
        transforms of :mod:`cellvision.data.transforms` support both.
    ids : sequence of str, optional
        One unique, stable id per sample, e.g. ``"Prophase/CP0001#17"`` (see
        :class:`CellCycleFolder`).

    Attributes
    ----------
    images : Tensor
        The stored ``(N, C, H, W)`` images.
    targets : Tensor
        1-D int64 labels (``-1`` for unlabelled samples).
    class_names : tuple of str
        Class names.
    ids : tuple of str or None
        Sample ids, when given.

    Raises
    ------
    TypeError
        If an argument has the wrong type or dtype.
    ValueError
        If shapes or lengths disagree or a label is out of range.

    Examples
    --------
    >>> images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    >>> ds = CellImageDataset(images, [0, 1, 1, 0], ["Interphase", "Prophase"])
    >>> image, label = ds[1]
    >>> image.shape, image.dtype, label
    (torch.Size([1, 8, 8]), torch.float32, 1)
    >>> ds.counts
    (('Interphase', 2), ('Prophase', 2))
    """

    def __init__(
        self,
        images: Tensor | np.ndarray[Any, Any],
        labels: Sequence[int] | np.ndarray[Any, Any] | Tensor,
        class_names: Sequence[str],
        *,
        transform: Callable[..., Tensor] | None = None,
        ids: Sequence[str] | None = None,
    ) -> None:
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
        if not isinstance(images, Tensor):
            raise TypeError(f"images must be a Tensor or numpy array, got {type(images)!r}")
        if images.ndim == 3:
            images = images.unsqueeze(1)
        if images.ndim != 4:
            raise ValueError(
                f"images must have shape (N, C, H, W) or (N, H, W), got {tuple(images.shape)!r}"
            )
        if not (images.is_floating_point() or images.dtype in (torch.uint8, torch.uint16)):
            raise TypeError(
                f"images must have dtype uint8, uint16 or floating point, got {images.dtype!r}"
            )
        if isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names):
            raise TypeError(f"class_names must be a sequence of str, got {class_names!r}")
        names = tuple(class_names)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"class_names must be non-empty and unique, got {names!r}")
        targets = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels)
        if targets.ndim != 1 or targets.is_floating_point() or targets.dtype == torch.bool:
            raise TypeError(f"labels must be a 1-D sequence of ints, got {labels!r}")
        targets = targets.to(torch.int64).cpu()
        if targets.numel() != images.shape[0]:
            raise ValueError(
                f"labels must have one entry per image ({images.shape[0]}), got {targets.numel()}"
            )
        if targets.numel() and (
            int(targets.min()) < UNLABELLED or int(targets.max()) >= len(names)
        ):
            raise ValueError(
                f"labels must be in [0, {len(names)}) or {UNLABELLED} (unlabelled), got values "
                f"in [{int(targets.min())}, {int(targets.max())}]"
            )
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {transform!r}")
        if ids is not None:
            if isinstance(ids, str) or not all(isinstance(i, str) for i in ids):
                raise TypeError(f"ids must be a sequence of str or None, got {ids!r}")
            ids = tuple(ids)
            if len(ids) != targets.numel():
                raise ValueError(
                    f"ids must have one entry per image ({targets.numel()}), got {len(ids)}"
                )
            if len(set(ids)) != len(ids):
                repeated = [i for i, n in collections.Counter(ids).items() if n > 1]
                raise ValueError(f"ids must be unique, got repeats {repeated[:5]!r}")
        self.images = images
        self.targets = targets
        self.class_names = names
        self.transform = transform
        self.ids: tuple[str, ...] | None = ids

    def __len__(self) -> int:
        return int(self.targets.numel())

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = to_float_images(self.images[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])

    def get_batch(
        self,
        indices: Sequence[int] | np.ndarray[Any, Any] | Tensor,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Return a float batch and its labels, applying the transform to the whole batch.

        Parameters
        ----------
        indices : sequence of int, numpy.ndarray or Tensor
            Sample indices.
        generator : torch.Generator, optional
            Passed to the transform.
        device : torch.device or str, optional
            Move the images there before converting and transforming them (so augmentation
            runs on the GPU when given ``"cuda"``).

        Returns
        -------
        images : Tensor
            ``(B, C, H, W)`` float32 batch.
        labels : Tensor
            ``(B,)`` int64 labels on the same device.

        Raises
        ------
        IndexError
            If an index is out of range.

        Examples
        --------
        >>> ds = CellImageDataset(torch.rand(10, 2, 4, 4), [0] * 5 + [1] * 5, ["a", "b"])
        >>> x, y = ds.get_batch([0, 9])
        >>> x.shape, y.tolist()
        (torch.Size([2, 2, 4, 4]), [0, 1])
        """
        idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, Tensor) else indices)
        idx = idx.to(torch.int64).reshape(-1).cpu()
        n = len(self)
        if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise IndexError(f"indices must be in [-{n}, {n}), got {indices!r}")
        idx = torch.where(idx < 0, idx + n, idx)
        batch = self.images.index_select(0, idx)
        labels = self.targets.index_select(0, idx)
        if device is not None:
            batch, labels = batch.to(device), labels.to(device)
        images = to_float_images(batch)
        if self.transform is not None:
            images = self.transform(images, generator=generator)
        return images, labels

    def subset(
        self,
        indices: Sequence[int] | np.ndarray[Any, Any] | Tensor,
        *,
        transform: Callable[..., Tensor] | str | None = "same",
    ) -> CellImageDataset:
        """Return the samples at ``indices`` as a new data set (images are copied once).

        Parameters
        ----------
        indices : sequence of int, numpy.ndarray or Tensor
            Sample indices, e.g. one fold of :func:`~cellvision.splits.stratified_kfold`.
        transform : callable, None or "same", default "same"
            Transform of the new data set; ``"same"`` keeps this one's.

        Returns
        -------
        CellImageDataset
            Same class names; images, targets and ids (if any) of the chosen samples.

        Raises
        ------
        IndexError
            If an index is out of range.

        Examples
        --------
        >>> ds = CellImageDataset(torch.zeros(3, 1, 2, 2), [0, 1, 1], ["a", "b"],
        ...                       ids=["x", "y", "z"])
        >>> part = ds.subset([2, 0])
        >>> part.targets.tolist(), part.ids
        ([1, 0], ('z', 'x'))
        """
        idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, Tensor) else indices)
        idx = idx.to(torch.int64).reshape(-1).cpu()
        n = len(self)
        if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise IndexError(f"indices must be in [-{n}, {n}), got {indices!r}")
        idx = torch.where(idx < 0, idx + n, idx)
        if isinstance(transform, str):
            if transform != "same":
                raise ValueError(f"transform must be callable, None or 'same', got {transform!r}")
            transform = self.transform
        ids = None if self.ids is None else [self.ids[i] for i in idx.tolist()]
        return CellImageDataset(
            self.images.index_select(0, idx),
            self.targets.index_select(0, idx),
            self.class_names,
            transform=transform,
            ids=ids,
        )

    def __repr__(self) -> str:
        shape = tuple(self.images.shape)
        return f"CellImageDataset(images={shape}, dtype={self.images.dtype}, counts={self.counts})"


@dataclass(frozen=True)
class CellRecord:
    """One cell found by :class:`CellCycleFolder`.

    Attributes
    ----------
    cell_id : str
        The cell id: from the file name (per-cell layout), or ``"<montage>#<tile>"`` such as
        ``"CP0001#17"`` (montage layout).
    phase : str or None
        Canonical phase of its folder (one of :data:`CELL_CYCLE_PHASES`), or ``None`` for an
        unlabelled cell.
    paths : tuple of pathlib.Path
        One file per requested channel, in the requested channel order (the montage files for
        a montage cell).
    tile : int or None
        Position of the cell's tile in its montage, in the montage's tile order (counting
        padding tiles, so it does not change when other tiles are dropped); ``None`` for a
        per-cell file.
    """

    cell_id: str
    phase: str | None
    paths: tuple[Path, ...]
    tile: int | None = None


def _require_pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - exercised by monkeypatching in tests
        raise ImportError(
            'reading cell images needs Pillow: pip install "cellvision[images]"'
        ) from exc
    return Image


def _decode(path: Path) -> np.ndarray[Any, Any]:
    """Decode one grayscale image to a 2-D uint8 or uint16 array."""
    image_module = _require_pillow()
    with image_module.open(path) as img:
        img.load()
        mode = img.mode
        if mode.startswith("I;16"):
            arr = np.asarray(img).astype(np.uint16)
        elif mode == "I":
            wide = np.asarray(img)
            if wide.size and (int(wide.min()) < 0 or int(wide.max()) > 65535):
                raise ValueError(f"{path} has 32-bit pixel values outside [0, 65535]")
            arr = wide.astype(np.uint16)
        elif mode in ("L", "P", "1", "RGB", "RGBA", "LA", "CMYK", "YCbCr"):
            arr = np.asarray(img.convert("L"), dtype=np.uint8)
        else:
            raise ValueError(f"{path} has unsupported image mode {mode!r}")
    if arr.ndim != 2:
        raise ValueError(f"{path} did not decode to a 2-D grayscale image")
    return arr


def _header(path: Path) -> tuple[int, int]:
    """Read the (height, width) of an image without decoding its pixels."""
    image_module = _require_pillow()
    with image_module.open(path) as img:
        width, height = img.size
    return int(height), int(width)


class CellCycleFolder(_ClassDatasetMixin, Dataset[tuple[Tensor, int]]):
    """Jurkat imaging-flow-cytometry cells on disk: per-cell files or montages.

    The layout is detected from the file names (or forced with ``layout``):

    - **per-cell files**: ``<root>/<Phase>/<cell id>_Ch<k>.<ext>`` (extensions jpg, jpeg, png,
      tif, tiff, optionally preceded by ``.ome``; 8- or 16-bit grayscale), e.g.
      ``G1/1234_Ch3.ome.jpg``. Files are decoded on access (or once by
      :meth:`load_into_memory`).
    - **montages**: ``<root>/<Phase>/Ch<k>_<montage>.tif`` (also ``.tiff``/``.png``), e.g.
      ``Prophase/Ch3_CP0001.tif``: grids of single-cell tiles as CellProfiler stitches them
      (the public release of Blasi et al., 2016). The montage name (``CP0001``) ties the
      channels of one montage together; several montages per phase are concatenated in
      natural order (``CP0001``, ``CP0002``, ...). Montages are decoded and cut into tiles when
      the folder is opened (:func:`~cellvision.data.montage.split_montage`). Padding tiles
      (every pixel column constant, :func:`~cellvision.data.montage.padding_tile_mask`) are
      dropped, and so are tiles repeating an earlier tile of the same phase folder
      (``drop_duplicates``; :func:`~cellvision.data.montage.find_duplicate_tiles`), which
      removes the repeated last cell of the release's Anaphase, Metaphase and Telophase
      montages.
    - either kind **directly in** ``root`` (no phase folders): the cells are read unlabelled,
      for prediction; their targets are :data:`UNLABELLED` (``-1``) and :attr:`labelled` is
      False.

    Phase folders may use common aliases (``S_phase``, ``g1``, ``metaphase``; see
    :func:`canonical_phase`). The requested channels of each cell are stacked into one
    ``(C, H, W)`` float32 image scaled to ``[0, 1]`` (8-bit divided by 255, 16-bit by 65535).
    Decoding uses Pillow (the ``images`` extra).

    Every cell has a stable id in :attr:`ids`: ``"<phase folder>/<cell id>"`` such as
    ``"G1/1234"`` (per-cell files) or ``"<phase folder>/<montage>#<tile>"`` such as
    ``"Prophase/CP0001#17"`` (montages; ``tile`` counts from 0 in the montage's tile order,
    padding included). Without phase folders the prefix is left out.

    While indexing, the loader collects problems: cells or montages missing a requested
    channel, unreadable files, image-like files whose name follows neither layout, unknown
    (non-phase) folders and per-cell images whose size differs from the most common size. With
    ``on_error="raise"`` (default) a ``ValueError`` lists every kind with its count and example
    paths; with ``on_error="skip"`` the affected cells are dropped with one ``UserWarning``
    carrying the same summary. Either way :attr:`problems` holds the full lists. Montages whose
    channel files disagree in size or in the number of cell tiles are always an error: their
    tiles cannot be matched.

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding one sub-folder per phase, or the cell files themselves (unlabelled).
    channels : sequence of str or int, default DEFAULT_CHANNELS
        Channels to stack, by name or number, e.g. ``("Ch3", "Ch6")`` or ``(3, 6)``. In the
        Jurkat data Ch3 is brightfield and Ch6 darkfield (side scatter), both label-free (the
        default); Ch4 is the DNA stain the labels were derived from, so a selection with Ch4 is
        not label-free (:func:`is_label_free`).
    merge : mapping of str to str or None, default INTERPHASE_MERGE
        Class merge applied to the phases (see :func:`merge_labels`); ``None`` keeps the seven
        phases as classes.
    transform : callable, optional
        Applied to every ``(C, H, W)`` image returned by ``__getitem__``.
    on_error : {"raise", "skip"}, default "raise"
        What to do with problematic files and cells.
    layout : {"auto", "per-cell", "montage"}, default "auto"
        Layout to read; ``"auto"`` detects it (a folder mixing both kinds is an error).
    tile_size : int or (int, int), optional
        Montage tile height and width; inferred by default
        (:func:`~cellvision.data.montage.infer_tile_size`, square tiles with centred cells).
    grid : (int, int), optional
        Montage grid as (rows, columns), an alternative to ``tile_size``.
    tile_order : {"column", "row"}, default "column"
        Montage tile order: ``"column"`` puts tile ``k`` at grid column ``k // rows`` and row
        ``k % rows`` (the release); ``"row"`` fills rows first.
    drop_duplicates : bool, default True
        Drop montage tiles that repeat an earlier tile of the same phase folder (within
        ``duplicate_tolerance``); the first occurrence is kept. Recorded in :attr:`dropped`.
    duplicate_tolerance : float, default 0.0
        0 drops exact repeats only. Above 0, near repeats too: two tiles are near duplicates
        when in every channel the root-mean-square difference of their pixels is at most
        ``duplicate_tolerance`` times that channel's standard deviation over the folder's
        tiles (different real cells are at least 0.2 apart; see
        :func:`~cellvision.data.montage.find_duplicate_tiles`).

    Attributes
    ----------
    records : list of CellRecord
        The cells, sorted by phase (in :data:`CELL_CYCLE_PHASES` order), then cell id
        (per-cell) or montage name and tile position (montages).
    ids : tuple of str
        Stable cell ids, one per record (see above).
    targets : Tensor
        1-D int64 labels; :data:`UNLABELLED` (``-1``) everywhere for an unlabelled folder.
    class_names : tuple of str
        Class names: all seven phases, or the merged classes, whether or not each is present,
        so labels mean the same for every subset of the release (and for unlabelled folders).
    labelled : bool
        False when the cells were read without phase folders.
    layout : str
        ``"per-cell"`` or ``"montage"``.
    image_size : tuple of int
        Common ``(H, W)`` of the images (the tile size for montages).
    problems : dict of str to list of str
        Problem kind -> affected paths (empty when the folder is clean).
    dropped : dict of str to str
        Id of every duplicate montage tile that was dropped -> ``"duplicate of <id>"``.
    padding_tiles : dict of str to int
        Number of padding tiles dropped per montage (``"<phase folder>/<montage>"``).

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a directory.
    TypeError, ValueError
        If an argument is invalid; if no cell is found (the message names the accepted layouts,
        with an example file name for each, and what was found instead); if problems are found
        with ``on_error="raise"``; if a montage's channel files disagree in size or tile count,
        or montages disagree in tile size.
    ImportError
        If Pillow is not installed.

    References
    ----------
    - Eulenberg, P. et al. Reconstructing cell cycle and disease progression using deep
      learning. Nat. Commun. 8, 463 (2017).
    - Blasi, T. et al. Label-free cell cycle analysis for high-throughput imaging flow
      cytometry. Nat. Commun. 7, 10256 (2016).

    Examples
    --------
    Per-cell files:

    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for phase, cell in [("G1", "1"), ("S_phase", "2"), ("Anaphase", "3")]:
    ...     (root / phase).mkdir()
    ...     Image.new("L", (66, 66), color=51).save(root / phase / f"{cell}_Ch3.png")
    >>> ds = CellCycleFolder(root, channels=("Ch3",))
    >>> len(ds), ds.targets.tolist(), ds.class_names[:2], ds.ids
    (3, [0, 0, 3], ('Interphase', 'Prophase'), ('G1/1', 'S_phase/2', 'Anaphase/3'))
    >>> image, label = ds[0]
    >>> image.shape, round(image.max().item(), 3)
    (torch.Size([1, 66, 66]), 0.2)

    A montage: a 2 x 2 grid of 8 x 8 tiles holding 3 cells and one padding tile:

    >>> rng = np.random.default_rng(0)
    >>> tiles = rng.integers(100, 4000, size=(4, 8, 8)).astype(np.uint16)
    >>> tiles[3] = tiles[3, :1]                     # padding: one pixel row repeated
    >>> montage = np.block([[tiles[0], tiles[2]], [tiles[1], tiles[3]]])  # column-major
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "Prophase").mkdir()
    >>> Image.fromarray(montage).save(root / "Prophase" / "Ch3_CP0001.tif")
    >>> ds = CellCycleFolder(root, channels="Ch3", tile_size=8)
    >>> ds.layout, ds.padding_tiles
    ('montage', {'Prophase/CP0001': 1})
    >>> ds.ids
    ('Prophase/CP0001#0', 'Prophase/CP0001#1', 'Prophase/CP0001#2')
    >>> bool((ds.load_into_memory().images[2, 0].numpy() == tiles[2]).all())
    True
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        channels: Sequence[str | int] | str | int = DEFAULT_CHANNELS,
        merge: Mapping[str, str] | None = INTERPHASE_MERGE,
        transform: Callable[..., Tensor] | None = None,
        on_error: str = "raise",
        layout: str = "auto",
        tile_size: int | tuple[int, int] | None = None,
        grid: tuple[int, int] | None = None,
        tile_order: str = "column",
        drop_duplicates: bool = True,
        duplicate_tolerance: float = 0.0,
    ) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path, got {root!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"root must be an existing directory, got {str(root)!r}")
        self.channels = _channel_names(channels)
        if on_error not in _ON_ERROR:
            raise ValueError(f"on_error must be one of {_ON_ERROR!r}, got {on_error!r}")
        if layout not in _LAYOUTS:
            raise ValueError(f"layout must be one of {_LAYOUTS!r}, got {layout!r}")
        if tile_order not in TILE_ORDERS:
            raise ValueError(f"tile_order must be one of {TILE_ORDERS!r}, got {tile_order!r}")
        if not isinstance(drop_duplicates, (bool, np.bool_)):
            raise TypeError(f"drop_duplicates must be a bool, got {drop_duplicates!r}")
        find_duplicate_tiles(np.zeros((1, 1, 1)), duplicate_tolerance)  # validates it
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {transform!r}")
        self.transform = transform
        self.on_error = on_error
        self._tile_size = tile_size
        self._grid = grid
        self._tile_order = tile_order
        self._drop_duplicates = bool(drop_duplicates)
        self._duplicate_tolerance = float(duplicate_tolerance)
        _require_pillow()

        phase_idx, self.class_names = merge_labels(
            list(range(len(CELL_CYCLE_PHASES))), merge, class_names=CELL_CYCLE_PHASES
        )
        self._phase_to_label = dict(zip(CELL_CYCLE_PHASES, phase_idx.tolist(), strict=True))
        self.problems: dict[str, list[str]] = {}
        self._quiet_problems: set[str] = set()  # reported only when no cell is found
        self.dropped: dict[str, str] = {}
        self.padding_tiles: dict[str, int] = {}
        self._tiles: Tensor | None = None
        self.image_size: tuple[int, int] = (0, 0)

        folders = self._folders()
        per_cell, montages = self._classify(folders, layout)
        if layout == "auto":
            n_cells = sum(len(v) for v in per_cell.values())
            n_montages = sum(len(v) for v in montages.values())
            if n_cells and n_montages:
                cell_example = next(p for v in per_cell.values() for p, _ in v)
                montage_example = next(p for v in montages.values() for p, _ in v)
                raise ValueError(
                    f"root must hold one layout, got both per-cell files (e.g. {cell_example}) "
                    f"and montages (e.g. {montage_example}) in {str(self.root)!r}; pass "
                    "layout='per-cell' or layout='montage' to read one of them"
                )
            layout = "montage" if n_montages else "per-cell"
        self.layout = layout
        if layout == "montage":
            records = self._scan_montages(folders, montages)
        else:
            records = self._scan(folders, per_cell)
        if not records:
            found = f"; found instead: {self._summary()}" if self.problems else ""
            raise ValueError(
                f"root must contain cell images with channels {', '.join(self.channels)} in "
                f"one of the accepted layouts: {_ACCEPTED_LAYOUTS}. No usable cell found in "
                f"{str(self.root)!r}{found}"
            )
        for kind in self._quiet_problems:
            del self.problems[kind]
        self._report()
        self.records = records
        self.ids = tuple(
            r.cell_id if not self.labelled else f"{r.paths[0].parent.name}/{r.cell_id}"
            for r in records
        )
        self.targets = torch.tensor(
            [UNLABELLED if r.phase is None else self._phase_to_label[r.phase] for r in records],
            dtype=torch.int64,
        )

    # ------------------------------------------------------------------ indexing
    def _problem(self, kind: str, path: str) -> None:
        self.problems.setdefault(kind, []).append(path)

    def _folders(self) -> list[tuple[Path, str | None]]:
        """The folders to read with their phase: the phase folders, else ``root`` unlabelled."""
        subfolders = sorted(
            p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        phases = [(p, canonical_phase(p.name)) for p in subfolders]
        labelled = [(p, phase) for p, phase in phases if phase is not None]
        self.labelled = bool(labelled)
        if not labelled:
            for p in subfolders:  # named in the error if no cell is found (a parent folder?)
                self._problem("sub-folder that is not a phase folder", str(p))
                self._quiet_problems.add("sub-folder that is not a phase folder")
            return [(self.root, None)]
        for p, phase in phases:
            if phase is None:
                self._problem("unknown phase folder", str(p))
        return sorted(labelled, key=lambda t: (CELL_CYCLE_PHASES.index(str(t[1])), t[0].name))

    def _classify(
        self, folders: list[tuple[Path, str | None]], layout: str
    ) -> tuple[dict[Path, list[_Match]], dict[Path, list[_Match]]]:
        """Sort the files of every folder into per-cell files and montage files."""
        per_cell: dict[Path, list[_Match]] = {}
        montages: dict[Path, list[_Match]] = {}
        for folder, _ in folders:
            per_cell[folder], montages[folder] = [], []
            for path in sorted(folder.iterdir()):
                if path.name.startswith(".") or not path.is_file():
                    continue
                cell_match = _FILE_PATTERN.match(path.name) if layout != "montage" else None
                montage_match = _MONTAGE_PATTERN.match(path.name) if layout != "per-cell" else None
                if cell_match is not None:
                    per_cell[folder].append((path, cell_match))
                elif montage_match is not None:
                    montages[folder].append((path, montage_match))
                elif path.name.lower().endswith(_IMAGE_EXTENSIONS):
                    self._problem("unrecognised file name", str(path))
        return per_cell, montages

    def _scan(
        self, folders: list[tuple[Path, str | None]], files: dict[Path, list[_Match]]
    ) -> list[CellRecord]:
        wanted = {name.lower(): i for i, name in enumerate(self.channels)}
        found: list[tuple[int, str, str | None, dict[int, Path]]] = []
        for folder, phase in folders:
            cells: dict[str, dict[int, Path]] = collections.defaultdict(dict)
            for path, match in files[folder]:
                channel = f"ch{int(match.group('channel')[2:])}"
                entry = cells[match.group("cell")]  # a cell with only other channels is missing
                if channel in wanted:
                    entry[wanted[channel]] = path
            order = CELL_CYCLE_PHASES.index(phase) if phase is not None else 0
            for cell_id, paths in cells.items():
                missing = [self.channels[i] for i in range(len(wanted)) if i not in paths]
                if missing:
                    self._problem(
                        "cell missing a requested channel",
                        f"{folder / cell_id} (missing {', '.join(missing)})",
                    )
                    continue
                found.append((order, cell_id, phase, paths))

        sizes: dict[tuple[int, str], tuple[int, int]] = {}
        good: list[CellRecord] = []
        for _, cell_id, phase, paths in sorted(found, key=lambda t: (t[0], _natural_key(t[1]))):
            ordered = tuple(paths[i] for i in range(len(wanted)))
            ok = True
            for path in ordered:
                try:
                    sizes[(len(good), str(path))] = _header(path)
                except Exception:  # Pillow raises many exception types
                    self._problem("unreadable file", str(path))
                    ok = False
            if ok:
                good.append(CellRecord(cell_id=cell_id, phase=phase, paths=ordered))
            else:
                for path in ordered:
                    sizes.pop((len(good), str(path)), None)

        if not good:
            return good
        common = collections.Counter(sizes.values()).most_common(1)[0][0]
        self.image_size = common
        bad_cells = set()
        for (i, file_name), size in sizes.items():
            if size != common:
                self._problem(
                    f"image size differs from {common[0]}x{common[1]}",
                    f"{file_name} ({size[0]}x{size[1]})",
                )
                bad_cells.add(i)
        return [r for i, r in enumerate(good) if i not in bad_cells]

    def _read_montage(self, paths: tuple[Path, ...]) -> np.ndarray[Any, Any] | None:
        """Decode the channel files of one montage into a ``(C, H, W)`` array."""
        planes = []
        for path in paths:
            try:
                planes.append(_decode(path))
            except ImportError:
                raise
            except Exception:  # Pillow raises many exception types
                self._problem("unreadable file", str(path))
                return None
        shapes = {p.shape for p in planes}
        if len(shapes) > 1:
            sizes = ", ".join(
                f"{path.name} {p.shape[0]}x{p.shape[1]}"
                for path, p in zip(paths, planes, strict=True)
            )
            raise ValueError(
                f"the channel files of montage {paths[0].parent / paths[0].stem} must have one "
                f"size, got {sizes}"
            )
        if any(p.dtype == np.uint16 for p in planes):
            planes = [
                p.astype(np.uint16) * np.uint16(257 if p.dtype == np.uint8 else 1) for p in planes
            ]
        return np.stack(planes)

    def _scan_montages(
        self, folders: list[tuple[Path, str | None]], files: dict[Path, list[_Match]]
    ) -> list[CellRecord]:
        wanted = {name.lower(): i for i, name in enumerate(self.channels)}
        records: list[CellRecord] = []
        blocks: list[np.ndarray[Any, Any]] = []
        tile_sizes: dict[tuple[int, int], str] = {}
        for folder, phase in folders:
            groups: dict[str, dict[int, Path]] = collections.defaultdict(dict)
            for path, match in files[folder]:
                entry = groups[match.group("montage")]
                channel = f"ch{int(match.group('channel')[2:])}"
                if channel in wanted:
                    entry[wanted[channel]] = path
            prefix = f"{folder.name}/" if self.labelled else ""
            folder_records: list[CellRecord] = []
            folder_tiles: list[np.ndarray[Any, Any]] = []
            for key in sorted(groups, key=_natural_key):
                paths = groups[key]
                missing = [self.channels[i] for i in range(len(wanted)) if i not in paths]
                if missing:
                    self._problem(
                        "montage missing a requested channel",
                        f"{folder / key} (missing {', '.join(missing)})",
                    )
                    continue
                ordered = tuple(paths[i] for i in range(len(wanted)))
                planes = self._read_montage(ordered)
                if planes is None:
                    continue
                size = self._tile_size
                if size is None and self._grid is None:
                    size = infer_tile_size(planes)
                tiles = split_montage(planes, size, grid=self._grid, order=self._tile_order)
                tile_sizes.setdefault(tuple(tiles.shape[-2:]), str(ordered[0]))
                padding = padding_tile_mask(tiles)  # (n, C)
                counts = (~padding).sum(axis=0)
                if (padding != padding[:, :1]).any():
                    detail = ", ".join(
                        f"{p.name} {int(c)}" for p, c in zip(ordered, counts, strict=True)
                    )
                    raise ValueError(
                        f"the channel files of montage {folder / key} must have the same cell "
                        f"tiles, got different numbers of non-padding tiles: {detail}"
                    )
                cells = np.flatnonzero(~padding[:, 0])
                self.padding_tiles[f"{prefix}{key}"] = int(padding.shape[0] - cells.size)
                folder_tiles.append(tiles[cells])
                folder_records.extend(
                    CellRecord(cell_id=f"{key}#{k}", phase=phase, paths=ordered, tile=int(k))
                    for k in cells
                )
            if len(tile_sizes) > 1:
                listed = "; ".join(f"{h}x{w} in {p}" for (h, w), p in tile_sizes.items())
                raise ValueError(
                    f"montages must share one tile size, got {listed}; pass tile_size= or grid="
                )
            if not folder_tiles:
                continue
            stacked = np.concatenate(folder_tiles)
            keep = np.ones(len(folder_records), dtype=bool)
            if self._drop_duplicates:
                repeats = find_duplicate_tiles(stacked, self._duplicate_tolerance)
                for i in np.flatnonzero(repeats >= 0):
                    original = folder_records[int(repeats[i])]
                    self.dropped[f"{prefix}{folder_records[i].cell_id}"] = (
                        f"duplicate of {prefix}{original.cell_id}"
                    )
                keep = repeats < 0
            blocks.append(stacked[keep])
            records.extend(r for r, k in zip(folder_records, keep, strict=True) if k)
        if not records:
            return records
        if any(b.dtype == np.uint16 for b in blocks):
            blocks = [
                b.astype(np.uint16) * np.uint16(257 if b.dtype == np.uint8 else 1) for b in blocks
            ]
        self._tiles = torch.from_numpy(np.ascontiguousarray(np.concatenate(blocks)))
        (size,) = tile_sizes
        self.image_size = (int(size[0]), int(size[1]))
        return records

    def _summary(self) -> str:
        parts = []
        for kind, paths in self.problems.items():
            examples = "; ".join(paths[:3])
            parts.append(f"{len(paths)} x {kind} (e.g. {examples})")
        return " | ".join(parts)

    def _report(self) -> None:
        if not self.problems:
            return
        summary = f"CellCycleFolder({str(self.root)!r}) found problems: " + self._summary()
        if self.on_error == "raise":
            raise ValueError(summary + ". Pass on_error='skip' to skip them with a warning.")
        warnings.warn(summary + "; the affected cells were skipped.", UserWarning, stacklevel=3)

    # ------------------------------------------------------------------ data access
    def __len__(self) -> int:
        return len(self.records)

    def _read_cell(self, record: CellRecord) -> Tensor:
        planes = [_decode(path) for path in record.paths]
        for path, plane in zip(record.paths, planes, strict=True):
            if plane.shape != self.image_size:
                raise ValueError(f"{path} has size {plane.shape!r}, expected {self.image_size!r}")
        if any(p.dtype == np.uint16 for p in planes):
            # Mixed depths: 8-bit x 257 maps 255 onto 65535, the same [0, 1] value.
            planes = [p.astype(np.uint16) * (257 if p.dtype == np.uint8 else 1) for p in planes]
        return torch.from_numpy(np.stack(planes))

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if self._tiles is not None:
            image = to_float_images(self._tiles[index])
        else:
            record = self.records[index]
            try:
                raw = self._read_cell(record)
            except ImportError:
                raise
            except Exception as exc:
                raise ValueError(
                    f"could not decode cell {record.cell_id!r} ({record.paths}): {exc}"
                ) from exc
            image = to_float_images(raw)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])

    def load_into_memory(self) -> CellImageDataset:
        """Decode every cell once and return the images as one in-memory data set.

        The images are stored as one ``(N, C, H, W)`` ``uint8`` tensor, or ``uint16`` if any
        file is 16-bit (8-bit images are then multiplied by 257 so that both map to the same
        ``[0, 1]`` range). Training then indexes batches from memory
        (:meth:`CellImageDataset.get_batch`) instead of decoding files every epoch. Cells whose
        files fail to decode are handled according to ``on_error``. Montages are already in
        memory; their tiles are returned without copying.

        Returns
        -------
        CellImageDataset
            Images, labels, class names, :attr:`ids` and the folder's ``transform``.

        Raises
        ------
        ValueError
            If a file fails to decode and ``on_error="raise"``.

        Examples
        --------
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "Prophase").mkdir()
        >>> Image.new("L", (8, 8), color=7).save(root / "Prophase" / "5_Ch3.jpg")
        >>> mem = CellCycleFolder(root, channels=["Ch3"]).load_into_memory()
        >>> mem.images.shape, mem.images.dtype, mem.targets.tolist(), mem.ids
        (torch.Size([1, 1, 8, 8]), torch.uint8, [1], ('Prophase/5',))
        """
        if self._tiles is not None:
            return CellImageDataset(
                self._tiles, self.targets, self.class_names, transform=self.transform, ids=self.ids
            )
        arrays: list[Tensor] = []
        keep: list[int] = []
        failed: list[str] = []
        for i, record in enumerate(self.records):
            try:
                arrays.append(self._read_cell(record))
                keep.append(i)
            except ImportError:
                raise
            except Exception as exc:  # Pillow raises many exception types
                failed.append(f"{record.paths[0].parent / record.cell_id} ({exc})")
        if failed:
            summary = (
                f"CellCycleFolder({str(self.root)!r}) could not decode {len(failed)} cell(s) "
                f"(e.g. {'; '.join(failed[:3])})"
            )
            self.problems.setdefault("undecodable cell", []).extend(failed)
            if self.on_error == "raise" or not keep:
                raise ValueError(summary + ". Pass on_error='skip' to skip them with a warning.")
            warnings.warn(summary + "; they were skipped.", UserWarning, stacklevel=2)
        if any(a.dtype == torch.uint16 for a in arrays):
            arrays = [a if a.dtype == torch.uint16 else _widen(a) for a in arrays]
        images = torch.stack(arrays)
        return CellImageDataset(
            images,
            self.targets[keep],
            self.class_names,
            transform=self.transform,
            ids=[self.ids[i] for i in keep],
        )

    def __repr__(self) -> str:
        return (
            f"CellCycleFolder(root={str(self.root)!r}, layout={self.layout!r}, "
            f"channels={self.channels}, image_size={self.image_size}, counts={self.counts})"
        )


def load_cells(
    root: str | os.PathLike[str],
    *,
    channels: Sequence[str | int] | str | int = DEFAULT_CHANNELS,
    merge: Mapping[str, str] | None = INTERPHASE_MERGE,
    transform: Callable[..., Tensor] | None = None,
    on_error: str = "raise",
    layout: str = "auto",
    tile_size: int | tuple[int, int] | None = None,
    grid: tuple[int, int] | None = None,
    tile_order: str = "column",
    drop_duplicates: bool = True,
    duplicate_tolerance: float = 0.0,
) -> CellImageDataset:
    """Read a folder of cell images in either layout into memory: the one-call entry point.

    Same as ``CellCycleFolder(root, ...).load_into_memory()``; see :class:`CellCycleFolder` for
    the layouts (per-cell files or montages, labelled or not) and every argument.

    Parameters
    ----------
    root : str or os.PathLike
        The folder, e.g. ``"jurkat/Experiment_1"``.
    channels : sequence of str or int, default DEFAULT_CHANNELS
        Channels to stack; the default ``("Ch3", "Ch6")`` is label-free.
    merge, transform, on_error, layout, tile_size, grid, tile_order, drop_duplicates, \
duplicate_tolerance
        As for :class:`CellCycleFolder`.

    Returns
    -------
    CellImageDataset
        ``uint8``/``uint16`` images, labels (``-1`` when unlabelled), class names and ids.

    Raises
    ------
    FileNotFoundError, TypeError, ValueError, ImportError
        As :class:`CellCycleFolder`.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())                 # unlabelled: no phase folders
    >>> for ch in ("Ch3", "Ch6"):
    ...     Image.new("L", (10, 10), color=9).save(root / f"17_{ch}.png")
    >>> cells = load_cells(root)
    >>> cells.images.shape, cells.targets.tolist(), cells.ids, cells.is_labelled
    (torch.Size([1, 2, 10, 10]), [-1], ('17',), False)
    """
    folder = CellCycleFolder(
        root,
        channels=channels,
        merge=merge,
        transform=transform,
        on_error=on_error,
        layout=layout,
        tile_size=tile_size,
        grid=grid,
        tile_order=tile_order,
        drop_duplicates=drop_duplicates,
        duplicate_tolerance=duplicate_tolerance,
    )
    return folder.load_into_memory()


def load_jurkat_sample(
    *,
    channels: Sequence[str | int] | str | int = DEFAULT_CHANNELS,
    merge: Mapping[str, str] | None = INTERPHASE_MERGE,
    transform: Callable[..., Tensor] | None = None,
) -> CellImageDataset:
    """Load the small sample of real Jurkat cells that ships with the package.

    The sample is a stratified subset of the developer copy of the public release of Blasi et
    al. (2016) (``minh-doan/MLCP``, ``images/Experiment_1``, BSD 3-Clause License; the notice
    ships next to the data as ``JURKAT_LICENSE.txt``): **every** Metaphase, Anaphase and
    Telophase cell and a seeded random draw from the other phases (see the data guide for
    the counts). It holds the label-free channels only, Ch3 (brightfield) and Ch6 (darkfield),
    as 40 x 40 ``uint16`` tiles, and is stored as a compressed ``.npz`` read with numpy alone:
    no Pillow needed.

    Parameters
    ----------
    channels : sequence of str or int, default DEFAULT_CHANNELS
        A selection of ``"Ch3"`` and ``"Ch6"``, in the order wanted.
    merge : mapping of str to str or None, default INTERPHASE_MERGE
        Class merge (see :func:`merge_labels`); ``None`` keeps the seven phases.
    transform : callable, optional
        Transform of the returned data set.

    Returns
    -------
    CellImageDataset
        ``uint16`` images ``(N, C, 40, 40)``, labels, class names and ids such as
        ``"Anaphase/CP0001#3"`` (the ids of :class:`CellCycleFolder` on the release).

    Raises
    ------
    ValueError
        If a requested channel is not in the sample (Ch4, the DNA stain, is left out on
        purpose: it is the label source).

    Examples
    --------
    >>> sample = load_jurkat_sample()
    >>> sample.images.shape[1:], sample.images.dtype, sample.class_names[3]
    (torch.Size([2, 40, 40]), torch.uint16, 'Anaphase')
    >>> dict(sample.counts)["Anaphase"]
    9
    """
    names = _channel_names(channels)
    resource = importlib.resources.files("cellvision.data").joinpath(_SAMPLE_FILE)
    with resource.open("rb") as fh, np.load(fh, allow_pickle=False) as stored:
        images = stored["images"]
        stored_channels = tuple(str(c) for c in stored["channels"])
        phases = [str(p) for p in stored["phases"]]
        ids = [str(i) for i in stored["ids"]]
    unknown = [c for c in names if c not in stored_channels]
    if unknown:
        raise ValueError(
            f"channels must be among the sample's label-free channels {stored_channels!r}, "
            f"got {channels!r}"
        )
    picked = images[:, [stored_channels.index(c) for c in names]]
    labels, class_names = merge_labels(phases, merge, class_names=CELL_CYCLE_PHASES)
    return CellImageDataset(picked, labels, class_names, transform=transform, ids=ids)


def _widen(a: Tensor) -> Tensor:
    return torch.from_numpy(a.numpy().astype(np.uint16) * np.uint16(257))


def _natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    # "2" sorts before "10"; tagging numbers and text keeps mixed ids comparable.
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text))
