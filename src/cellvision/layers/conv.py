"""Convolution block: ``Conv2d -> BatchNorm2d -> ReLU -> Dropout`` at constant spatial size."""

from __future__ import annotations

import torch
from torch import nn

from cellvision.config import as_builtin_number, check_positive_int, check_probability

__all__ = ["ConvBlock", "check_odd_kernel_size"]


class ConvBlock(nn.Module):
    """``Conv2d -> BatchNorm2d -> ReLU -> Dropout``, keeping the height and width.

    The convolution has stride 1, padding ``kernel_size // 2`` and no bias (the batch norm's
    shift makes a bias redundant).

    Parameters
    ----------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    kernel_size : int, default 3
        Odd kernel side, so the padding keeps the size.
    dropout : float, default 0.0
        Element-wise dropout rate after the ReLU (training mode only), in ``[0, 1)``.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive integer, ``kernel_size`` is even or ``dropout`` is outside
        ``[0, 1)``.

    Examples
    --------
    >>> block = ConvBlock(1, 4)
    >>> block(torch.randn(2, 1, 9, 9)).shape
    torch.Size([2, 4, 9, 9])
    >>> ConvBlock(1, 4, kernel_size=2)
    Traceback (most recent call last):
        ...
    ValueError: kernel_size must be an odd positive integer, got 2
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_odd_kernel_size(kernel_size)
        check_probability("dropout", dropout)
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False
        )
        self.norm = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Parameters
        ----------
        x : torch.Tensor
            Shape ``(B, in_channels, H, W)``.

        Returns
        -------
        torch.Tensor
            Shape ``(B, out_channels, H, W)``.

        Examples
        --------
        >>> bool((ConvBlock(2, 3)(torch.randn(4, 2, 5, 5)) >= 0).all())  # after the ReLU
        True
        """
        out: torch.Tensor = self.drop(self.act(self.norm(self.conv(x))))
        return out


def check_odd_kernel_size(kernel_size: object, name: str = "kernel_size") -> None:
    """Raise unless ``kernel_size`` is an odd positive integer.

    Parameters
    ----------
    kernel_size : object
        The value to check.
    name : str, default "kernel_size"
        Argument name used in the message.

    Raises
    ------
    TypeError
        If it is not an integer.
    ValueError
        If it is not positive or even.

    Examples
    --------
    >>> check_odd_kernel_size(3)
    >>> check_odd_kernel_size(4)
    Traceback (most recent call last):
        ...
    ValueError: kernel_size must be an odd positive integer, got 4
    """
    kernel_size = as_builtin_number(kernel_size)
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise TypeError(f"{name} must be an odd positive integer, got {kernel_size!r}")
    if kernel_size <= 0 or kernel_size % 2 == 0:
        raise ValueError(f"{name} must be an odd positive integer, got {kernel_size!r}")
