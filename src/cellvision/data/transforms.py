"""Batched, vectorised image augmentations for ``(B, C, H, W)`` tensors.

Every transform is a callable ``t(x, *, generator=None) -> Tensor``. It accepts a batch
``(B, C, H, W)`` or a single image ``(C, H, W)`` on any device and returns a tensor of the same
shape (except :class:`CenterCropOrPad`, which changes ``H`` and ``W``), dtype and device.
Random transforms draw an independent choice for every sample of the batch from
``generator`` (or from torch's global generator when it is ``None``), with one vectorised
operation for the whole batch: there is no Python loop over samples, so augmenting on the GPU
or on a whole in-memory batch costs about as much as one tensor operation.

Random numbers are drawn on the generator's device and moved to the data's device, so a CPU
``torch.Generator`` gives the same augmentation whether the images live on the CPU or a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor
from torch.nn import functional

from cellvision.config import (
    as_builtin_number,
    check_non_negative_int,
    check_positive_int,
    check_probability,
)

__all__ = [
    "BatchTransform",
    "CenterCropOrPad",
    "Compose",
    "GaussianNoise",
    "Normalize",
    "RandomChannelDrop",
    "RandomDihedral",
    "RandomIntensity",
    "RandomRotation",
    "RandomTranslate",
    "channel_stats",
    "to_float_images",
]

_INT_SCALE = {torch.uint8: 255.0, torch.uint16: 65535.0}


def _check_image_tensor(x: object, name: str = "x") -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (B, C, H, W) or (C, H, W), got {x!r}"
        )
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{name} must have shape (B, C, H, W) or (C, H, W), got shape {tuple(x.shape)!r}"
        )
    return x


def _check_floating(x: Tensor, transform: str) -> None:
    if not x.is_floating_point():
        raise TypeError(
            f"x must be a floating-point tensor for {transform}, got dtype {x.dtype!r} "
            "(convert integer images with cellvision.data.transforms.to_float_images)"
        )


def _draw_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _check_range(name: str, value: object) -> tuple[float, float]:
    if isinstance(value, (tuple, list)):
        value = [as_builtin_number(v) for v in value]
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise TypeError(f"{name} must be a (low, high) pair of numbers, got {value!r}")
    low, high = float(value[0]), float(value[1])
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(
            f"{name} must be a finite (low, high) pair with low <= high, got {value!r}"
        )
    return low, high


def _gather_pixels(x: Tensor, index: Tensor) -> Tensor:
    """Return ``out[b, c, p] = x[b, c, index[b, p]]`` for ``(B, C, H, W)`` ``x``, any dtype."""
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)
    # gather has no uint16 kernel: move the same bits through int16.
    as_int16 = flat.dtype == torch.uint16
    if as_int16:
        flat = flat.view(torch.int16)
    out = flat.gather(2, index.unsqueeze(1).expand(b, c, index.shape[1]))
    if as_int16:
        out = out.view(torch.uint16)
    return out.reshape(b, c, h, w)


def to_float_images(images: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Convert images to floating point, mapping integer pixel ranges onto ``[0, 1]``.

    ``uint8`` images are divided by 255 and ``uint16`` images by 65535; floating-point images
    are only cast to ``dtype``. The in-memory data sets and :func:`channel_stats` use the same
    convention, so statistics computed on stored ``uint8``/``uint16`` images match the float
    images the data sets return.

    Parameters
    ----------
    images : Tensor
        Images of any shape with dtype ``uint8``, ``uint16`` or a floating-point dtype.
    dtype : torch.dtype, default torch.float32
        Floating-point output dtype.

    Returns
    -------
    Tensor
        The images as ``dtype``, on the same device.

    Raises
    ------
    TypeError
        If ``images`` is not a tensor, has another integer dtype, or ``dtype`` is not floating.

    Examples
    --------
    >>> to_float_images(torch.tensor([0, 51, 255], dtype=torch.uint8))
    tensor([0.0000, 0.2000, 1.0000])
    >>> to_float_images(torch.tensor([65535], dtype=torch.uint16))
    tensor([1.])
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {images!r}")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    if images.is_floating_point():
        return images.to(dtype)
    scale = _INT_SCALE.get(images.dtype)
    if scale is None:
        raise TypeError(
            f"images must have dtype uint8, uint16 or a floating-point dtype, got {images.dtype!r}"
        )
    return images.to(dtype) / scale


class BatchTransform:
    """Base class: accept ``(C, H, W)`` or ``(B, C, H, W)`` input and apply :meth:`apply`.

    Subclasses implement :meth:`apply` on a 4-D batch; ``__call__`` validates the input and adds
    or removes the batch dimension for single images.

    Examples
    --------
    >>> class Negate(BatchTransform):
    ...     def apply(self, x, generator):
    ...         return -x
    >>> Negate()(torch.ones(1, 2, 2)).shape
    torch.Size([1, 2, 2])
    """

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Apply the transform to a batch or a single image.

        Parameters
        ----------
        x : Tensor
            ``(B, C, H, W)`` batch or ``(C, H, W)`` image.
        generator : torch.Generator, optional
            Source of randomness; torch's global generator when ``None``.

        Returns
        -------
        Tensor
            The transformed tensor, with a batch dimension only if ``x`` had one.

        Raises
        ------
        TypeError
            If ``x`` is not a tensor or ``generator`` is not a ``torch.Generator``.
        ValueError
            If ``x`` is not 3-D or 4-D.

        Examples
        --------
        >>> Normalize([0.5], [0.5])(torch.ones(4, 1, 8, 8)).shape
        torch.Size([4, 1, 8, 8])
        """
        x = _check_image_tensor(x)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
        if x.ndim == 3:
            return self.apply(x.unsqueeze(0), generator).squeeze(0)
        return self.apply(x, generator)

    def apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Transform a validated ``(B, C, H, W)`` batch (implemented by subclasses).

        Parameters
        ----------
        x : Tensor
            ``(B, C, H, W)`` batch.
        generator : torch.Generator or None
            Source of randomness.

        Returns
        -------
        Tensor
            The transformed batch.

        Raises
        ------
        NotImplementedError
            In the base class.

        Examples
        --------
        >>> RandomDihedral().apply(torch.zeros(2, 1, 4, 4), None).shape
        torch.Size([2, 1, 4, 4])
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RandomDihedral(BatchTransform):
    """Apply one of the 8 symmetries of the square (4 rotations x optional flip) per sample.

    Cells in flow-cytometry images have no preferred orientation, so all 8 symmetries are
    equally likely. Each output is an exact permutation of its input's pixels (works for any
    dtype); the images must be square.

    Examples
    --------
    >>> x = torch.arange(4.0).reshape(1, 1, 2, 2)
    >>> y = RandomDihedral()(x, generator=torch.Generator().manual_seed(0))
    >>> sorted(y.flatten().tolist())
    [0.0, 1.0, 2.0, 3.0]
    """

    def apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Apply an independent random symmetry to every sample of ``x``.

        Parameters
        ----------
        x : Tensor
            ``(B, C, H, W)`` batch with ``H == W``.
        generator : torch.Generator or None
            Source of randomness.

        Returns
        -------
        Tensor
            The batch with each sample rotated and/or flipped.

        Raises
        ------
        ValueError
            If the images are not square.

        Examples
        --------
        >>> RandomDihedral().apply(torch.zeros(3, 2, 5, 5), None).shape
        torch.Size([3, 2, 5, 5])
        """
        b, _c, h, w = x.shape
        if h != w:
            raise ValueError(f"x must hold square images for RandomDihedral, got H={h}, W={w}")
        choice = torch.randint(0, 8, (b,), generator=generator, device=_draw_device(generator))
        choice = choice.to(x.device)
        # flip/rot90 have no uint16 kernels: move the same bits through int16.
        src = x.view(torch.int16) if x.dtype == torch.uint16 else x
        out = torch.empty_like(src)
        # One vectorised copy per symmetry drawn (at most 8, whatever the batch size): cheaper
        # than a per-pixel gather because each copy moves contiguous rows.
        for k in torch.unique(choice).tolist():
            rows = (choice == k).nonzero().squeeze(1)
            part = src.index_select(0, rows)
            if k >= 4:
                part = part.flip(-1)
            out.index_copy_(0, rows, torch.rot90(part, k % 4, dims=(2, 3)))
        return out.view(torch.uint16) if x.dtype == torch.uint16 else out


class RandomTranslate(BatchTransform):
    """Shift every sample by an independent integer offset, filling the border by reflection.

    Offsets are drawn uniformly from ``[-max_shift, max_shift]`` along each axis. Reflection
    mirrors the image about its edge pixels (the edge pixel is not repeated, as in
    ``numpy.pad(mode="reflect")``), so the border looks like more background rather than a black
    frame. Works for any dtype.

    Parameters
    ----------
    max_shift : int
        Largest absolute shift in pixels; must be smaller than the image height and width.

    Raises
    ------
    TypeError, ValueError
        If ``max_shift`` is not a non-negative integer.

    Examples
    --------
    >>> t = RandomTranslate(2)
    >>> t(torch.rand(8, 1, 16, 16), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([8, 1, 16, 16])
    """

    def __init__(self, max_shift: int) -> None:
        check_non_negative_int("max_shift", max_shift)
        self.max_shift = max_shift

    @staticmethod
    def _reflect(index: Tensor, size: int) -> Tensor:
        index = index.abs()
        return torch.where(index > size - 1, 2 * (size - 1) - index, index)

    def apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Translate every sample of ``x`` by its own random offset.

        Parameters
        ----------
        x : Tensor
            ``(B, C, H, W)`` batch.
        generator : torch.Generator or None
            Source of randomness.

        Returns
        -------
        Tensor
            The translated batch.

        Raises
        ------
        ValueError
            If ``max_shift`` is not smaller than the height and width of ``x``.

        Examples
        --------
        >>> RandomTranslate(0).apply(torch.arange(4.0).reshape(1, 1, 2, 2), None).flatten()
        tensor([0., 1., 2., 3.])
        """
        b, _c, h, w = x.shape
        if self.max_shift >= min(h, w):
            raise ValueError(
                f"max_shift must be smaller than the image size {(h, w)!r}, got {self.max_shift!r}"
            )
        m = self.max_shift
        shifts = torch.randint(
            -m, m + 1, (b, 2), generator=generator, device=_draw_device(generator)
        )
        shifts = shifts.to(x.device)
        rows = self._reflect(torch.arange(h, device=x.device) - shifts[:, :1], h)  # (B, H)
        cols = self._reflect(torch.arange(w, device=x.device) - shifts[:, 1:], w)  # (B, W)
        return _gather_pixels(x, (rows[:, :, None] * w + cols[:, None, :]).reshape(b, h * w))

    def __repr__(self) -> str:
        return f"RandomTranslate(max_shift={self.max_shift})"


class GaussianNoise(BatchTransform):
    """Add independent Gaussian noise ``N(0, std^2)`` to every pixel.

    Parameters
    ----------
    std : float or (float, float)
        Noise standard deviation; a ``(low, high)`` pair draws one standard deviation per sample
        uniformly from that range.

    Raises
    ------
    TypeError, ValueError
        If ``std`` is not a non-negative number or range.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> y = GaussianNoise(0.1)(torch.zeros(64, 1, 32, 32), generator=g)
    >>> round(y.std().item(), 2)
    0.1
    """

    def __init__(self, std: float | tuple[float, float]) -> None:
        if isinstance(std, (tuple, list)):
            self.std_range = _check_range("std", std)
        else:
            std = as_builtin_number(std)  # type: ignore[assignment]
            if isinstance(std, bool) or not isinstance(std, (int, float)):
                raise TypeError(f"std must be a number or a (low, high) pair, got {std!r}")
            self.std_range = (float(std), float(std))
        if not math.isfinite(self.std_range[0]) or self.std_range[0] < 0:
            raise ValueError(f"std must be finite and >= 0, got {std!r}")

    def apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Add noise to the floating-point batch ``x``.

        Parameters
        ----------
        x : Tensor
            Floating-point ``(B, C, H, W)`` batch.
        generator : torch.Generator or None
            Source of randomness.

        Returns
        -------
        Tensor
            ``x`` plus noise.

        Raises
        ------
        TypeError
            If ``x`` is not floating point.

        Examples
        --------
        >>> GaussianNoise(0.0).apply(torch.ones(1, 1, 2, 2), None).sum().item()
        4.0
        """
        _check_floating(x, "GaussianNoise")
        dev = _draw_device(generator)
        b = x.shape[0]
        low, high = self.std_range
        std = low + (high - low) * torch.rand(b, 1, 1, 1, generator=generator, device=dev)
        noise = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype)
        # In place on the fresh noise buffer: one allocation, no temporaries.
        return noise.to(x.device).mul_(std.to(x.device, x.dtype)).add_(x)

    def __repr__(self) -> str:
        low, high = self.std_range
        return f"GaussianNoise(std={low})" if low == high else f"GaussianNoise(std={(low, high)})"


class RandomIntensity(BatchTransform):
    """Apply a random affine intensity change ``x * scale + offset`` per sample.

    Parameters
    ----------
    scale : (float, float), default (0.9, 1.1)
        Range of the multiplicative factor, drawn uniformly.
    offset : (float, float), default (-0.05, 0.05)
        Range of the additive offset, drawn uniformly.
    per_channel : bool, default False
        Draw separate factors for every channel instead of one per sample.

    Raises
    ------
    TypeError, ValueError
        If a range is not a finite ``(low, high)`` pair with ``low <= high``.

    Examples
    --------
    >>> t = RandomIntensity(scale=(2.0, 2.0), offset=(1.0, 1.0))
    >>> t(torch.ones(1, 2, 2)).flatten()
    tensor([3., 3., 3., 3.])
    """

    def __init__(
        self,
        scale: tuple[float, float] = (0.9, 1.1),
        offset: tuple[float, float] = (-0.05, 0.05),
        *,
        per_channel: bool = False,
    ) -> None:
        self.scale = _check_range("scale", scale)
        self.offset = _check_range("offset", offset)
        if not isinstance(per_channel, bool):
            raise TypeError(f"per_channel must be a bool, got {per_channel!r}")
        self.per_channel = per_channel

    def apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Rescale and shift the intensities of every sample of ``x``.

        Parameters
        ----------
        x : Tensor
            Floating-point ``(B, C, H, W)`` batch.
        generator : torch.Generator or None
            Source of randomness.

        Returns
        -------
        Tensor
            The rescaled batch.

        Raises
        ------
        TypeError
            If ``x`` is not floating point.

        Examples
        --------
        >>> RandomIntensity((1.0, 1.0), (0.0, 0.0)).apply(torch.ones(1, 1, 1, 1), None).item()
        1.0
        """
        _check_floating(x, "RandomIntensity")
        b, c = x.shape[:2]
        shape = (b, c if self.per_channel else 1, 1, 1)
        dev = _draw_device(generator)
        u = torch.rand((2, *shape), generator=generator, device=dev).to(x.device, x.dtype)
        scale = self.scale[0] + (self.scale[1] - self.scale[0]) * u[0]
        offset = self.offset[0] + (self.offset[1] - self.offset[0]) * u[1]
        return (x * scale).add_(offset)

    def __repr__(self) -> str:
        return (
            f"RandomIntensity(scale={self.scale}, offset={self.offset}, "
            f"per_channel={self.per_channel})"
        )


class RandomChannelDrop(BatchTransform):
    """Blank one channel of randomly chosen samples (modality dropout).

    Each sample is picked with probability ``p``; in a picked sample one channel, drawn
    uniformly from ``channels``, is set to ``fill`` everywhere. Applied after
    :class:`Normalize`, the default ``fill=0`` is that channel's training mean, so the
    network sees the cell as if that channel carried no information. A network trained this
    way has to classify from each channel alone as well as from both together, which keeps
    the cues of every channel in use instead of only the easiest one.

    Parameters
    ----------
    p : float
        Probability in ``[0, 1]`` that a sample loses a channel.
    channels : sequence of int, optional
        Indices of the channels that may be blanked (distinct, ``>= 0``); every channel when
        ``None``, which needs at least two channels in the input so that no sample is left
        blank.
    fill : float, default 0.0
        Value written into the blanked channel.

    Raises
    ------
    TypeError, ValueError
        If ``p`` is not a probability, ``channels`` is empty, repeats an index or holds a
        negative or non-integer one, or ``fill`` is not a finite number.

    Examples
    --------
    >>> x = torch.ones(4, 2, 3, 3)
    >>> y = RandomChannelDrop(1.0, channels=[1])(x, generator=torch.Generator().manual_seed(0))
    >>> y[:, 0].sum().item(), y[:, 1].sum().item()
    (36.0, 0.0)
    """

    def __init__(
        self, p: float, *, channels: Sequence[int] | None = None, fill: float = 0.0
    ) -> None:
        self.p = check_probability("p", p, inclusive_high=True)
        self.channels: tuple[int, ...] | None = None
        if channels is not None:
            if not isinstance(channels, (list, tuple)):
                raise TypeError(f"channels must be a sequence of ints or None, got {channels!r}")
            items = [as_builtin_number(c) for c in channels]
            indices = [c for c in items if isinstance(c, int) and not isinstance(c, bool)]
            if not items or len(indices) != len(items) or min(indices) < 0:
                raise ValueError(
                    f"channels must be a non-empty sequence of channel indices >= 0, got "
                    f"{channels!r}"
                )
            if len(set(indices)) != len(indices):
                raise ValueError(f"channels must not repeat an index, got {channels!r}")
            self.channels = tuple(indices)
        fill = as_builtin_number(fill)  # type: ignore[assignment]
        if isinstance(fill, bool) or not isinstance(fill, (int, float)):
            raise TypeError(f"fill must be a finite number, got {fill!r}")
        if not math.isfinite(fill):
            raise ValueError(f"fill must be a finite number, got {fill!r}")
        self.fill = float(fill)

    def apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Blank one channel of each sample picked with probability ``p``.

        Parameters
        ----------
        x : Tensor
            Floating-point ``(B, C, H, W)`` batch.
        generator : torch.Generator or None
            Source of randomness.

        Returns
        -------
        Tensor
            A new batch; the picked samples have one channel set to ``fill``.

        Raises
        ------
        TypeError
            If ``x`` is not floating point.
        ValueError
            If ``channels`` names a channel that ``x`` does not have, or it is ``None`` and
            ``x`` has a single channel.

        Examples
        --------
        >>> RandomChannelDrop(0.0).apply(torch.ones(2, 2, 1, 1), None).sum().item()
        4.0
        """
        _check_floating(x, "RandomChannelDrop")
        b, c = x.shape[:2]
        if self.channels is None:
            if c < 2:
                raise ValueError(
                    f"x must have at least 2 channels for RandomChannelDrop(channels=None), "
                    f"got shape {tuple(x.shape)!r}"
                )
            eligible = torch.arange(c)
        else:
            if max(self.channels) >= c:
                raise ValueError(
                    f"channels {self.channels!r} must index the {c} channel(s) of x, got "
                    f"shape {tuple(x.shape)!r}"
                )
            eligible = torch.tensor(self.channels)
        dev = _draw_device(generator)
        picked = torch.rand(b, generator=generator, device=dev) < self.p
        which = torch.randint(len(eligible), (b,), generator=generator, device=dev)
        # One (B, C) mask: True where a sample's channel is blanked.
        mask = torch.zeros(b, c, dtype=torch.bool)
        mask[torch.arange(b), eligible[which.cpu()]] = picked.cpu()
        mask = mask.to(x.device)[:, :, None, None]
        return x.masked_fill(mask, self.fill)

    def __repr__(self) -> str:
        return f"RandomChannelDrop(p={self.p}, channels={self.channels}, fill={self.fill})"


class RandomRotation(BatchTransform):
    """Rotate (and optionally rescale) every sample by its own random angle about its centre.

    Angles are drawn uniformly from ``degrees`` and zoom factors from ``scale``; output pixels
    are interpolated from the input (bilinearly, or from the nearest input pixel), and the
    corners that a rotation brings in from outside the image are filled by ``padding``. A
    positive angle turns the image counter-clockwise as displayed (row 0 at the top), as
    :func:`torch.rot90` does for ``k=1``. Angles are in pixel space, so non-square images
    rotate without shearing.

    Together with :class:`RandomDihedral`, ``degrees=45`` covers every orientation: the
    dihedral step picks the quarter turn, this one the angle within it. Unlike the dihedral
    symmetries, an angle that is not a multiple of 90 degrees resamples the pixels: bilinear
    interpolation smooths the image slightly, the nearest pixel keeps every value.

    Parameters
    ----------
    degrees : float or (float, float)
        Range of the angle in degrees; a number ``d`` means ``(-d, d)``.
    scale : (float, float), default (1.0, 1.0)
        Range of the zoom factor (above 1 enlarges the content); both must be positive.
    padding : {"reflection", "border", "zeros"}, default "reflection"
        How pixels from outside the image are filled: mirrored background, the nearest edge
        pixel, or zero.
    interpolation : {"bilinear", "nearest"}, default "bilinear"
        How output pixels are computed: bilinear interpolation (smooth, but it blurs fine
        texture slightly) or the value of the nearest input pixel (every output value is an
        input value, so the pixel statistics and texture are kept, at the cost of jagged
        edges).

    Raises
    ------
    TypeError, ValueError
        If ``degrees`` or ``scale`` is not a number or a finite ``(low, high)`` pair, a zoom
        factor is not positive, or ``padding`` or ``interpolation`` is not one of the
        choices.

    Examples
    --------
    >>> x = torch.arange(9.0).reshape(1, 1, 3, 3)
    >>> quarter = RandomRotation((90, 90))(x)
    >>> torch.allclose(quarter, torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)
    True
    >>> RandomRotation(30, scale=(0.9, 1.1))(torch.rand(4, 2, 40, 40)).shape
    torch.Size([4, 2, 40, 40])
    """

    _PADDING = ("reflection", "border", "zeros")
    _INTERPOLATION = ("bilinear", "nearest")

    def __init__(
        self,
        degrees: float | tuple[float, float],
        scale: tuple[float, float] = (1.0, 1.0),
        *,
        padding: str = "reflection",
        interpolation: str = "bilinear",
    ) -> None:
        if isinstance(degrees, (tuple, list)):
            self.degrees = _check_range("degrees", degrees)
        else:
            value = as_builtin_number(degrees)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"degrees must be a number or a (low, high) pair, got {degrees!r}")
            if not math.isfinite(value):
                raise ValueError(f"degrees must be finite, got {degrees!r}")
            self.degrees = (-abs(float(value)), abs(float(value)))
        self.scale = _check_range("scale", scale)
        if self.scale[0] <= 0:
            raise ValueError(f"scale must hold positive zoom factors, got {scale!r}")
        if padding not in self._PADDING:
            raise ValueError(f"padding must be one of {self._PADDING!r}, got {padding!r}")
        self.padding = padding
        if interpolation not in self._INTERPOLATION:
            raise ValueError(
                f"interpolation must be one of {self._INTERPOLATION!r}, got {interpolation!r}"
            )
        self.interpolation = interpolation

    def apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Rotate every sample of ``x`` by its own random angle.

        Parameters
        ----------
        x : Tensor
            Floating-point ``(B, C, H, W)`` batch.
        generator : torch.Generator or None
            Source of randomness.

        Returns
        -------
        Tensor
            The rotated batch, same dtype and device.

        Raises
        ------
        TypeError
            If ``x`` is not floating point.

        Examples
        --------
        >>> x = torch.rand(2, 1, 8, 8)
        >>> torch.allclose(RandomRotation(0).apply(x, None), x, atol=1e-6)
        True
        """
        _check_floating(x, "RandomRotation")
        b, _c, h, w = x.shape
        u = torch.rand((2, b), generator=generator, device=_draw_device(generator))
        u = u.to(x.device, torch.float64)
        angle = torch.deg2rad(self.degrees[0] + (self.degrees[1] - self.degrees[0]) * u[0])
        zoom = self.scale[0] + (self.scale[1] - self.scale[0]) * u[1]
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        zero = torch.zeros_like(cos)
        # affine_grid maps each output location (x right, y down, both in [-1, 1]) to the input
        # location it samples. Sampling at the inverse rotation turns the content by +angle
        # counter-clockwise on screen; the h/w factors keep the rotation rigid in pixels.
        theta = torch.stack(
            [
                torch.stack([cos, -sin * h / w, zero], dim=1),
                torch.stack([sin * w / h, cos, zero], dim=1),
            ],
            dim=1,
        )
        work = x if x.dtype in (torch.float32, torch.float64) else x.float()
        grid = functional.affine_grid(theta.to(work.dtype), list(work.shape), align_corners=False)
        out = functional.grid_sample(
            work, grid, mode=self.interpolation, padding_mode=self.padding, align_corners=False
        )
        return out.to(x.dtype)

    def __repr__(self) -> str:
        return (
            f"RandomRotation(degrees={self.degrees}, scale={self.scale}, padding={self.padding!r}, "
            f"interpolation={self.interpolation!r})"
        )


class Normalize(BatchTransform):
    """Standardise every channel: ``(x[:, c] - mean[c]) / std[c]``.

    Parameters
    ----------
    mean, std : sequence of float or Tensor
        One value per channel (``std`` values must be positive); for example the output of
        :func:`channel_stats`.

    Raises
    ------
    TypeError, ValueError
        If ``mean``/``std`` are not 1-D, differ in length, are not finite or ``std <= 0``.

    Examples
    --------
    >>> Normalize([1.0, 0.0], [2.0, 1.0])(torch.ones(2, 1, 1)).flatten()
    tensor([0., 1.])
    """

    def __init__(self, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> None:
        self.mean = self._as_vector("mean", mean)
        self.std = self._as_vector("std", std)
        if self.mean.shape != self.std.shape:
            raise ValueError(
                f"std must have one value per channel like mean ({self.mean.numel()}), "
                f"got {self.std.numel()} values"
            )
        if bool((self.std <= 0).any()):
            raise ValueError(f"std must be > 0 for every channel, got {self.std.tolist()!r}")

    @staticmethod
    def _as_vector(name: str, value: Sequence[float] | Tensor) -> Tensor:
        try:
            vec = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a sequence of numbers, got {value!r}") from None
        if vec.ndim != 1 or vec.numel() == 0:
            raise ValueError(f"{name} must be a non-empty 1-D sequence, got {value!r}")
        if not bool(torch.isfinite(vec).all()):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return vec

    def apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Normalise the channels of ``x`` (``generator`` is unused).

        Parameters
        ----------
        x : Tensor
            Floating-point ``(B, C, H, W)`` batch with ``C == len(mean)``.
        generator : torch.Generator or None
            Ignored; accepted for the common transform signature.

        Returns
        -------
        Tensor
            The normalised batch.

        Raises
        ------
        TypeError
            If ``x`` is not floating point.
        ValueError
            If the number of channels does not match ``mean``.

        Examples
        --------
        >>> Normalize([0.5], [0.25]).apply(torch.ones(1, 1, 1, 1), None).item()
        2.0
        """
        _check_floating(x, "Normalize")
        if x.shape[1] != self.mean.numel():
            raise ValueError(
                f"x must have {self.mean.numel()} channels to match mean/std, "
                f"got shape {tuple(x.shape)!r}"
            )
        mean = self.mean.to(x.device, x.dtype).view(1, -1, 1, 1)
        std = self.std.to(x.device, x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class CenterCropOrPad(BatchTransform):
    """Crop or pad every image around its centre to a fixed size.

    Each axis is cropped when it is larger than the target and padded with ``fill`` when it is
    smaller; an odd difference puts the extra pixel at the bottom/right. Works for any dtype.

    Parameters
    ----------
    size : int or (int, int)
        Target ``(height, width)``; an int means a square.
    fill : float, default 0.0
        Value of padded pixels. It must be representable in the images' dtype: a whole
        number in ``[0, 255]`` for ``uint8`` images, within the range of a floating dtype.

    Raises
    ------
    TypeError, ValueError
        If ``size`` is not a positive int or a pair of positive ints, or ``fill`` is not a
        finite number (when called: if the images' dtype cannot hold ``fill``).

    Examples
    --------
    >>> CenterCropOrPad(4)(torch.ones(1, 2, 6)).shape
    torch.Size([1, 4, 4])
    >>> CenterCropOrPad((1, 3))(torch.arange(9.0).reshape(1, 3, 3))
    tensor([[[3., 4., 5.]]])
    """

    def __init__(self, size: int | tuple[int, int], fill: float = 0.0) -> None:
        size = as_builtin_number(size)  # type: ignore[assignment]
        if isinstance(size, int) and not isinstance(size, bool):
            size = (size, size)
        if not isinstance(size, (tuple, list)) or len(size) != 2:
            raise TypeError(f"size must be a positive int or a (height, width) pair, got {size!r}")
        check_positive_int("size[0]", size[0])
        check_positive_int("size[1]", size[1])
        fill = as_builtin_number(fill)  # type: ignore[assignment]
        if isinstance(fill, bool) or not isinstance(fill, (int, float)):
            raise TypeError(f"fill must be a number, got {fill!r}")
        if not math.isfinite(fill):
            raise ValueError(f"fill must be a finite number, got {fill!r}")
        self.size = (int(size[0]), int(size[1]))
        self.fill = float(fill)

    def _check_fill(self, dtype: torch.dtype) -> None:
        if dtype == torch.bool:
            ok = self.fill in (0.0, 1.0)
            expected = "0 or 1"
        elif dtype.is_floating_point:
            ok = abs(self.fill) <= torch.finfo(dtype).max
            expected = f"a number within the {dtype} range"
        else:
            info = torch.iinfo(dtype)
            ok = self.fill.is_integer() and info.min <= self.fill <= info.max
            expected = f"a whole number in [{info.min}, {info.max}]"
        if not ok:
            raise ValueError(f"fill must be {expected} for {dtype} images, got {self.fill!r}")

    def apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Crop or pad ``x`` to ``size`` (``generator`` is unused).

        Parameters
        ----------
        x : Tensor
            ``(B, C, H, W)`` batch.
        generator : torch.Generator or None
            Ignored; accepted for the common transform signature.

        Returns
        -------
        Tensor
            ``(B, C, size[0], size[1])`` batch.

        Examples
        --------
        >>> CenterCropOrPad(3).apply(torch.zeros(2, 1, 5, 1), None).shape
        torch.Size([2, 1, 3, 3])
        """
        h, w = x.shape[-2:]
        th, tw = self.size
        top, left = (h - th) // 2, (w - tw) // 2
        if h > th:
            x = x[:, :, top : top + th]
        if w > tw:
            x = x[:, :, :, left : left + tw]
        pad_h, pad_w = max(th - h, 0), max(tw - w, 0)
        if pad_h or pad_w:
            self._check_fill(x.dtype)
            pad = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
            x = functional.pad(x, pad, mode="constant", value=self.fill)
        return x

    def __repr__(self) -> str:
        return f"CenterCropOrPad(size={self.size}, fill={self.fill})"


class Compose(BatchTransform):
    """Apply transforms one after another, passing the same generator to each.

    Large batches are processed ``chunk_size`` samples at a time, running every transform on a
    chunk before moving to the next: the chunk stays in the CPU cache between transforms, which
    is up to about twice as fast as streaming the whole batch through memory once per transform.
    Random draws then happen chunk by chunk, so a batch larger than ``chunk_size`` gets
    different (equally valid, still seeded) draws than without chunking.

    Parameters
    ----------
    transforms : iterable of callables
        Each called as ``t(x, generator=generator)``.
    chunk_size : int or None, default 256
        Samples per chunk; ``None`` applies each transform to the whole batch.

    Raises
    ------
    TypeError
        If an element is not callable.

    Examples
    --------
    >>> aug = Compose([RandomDihedral(), RandomTranslate(4), GaussianNoise(0.01)])
    >>> aug(torch.rand(16, 1, 66, 66), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([16, 1, 66, 66])
    """

    def __init__(
        self, transforms: Iterable[BatchTransform], *, chunk_size: int | None = 256
    ) -> None:
        self.transforms = list(transforms)
        for i, t in enumerate(self.transforms):
            if not callable(t):
                raise TypeError(f"transforms[{i}] must be callable, got {t!r}")
        if chunk_size is not None:
            check_positive_int("chunk_size", chunk_size)
        self.chunk_size = chunk_size

    def apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Apply every transform in order.

        Parameters
        ----------
        x : Tensor
            ``(B, C, H, W)`` batch.
        generator : torch.Generator or None
            Passed to every transform.

        Returns
        -------
        Tensor
            The transformed batch.

        Examples
        --------
        >>> Compose([]).apply(torch.ones(1, 1, 1, 1), None).item()
        1.0
        """
        if self.chunk_size is not None and x.shape[0] > self.chunk_size:
            return torch.cat([self.apply(c, generator) for c in torch.split(x, self.chunk_size)])
        for t in self.transforms:
            x = t(x, generator=generator)
        return x

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


def _merge_stats(
    count: int, mean: Tensor, m2: Tensor, n: int, batch_mean: Tensor, batch_m2: Tensor
) -> tuple[int, Tensor, Tensor]:
    # Chan et al.'s pairwise update: numerically stable for any number of chunks.
    total = count + n
    delta = batch_mean - mean
    mean = mean + delta * (n / total)
    m2 = m2 + batch_m2 + delta**2 * (count * n / total)
    return total, mean, m2


def channel_stats(
    images: Tensor | Iterable[Tensor | Sequence[Tensor]], *, chunk_size: int = 1024
) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (population) standard deviation in one pass over the images.

    Integer images are mapped to ``[0, 1]`` first with :func:`to_float_images`, so the result
    can be passed straight to :class:`Normalize` for the float images the data sets return.
    Accumulation is in float64 with a chunked, numerically stable merge, so memory stays
    bounded by ``chunk_size`` images.

    Parameters
    ----------
    images : Tensor or iterable
        A ``(N, C, H, W)`` tensor, or an iterable of ``(B, C, H, W)`` batches (or of
        ``(images, labels)`` tuples, as a ``DataLoader`` yields).
    chunk_size : int, default 1024
        Number of images converted to float64 at a time.

    Returns
    -------
    mean, std : Tensor
        float64 tensors of shape ``(C,)``.

    Raises
    ------
    TypeError
        If a batch is not a tensor.
    ValueError
        If a batch is not 4-D, channel counts differ, or there are no images.

    Examples
    --------
    >>> x = torch.tensor([[[[0.0, 2.0]], [[1.0, 1.0]]]])  # one image, 2 channels, 1x2 pixels
    >>> mean, std = channel_stats(x)
    >>> mean.tolist(), std.tolist()
    ([1.0, 1.0], [1.0, 0.0])
    """
    check_positive_int("chunk_size", chunk_size)
    batches: Iterable[Tensor | Sequence[Tensor]] = (
        [images] if isinstance(images, Tensor) else images
    )
    count = 0
    mean = m2 = torch.zeros(0, dtype=torch.float64)
    for item in batches:
        batch = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(batch, Tensor):
            raise TypeError(f"images must be a tensor or an iterable of tensors, got {batch!r}")
        if batch.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(batch.shape)!r}")
        for chunk in torch.split(batch, chunk_size):
            x = to_float_images(chunk, torch.float64).transpose(0, 1).reshape(chunk.shape[1], -1)
            n = x.shape[1]
            if n == 0:
                continue
            chunk_mean = x.mean(dim=1)
            chunk_m2 = ((x - chunk_mean[:, None]) ** 2).sum(dim=1)
            if count == 0:
                count, mean, m2 = n, chunk_mean, chunk_m2
                continue
            if chunk_mean.shape != mean.shape:
                raise ValueError(
                    f"images must all have {mean.numel()} channels, got a batch with "
                    f"{chunk_mean.numel()}"
                )
            count, mean, m2 = _merge_stats(count, mean, m2, n, chunk_mean, chunk_m2)
    if count == 0:
        raise ValueError("images must contain at least one pixel, got an empty input")
    return mean.cpu(), (m2 / count).sqrt().cpu()
