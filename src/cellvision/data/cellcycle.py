"""Cell-cycle image data: phase names, label merging, the Jurkat folder loader and an
in-memory data set.

The Jurkat imaging-flow-cytometry release (Eulenberg et al., 2017) stores one image file per
cell and channel in one folder per phase::

    <root>/<Phase>/<cell id>_<channel>.<ext>     e.g.  G1/1234_Ch3.ome.jpg

with the seven phases of :data:`CELL_CYCLE_PHASES`. G1, S and G2 are usually merged into one
"Interphase" class (:data:`INTERPHASE_MERGE`), leaving five classes.

References
----------
- Eulenberg, P. et al. Reconstructing cell cycle and disease progression using deep
  learning. Nat. Commun. 8, 463 (2017).
- Blasi, T. et al. Label-free cell cycle analysis for high-throughput imaging flow
  cytometry. Nat. Commun. 7, 10256 (2016).
"""

from __future__ import annotations

import collections
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

from cellvision.data.transforms import to_float_images

__all__ = [
    "CELL_CYCLE_PHASES",
    "INTERPHASE_MERGE",
    "JURKAT_PHASE_COUNTS",
    "MERGED_CELL_CYCLE_PHASES",
    "CellCycleFolder",
    "CellImageDataset",
    "CellRecord",
    "canonical_phase",
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

_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "tif", "tiff")
_FILE_PATTERN = re.compile(
    r"^(?P<cell>.+)_(?P<channel>ch\d+)\.(?:ome\.)?(?P<ext>jpg|jpeg|png|tif|tiff)$", re.IGNORECASE
)
_CHANNEL_PATTERN = re.compile(r"^ch(\d+)$", re.IGNORECASE)
_ON_ERROR = ("raise", "skip")


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
        """``(class name, number of samples)`` for every class, in label order."""
        counts = torch.bincount(self.targets, minlength=len(self.class_names)).tolist()
        return tuple(zip(self.class_names, counts, strict=True))


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
        ``N`` class indices in ``[0, len(class_names))``.
    class_names : sequence of str
        Name of every class, indexed by label.
    transform : callable, optional
        Called as ``transform(image)`` on every ``(C, H, W)`` float image in ``__getitem__``,
        and as ``transform(batch, generator=generator)`` in :meth:`get_batch`; the batched
        transforms of :mod:`cellvision.data.transforms` support both.

    Attributes
    ----------
    images : Tensor
        The stored ``(N, C, H, W)`` images.
    targets : Tensor
        1-D int64 labels.
    class_names : tuple of str
        Class names.

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
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= len(names)):
            raise ValueError(
                f"labels must be in [0, {len(names)}), got values in "
                f"[{int(targets.min())}, {int(targets.max())}]"
            )
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {transform!r}")
        self.images = images
        self.targets = targets
        self.class_names = names
        self.transform = transform

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

    def __repr__(self) -> str:
        shape = tuple(self.images.shape)
        return f"CellImageDataset(images={shape}, dtype={self.images.dtype}, counts={self.counts})"


