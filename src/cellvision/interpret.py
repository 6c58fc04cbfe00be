"""Class activation maps: where in an image a classifier finds the evidence for a class.

:func:`class_activation_maps` returns one non-negative map per image at the image's
resolution, scaled so its maximum is one. For a :class:`~cellvision.models.ConvNet` it is
Grad-CAM on the last convolution block; for a :class:`~cellvision.models.ViT` it is attention
rollout, by default the gradient-weighted (class-specific) variant. Draw the maps over the
images with :func:`cellvision.plotting.plot_activation_maps`.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator
from typing import Any, Literal, TypeAlias

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.functional import interpolate

from cellvision.config import check_choice
from cellvision.layers.attention import MultiHeadSelfAttention
from cellvision.models import ConvNet, ResNet, ViT, unwrap_model

__all__ = ["CAMMethod", "class_activation_maps"]

#: Map methods: ``"auto"`` picks ``"gradcam"`` for convolutional models and ``"grad_rollout"``
#: for the ViT; ``"rollout"`` is plain (class-agnostic) attention rollout.
CAMMethod: TypeAlias = Literal["auto", "gradcam", "rollout", "grad_rollout"]
_METHODS: tuple[CAMMethod, ...] = ("auto", "gradcam", "rollout", "grad_rollout")


def class_activation_maps(
    model: nn.Module,
    images: Tensor,
    target: int | Tensor | None = None,
    *,
    method: CAMMethod = "auto",
    layer: nn.Module | None = None,
) -> Tensor:
    r"""Return one class activation map per image, ``(B, H, W)``, non-negative, max one.

    ``"gradcam"`` (convolutional models): with activations :math:`A^k` of the chosen layer
    (default: the last block of a :class:`~cellvision.models.ConvNet`, the last residual block
    of a :class:`~cellvision.models.ResNet`) and the target logit
    :math:`y`, the map is :math:`\mathrm{ReLU}(\sum_k \alpha_k A^k)` with
    :math:`\alpha_k` the spatial mean of :math:`\partial y / \partial A^k`, upsampled
    bilinearly to the image.

    ``"rollout"`` (ViT): per block the head-averaged attention plus the residual identity,
    :math:`\tfrac12 (\bar A + I)`, multiplied through the blocks; the map is the pooled
    token's row over the patch tokens. It shows where information flows, the same for every
    class (``target`` is ignored).

    ``"grad_rollout"`` (ViT, the default there): the class-specific variant that weights each
    attention map by its gradient, :math:`\bar A = \mathbb{E}_h[(\nabla A \odot A)^+]`, and
    accumulates :math:`R \leftarrow R + \bar A R` from :math:`R = I`.

    For ``pool="mean"`` ViTs the pooled token's row is the mean of the patch tokens' rows.
    Patch maps are upsampled to the patch grid's pixels and then cropped (``"pad"`` policy)
    or padded with zeros (``"crop"`` policy: the model never sees the border) to the image.
    The model runs in eval mode (restored afterwards) with gradients enabled for the maps
    only; parameter ``.grad`` fields are not touched.

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`~cellvision.models.ConvNet`, :class:`~cellvision.models.ResNet` or
        :class:`~cellvision.models.ViT` (DDP or
        ``torch.compile`` wrappers are unwrapped), or any CNN with ``layer`` given.
    images : torch.Tensor
        ``(B, C, H, W)`` floating images on the model's device.
    target : int or torch.Tensor, optional
        Class whose evidence is mapped: one index for all images or ``(B,)`` indices;
        default: each image's predicted class.
    method : {"auto", "gradcam", "rollout", "grad_rollout"}, default "auto"
        See above; the rollouts need a ViT.
    layer : torch.nn.Module, optional
        The module whose ``(B, K, h, w)`` output Grad-CAM uses (default for a ConvNet: its
        last convolution block; for a ResNet: its last residual block).

    Returns
    -------
    torch.Tensor
        ``(B, H, W)`` float32 maps on the images' device, each scaled to maximum one (a map
        with no positive evidence stays all zero).

    Raises
    ------
    TypeError
        If ``images`` is not a floating tensor, ``target`` is not an integer or integer
        tensor, or the model type does not fit the method (and no ``layer`` is given).
    ValueError
        If ``images`` is not a 4-D batch, ``target`` has the wrong shape or a class out of
        range, ``method`` is unknown, or the layer's output is not 4-D.

    References
    ----------
    R. R. Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", ICCV 2017.
    S. Abnar and W. Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020.
    H. Chefer, S. Gur and L. Wolf, "Generic Attention-model Explainability for Interpreting
    Bi-Modal and Encoder-Decoder Transformers", ICCV 2021 (gradient-weighted rollout).

    Examples
    --------
    >>> from cellvision.models import create_model
    >>> _ = torch.manual_seed(0)
    >>> images = torch.randn(2, 1, 32, 32)
    >>> convnet = create_model("convnet", n_classes=3, channels=8, n_blocks=2)
    >>> maps = class_activation_maps(convnet, images, target=1)
    >>> maps.shape, bool(maps.min() >= 0), maps.amax(dim=(1, 2)).tolist()
    (torch.Size([2, 32, 32]), True, [1.0, 1.0])
    >>> vit = create_model("vit", img_size=32, patch_size=8, n_classes=3, n_blks=2,
    ...                    emb_size=16, n_heads=2, hidden_size=32)
    >>> class_activation_maps(vit, images, method="rollout").shape
    torch.Size([2, 32, 32])
    """
    if not isinstance(images, Tensor) or not images.is_floating_point():
        got = f"dtype {images.dtype}" if isinstance(images, Tensor) else type(images).__name__
        raise TypeError(f"images must be a floating-point tensor, got {got}")
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            "images must be a non-empty (batch, channels, height, width) tensor, "
            f"got shape {tuple(images.shape)}"
        )
    check_choice("method", method, _METHODS)
    inner = unwrap_model(model)
    if layer is not None and not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be an nn.Module or None, got {type(layer).__name__}")
    vit = inner if isinstance(inner, ViT) else None
    if method == "auto":
        method = "grad_rollout" if vit is not None and layer is None else "gradcam"
    cam_layer: nn.Module | None = None
    if method == "gradcam":
        cam_layer = layer if layer is not None else _last_conv_block(inner)
    elif vit is None:
        raise TypeError(f"method={method!r} needs a ViT, got {type(inner).__name__}")

    was_training = inner.training
    inner.eval()
    try:
        with torch.enable_grad():
            # A leaf that needs grad keeps the graph even when the parameters are frozen.
            x = images.detach().requires_grad_(True)
            if cam_layer is not None:
                maps = _grad_cam(inner, cam_layer, x, target)
            elif vit is not None:
                maps = _rollout(vit, x, target, weighted=method == "grad_rollout")
            else:  # pragma: no cover - excluded above
                raise TypeError(f"method={method!r} needs a ViT, got {type(inner).__name__}")
    finally:
        inner.train(was_training)
    peak = maps.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, maps / peak.clamp_min(torch.finfo(maps.dtype).tiny), 0.0)


def _last_conv_block(model: nn.Module) -> nn.Module:
    block: nn.Module
    if isinstance(model, ConvNet):
        block = model.blocks[-1]
    elif isinstance(model, ResNet):
        block = model.stages[-1]
    else:
        raise TypeError(
            "method='gradcam' needs a ConvNet, a ResNet or an explicit layer=, "
            f"got {type(model).__name__}"
        )
    return block


def _target_indices(target: object, logits: Tensor) -> Tensor:
    b, n_classes = logits.shape
    if target is None:
        return logits.detach().argmax(dim=1)
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"target must be integer class indices, got dtype {target.dtype}")
        if target.ndim == 0:
            target = target.expand(b)
        if target.shape != (b,):
            raise ValueError(f"target must have shape ({b},), got {tuple(target.shape)}")
        indices = target.to(device=logits.device, dtype=torch.long)
    elif isinstance(target, (bool, np.bool_)) or not hasattr(target, "__index__"):
        raise TypeError(f"target must be an int, an integer tensor or None, got {target!r}")
    else:  # Python or NumPy integer
        index = operator.index(target)
        indices = torch.full((b,), index, dtype=torch.long, device=logits.device)
    if bool(((indices < 0) | (indices >= n_classes)).any()):
        raise ValueError(f"target must be class indices in [0, {n_classes}), got {target!r}")
    return indices


def _target_score(model: nn.Module, x: Tensor, target: int | Tensor | None) -> Tensor:
    logits = model(x)
    if not isinstance(logits, Tensor) or logits.ndim != 2:
        raise ValueError("model must return (B, n_classes) logits")
    indices = _target_indices(target, logits)
    # Samples do not interact in eval mode, so one backward pass of the summed scores gives
    # every image the gradient of its own score.
    return logits.gather(1, indices.unsqueeze(1)).sum()


def _grad_cam(model: nn.Module, layer: nn.Module, x: Tensor, target: int | Tensor | None) -> Tensor:
    captured: list[Tensor] = []

    def keep(_module: nn.Module, _inputs: Any, output: Any) -> None:
        captured.append(output)

    handle = layer.register_forward_hook(keep)
    try:
        score = _target_score(model, x, target)
    finally:
        handle.remove()
    if len(captured) != 1 or not isinstance(captured[0], Tensor) or captured[0].ndim != 4:
        raise ValueError(
            "layer must run once per forward pass and return a (B, K, h, w) tensor, got "
            f"{[tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__ for a in captured]}"
        )
    activations = captured[0]
    (grads,) = torch.autograd.grad(score, activations)
    weights = grads.float().mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * activations.detach().float()).sum(dim=1, keepdim=True))
    size = (x.shape[-2], x.shape[-1])
    return interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0]


@contextlib.contextmanager
def _kept_attention(model: nn.Module) -> Iterator[list[MultiHeadSelfAttention]]:
    layers = [m for m in model.modules() if isinstance(m, MultiHeadSelfAttention)]
    for m in layers:
        m.keep_attention = True
    try:
        yield layers
    finally:
        for m in layers:
            m.keep_attention = False
            m.last_attention = None


def _rollout(model: ViT, x: Tensor, target: int | Tensor | None, *, weighted: bool) -> Tensor:
    with _kept_attention(model) as layers:
        if weighted:
            score = _target_score(model, x, target)
        else:
            with torch.no_grad():
                model(x)
        attentions = [m.last_attention for m in layers]
        if any(a is None for a in attentions):  # pragma: no cover - every block attends
            raise RuntimeError("every attention layer must run in the forward pass")
        kept = [a for a in attentions if a is not None]
        grads = torch.autograd.grad(score, kept) if weighted else [None] * len(kept)
    n = kept[0].shape[-1]
    eye = torch.eye(n, device=x.device, dtype=torch.float32)
    relevance = eye.expand(x.shape[0], n, n)
    for attn, grad in zip(kept, grads, strict=True):
        a = attn.detach().float()
        if grad is None:
            step = 0.5 * (a.mean(dim=1) + eye)  # rows still sum to one
            relevance = step @ relevance
        else:
            a_bar = (grad.float() * a).clamp_min(0.0).mean(dim=1)
            relevance = relevance + a_bar @ relevance
    pooled = relevance[:, 0, 1:] if model.config.pool == "cls" else relevance[:, 1:, 1:].mean(1)
    return _patch_map_to_image(model, pooled, x.shape[-2], x.shape[-1])


def _patch_map_to_image(model: ViT, patch_scores: Tensor, height: int, width: int) -> Tensor:
    embed = model.patch_embed
    p = embed.patch_size
    rows, cols = embed.output_grid(height, width)
    grid = patch_scores.reshape(-1, 1, rows, cols)
    covered = interpolate(grid, size=(rows * p, cols * p), mode="bilinear", align_corners=False)
    dh, dw = rows * p - height, cols * p - width
    if dh >= 0 and dw >= 0:  # padded (or exact): drop the padding
        top, left = dh // 2, dw // 2
        return covered[:, 0, top : top + height, left : left + width]
    # Cropped: the model never saw the border, which gets no relevance.
    out = covered.new_zeros(covered.shape[0], height, width)
    top, left = (-dh) // 2, (-dw) // 2
    out[:, top : top + rows * p, left : left + cols * p] = covered[:, 0]
    return out
