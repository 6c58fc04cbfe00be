"""Test-time augmentation: average a classifier's probabilities over symmetries of the image.

Cells in flow-cytometry images have no preferred orientation, so a prediction should not depend
on how an image is rotated or mirrored. :func:`predict_tta` runs the model once on every
transformed copy of a batch (all copies in one batched forward pass) and averages the softmax
probabilities; :func:`dihedral_views` builds the copies. The symmetries are numbered like
:class:`cellvision.data.transforms.RandomDihedral`: symmetry ``k`` mirrors the width when
``k >= 4``, then rotates by ``k % 4`` quarter turns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Literal, TypeAlias

import torch
from torch import Tensor, nn

from cellvision.config import check_choice, check_positive_int

__all__ = ["TTA_GROUPS", "TTAGroup", "dihedral_views", "predict_tta"]

#: Symmetry groups :func:`predict_tta` averages over.
TTAGroup: TypeAlias = Literal["d4", "flips", "none"]

#: Number of transforms in each group: ``"d4"`` the 8 symmetries of the square (4 rotations,
#: each optionally mirrored; square images only), ``"flips"`` the identity, the two mirrors and
#: their composition (the half turn; any image shape), ``"none"`` the identity only.
TTA_GROUPS: dict[str, int] = {"d4": 8, "flips": 4, "none": 1}

# (mirror the width?, quarter turns) per symmetry, in RandomDihedral's numbering.
_D4: tuple[tuple[bool, int], ...] = tuple((k >= 4, k % 4) for k in range(8))
# identity, width mirror, height mirror (= width mirror + half turn), half turn.
_FLIPS: tuple[tuple[bool, int], ...] = ((False, 0), (True, 0), (True, 2), (False, 2))


def _group_ops(group: str) -> tuple[tuple[bool, int], ...]:
    check_choice("group", group, tuple(TTA_GROUPS))
    return {"d4": _D4, "flips": _FLIPS, "none": ((False, 0),)}[group]


def _check_images(images: object) -> Tensor:
    if not isinstance(images, Tensor) or not images.is_floating_point():
        got = f"dtype {images.dtype}" if isinstance(images, Tensor) else type(images).__name__
        raise TypeError(f"images must be a floating-point tensor, got {got}")
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            f"images must be a non-empty (batch, channels, height, width) tensor, "
            f"got shape {tuple(images.shape)}"
        )
    return images


def dihedral_views(images: Tensor, group: TTAGroup = "d4") -> Tensor:
    """Stack the transformed copies of a batch, one per symmetry of ``group``.

    Parameters
    ----------
    images : torch.Tensor
        ``(B, C, H, W)`` floating images (square for ``"d4"``), on any device.
    group : {"d4", "flips", "none"}, default "d4"
        The symmetries (see :data:`TTA_GROUPS`).

    Returns
    -------
    torch.Tensor
        ``(G, B, C, H, W)``; entry ``k`` is symmetry ``k`` applied to every image.

    Raises
    ------
    TypeError
        If ``images`` is not a floating tensor.
    ValueError
        If ``images`` is not a non-empty 4-D batch, ``group`` is unknown, or the images are not
        square for ``"d4"``.

    Examples
    --------
    >>> x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    >>> views = dihedral_views(x)
    >>> views.shape
    torch.Size([8, 1, 1, 2, 2])
    >>> views[1, 0, 0]  # a quarter turn (counter-clockwise)
    tensor([[2., 4.],
            [1., 3.]])
    >>> views[4, 0, 0]  # the width mirrored
    tensor([[2., 1.],
            [4., 3.]])
    """
    images = _check_images(images)
    ops = _group_ops(group)
    h, w = images.shape[-2:]
    if group == "d4" and h != w:
        raise ValueError(
            f"images must be square for group='d4' (rotations), got H={h}, W={w}; "
            "use group='flips' for other shapes"
        )
    views = []
    for mirror, turns in ops:
        view = images.flip(-1) if mirror else images
        views.append(torch.rot90(view, turns, dims=(2, 3)) if turns else view)
    return torch.stack(views)


def predict_tta(
    model: nn.Module,
    images: Tensor,
    group: TTAGroup = "d4",
    *,
    batch_size: int | None = None,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    to_probabilities: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Class probabilities averaged over the symmetries of ``group`` (test-time augmentation).

    All ``G`` transformed copies of a chunk of images go through the model in one batched
    forward pass (``G * batch_size`` images), in eval mode and without gradients; the model's
    train/eval mode is restored afterwards. The softmax probabilities (computed in float32)
    of the copies are averaged, which for a model that is already invariant changes nothing.
    For post-hoc logit adjustment on top, pass ``predict_tta(...).log()`` to
    :func:`cellvision.losses.adjust_logits`.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits ``(N, n_classes)``, on the device of ``images``.
    images : torch.Tensor
        ``(B, C, H, W)`` floating images (square for ``"d4"``).
    group : {"d4", "flips", "none"}, default "d4"
        The symmetries to average over (see :data:`TTA_GROUPS`); ``"none"`` is a plain
        softmax prediction.
    batch_size : int, optional
        Images per forward pass (each pass then holds ``G * batch_size`` views), to bound the
        memory; default: the whole batch in one pass.
    amp_dtype : torch.dtype, optional
        Run the forward pass under :func:`torch.autocast` with this dtype (for example
        ``torch.bfloat16``) on the images' device type.
    channels_last : bool, default False
        Give the model the views in ``torch.channels_last`` memory format (faster convolutions
        on GPUs for models trained that way).
    to_probabilities : callable, optional
        Maps the float32 logits ``(N, n_classes)`` to probabilities; default: the softmax. For
        a model trained with :func:`cellvision.losses.one_vs_all_loss` pass
        :func:`cellvision.losses.one_vs_all_probabilities`.

    Returns
    -------
    torch.Tensor
        ``(B, n_classes)`` float32 probabilities on the device of ``images``; rows sum to one
        (when ``to_probabilities``' rows do).

    Raises
    ------
    TypeError, ValueError
        If ``images`` or ``group`` are invalid (see :func:`dihedral_views`), ``batch_size`` is
        not a positive integer, ``amp_dtype`` is not a floating dtype, or the model does not
        return ``(N, n_classes)`` logits.

    References
    ----------
    A. Krizhevsky, I. Sutskever and G. E. Hinton, "ImageNet Classification with Deep
    Convolutional Neural Networks", NeurIPS 2012 (averaging predictions over flipped crops).

    Examples
    --------
    >>> from cellvision.models import create_model
    >>> _ = torch.manual_seed(0)
    >>> model = create_model("convnet", n_classes=3, channels=4, n_blocks=1)
    >>> images = torch.randn(5, 1, 16, 16)
    >>> probs = predict_tta(model, images)
    >>> probs.shape, bool(torch.allclose(probs.sum(1), torch.ones(5)))
    (torch.Size([5, 3]), True)
    >>> torch.allclose(predict_tta(model, images, batch_size=2), probs, atol=1e-6)
    True
    """
    images = _check_images(images)
    n_views = len(_group_ops(group))
    if batch_size is None:
        batch_size = images.shape[0]
    check_positive_int("batch_size", batch_size)
    if amp_dtype is not None and (
        not isinstance(amp_dtype, torch.dtype) or not amp_dtype.is_floating_point
    ):
        raise TypeError(f"amp_dtype must be a floating torch.dtype or None, got {amp_dtype!r}")
    if not isinstance(channels_last, bool):
        raise TypeError(f"channels_last must be a bool, got {channels_last!r}")
    if to_probabilities is not None and not callable(to_probabilities):
        raise TypeError(f"to_probabilities must be callable or None, got {to_probabilities!r}")
    convert = to_probabilities

    was_training = model.training
    model.eval()
    chunks = []
    try:
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                chunk = images[start : start + batch_size]
                views = dihedral_views(chunk, group).flatten(0, 1)
                if channels_last:
                    views = views.contiguous(memory_format=torch.channels_last)
                autocast = (
                    torch.autocast(images.device.type, dtype=amp_dtype)
                    if amp_dtype is not None
                    else contextlib.nullcontext()
                )
                with autocast:
                    logits = model(views)
                if not isinstance(logits, Tensor) or logits.ndim != 2:
                    shape = tuple(logits.shape) if isinstance(logits, Tensor) else logits
                    raise ValueError(f"model must return (N, n_classes) logits, got {shape!r}")
                logits = logits.float()
                probs = logits.softmax(dim=1) if convert is None else convert(logits)
                chunks.append(probs.reshape(n_views, chunk.shape[0], -1).mean(dim=0))
    finally:
        model.train(was_training)
    return torch.cat(chunks)
