"""Tests for cellvision.interpret: Grad-CAM (ConvNet) and attention rollout (ViT)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.nn.functional import interpolate

from cellvision.interpret import class_activation_maps
from cellvision.layers import MultiHeadSelfAttention
from cellvision.models import ConvNet, ConvNetConfig, ResNet, ResNetConfig, ViT, ViTConfig


def _quadrant_mask(size: int, quadrant: int) -> Tensor:
    """1 inside quadrant 0 (top-left), 1 (top-right), 2 (bottom-left) or 3 (bottom-right)."""
    mask = torch.zeros(size, size)
    half = size // 2
    r, c = divmod(quadrant, 2)
    mask[r * half : (r + 1) * half, c * half : (c + 1) * half] = 1.0
    return mask


def _mass_in(maps: Tensor, mask: Tensor) -> Tensor:
    return (maps * mask).sum(dim=(1, 2)) / maps.sum(dim=(1, 2))


class _QuadrantConvNet(ConvNet):
    """A ConvNet that sees one quadrant only (the rest of the input is zeroed).

    Non-negative convolution weights, no stem bias and identity batch norms make the
    activations a blur of the (non-negative) quadrant, zero elsewhere; a non-negative head row
    makes class 1's logit grow with them.
    """

    def __init__(self, quadrant: int, size: int = 64) -> None:
        super().__init__(
            ConvNetConfig(n_classes=3, channels=8, n_blocks=2, img_size=size, mlp_hidden=None)
        )
        self.register_buffer("mask", _quadrant_mask(size, quadrant))
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    m.weight.abs_()
            self.stem.bias.zero_()
            self.classifier.weight[1].abs_()

    def forward_features(self, x: Tensor) -> Tensor:
        return super().forward_features(x * self.mask)


class _QuadrantResNet(ResNet):
    """A ResNet that sees one quadrant only: non-negative convolutions, identity batch norms
    (eval mode, fresh statistics) and a positive head row for class 1, as for the ConvNet."""

    def __init__(self, quadrant: int, size: int = 64) -> None:
        super().__init__(
            ResNetConfig(n_classes=3, widths=(8, 16), depths=(1, 1), stem_channels=8, stem_stride=1)
        )
        self.register_buffer("mask", _quadrant_mask(size, quadrant))
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    m.weight.abs_()
            self.head.weight[1] = torch.rand(self.head.weight.shape[1]) + 0.1

    def forward_features(self, x: Tensor) -> Tensor:
        return super().forward_features(x * self.mask)


def _focus_attention(model: ViT, token_mask: Tensor) -> None:
    """Make every query attend (almost) only to the patch tokens where ``token_mask`` is 1.

    Feature 0 of the residual stream becomes a position flag (4 on flagged tokens, 0 elsewhere;
    the patch embedding does not write it); each head's query is the constant e_0 and its key
    20 * LN(x)[0], so the attention logits separate flagged tokens by a wide margin.
    """
    d, h = model.config.emb_size, model.config.n_heads
    dh = d // h
    with torch.no_grad():
        model.patch_embed.proj.weight[0] = 0.0
        model.patch_embed.proj.bias[0] = 0.0
        model.pos_embed[0, :, 0] = 0.0
        model.pos_embed[0, 1:, 0] = 4.0 * token_mask.flatten()
        for block in model.blocks:
            weight, bias = block.attn.qkv.weight, block.attn.qkv.bias
            weight[: 2 * d] = 0.0
            bias[: 2 * d] = 0.0
            for head in range(h):
                bias[head * dh] = 1.0
                weight[d + head * dh, 0] = 20.0


class _QuadrantViT(ViT):
    """A ViT that sees one quadrant only and whose attention flows from that quadrant."""

    def __init__(self, quadrant: int, size: int = 32, patch: int = 8) -> None:
        super().__init__(
            ViTConfig(
                img_size=size,
                patch_size=patch,
                n_classes=3,
                n_blks=2,
                emb_size=16,
                n_heads=2,
                hidden_size=16,
            )
        )
        self.register_buffer("mask", _quadrant_mask(size, quadrant))
        _focus_attention(self, _quadrant_mask(size // patch, quadrant))

    def forward_tokens(self, x: Tensor) -> Tensor:
        return super().forward_tokens(x * self.mask)


def _depends_only_on_the_mask(model: nn.Module, x: Tensor, mask: Tensor) -> bool:
    with torch.no_grad():
        noisy = x + 10.0 * (1 - mask) * torch.randn_like(x)
        return bool(torch.allclose(model(x), model(noisy)))


@pytest.mark.parametrize("network", ["convnet", "resnet"])
@pytest.mark.parametrize("quadrant", [0, 1, 2, 3])
def test_gradcam_mass_falls_in_the_quadrant_the_logit_depends_on(
    quadrant: int, network: str
) -> None:
    torch.manual_seed(quadrant)
    model = (_QuadrantConvNet if network == "convnet" else _QuadrantResNet)(quadrant).eval()
    x = torch.rand(4, 1, 64, 64)
    mask = _quadrant_mask(64, quadrant)
    assert _depends_only_on_the_mask(model, x, mask)
    maps = class_activation_maps(model, x, target=1)
    assert maps.shape == (4, 64, 64)
    assert bool((maps >= 0).all())
    torch.testing.assert_close(maps.amax(dim=(1, 2)), torch.ones(4))
    assert bool((_mass_in(maps, mask) > 0.8).all()), _mass_in(maps, mask)
    # The default layer is the last block (ConvNet) or last residual block (ResNet).
    last = model.blocks[-1] if isinstance(model, ConvNet) else model.stages[-1]
    explicit = class_activation_maps(model, x, target=1, layer=last)
    torch.testing.assert_close(maps, explicit)


@pytest.mark.parametrize("method", ["rollout", "grad_rollout", "auto"])
@pytest.mark.parametrize("quadrant", [0, 1, 2, 3])
def test_vit_rollout_mass_falls_in_the_quadrant_the_logit_depends_on(
    quadrant: int, method: Any
) -> None:
    torch.manual_seed(quadrant)
    model = _QuadrantViT(quadrant).eval()
    x = torch.randn(4, 1, 32, 32)
    mask = _quadrant_mask(32, quadrant)
    assert _depends_only_on_the_mask(model, x, mask)
    for target in (None, 0, 2):
        maps = class_activation_maps(model, x, target=target, method=method)
        assert maps.shape == (4, 32, 32)
        assert bool((maps >= 0).all())
        torch.testing.assert_close(maps.amax(dim=(1, 2)), torch.ones(4))
        assert bool((_mass_in(maps, mask) > 0.7).all()), (target, _mass_in(maps, mask))


def test_gradcam_equals_cam_for_a_linear_head() -> None:
    # With global average pooling and a linear head, Grad-CAM's channel weights are the head
    # row divided by h*w, so the normalised map is the CAM of Zhou et al. (2016).
    torch.manual_seed(0)
    model = ConvNet(ConvNetConfig(n_classes=4, channels=6, n_blocks=2, mlp_hidden=None)).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 1, 30, 30)
    target = torch.tensor([0, 3, 1])
    with torch.no_grad():
        activations = model.blocks(model.stem_pool(model.stem(x)))
        rows = model.classifier.weight[target]  # (B, K)
        cam = torch.relu(torch.einsum("bk,bkhw->bhw", rows, activations))
        cam = interpolate(cam[:, None], size=(30, 30), mode="bilinear", align_corners=False)[:, 0]
        cam = cam / cam.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(class_activation_maps(model, x, target), cam)


def _naive_attention(block: nn.Module, tokens: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(dh)) per head, from the block's weights, written out."""
    attn: MultiHeadSelfAttention = block.attn
    x = block.norm1(tokens)
    d, h = attn.dim, attn.n_heads
    dh = d // h
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias
    heads = []
    for head in range(h):
        q = qkv[..., head * dh : (head + 1) * dh]
        k = qkv[..., d + head * dh : d + (head + 1) * dh]
        heads.append((q @ k.transpose(-2, -1) / dh**0.5).softmax(-1))
    return torch.stack(heads, dim=1)


