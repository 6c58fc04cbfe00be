"""Reusable ``torch.nn`` building blocks shared by the model families."""

from __future__ import annotations

__all__: list[str] = []
