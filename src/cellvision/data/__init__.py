"""Data sets, windows, transforms and synthetic data."""

from __future__ import annotations

from cellvision.data.airquality import AirQuality, load_air_quality, parse_air_quality
from cellvision.data.cellcycle import (
    CELL_CYCLE_PHASES,
    CHANNEL_SIGNALS,
    DEFAULT_CHANNELS,
    INTERPHASE_MERGE,
    JURKAT_PHASE_COUNTS,
    LABEL_FREE_CHANNELS,
    MERGED_CELL_CYCLE_PHASES,
    UNLABELLED,
    CellCycleFolder,
    CellImageDataset,
    CellRecord,
    canonical_phase,
    channel_name,
    is_label_free,
    load_cells,
    load_jurkat_sample,
    merge_labels,
)
from cellvision.data.montage import (
    find_duplicate_tiles,
    infer_tile_size,
    padding_tile_mask,
    split_montage,
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
    RandomRotation,
    RandomTranslate,
    channel_stats,
    to_float_images,
)
from cellvision.data.windows import SlidingWindowDataset, lag_features

__all__: list[str] = [
    "CELL_CYCLE_PHASES",
    "CHANNEL_SIGNALS",
    "DEFAULT_CHANNELS",
    "DEFAULT_SYNTHETIC_COUNTS",
    "INTERPHASE_MERGE",
    "JURKAT_PHASE_COUNTS",
    "LABEL_FREE_CHANNELS",
    "MERGED_CELL_CYCLE_PHASES",
    "UNLABELLED",
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
    "RandomRotation",
    "RandomTranslate",
    "SlidingWindowDataset",
    "ZScoreScaler",
    "canonical_phase",
    "channel_name",
    "channel_stats",
    "find_duplicate_tiles",
    "infer_tile_size",
    "is_label_free",
    "lag_features",
    "load_air_quality",
    "load_cells",
    "load_jurkat_sample",
    "make_synthetic_cells",
    "merge_labels",
    "padding_tile_mask",
    "parse_air_quality",
    "split_montage",
    "to_float_images",
]