def _vit_tokens(model: ViT, x: Tensor) -> Tensor:
    tokens = model.patch_embed(x)
    cls = model.cls_token.expand(x.shape[0], -1, -1)
    return torch.cat([cls, tokens], dim=1) + model.pos_embed


def test_plain_rollout_matches_a_naive_reference() -> None:
    torch.manual_seed(0)
    config = ViTConfig(img_size=32, patch_size=8, n_classes=3, n_blks=2, emb_size=16, n_heads=4)
    model = ViT(config).eval()
    with torch.no_grad():  # sharper attention than the 0.02-std initialisation gives
        for block in model.blocks:
            block.attn.qkv.weight.mul_(40.0)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        tokens = _vit_tokens(model, x)
        n = tokens.shape[1]
        rollout = torch.eye(n).expand(2, n, n)
        for block in model.blocks:
            a = _naive_attention(block, tokens).mean(dim=1)
            rollout = (0.5 * a + 0.5 * torch.eye(n)) @ rollout
            tokens = block(tokens)
        grid = rollout[:, 0, 1:].reshape(2, 1, 4, 4)
        expected = interpolate(grid, size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
        expected = expected / expected.amax(dim=(1, 2), keepdim=True)
    got = class_activation_maps(model, x, method="rollout")
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got[0], got[0].mean())  # not a flat map


