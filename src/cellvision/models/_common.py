"""Config field checks shared by the image classifiers."""

from __future__ import annotations

from typing import Any

from torch import nn

from cellvision.config import as_builtin_number
from cellvision.layers.heads import init_class_prior_

#: Largest number of parameters a built-in model may have (10**9, 4 GB in float32). A config
#: above it is refused when the model is built, before anything is allocated, and
#: :func:`cellvision.checkpoint.load_checkpoint` refuses such a file by default.
MAX_PARAMETERS = 10**9


def as_int(value: Any) -> Any:
    """Return numpy integers as Python ints (e.g. ``img_size=array.shape[-1]``); else ``value``."""
    return as_builtin_number(value)


def check_n_classes(value: object) -> int:
    """Return ``value`` as an int; raise unless it is an integer >= 2 (numpy ints accepted)."""
    number = as_builtin_number(value)
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"n_classes must be an integer >= 2, got {value!r}")
    if number < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {value!r}")
    return number


def check_parameter_budget(config: Any, limit: int = MAX_PARAMETERS) -> None:
    """Raise ``ValueError`` when ``config.parameter_count()`` exceeds ``limit``.

    Called by the model constructors before any layer is built, so an absurd size in a config
    (``patch_size=10**5``, ``channels=200000``) fails at once with a clear message instead of
    in the allocator.
    """
    count = int(config.parameter_count())
    if count > limit:
        raise ValueError(
            f"config must describe at most max_parameters={limit:,} parameters, got "
            f"{type(config).__name__} with {count:,} parameters: {config!r}"
        )


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
