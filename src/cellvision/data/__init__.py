"""Data sets, windows, transforms and synthetic data."""

from __future__ import annotations

from cellvision.data.airquality import AirQuality, load_air_quality, parse_air_quality
from cellvision.data.scaling import ZScoreScaler
from cellvision.data.windows import SlidingWindowDataset

__all__: list[str] = [
    "AirQuality",
    "SlidingWindowDataset",
    "ZScoreScaler",
    "load_air_quality",
    "parse_air_quality",
]
