"""Data sets, windows, transforms and synthetic data."""

from __future__ import annotations

__all__: list[str] = []
