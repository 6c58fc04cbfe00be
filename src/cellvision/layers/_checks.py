"""Input checks shared by the image layers and models (clear errors instead of deep torch ones)."""

from __future__ import annotations

import torch

from cellvision.config import check_positive_int


def describe(x: object) -> str:
    """Return a short description of ``x`` for error messages."""
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    return f"{type(x).__name__} {x!r}"[:200]


def _autocast_enabled(device_type: str) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4 takes no device type
        return bool(torch.is_autocast_enabled())


def check_dtype(x: torch.Tensor, expected: torch.dtype | None, name: str = "x") -> None:
    """Raise ``TypeError`` unless ``x`` has the model's parameter dtype ``expected``.

    Under :func:`torch.autocast` on ``x``'s device the layers cast their inputs themselves, so
    any floating dtype is accepted there.
    """
    if expected is None or x.dtype == expected or _autocast_enabled(x.device.type):
        return
    raise TypeError(
        f"{name} must have the model's dtype {expected} (convert it with x.to({expected}) or "
        f"the model with model.to({x.dtype})), got {describe(x)}"
    )


def check_image_batch(
    x: object,
    in_channels: int,
    *,
    name: str = "x",
    min_size: int = 1,
    dtype: torch.dtype | None = None,
) -> None:
    """Raise unless ``x`` is a ``(B, in_channels, H, W)`` tensor of ``dtype``, H, W >= min_size."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {describe(x)}")
    check_dtype(x, dtype, name)
    if x.ndim != 4:
        raise ValueError(
            f"{name} must be a 4-D (batch, channels, height, width) tensor, "
            f"got shape {tuple(x.shape)}"
        )
    if x.shape[1] != in_channels:
        raise ValueError(
            f"{name} must have {in_channels} channel(s) (in_channels), got shape {tuple(x.shape)}"
        )
    if x.shape[-2] < min_size or x.shape[-1] < min_size:
        raise ValueError(
            f"{name} must be at least {min_size}x{min_size} pixels, got shape {tuple(x.shape)}"
        )


def check_features(
    features: object, dim: int, *, name: str = "features", dtype: torch.dtype | None = None
) -> None:
    """Raise unless ``features`` is a ``(B, dim)`` tensor of ``dtype`` (any float if ``None``)."""
    if not isinstance(features, torch.Tensor) or not features.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {describe(features)}")
    check_dtype(features, dtype, name)
    if features.ndim != 2 or features.shape[1] != dim:
        raise ValueError(
            f"{name} must have shape (batch, {dim}), got shape {tuple(features.shape)}"
        )


def random_images(
    batch_size: int,
    in_channels: int,
    size: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Return standard-normal images ``(batch_size, in_channels, size, size)``."""
    check_positive_int("batch_size", batch_size)
    if batch_size * in_channels * size * size > 1 << 32:  # 16 GiB of float32
        raise ValueError(
            f"batch_size must keep the example batch at most 2**32 values, got {batch_size!r} "
            f"images of {in_channels}x{size}x{size}"
        )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    device = generator.device if generator is not None else None
    return torch.randn(batch_size, in_channels, size, size, generator=generator, device=device)
