"""Convolution blocks: ``Conv2d -> BatchNorm2d -> ReLU -> Dropout`` at constant spatial size, and
the two-convolution residual block of the small residual networks."""

from __future__ import annotations

import torch
from torch import nn

from cellvision.config import as_builtin_number, check_positive_int, check_probability

__all__ = ["ConvBlock", "ResidualBlock", "check_odd_kernel_size"]


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


class ResidualBlock(nn.Module):
    """Basic residual block: two 3x3 ``Conv -> BatchNorm`` with a ReLU between, plus a shortcut.

    ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``. The first convolution has the
    block's ``stride``; when the stride or the channel count changes, the shortcut is a strided
    1x1 ``Conv -> BatchNorm`` projection, otherwise the identity. Convolutions have no bias (the
    batch norms shift).

    Parameters
    ----------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    stride : int, default 1
        Stride of the first convolution and of the projection (2 halves height and width,
        rounding up).

    Raises
    ------
    TypeError, ValueError
        If a size or the stride is not a positive integer.

    References
    ----------
    K. He, X. Zhang, S. Ren, J. Sun, "Deep residual learning for image recognition", CVPR 2016.

    Examples
    --------
    >>> block = ResidualBlock(8, 16, stride=2)
    >>> block(torch.randn(2, 8, 9, 9)).shape
    torch.Size([2, 16, 5, 5])
    >>> ResidualBlock(8, 8).shortcut
    Identity()
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("stride", stride)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Parameters
        ----------
        x : torch.Tensor
            Shape ``(B, in_channels, H, W)``.

        Returns
        -------
        torch.Tensor
            Shape ``(B, out_channels, ceil(H / stride), ceil(W / stride))``, after the final
            ReLU.

        Examples
        --------
        >>> bool((ResidualBlock(2, 3)(torch.randn(4, 2, 5, 5)) >= 0).all())
        True
        """
        identity = self.shortcut(x)
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        result: torch.Tensor = self.act(out + identity)
        return result


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
