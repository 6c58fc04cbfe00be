"""Data sets, windows, transforms and synthetic data."""

from __future__ import annotations

from cellvision.data.cellcycle import (
    CELL_CYCLE_PHASES,
    INTERPHASE_MERGE,
    JURKAT_PHASE_COUNTS,
    MERGED_CELL_CYCLE_PHASES,
    CellCycleFolder,
    CellImageDataset,
    CellRecord,
    canonical_phase,
    merge_labels,
)
from cellvision.data.synthetic import DEFAULT_SYNTHETIC_COUNTS, make_synthetic_cells
from cellvision.data.transforms import (
    BatchTransform,
    CenterCropOrPad,
    Compose,
    GaussianNoise,
    Normalize,
    RandomDihedral,
    RandomIntensity,
    RandomTranslate,
    channel_stats,
    to_float_images,
)

__all__: list[str] = [
    "CELL_CYCLE_PHASES",
    "DEFAULT_SYNTHETIC_COUNTS",
    "INTERPHASE_MERGE",
    "JURKAT_PHASE_COUNTS",
    "MERGED_CELL_CYCLE_PHASES",
    "BatchTransform",
    "CellCycleFolder",
    "CellImageDataset",
    "CellRecord",
    "CenterCropOrPad",
    "Compose",
    "GaussianNoise",
    "Normalize",
    "RandomDihedral",
    "RandomIntensity",
    "RandomTranslate",
    "canonical_phase",
    "channel_stats",
    "make_synthetic_cells",
    "merge_labels",
    "to_float_images",
]
