"""Data sets, windows, transforms and synthetic data."""

from __future__ import annotations

from cellvision.data.airquality import AirQuality, load_air_quality, parse_air_quality
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
from cellvision.data.scaling import ZScoreScaler
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
from cellvision.data.windows import SlidingWindowDataset, lag_features

__all__: list[str] = [
    "CELL_CYCLE_PHASES",
    "DEFAULT_SYNTHETIC_COUNTS",
    "INTERPHASE_MERGE",
    "JURKAT_PHASE_COUNTS",
    "MERGED_CELL_CYCLE_PHASES",
    "AirQuality",
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
    "SlidingWindowDataset",
    "ZScoreScaler",
    "canonical_phase",
    "channel_stats",
    "lag_features",
    "load_air_quality",
    "make_synthetic_cells",
    "merge_labels",
    "parse_air_quality",
    "to_float_images",
]
