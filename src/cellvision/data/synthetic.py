"""Synthetic, procedurally drawn cell images for the five merged cell-cycle phases.

These images are **synthetic**: they are not microscopy data and results on them say nothing
about real cells. They exist so that examples, tests and benchmarks run in seconds without
downloading the Jurkat release, on data with the same format (``uint8`` ``(N, C, H, W)``
images, five classes, strong class imbalance).

Each phase has its own chromatin shape, loosely following the textbook appearance:

* Interphase: one large round or oval nucleus with smooth, diffuse texture and nucleoli.
* Prophase: a nucleus of the same size with condensed, granular chromatin.
* Metaphase: chromosomes aligned in one bar across the cell.
* Anaphase: two parallel bands moving apart.
* Telophase: two round daughter lobes in a pinched, dumbbell-shaped cell.

Position, rotation, size, aspect ratio, contrast, background level and gradient, edge
blur and pixel noise are random per cell, so the class is a matter of shape and texture, not
of the value of any fixed pixel: a small CNN learns it easily, a linear model on raw pixels
does much worse.
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
_N_GRANULES = 14


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


def _render(phase: int, b: int, size: int, channels: int, g: torch.Generator) -> Tensor:
    """Render ``b`` cells of one phase as float images in [0, 1], shape (b, channels, S, S)."""
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")

    radius = _u((b,), 0.24, 0.34, g) * size
    shift = _u((b, 2), -0.09, 0.09, g) * size
    theta = _u((b,), 0.0, 2 * math.pi, g)
    dx = xx - _col(shift[:, 0])
    dy = yy - _col(shift[:, 1])
    cos, sin = _col(torch.cos(theta)), _col(torch.sin(theta))
    u = (cos * dx + sin * dy) / _col(radius)  # cell-local coordinates, cell radius = 1
    v = (-sin * dx + cos * dy) / _col(radius)
    soft = _col(_u((b,), 0.03, 0.09, g))  # edge blur
    aspect = _col(_u((b,), 0.85, 1.15, g))

    # Cell outline; telophase cells pinch into two touching circles.
    if phase == 4:
        sep = _col(_u((b,), 0.45, 0.6, g))
        r_each = _col(_u((b,), 0.62, 0.72, g))
        dist = torch.minimum(
            torch.sqrt((u - sep) ** 2 + (v * aspect) ** 2),
            torch.sqrt((u + sep) ** 2 + (v * aspect) ** 2),
        )
        edge = r_each
    else:
        dist = torch.sqrt((u / aspect) ** 2 + (v * aspect) ** 2)
        edge = torch.ones_like(soft)
    body = _soft(edge - dist, soft)
    rim = torch.exp(-(((dist - edge) / (soft + 0.05)) ** 2))

    texture = _smooth_field(b, size, 9, g)
    if phase in (0, 1):  # nucleus, smooth (interphase) or granular (prophase)
        rn = _col(_u((b,), 0.48, 0.66, g))
        n_aspect = _col(_u((b,), 0.8, 1.2, g))
        nucleus = _soft(rn - torch.sqrt((u / n_aspect) ** 2 + (v * n_aspect) ** 2), soft)
        if phase == 0:
            nucleoli = torch.zeros_like(u)
            for _ in range(2):
                c = _u((b, 2), -0.3, 0.3, g)
                nucleoli = nucleoli + torch.exp(
                    -((u - _col(c[:, 0])) ** 2 + (v - _col(c[:, 1])) ** 2) / (2 * 0.1**2)
                )
            dna = nucleus * (0.55 + 0.3 * texture - 0.35 * nucleoli.clamp(max=1.0))
        else:
            ang = _u((b, _N_GRANULES), 0.0, 2 * math.pi, g)
            rad = torch.sqrt(torch.rand((b, _N_GRANULES), generator=g)) * 0.85
            gu = (rad * torch.cos(ang)).view(b, _N_GRANULES, 1, 1) * rn.unsqueeze(1)
            gv = (rad * torch.sin(ang)).view(b, _N_GRANULES, 1, 1) * rn.unsqueeze(1)
            sigma = _u((b, 1, 1, 1), 0.06, 0.09, g)
            granules = torch.exp(
                -((u.unsqueeze(1) - gu) ** 2 + (v.unsqueeze(1) - gv) ** 2) / (2 * sigma**2)
            ).sum(1)
            dna = nucleus * (0.3 + 0.2 * texture + 0.55 * granules.clamp(max=1.4))
    elif phase == 2:  # metaphase plate: one bar
        half_w = _col(_u((b,), 0.1, 0.17, g))
        half_l = _col(_u((b,), 0.5, 0.72, g))
        bar = _soft(half_w - v.abs(), soft) * _soft(half_l - u.abs(), soft)
        dna = bar * (0.75 + 0.35 * texture)
    elif phase == 3:  # anaphase: two parallel bands
        gap = _col(_u((b,), 0.24, 0.42, g))
        half_w = _col(_u((b,), 0.07, 0.12, g))
        half_l = _col(_u((b,), 0.4, 0.62, g))
        bands = _soft(half_w - (v.abs() - gap).abs(), soft) * _soft(half_l - u.abs(), soft)
        dna = bands * (0.75 + 0.35 * texture)
    else:  # telophase: two round daughter nuclei in the two halves
        sep = sep * _col(_u((b,), 0.95, 1.15, g))
        rl = _col(_u((b,), 0.26, 0.36, g))
        lobes = torch.maximum(
            _soft(rl - torch.sqrt((u - sep) ** 2 + v**2), soft),
            _soft(rl - torch.sqrt((u + sep) ** 2 + v**2), soft),
        )
        dna = lobes * (0.65 + 0.35 * texture)

    out = []
    grad = _u((b, 2), -0.15, 0.15, g) / size  # illumination gradient per pixel
    illumination = _col(grad[:, 0]) * xx + _col(grad[:, 1]) * yy
    for ch in range(channels):
        gain = _col(_u((b,), 0.7, 1.3, g))
        if ch == 0:  # brightfield: grey background, darker cell, bright halo, dark chromatin
            bg = _col(_u((b,), 0.5, 0.72, g))
            img = (
                bg
                + illumination
                - gain
                * (_col(_u((b,), 0.06, 0.16, g)) * body - _col(_u((b,), 0.04, 0.12, g)) * rim)
                - gain * _col(_u((b,), 0.16, 0.3, g)) * dna * body
            )
        elif ch == 1:  # darkfield / side scatter: dark background, bright edges and chromatin
            bg = _col(_u((b,), 0.03, 0.1, g))
            img = bg + 0.5 * illumination + gain * (0.25 * rim * body + 0.35 * dna * texture)
        else:  # nuclear-stain-like fluorescence: dark background, bright chromatin
            bg = _col(_u((b,), 0.02, 0.08, g))
            img = bg + gain * 0.7 * dna
        noise_std = _col(_u((b,), 0.01, 0.05, g))
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
        1 to 3 channels: brightfield-like (as Ch3), darkfield-like (as Ch6) and a nuclear-stain-
        like channel.
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
