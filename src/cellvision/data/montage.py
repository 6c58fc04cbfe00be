"""Tiles of stitched image montages: splitting, padding tiles, duplicates and tile size.

CellProfiler and similar tools save many single-cell crops stitched into one large image, a
*montage*: a grid of equally sized tiles, one cell per tile, filled in a fixed order and
completed with *padding tiles* where the grid has more tiles than cells. The functions here
work on the pixels only (numpy arrays, no file reading); :class:`~cellvision.data.CellCycleFolder`
uses them to read the Jurkat release.

- :func:`split_montage` cuts a montage into its tiles with one reshape/transpose (no loop over
  tiles), in column-major or row-major order.
- :func:`padding_tile_mask` finds padding tiles: tiles in which every pixel column is constant
  (one pixel row repeated down the tile). A standard-deviation threshold does not work, because
  the repeated row can vary a lot along the tile.
- :func:`find_duplicate_tiles` finds tiles that repeat an earlier tile exactly or nearly.
- :func:`infer_tile_size` guesses the (square) tile size of a montage.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "TILE_ORDERS",
    "find_duplicate_tiles",
    "infer_tile_size",
    "padding_tile_mask",
    "split_montage",
]

#: Accepted tile orders: ``"column"`` (tile ``k`` at grid column ``k // rows``, row
#: ``k % rows``; the order of the Jurkat release) and ``"row"`` (row ``k // cols``, column
#: ``k % cols``).
TILE_ORDERS: tuple[str, ...] = ("column", "row")

_MIN_TILE = 8


def _as_size_pair(name: str, value: object) -> tuple[int, int]:
    """Turn an int or a pair of ints (numpy integers accepted) into a positive ``(h, w)``."""
    items: Sequence[object] = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    pair = []
    for item in items:
        if isinstance(item, bool):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        try:
            number = operator.index(item)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
        if number <= 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
        pair.append(number)
    return pair[0], pair[1]


def split_montage(
    image: np.ndarray[Any, Any],
    tile_size: int | tuple[int, int] | None = None,
    *,
    grid: tuple[int, int] | None = None,
    order: str = "column",
) -> np.ndarray[Any, Any]:
    """Cut a montage into its tiles, in the montage's tile order.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` montage, or ``(C, H, W)`` for several channels of one montage.
    tile_size : int or (int, int), optional
        Tile height and width in pixels. Give this or ``grid``; when both are omitted the size
        is inferred with :func:`infer_tile_size`.
    grid : (int, int), optional
        Number of tile rows and columns.
    order : {"column", "row"}, default "column"
        Tile order: ``"column"``: tile ``k`` is at grid column ``k // rows`` and row
        ``k % rows`` (the Jurkat release); ``"row"``: row ``k // cols``, column ``k % cols``.

    Returns
    -------
    numpy.ndarray
        ``(n_tiles, th, tw)``, or ``(n_tiles, C, th, tw)`` for a ``(C, H, W)`` montage; a view
        of ``image`` where numpy allows one.

    Raises
    ------
    TypeError, ValueError
        If ``image`` is not 2-D or 3-D, the sizes are invalid, ``tile_size`` and ``grid``
        disagree, or the tiles do not divide the montage exactly.

    Examples
    --------
    >>> montage = np.arange(4 * 6).reshape(4, 6)      # a 2 x 3 grid of 2 x 2 tiles
    >>> tiles = split_montage(montage, 2)
    >>> tiles.shape
    (6, 2, 2)
    >>> tiles[1].tolist()                              # column-major: tile 1 is below tile 0
    [[12, 13], [18, 19]]
    >>> split_montage(montage, grid=(2, 3), order="row")[1].tolist()
    [[2, 3], [8, 9]]
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image)!r}")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (C, H, W), got {image.shape!r}")
    if order not in TILE_ORDERS:
        raise ValueError(f"order must be one of {TILE_ORDERS!r}, got {order!r}")
    height, width = image.shape[-2:]
    if tile_size is None and grid is None:
        tile_size = infer_tile_size(image)
    th, tw = _as_size_pair("tile_size", tile_size) if tile_size is not None else (0, 0)
    if grid is not None:
        rows, cols = _as_size_pair("grid", grid)
        if height % rows or width % cols:
            raise ValueError(f"grid must divide the {height}x{width} montage, got {grid!r}")
        if tile_size is not None and (th, tw) != (height // rows, width // cols):
            raise ValueError(
                f"tile_size must match grid {grid!r} on a {height}x{width} montage, "
                f"got {tile_size!r}"
            )
        th, tw = height // rows, width // cols
    if height % th or width % tw:
        raise ValueError(f"tile_size must divide the {height}x{width} montage, got {tile_size!r}")
    rows, cols = height // th, width // tw
    lead = image.shape[:-2]
    blocks = image.reshape(*lead, rows, th, cols, tw)
    c = len(lead)  # 0 or 1 leading channel axis
    grid_axes = (c + 2, c) if order == "column" else (c, c + 2)  # slowest first
    tiles = np.moveaxis(blocks, grid_axes, (0, 1)).reshape(rows * cols, *lead, th, tw)
    return tiles


def padding_tile_mask(tiles: np.ndarray[Any, Any] | torch.Tensor) -> np.ndarray[Any, Any]:
    """Flag padding tiles: tiles in which every pixel column is constant.

    Montage writers fill the unused tiles of the grid by repeating one pixel row down the tile,
    so each column of such a tile holds one value. Real cell images never do (sensor noise
    alone rules it out). The repeated row itself may vary a lot, so a low standard deviation
    is *not* the criterion: a padding tile can have a standard deviation of 40 grey levels.

    Parameters
    ----------
    tiles : numpy.ndarray or Tensor
        ``(..., th, tw)`` tiles with ``th >= 2``.

    Returns
    -------
    numpy.ndarray
        Boolean array of shape ``tiles.shape[:-2]``: True for padding tiles.

    Raises
    ------
    ValueError
        If ``tiles`` has fewer than 2 dimensions or tiles are a single pixel row.

    Examples
    --------
    >>> row = np.array([10, 90, 10, 90])                # varies along the row: std 40
    >>> padding = np.tile(row, (4, 1))                  # ... but every column is constant
    >>> cell = np.arange(16).reshape(4, 4)
    >>> padding_tile_mask(np.stack([cell, padding])).tolist()
    [False, True]
    """
    array = tiles.numpy() if isinstance(tiles, torch.Tensor) else np.asarray(tiles)
    if array.ndim < 2 or array.shape[-2] < 2:
        raise ValueError(f"tiles must have shape (..., th >= 2, tw), got {array.shape!r}")
    result: np.ndarray[Any, Any] = (array == array[..., :1, :]).all(axis=(-2, -1))
    return result


def find_duplicate_tiles(
    tiles: np.ndarray[Any, Any] | torch.Tensor, tolerance: float = 0.0
) -> np.ndarray[Any, Any]:
    """For every tile, the index of an earlier tile it repeats, or -1.

    Two tiles are **exact duplicates** when all their pixels are equal. With
    ``tolerance > 0`` they are **near duplicates** when, in every channel ``c``, the
    root-mean-square difference of their pixels is at most ``tolerance * s_c``, where ``s_c``
    is the standard deviation of channel ``c`` over all the given tiles. The test is scale-free
    (the same tolerance works for 8- and 16-bit images). Between two different real cells of
    the Jurkat release this ratio is at least 0.2 (median about 0.6 to the nearest other cell),
    so a tolerance of about 0.05 catches re-encoded copies without merging distinct cells.

    Tiles are taken in order: a tile repeats the *first* earlier tile that is kept (not itself
    a repeat) and within the tolerance. So the first occurrence is kept, later copies point at
    it, and the kept tiles hold no exact or near pair.

    Parameters
    ----------
    tiles : numpy.ndarray or Tensor
        ``(n, th, tw)`` or ``(n, C, th, tw)`` tiles.
    tolerance : float, default 0.0
        0 finds exact duplicates only; see above for ``tolerance > 0``.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` int64: the index of the earlier tile that tile ``i`` repeats, or -1.

    Raises
    ------
    TypeError, ValueError
        If ``tiles`` has the wrong shape or ``tolerance`` is not a finite number >= 0.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> tiles = rng.integers(0, 1000, size=(4, 5, 5))
    >>> tiles[3] = tiles[1]
    >>> find_duplicate_tiles(tiles).tolist()
    [-1, -1, -1, 1]
    >>> tiles[2] = tiles[0] + 1                       # off by one grey level everywhere
    >>> find_duplicate_tiles(tiles, tolerance=0.05).tolist()
    [-1, -1, 0, 1]
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.number)):
        raise TypeError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    if not math.isfinite(float(tolerance)) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    array = tiles.numpy() if isinstance(tiles, torch.Tensor) else np.asarray(tiles)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise ValueError(
            f"tiles must have shape (n, th, tw) or (n, C, th, tw), got {array.shape!r}"
        )
    n = array.shape[0]
    result = np.full(n, -1, dtype=np.int64)
    if n < 2:
        return result
    if tolerance == 0:
        flat = np.ascontiguousarray(array.reshape(n, -1))
        _, first, inverse = np.unique(flat, axis=0, return_index=True, return_inverse=True)
        owner = first[inverse.reshape(-1)]
        repeats = owner != np.arange(n)
        result[repeats] = owner[repeats]
        return result
    values = torch.from_numpy(array.reshape(n, array.shape[1], -1).astype(np.float64))
    n_pixels = values.shape[-1]
    scale = values.transpose(0, 1).reshape(values.shape[1], -1).std(dim=1)  # (C,)
    close = torch.ones(n, n, dtype=torch.bool)
    for c in range(values.shape[1]):
        rms = torch.cdist(values[:, c], values[:, c]) / math.sqrt(n_pixels)
        close &= rms <= float(tolerance) * float(scale[c])
    # Greedy in tile order: a tile repeats the first earlier *kept* tile within tolerance, so
    # the kept tiles never contain a near pair and no tile is matched to a dropped one.
    close_np = torch.tril(close, diagonal=-1).numpy()
    kept = np.ones(n, dtype=bool)
    for i in np.flatnonzero(close_np.any(axis=1)):
        matches = np.flatnonzero(close_np[i, :i] & kept[:i])
        if matches.size:
            result[i] = matches[0]
            kept[i] = False
    return result


def _fold_score(profile: np.ndarray[Any, Any], period: int) -> float:
    """Share of the profile's variance explained by its mean over one period."""
    total = float(profile.var())
    if total == 0.0:
        return 0.0
    folded = profile.reshape(-1, period).mean(axis=0)
    return float(folded.var()) / total


def infer_tile_size(image: np.ndarray[Any, Any]) -> int:
    """Infer the square tile size of a montage whose tiles hold centred cells.

    Candidates are the common divisors ``t >= 8`` of the height and width that leave at least
    two tiles along the longer side. Two signals decide:

    1. **Padding.** Cutting at the true size makes the padding tiles exactly padding
       (:func:`padding_tile_mask`); multiples of it mix padding with cells. Candidates whose
       padding area falls more than 1% of the montage below the best candidate's are dropped.
    2. **Periodicity.** Each tile has a cell in its centre, so the mean absolute gradient along
       each axis repeats with the tile period. The score is the share of that profile's
       variance explained by folding it at ``t`` (summed over both axes and all channels);
       divisors of the true size score much lower, multiples about the same. The smallest
       candidate within 85% of the best score wins.

    This finds the 40-pixel tiles of every montage of the Jurkat release. Pass ``tile_size`` or
    ``grid`` to the readers when your tiles are not square or do not hold centred objects.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` or ``(C, H, W)`` montage.

    Returns
    -------
    int
        The tile size in pixels; the whole image size when no candidate exists.

    Raises
    ------
    ValueError
        If ``image`` is not 2-D or 3-D.

    Examples
    --------
    >>> yy, xx = np.mgrid[:12, :12]
    >>> cell = np.exp(-((yy - 5.5) ** 2 + (xx - 5.5) ** 2) / 8)      # a centred blob
    >>> rng = np.random.default_rng(0)
    >>> montage = np.block([[cell * rng.uniform(1, 2) for _ in range(5)] for _ in range(4)])
    >>> montage.shape, infer_tile_size(montage)
    ((48, 60), 12)
    """
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"image must have shape (H, W) or (C, H, W), got {array.shape!r}")
    height, width = int(array.shape[-2]), int(array.shape[-1])
    candidates = [
        t
        for t in range(_MIN_TILE, min(height, width) + 1)
        if height % t == 0 and width % t == 0 and max(height, width) // t >= 2
    ]
    if not candidates:
        return min(height, width)
    planes = array.astype(np.float32)
    # Mean absolute gradient per row and per column, the last one repeated to full length.
    profiles = []
    for axis in (1, 2):
        grad = np.abs(np.diff(planes, axis=axis)).mean(axis=3 - axis, dtype=np.float64)
        profiles.append((axis, np.concatenate([grad, grad[:, -1:]], axis=1)))  # (C, length)
    # Padding area of every candidate from one integral image of "pixel differs from the pixel
    # above" (in any channel): a tile is padding when no pixel below its first row differs.
    changes = np.zeros((height + 1, width + 1), dtype=np.int32)
    changes[2:, 1:] = (array[:, 1:, :] != array[:, :-1, :]).any(axis=0)
    integral = changes.cumsum(axis=0).cumsum(axis=1)
    padding_area = []
    for t in candidates:
        y0, x0 = np.meshgrid(np.arange(0, height, t), np.arange(0, width, t), indexing="ij")
        y0 = y0 + 1  # skip each tile's first row, which is compared with the tile above
        y1, x1 = y0 + t - 1, x0 + t
        inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        padding_area.append(float((inside == 0).mean()))
    best_area = max(padding_area)
    kept = [t for t, area in zip(candidates, padding_area, strict=True) if area >= best_area - 0.01]
    scores = {
        t: sum(
            _fold_score(profile[c], t) for _, profile in profiles for c in range(profile.shape[0])
        )
        for t in kept
    }
    best_score = max(scores.values())
    return min(t for t, score in scores.items() if score >= 0.85 * best_score)
