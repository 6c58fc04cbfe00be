"""Synthetic, procedurally drawn cell images for the five merged cell-cycle phases.

These images are **synthetic**: they are not microscopy data and results on them say nothing
about real cells (the package ships real ones: :func:`~cellvision.data.load_jurkat_sample`).
They exist so that examples, tests and benchmarks run in seconds, at any size and count, on
data with the same format (``uint8`` ``(N, C, H, W)`` images, five classes, strong class
imbalance).

They imitate the **label-free** channels of imaging flow cytometry, modelled on the tiles of
the Jurkat release (see ``docs/guide/figures/real_cells.png``):

* channel 0, **brightfield-like** (as Ch3): a grey background; the cell a little brighter than
  the background, with a granular interior texture, a broad dark refractive rim at its outline
  and a bright ring just inside the rim;
* channel 1, **darkfield-like** (as Ch6): a dark background; the cell darker still, with sparse
  bright scattering speckles inside and a slightly brighter rim;
* channel 2 (optional), **DNA-stain-like** (as Ch4): the chromatin drawn as the labels were
  defined. Like Ch4 it is the label source, so a model that sees it is not label-free.

The phases differ in size, shape and texture, loosely following the real cells:

* Interphase: the smallest, round cells (radius 22-30% of the image), strongly granular.
* Prophase: larger round cells (28-34%), smoother texture, fewer speckles.
* Metaphase: large, slightly oval cells (29-35%) with a faint band across the middle (the
  aligned chromosomes seen through the cell) and more speckles.
* Anaphase: elongated cells with a waist (aspect ratio 1.25-1.45), speckles towards the poles.
* Telophase: two small daughter cells touching (a dumbbell), with a dark cleft between them.

Position, rotation, size, aspect ratio, contrast, background level and gradient, edge blur and
pixel noise are random per cell, and the class ranges overlap, so no fixed pixel gives the
class away: a small CNN learns it, a linear model on raw pixels does much worse.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch.nn import functional

from cellvision.config import check_positive_int
from cellvision.data.cellcycle import MERGED_CELL_CYCLE_PHASES, CellImageDataset

__all__ = ["DEFAULT_SYNTHETIC_COUNTS", "make_synthetic_cells"]

#: Default cells per class: the Jurkat imbalance (31,550 / 606 / 68 / 15 / 27) compressed so
#: that the rarest class still has a few dozen cells and a run takes seconds.
DEFAULT_SYNTHETIC_COUNTS: Mapping[str, int] = types.MappingProxyType(
    {"Interphase": 2000, "Prophase": 400, "Metaphase": 120, "Anaphase": 60, "Telophase": 80}
)

_CHUNK = 256


def _u(shape: tuple[int, ...], low: float, high: float, g: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=g)


def _soft(x: Tensor, softness: Tensor) -> Tensor:
    return torch.sigmoid(x / softness)


def _smooth_field(b: int, size: int, cells: int, g: torch.Generator) -> Tensor:
    """Random field in [0, 1] with about ``cells`` bumps across the image (bilinear upsampled)."""
    coarse = torch.rand((b, 1, cells, cells), generator=g)
    return functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[
        :, 0
    ]


def _col(t: Tensor) -> Tensor:
    return t.view(-1, 1, 1)


def _chromatin(phase: int, u: Tensor, v: Tensor, soft: Tensor, g: torch.Generator) -> Tensor:
    """DNA-stain-like chromatin in cell-local coordinates (the optional third channel)."""
    b = u.shape[0]
    texture = _smooth_field(b, u.shape[-1], 9, g)
    if phase in (0, 1):  # nucleus, smooth (interphase) or condensed and granular (prophase)
        rn = _col(_u((b,), 0.55, 0.7, g))
        nucleus = _soft(rn - torch.sqrt(u**2 + v**2), soft)
        grain = 0.2 if phase == 0 else 0.6
        return nucleus * (0.6 + grain * (texture - 0.5))
    if phase == 2:  # metaphase plate: one bar
        half_w = _col(_u((b,), 0.1, 0.17, g))
        return _soft(half_w - v.abs(), soft) * _soft(0.6 - u.abs(), soft) * (0.8 + 0.3 * texture)
    if phase == 3:  # anaphase: two bands moving apart along the long axis
        gap = _col(_u((b,), 0.3, 0.5, g))
        bands = _soft(0.1 - (u.abs() - gap).abs(), soft) * _soft(0.5 - v.abs(), soft)
        return bands * (0.8 + 0.3 * texture)
    lobes = torch.maximum(  # telophase: one round nucleus per daughter cell
        _soft(0.3 - torch.sqrt((u - 0.62) ** 2 + v**2), soft),
        _soft(0.3 - torch.sqrt((u + 0.62) ** 2 + v**2), soft),
    )
    return lobes * (0.7 + 0.3 * texture)


# Per phase: cell radius range (fraction of the image size), aspect-ratio range, texture
# contrast (brightfield) and speckle amount (darkfield). Ranges overlap on purpose.
_RADIUS = ((0.22, 0.30), (0.28, 0.34), (0.29, 0.35), (0.26, 0.31), (0.26, 0.31))
_ASPECT = ((0.9, 1.1), (0.92, 1.08), (1.0, 1.15), (1.25, 1.45), (1.0, 1.0))
_TEXTURE = ((0.07, 0.11), (0.03, 0.06), (0.05, 0.08), (0.05, 0.08), (0.06, 0.1))
_SPECKLE = ((0.25, 0.45), (0.12, 0.25), (0.3, 0.5), (0.25, 0.4), (0.25, 0.45))


def _render(phase: int, b: int, size: int, channels: int, g: torch.Generator) -> Tensor:
    """Render ``b`` cells of one phase as float images in [0, 1], shape (b, channels, S, S)."""
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")

    radius = _u((b,), *_RADIUS[phase], g) * size
    shift = _u((b, 2), -0.06, 0.06, g) * size
    theta = _u((b,), 0.0, 2 * math.pi, g)
    dx = xx - _col(shift[:, 0])
    dy = yy - _col(shift[:, 1])
    cos, sin = _col(torch.cos(theta)), _col(torch.sin(theta))
    u = (cos * dx + sin * dy) / _col(radius)  # cell-local coordinates, long axis along u
    v = (-sin * dx + cos * dy) / _col(radius)
    soft = _col(_u((b,), 0.03, 0.07, g))  # edge blur
    aspect = _col(_u((b,), *_ASPECT[phase], g))

    # Outline as a distance that is 1 on the cell boundary.
    if phase == 4:  # telophase: two touching daughter cells
        sep = _col(_u((b,), 0.55, 0.7, g))
        r_each = _col(_u((b,), 0.6, 0.72, g))
        dist = (
            torch.minimum(torch.sqrt((u - sep) ** 2 + v**2), torch.sqrt((u + sep) ** 2 + v**2))
            / r_each
        )
    elif phase == 3:  # anaphase: elongated, with a waist
        pinch = _col(_u((b,), 0.1, 0.25, g))
        waist = 1 + pinch * torch.exp(-((u / (0.45 * aspect)) ** 2))
        dist = torch.sqrt((u / aspect) ** 2 + (v * waist) ** 2)
    else:
        dist = torch.sqrt((u / aspect) ** 2 + (v * aspect) ** 2)
    inside = _soft(1.0 - dist, soft)
    rim_width = _col(_u((b,), 0.1, 0.16, g))
    rim = torch.exp(-(((dist - 1.0) / rim_width) ** 2))
    # Real brightfield cells are brightest just inside the dark rim.
    halo = torch.exp(-(((dist - 1.0 + 1.8 * rim_width) / rim_width) ** 2)) * inside
    granules = _smooth_field(b, size, max(5, size // 3), g)  # grains of about 3 pixels
    if phase == 2:  # metaphase: a faint band across the middle
        feature = torch.exp(-((v / 0.18) ** 2)) * _soft(0.75 - u.abs(), soft)
    elif phase == 3:  # anaphase: matter gathered at the two poles
        feature = torch.exp(-(((u.abs() / aspect - 0.55) / 0.25) ** 2))
    elif phase == 4:  # telophase: the cleft between the daughters
        feature = torch.exp(-((u / 0.14) ** 2))
    else:
        feature = torch.zeros_like(u)

    out = []
    grad = _u((b, 2), -0.04, 0.04, g) / size  # illumination gradient per pixel
    illumination = _col(grad[:, 0]) * xx + _col(grad[:, 1]) * yy
    for ch in range(channels):
        gain = _col(_u((b,), 0.75, 1.25, g))
        if ch == 0:  # brightfield: grey background, brighter textured cell, dark rim, halo
            bg = _col(_u((b,), 0.48, 0.58, g))
            tex = _col(_u((b,), *_TEXTURE[phase], g))
            img = (
                bg
                + illumination
                + gain
                * (
                    _col(_u((b,), 0.03, 0.07, g)) * inside
                    + tex * inside * (granules - 0.5) * 2
                    - _col(_u((b,), 0.12, 0.2, g)) * rim
                    + _col(_u((b,), 0.04, 0.08, g)) * halo
                    - _col(_u((b,), 0.03, 0.06, g)) * feature * inside
                )
            )
        elif ch == 1:  # darkfield: dark background, darker cell, bright speckles, faint rim
            bg = _col(_u((b,), 0.08, 0.14, g))
            amount = _col(_u((b,), *_SPECKLE[phase], g))
            fine = _smooth_field(b, size, max(6, (2 * size) // 5), g)
            speckles = torch.relu(fine - 0.58) * 3.0 * (1 + feature)
            img = (
                bg
                + 0.3 * illumination
                + gain * (-0.06 * inside + amount * speckles * inside + 0.03 * rim)
            )
        else:  # DNA-stain-like fluorescence: dark background, bright chromatin
            bg = _col(_u((b,), 0.02, 0.08, g))
            img = bg + gain * 0.7 * _chromatin(phase, u, v, soft, g)
        noise_std = _col(_u((b,), 0.01, 0.03, g))
        img = img + noise_std * torch.randn((b, size, size), generator=g)
        out.append(img)
    return torch.stack(out, dim=1).clamp(0.0, 1.0)


def make_synthetic_cells(
    counts: Mapping[str, int] | Sequence[int] | None = None,
    *,
    size: int = 66,
    channels: int = 1,
    seed: int = 0,
) -> CellImageDataset:
    """Draw a labelled set of synthetic cell images (not real data).

    The images are rendered with vectorised torch operations from a seeded
    ``torch.Generator``; the same arguments always give the same images. Samples are returned
    in a random (seeded) order. See the module description for what each phase looks like.

    Parameters
    ----------
    counts : mapping of str to int, or sequence of 5 ints, optional
        Cells per class, keyed by the names in
        :data:`~cellvision.data.cellcycle.MERGED_CELL_CYCLE_PHASES` or given in that order;
        default :data:`DEFAULT_SYNTHETIC_COUNTS` (2000 / 400 / 120 / 60 / 80). A missing key or a
        zero count draws no cells of that class.
    size : int, default 66
        Image height and width in pixels (at least 16).
    channels : int, default 1
        1 to 3 channels: brightfield-like (as Ch3), darkfield-like (as Ch6) and a
        DNA-stain-like channel (as Ch4, the label source: not label-free).
    seed : int, default 0
        Random seed.

    Returns
    -------
    CellImageDataset
        ``uint8`` images of shape ``(N, channels, size, size)``, labels and the five class names.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If a count is negative, a class name is unknown, no cell is requested, ``size < 16`` or
        ``channels`` is not 1, 2 or 3.

    Examples
    --------
    >>> ds = make_synthetic_cells({"Interphase": 6, "Anaphase": 2}, size=32, seed=0)
    >>> ds.images.shape, ds.images.dtype
    (torch.Size([8, 1, 32, 32]), torch.uint8)
    >>> ds.counts
    (('Interphase', 6), ('Prophase', 0), ('Metaphase', 0), ('Anaphase', 2), ('Telophase', 0))
    >>> again = make_synthetic_cells({"Interphase": 6, "Anaphase": 2}, size=32, seed=0)
    >>> torch.equal(ds.images, again.images)
    True
    """
    names = MERGED_CELL_CYCLE_PHASES
    if counts is None:
        counts = DEFAULT_SYNTHETIC_COUNTS
    if isinstance(counts, Mapping):
        unknown = sorted(set(counts) - set(names))
        if unknown:
            raise ValueError(f"counts must be keyed by {names!r}, got unknown keys {unknown!r}")
        per_class = [counts.get(n, 0) for n in names]
    elif isinstance(counts, (list, tuple)):
        if len(counts) != len(names):
            raise ValueError(f"counts must have {len(names)} entries ({names!r}), got {counts!r}")
        per_class = list(counts)
    else:
        raise TypeError(f"counts must be a mapping or a sequence of ints, got {counts!r}")
    for name, n in zip(names, per_class, strict=True):
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"counts[{name!r}] must be an int, got {n!r}")
        if n < 0:
            raise ValueError(f"counts[{name!r}] must be >= 0, got {n!r}")
    if sum(per_class) == 0:
        raise ValueError(f"counts must request at least one cell, got {counts!r}")
    check_positive_int("size", size)
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size!r}")
    check_positive_int("channels", channels)
    if channels > 3:
        raise ValueError(f"channels must be 1, 2 or 3, got {channels!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")

    g = torch.Generator().manual_seed(seed)
    images = torch.empty((sum(per_class), channels, size, size), dtype=torch.uint8)
    labels = torch.empty(sum(per_class), dtype=torch.int64)
    start = 0
    for label, n in enumerate(per_class):
        for chunk_start in range(0, n, _CHUNK):
            b = min(_CHUNK, n - chunk_start)
            rendered = _render(label, b, size, channels, g)
            images[start : start + b] = (rendered * 255.0).round().to(torch.uint8)
            labels[start : start + b] = label
            start += b
    order = torch.randperm(labels.numel(), generator=g)
    return CellImageDataset(images[order], labels[order], names)