@dataclass(frozen=True)
class CellRecord:
    """One cell found by :class:`CellCycleFolder`.

    Attributes
    ----------
    cell_id : str
        The cell id from the file name.
    phase : str
        Canonical phase of its folder (one of :data:`CELL_CYCLE_PHASES`).
    paths : tuple of pathlib.Path
        One file per requested channel, in the requested channel order.
    """

    cell_id: str
    phase: str
    paths: tuple[Path, ...]


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
    """Imaging-flow-cytometry cell images in the Jurkat release folder layout.

    Files are found as ``<root>/<Phase>/<cell id>_<channel>.<ext>`` (extensions jpg, jpeg,
    png, tif, tiff, optionally preceded by ``.ome``; 8- or 16-bit grayscale). Phase folders may
    use common aliases (``S_phase``, ``g1``, ``metaphase``; see :func:`canonical_phase`). The
    requested channels of each cell are stacked into one ``(C, H, W)`` float32 image scaled to
    ``[0, 1]`` (8-bit divided by 255, 16-bit by 65535). Decoding uses Pillow (the ``images``
    extra).

    While indexing, the loader reads every image header once and collects problems: cells
    missing a requested channel, unreadable files, image-like files whose name does not follow
    the pattern, unknown (non-phase) folders and images whose size differs from the most common
    size. With ``on_error="raise"`` (default) a ``ValueError`` lists every kind with its count
    and example paths; with ``on_error="skip"`` the affected cells are dropped with one
    ``UserWarning`` carrying the same summary. Either way :attr:`problems` holds the full lists.

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding one sub-folder per phase.
    channels : sequence of str, default ("Ch3",)
        Channels to stack, e.g. ``("Ch3", "Ch6")``: Ch3 is brightfield, Ch6 darkfield
        (side scatter) and Ch4 the third channel of the release. Matched case-insensitively.
    merge : mapping of str to str or None, default INTERPHASE_MERGE
        Class merge applied to the phases (see :func:`merge_labels`); ``None`` keeps the seven
        phases as classes.
    transform : callable, optional
        Applied to every ``(C, H, W)`` image returned by ``__getitem__``.
    on_error : {"raise", "skip"}, default "raise"
        What to do with problematic files and cells.

    Attributes
    ----------
    records : list of CellRecord
        The cells, sorted by phase (in :data:`CELL_CYCLE_PHASES` order) and cell id.
    targets : Tensor
        1-D int64 labels.
    class_names : tuple of str
        Class names: all seven phases, or the merged classes, whether or not each is present,
        so labels mean the same for every subset of the release.
    image_size : tuple of int
        Common ``(H, W)`` of the images.
    problems : dict of str to list of str
        Problem kind -> affected paths (empty when the folder is clean).

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a directory.
    TypeError, ValueError
        If an argument is invalid, no cell is found, or problems are found with
        ``on_error="raise"``.
    ImportError
        If Pillow is not installed.

    References
    ----------
    Eulenberg, P. et al. Reconstructing cell cycle and disease progression using deep
    learning. Nat. Commun. 8, 463 (2017).

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for phase, cell in [("G1", "1"), ("S_phase", "2"), ("Anaphase", "3")]:
    ...     (root / phase).mkdir()
    ...     Image.new("L", (66, 66), color=51).save(root / phase / f"{cell}_Ch3.png")
    >>> ds = CellCycleFolder(root)
    >>> len(ds), ds.targets.tolist(), ds.class_names[:2]
    (3, [0, 0, 3], ('Interphase', 'Prophase'))
    >>> image, label = ds[0]
    >>> image.shape, round(image.max().item(), 3)
    (torch.Size([1, 66, 66]), 0.2)
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        channels: Sequence[str] = ("Ch3",),
        merge: Mapping[str, str] | None = INTERPHASE_MERGE,
        transform: Callable[..., Tensor] | None = None,
        on_error: str = "raise",
    ) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path, got {root!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"root must be an existing directory, got {str(root)!r}")
        if isinstance(channels, str):
            channels = (channels,)
        channel_list = list(channels)
        if not channel_list or not all(
            isinstance(c, str) and _CHANNEL_PATTERN.match(c) for c in channel_list
        ):
            raise ValueError(
                f"channels must be a non-empty sequence of names like 'Ch3', got {channels!r}"
            )
        # "ch3", "CH3" and "Ch03" all name channel 3.
        keys = [f"ch{int(c[2:])}" for c in channel_list]
        if len(set(keys)) != len(keys):
            raise ValueError(f"channels must not repeat a channel, got {channels!r}")
        if on_error not in _ON_ERROR:
            raise ValueError(f"on_error must be one of {_ON_ERROR!r}, got {on_error!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {transform!r}")
        self.channels = tuple(f"C{k[1:]}" for k in keys)
        self.transform = transform
        self.on_error = on_error
        _require_pillow()

        phase_idx, self.class_names = merge_labels(
            list(range(len(CELL_CYCLE_PHASES))), merge, class_names=CELL_CYCLE_PHASES
        )
        self._phase_to_label = dict(zip(CELL_CYCLE_PHASES, phase_idx.tolist(), strict=True))
        self.problems: dict[str, list[str]] = {}
        records = self._scan(keys)
        if not records and not self.problems:
            raise ValueError(
                f"root must contain phase folders with cell images, got none in {str(self.root)!r}"
            )
        self._report()
        if not records:
            raise ValueError(f"no usable cell images left in {str(self.root)!r}")
        self.records = records
        self.targets = torch.tensor(
            [self._phase_to_label[r.phase] for r in records], dtype=torch.int64
        )

    # ------------------------------------------------------------------ indexing
    def _problem(self, kind: str, path: str) -> None:
        self.problems.setdefault(kind, []).append(path)

    def _scan(self, channel_keys: list[str]) -> list[CellRecord]:
        wanted = {k: i for i, k in enumerate(channel_keys)}
        found: list[tuple[int, str, str, dict[int, Path]]] = []
        for folder in sorted(p for p in self.root.iterdir() if not p.name.startswith(".")):
            if not folder.is_dir():
                continue
            phase = canonical_phase(folder.name)
            if phase is None:
                self._problem("unknown phase folder", str(folder))
                continue
            cells: dict[str, dict[int, Path]] = collections.defaultdict(dict)
            for path in sorted(folder.iterdir()):
                if path.name.startswith(".") or not path.is_file():
                    continue
                match = _FILE_PATTERN.match(path.name)
                if match is None:
                    if path.name.lower().endswith(_IMAGE_EXTENSIONS):
                        self._problem("unrecognised file name", str(path))
                    continue
                channel = f"ch{int(match.group('channel')[2:])}"
                entry = cells[match.group("cell")]  # a cell with only other channels is missing
                if channel in wanted:
                    entry[wanted[channel]] = path
            for cell_id, paths in cells.items():
                missing = [self.channels[i] for i in range(len(wanted)) if i not in paths]
                if missing:
                    self._problem(
                        "cell missing a requested channel",
                        f"{folder / cell_id} (missing {', '.join(missing)})",
                    )
                    continue
                found.append((CELL_CYCLE_PHASES.index(phase), cell_id, phase, paths))

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
            self.image_size = (0, 0)
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

    def _report(self) -> None:
        if not self.problems:
            return
        parts = []
        for kind, paths in self.problems.items():
            examples = "; ".join(paths[:3])
            parts.append(f"{len(paths)} x {kind} (e.g. {examples})")
        summary = f"CellCycleFolder({str(self.root)!r}) found problems: " + " | ".join(parts)
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
        files fail to decode are handled according to ``on_error``.

        Returns
        -------
        CellImageDataset
            Images, labels, class names and the folder's ``transform``.

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
        >>> mem = CellCycleFolder(root).load_into_memory()
        >>> mem.images.shape, mem.images.dtype, mem.targets.tolist()
        (torch.Size([1, 1, 8, 8]), torch.uint8, [1])
        """
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
            images, self.targets[keep], self.class_names, transform=self.transform
        )

    def __repr__(self) -> str:
        return (
            f"CellCycleFolder(root={str(self.root)!r}, channels={self.channels}, "
            f"image_size={self.image_size}, counts={self.counts})"
        )


def _widen(a: Tensor) -> Tensor:
    return torch.from_numpy(a.numpy().astype(np.uint16) * np.uint16(257))


def _natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    # "2" sorts before "10"; tagging numbers and text keeps mixed ids comparable.
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text))