def test_grad_rollout_matches_the_product_formula() -> None:
    torch.manual_seed(1)
    config = ViTConfig(
        img_size=16, patch_size=8, n_classes=2, n_blks=2, emb_size=8, n_heads=2, pool="mean"
    )
    model = ViT(config).eval()
    x = torch.randn(3, 1, 16, 16)
    target = torch.tensor([1, 0, 1])
    # Reference: gradients of the target logits w.r.t. the attention probabilities, taken from
    # the layers' opt-in explicit path, then R = prod_l (I + E_h[(grad * A)^+]).
    attns = [block.attn for block in model.blocks]
    for a in attns:
        a.keep_attention = True
    logits = model(x)
    kept = [a.last_attention for a in attns]
    for a in attns:
        a.keep_attention = False
    assert all(k is not None for k in kept)
    score = logits.gather(1, target[:, None]).sum()
    grads = torch.autograd.grad(score, kept)  # type: ignore[arg-type]
    n = kept[0].shape[-1]  # type: ignore[union-attr]
    relevance = torch.eye(n).expand(3, n, n)
    for a, g in zip(kept, grads, strict=True):
        a_bar = (g * a).clamp_min(0).mean(dim=1)
        relevance = (torch.eye(n) + a_bar) @ relevance
    patch_rows = relevance[:, 1:, 1:].mean(dim=1).detach()  # mean pooling: every patch row
    grid = patch_rows.reshape(3, 1, 2, 2)
    expected = interpolate(grid, size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    expected = expected / expected.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(class_activation_maps(model, x, target), expected)


def test_explicit_attention_path_equals_the_fused_path() -> None:
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(dim=12, n_heads=3).eval()
    x = torch.randn(2, 7, 12)
    fused = attn(x)
    assert attn.last_attention is None  # nothing kept by default
    attn.keep_attention = True
    explicit = attn(x)
    torch.testing.assert_close(explicit, fused)
    kept = attn.last_attention
    assert kept is not None
    assert kept.shape == (2, 3, 7, 7)
    torch.testing.assert_close(kept.sum(-1), torch.ones(2, 3, 7))


@pytest.mark.parametrize(
    ("remainder", "size", "centre"), [("pad", 36, 17.5), ("crop", 52, 25.5), ("raise", 48, 23.5)]
)
def test_patch_maps_land_on_the_right_pixels(remainder: Any, size: int, centre: float) -> None:
    # Focus the attention on the middle patch of the 3x3 grid: its centre is pixel 23.5 of the
    # 48-pixel patch frame, which the centred padding (6 pixels) moves up-left and the centred
    # cropping (2 pixels) down-right in image coordinates.
    torch.manual_seed(0)
    config = ViTConfig(
        img_size=size, patch_size=16, n_classes=2, n_blks=1, emb_size=8, n_heads=1,
        patch_remainder=remainder,
    )  # fmt: skip
    model = ViT(config).eval()
    assert model.patch_embed.grid_size == (3, 3)
    flag = torch.zeros(3, 3)
    flag[1, 1] = 1.0
    _focus_attention(model, flag)
    maps = class_activation_maps(model, torch.randn(2, 1, size, size), method="rollout")
    assert maps.shape == (2, size, size)
    coords = torch.arange(size, dtype=torch.float32)
    row_mass, col_mass = maps.sum(dim=2), maps.sum(dim=1)
    row_centre = (row_mass * coords).sum(1) / row_mass.sum(1)
    col_centre = (col_mass * coords).sum(1) / col_mass.sum(1)
    torch.testing.assert_close(row_centre, torch.full((2,), centre), atol=0.5, rtol=0)
    torch.testing.assert_close(col_centre, torch.full((2,), centre), atol=0.5, rtol=0)
    if remainder == "crop":  # the model never sees the 2-pixel border
        assert float(maps[:, :2].abs().sum()) == 0.0
        assert float(maps[:, :, -2:].abs().sum()) == 0.0


def test_default_target_is_the_predicted_class() -> None:
    torch.manual_seed(0)
    model = ConvNet(ConvNetConfig(n_classes=3, channels=4, n_blocks=1)).eval()
    x = torch.randn(5, 1, 16, 16)
    with torch.no_grad():
        predicted = model(x).argmax(1)
    torch.testing.assert_close(
        class_activation_maps(model, x), class_activation_maps(model, x, predicted)
    )


def test_mode_is_restored_and_parameter_grads_untouched() -> None:
    torch.manual_seed(0)
    model = ConvNet(ConvNetConfig(n_classes=3, channels=4, n_blocks=1, dropout=0.5))
    model.train()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():  # works even when called under no_grad
        a = class_activation_maps(model, x, target=0)
    b = class_activation_maps(nn.DataParallel(model), x, target=0)
    torch.testing.assert_close(a, b)  # eval mode: no dropout noise; wrapper unwrapped
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert not a.requires_grad
    for p in model.parameters():
        p.requires_grad_(False)
    torch.testing.assert_close(class_activation_maps(model, x, target=0), a)  # frozen model


def test_explicit_layer_for_any_cnn() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    ).eval()
    x = torch.randn(2, 1, 10, 10)
    maps = class_activation_maps(net, x, target=1, layer=net[1])
    with torch.no_grad():
        cam = torch.relu(torch.einsum("k,bkhw->bhw", net[4].weight[1], net[1](net[0](x))))
    torch.testing.assert_close(maps, cam / cam.amax(dim=(1, 2), keepdim=True))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "lrp"}, ValueError, "method must be one of"),
        ({"method": "rollout"}, TypeError, "method='rollout' needs a ViT"),
        ({"target": 3}, ValueError, r"target must be class indices in \[0, 3\)"),
        ({"target": torch.tensor([0.0, 1.0])}, TypeError, "integer class indices"),
        ({"target": torch.tensor([0, 1, 2])}, ValueError, r"target must have shape \(2,\)"),
        ({"target": "1"}, TypeError, "target must be an int"),
        ({"layer": "blocks"}, TypeError, "layer must be an nn.Module"),
        ({"images": torch.zeros(2, 16, 16)}, ValueError, "images must be a non-empty"),
        ({"images": torch.zeros(2, 1, 16, 16, dtype=torch.uint8)}, TypeError, "floating"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    model = ConvNet(ConvNetConfig(n_classes=3, channels=4, n_blocks=1))
    images = kwargs.pop("images", torch.randn(2, 1, 16, 16))
    with pytest.raises(error, match=match):
        class_activation_maps(model, images, **kwargs)


def test_gradcam_needs_a_convnet_or_a_layer() -> None:
    with pytest.raises(TypeError, match="needs a ConvNet, a ResNet or an explicit layer"):
        class_activation_maps(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.zeros(1, 1, 2, 2))
