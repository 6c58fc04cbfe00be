"""Image to patch tokens: a strided convolution, with a policy for sides that the patch misses."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.functional import pad

from cellvision.config import check_choice, check_positive_int
from cellvision.layers._checks import check_image_batch

__all__ = ["PATCH_REMAINDER_POLICIES", "PatchEmbed", "PatchRemainder", "patch_grid_size"]

#: Policy for an image side that is not a multiple of the patch size (see :func:`patch_grid_size`).
PatchRemainder = Literal["pad", "crop", "raise"]
#: The accepted :data:`PatchRemainder` values.
PATCH_REMAINDER_POLICIES: tuple[PatchRemainder, ...] = ("pad", "crop", "raise")


def patch_grid_size(size: int, patch_size: int, remainder: PatchRemainder = "pad") -> int:
    """Return the number of patches along one image side under a remainder policy.

    Parameters
    ----------
    size : int
        Image side in pixels.
    patch_size : int
        Patch side in pixels.
    remainder : {"pad", "crop", "raise"}, default "pad"
        ``"pad"`` zero-pads the image (centred) up to the next multiple of ``patch_size``;
        ``"crop"`` centre-crops it down to the previous multiple; ``"raise"`` rejects sizes
        that are not a multiple.

    Returns
    -------
    int
        Patches per side.

    Raises
    ------
    ValueError
        If the size is not a multiple under ``"raise"``, or smaller than one patch under
        ``"crop"``.

    Examples
    --------
    >>> patch_grid_size(66, 16, "pad"), patch_grid_size(66, 16, "crop")
    (5, 4)
    >>> patch_grid_size(66, 16, "raise")
    Traceback (most recent call last):
        ...
    ValueError: img_size must be a multiple of patch_size=16 when patch_remainder='raise', got 66
    """
    check_positive_int("img_size", size)
    check_positive_int("patch_size", patch_size)
    check_choice("patch_remainder", remainder, PATCH_REMAINDER_POLICIES)
    if remainder == "pad":
        return -(-size // patch_size)
    if remainder == "crop":
        if size < patch_size:
            raise ValueError(
                f"img_size must be at least patch_size={patch_size} when "
                f"patch_remainder='crop', got {size!r}"
            )
        return size // patch_size
    if size % patch_size != 0:
        raise ValueError(
            f"img_size must be a multiple of patch_size={patch_size} when "
            f"patch_remainder='raise', got {size!r}"
        )
    return size // patch_size


class PatchEmbed(nn.Module):
    """Split an image into non-overlapping patches and project each to ``emb_size``.

    The projection is a ``Conv2d`` with kernel and stride ``patch_size``, which is the same as
    flattening every patch and applying one shared linear layer.

    Parameters
    ----------
    img_size : int
        Expected (square) input side in pixels.
    patch_size : int
        Patch side in pixels.
    in_channels : int
        Input channels.
    emb_size : int
        Token width.
    remainder : {"pad", "crop", "raise"}, default "pad"
        What to do when a side is not a multiple of ``patch_size`` (see
        :func:`patch_grid_size`). Padding is centred with zeros, so a centred cell stays
        centred; e.g. a 66x66 Jurkat image becomes 80x80 (7 pixels each side), 5x5 patches.
    dynamic_img_size : bool, default False
        Accept inputs of any size (each side handled by ``remainder``); otherwise an input
        whose height or width differs from ``img_size`` raises ``ValueError``.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive integer or ``img_size`` is invalid under ``remainder``.

    Examples
    --------
    >>> embed = PatchEmbed(img_size=66, patch_size=16, in_channels=1, emb_size=8)
    >>> embed.grid_size, embed.num_patches
    ((5, 5), 25)
    >>> embed(torch.randn(2, 1, 66, 66)).shape
    torch.Size([2, 25, 8])
    """

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        in_channels: int,
        emb_size: int,
        *,
        remainder: PatchRemainder = "pad",
        dynamic_img_size: bool = False,
    ) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("emb_size", emb_size)
        side = patch_grid_size(img_size, patch_size, remainder)
        self.img_size = img_size
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.remainder: PatchRemainder = remainder
        self.dynamic_img_size = bool(dynamic_img_size)
        self.grid_size = (side, side)
        self.num_patches = side * side
        self.proj = nn.Conv2d(in_channels, emb_size, kernel_size=patch_size, stride=patch_size)

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise a clear error unless ``x`` is a valid image batch for this layer.

        Parameters
        ----------
        x : torch.Tensor
            Candidate input.
        name : str, default "x"
            Argument name used in the message.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point tensor.
        ValueError
            If ``x`` is not ``(B, C, H, W)``, has the wrong channel count, or (without
            ``dynamic_img_size``) the wrong height or width.

        Examples
        --------
        >>> embed = PatchEmbed(img_size=32, patch_size=16, in_channels=1, emb_size=8)
        >>> embed.check_input(torch.zeros(1, 3, 32, 32))
        Traceback (most recent call last):
            ...
        ValueError: x must have 1 channel(s) (in_channels), got shape (1, 3, 32, 32)
        """
        check_image_batch(x, self.in_channels, name=name)
        h, w = x.shape[-2], x.shape[-1]
        if self.dynamic_img_size:
            patch_grid_size(h, self.patch_size, self.remainder)
            patch_grid_size(w, self.patch_size, self.remainder)
        elif h != self.img_size or w != self.img_size:
            raise ValueError(
                f"{name} must be {self.img_size}x{self.img_size} (img_size), got shape "
                f"{tuple(x.shape)}; set dynamic_img_size=True to accept other sizes"
            )

    def output_grid(self, height: int, width: int) -> tuple[int, int]:
        """Return the patch grid ``(rows, cols)`` for an input of the given size.

        Parameters
        ----------
        height, width : int
            Input size in pixels.

        Returns
        -------
        tuple of int
            Patches along the height and the width.

        Examples
        --------
        >>> PatchEmbed(64, 16, 1, 8, dynamic_img_size=True).output_grid(66, 40)
        (5, 3)
        """
        return (
            patch_grid_size(height, self.patch_size, self.remainder),
            patch_grid_size(width, self.patch_size, self.remainder),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return patch tokens of shape ``(B, rows * cols, emb_size)``, row-major.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(B, in_channels, H, W)``, any memory format.

        Returns
        -------
        torch.Tensor
            The tokens.

        Raises
        ------
        TypeError, ValueError
            As :meth:`check_input`.

        Examples
        --------
        >>> PatchEmbed(32, 16, 3, 4)(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 4, 4])
        """
        self.check_input(x)
        x = _fit_to_patches(x, self.patch_size, self.remainder)
        tokens: torch.Tensor = self.proj(x)
        return tokens.flatten(2).transpose(1, 2)


def _fit_to_patches(x: torch.Tensor, patch: int, remainder: PatchRemainder) -> torch.Tensor:
    h, w = x.shape[-2], x.shape[-1]
    if h % patch == 0 and w % patch == 0:
        return x
    rows, cols = patch_grid_size(h, patch, remainder), patch_grid_size(w, patch, remainder)
    dh, dw = rows * patch - h, cols * patch - w
    if remainder == "pad":
        return pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
    top, left = -dh // 2, -dw // 2  # dh, dw <= 0 when cropping
    return x[..., top : top + rows * patch, left : left + cols * patch]
