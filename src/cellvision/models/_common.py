"""Config field checks shared by the image classifiers."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from cellvision.layers.heads import init_class_prior_


def as_int(value: Any) -> Any:
    """Return numpy integers as Python ints (e.g. ``img_size=array.shape[-1]``); else ``value``."""
    if isinstance(value, np.integer):
        return int(value)
    return value


def check_n_classes(value: object) -> None:
    """Raise unless ``value`` is an integer >= 2."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"n_classes must be an integer >= 2, got {value!r}")
    if value < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {value!r}")


def check_bool(name: str, value: object) -> None:
    """Raise ``TypeError`` unless ``value`` is a ``bool``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")


def init_head(head: nn.Linear, class_freqs: Any, zero_init_head: bool) -> None:
    """Initialise a classifier's final layer from the class prior and/or to zero weight."""
    if class_freqs is not None:
        init_class_prior_(head, class_freqs, zero_weight=zero_init_head)
    elif zero_init_head:
        nn.init.zeros_(head.weight)
        if head.bias is not None:
            nn.init.zeros_(head.bias)
