"""Tests for the small residual network."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellvision.layers import ResidualBlock
from cellvision.models import ConvNetConfig, ResNet, ResNetConfig, create_model, model_name_of
from tests.models._contract import check_classifier_contract

nnf = torch.nn.functional


def batch_norm_eval(y: torch.Tensor, bn: torch.nn.BatchNorm2d) -> torch.Tensor:
    assert bn.running_mean is not None
    assert bn.running_var is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (y - bn.running_mean[:, None, None]) * scale[:, None, None] + bn.bias[:, None, None]


def functional_reference(model: ResNet, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode forward pass rewritten with torch primitives, sharing only the weights."""
    conv, bn = model.stem[0], model.stem[1]
    y = torch.relu(batch_norm_eval(nnf.conv2d(x, conv.weight, stride=conv.stride, padding=1), bn))
    for block in model.stages:
        stride = block.conv1.stride
        h = torch.relu(batch_norm_eval(nnf.conv2d(y, block.conv1.weight, stride=stride, padding=1),
                                       block.norm1))  # fmt: skip
        h = batch_norm_eval(nnf.conv2d(h, block.conv2.weight, padding=1), block.norm2)
        if isinstance(block.shortcut, torch.nn.Identity):
            short = y
        else:
            proj, proj_bn = block.shortcut[0], block.shortcut[1]
            short = batch_norm_eval(nnf.conv2d(y, proj.weight, stride=stride), proj_bn)
        y = torch.relu(h + short)
    feats = y.mean(dim=(2, 3))
    return feats @ model.head.weight.T + model.head.bias


def randomise_batch_norm(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                assert m.running_mean is not None
                assert m.running_var is not None
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("stem_stride", [1, 2])
def test_matches_functional_reference(stem_stride: int) -> None:
    torch.manual_seed(0)
    config = ResNetConfig(in_channels=2, n_classes=4, stem_channels=6, stem_stride=stem_stride,
                          widths=(6, 10), depths=(2, 1))  # fmt: skip
    model = ResNet(config).eval()
    randomise_batch_norm(model)
    # 6 -> 6 with stride 1 (second block of stage 1) keeps the identity shortcut.
    assert isinstance(model.stages[1].shortcut, torch.nn.Identity)
    assert not isinstance(model.stages[0].shortcut, torch.nn.Identity)
    x = torch.randn(3, 2, 17, 15)
    torch.testing.assert_close(model(x), functional_reference(model, x), atol=1e-5, rtol=1e-5)


def test_resolution_of_each_stage() -> None:
    # 40x40: the stride-2 stem gives 20x20, then 10, 5, 3 (stride-2 convs round up).
    model = ResNet(ResNetConfig(stem_stride=2, widths=(4, 4, 4), depths=(1, 1, 1))).eval()
    sizes = []
    y = model.stem(torch.zeros(1, 1, 40, 40))
    sizes.append(y.shape[-1])
    for block in model.stages:
        y = block(y)
        sizes.append(y.shape[-1])
    assert sizes == [20, 10, 5, 3]


def test_registry_preset_and_parameter_count() -> None:
    model = create_model("cellcycle_resnet")
    assert isinstance(model, ResNet)
    c = model.config
    assert (c.in_channels, c.n_classes, c.img_size) == (2, 5, 40)
    assert (c.stem_channels, c.stem_stride, c.widths, c.depths) == (16, 1, (32, 64, 128), (1, 1, 1))
    assert model_name_of(model) == "resnet"

    def block(cin: int, cout: int) -> int:
        # two 3x3 convs without bias + two batch norms + a 1x1 projection with its norm
        return cin * cout * 9 + cout * cout * 9 + 4 * cout + cin * cout + 2 * cout

    stem = 2 * 16 * 9 + 2 * 16
    expected = stem + block(16, 32) + block(32, 64) + block(64, 128) + (128 * 5 + 5)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert create_model("resnet").config.n_classes == 2


def test_prior_head() -> None:
    freqs = np.array([1296, 291, 33, 7, 13], dtype=np.float64)
    config = ResNetConfig(n_classes=5, widths=(8,), depths=(1,), class_freqs=freqs)
    model = ResNet(config)
    np.testing.assert_allclose(
        model.classifier.bias.detach().numpy(), np.log(freqs / freqs.sum()), rtol=1e-6
    )
    model = ResNet(config.replace(zero_init_head=True)).eval()
    probs = torch.softmax(model(model.example_input(3)), -1).detach().double()
    expected = torch.from_numpy(freqs / freqs.sum()).expand(3, 5)
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=0)
    assert math.isclose(probs[0].sum().item(), 1.0, rel_tol=1e-6)


def test_json_round_trip_rebuilds_identical_model() -> None:
    torch.manual_seed(0)
    config = ResNetConfig(n_classes=3, in_channels=2, widths=(6, 8), depths=(1, 2),
                          class_freqs=[5, 3, 2], dropout=0.2)  # fmt: skip
    model = ResNet(config)
    randomise_batch_norm(model)
    model.eval()
    loaded = ResNetConfig.from_json(config.to_json())
    assert loaded == config
    assert loaded.widths == (6, 8)
    rebuilt = ResNet(loaded).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = model.example_input(2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(rebuilt(x), model(x), atol=0, rtol=0)


def test_numpy_sizes_are_accepted() -> None:
    config = ResNetConfig(img_size=np.int64(40), widths=np.array([4, 8]), depths=[np.int32(1)] * 2)
    assert config.img_size == 40
    assert type(config.img_size) is int
    assert config.widths == (4, 8)
    assert all(type(w) is int for w in config.widths)


@st.composite
def resnet_setups(draw: st.DrawFn) -> tuple[ResNetConfig, int, int, int]:
    n_stages = draw(st.integers(1, 3))
    config = ResNetConfig(
        in_channels=draw(st.integers(1, 3)),
        n_classes=draw(st.integers(2, 5)),
        stem_channels=draw(st.integers(1, 6)),
        stem_stride=draw(st.sampled_from([1, 2])),
        widths=tuple(draw(st.integers(1, 8)) for _ in range(n_stages)),
        depths=tuple(draw(st.integers(1, 2)) for _ in range(n_stages)),
        dropout=draw(st.sampled_from([0.0, 0.3])),
        img_size=draw(st.integers(1, 20)),
    )
    return config, draw(st.integers(2, 4)), draw(st.integers(1, 20)), draw(st.integers(0, 9999))


@settings(max_examples=12, deadline=None)
@given(setup=resnet_setups())
def test_properties_on_random_configs(setup: tuple[ResNetConfig, int, int, int]) -> None:
    config, batch, width, seed = setup
    torch.manual_seed(seed)
    model = ResNet(config)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, config.in_channels, config.img_size, width, generator=g)
    check_classifier_contract(model, x, config.n_classes, config.widths[-1])
    # The count from the fields alone (used to bound crafted checkpoints) is exact.
    assert config.parameter_count() == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"in_channels": 0}, ValueError, "in_channels must be a positive integer, got 0"),
        ({"stem_channels": -1}, ValueError, "stem_channels must be a positive integer, got -1"),
        ({"stem_stride": 3}, ValueError, "stem_stride must be 1 or 2, got 3"),
        ({"img_size": 0}, ValueError, "img_size must be a positive integer, got 0"),
        ({"widths": ()}, ValueError, r"widths must be a non-empty sequence .*got \(\)"),
        ({"widths": (8, 0)}, ValueError, r"widths must be a non-empty sequence .*got \(8, 0\)"),
        ({"widths": 8}, TypeError, "widths must be a non-empty sequence .*got 8"),
        ({"depths": (1.5, 1, 1)}, TypeError, r"depths must be .*got \(1.5, 1, 1\)"),
        ({"depths": (1, 1)}, ValueError, r"depths must have one entry per stage \(len\(widths\)=3"),
        ({"n_classes": 1}, ValueError, "n_classes must be an integer >= 2, got 1"),
        ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\), got 1.0"),
        ({"zero_init_head": 1}, TypeError, "zero_init_head must be a bool, got 1"),
        ({"class_freqs": [1, 2, 3]}, ValueError, "class_freqs must have n_classes=2 entries"),
    ],
)
def test_config_errors(overrides: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ResNetConfig(**overrides)


def test_input_errors() -> None:
    model = ResNet(ResNetConfig(widths=(4,), depths=(1,)))
    with pytest.raises(ValueError, match=r"x must be a 4-D .*got shape \(8, 8\)"):
        model(torch.zeros(8, 8))
    with pytest.raises(ValueError, match=r"x must have 1 channel\(s\).*\(1, 3, 8, 8\)"):
        model(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"features must have shape \(batch, 4\)"):
        model.forward_head(torch.zeros(1, 5))
    with pytest.raises(TypeError, match="config must be a ResNetConfig, got ConvNetConfig"):
        ResNet(ConvNetConfig())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"x must have the model's dtype torch.float32"):
        model(torch.zeros(1, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"features must have the model's dtype torch.float32"):
        model.forward_head(torch.zeros(1, 4, dtype=torch.float64))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts inputs itself
        assert model(torch.zeros(2, 1, 8, 8, dtype=torch.bfloat16)).shape == (2, 2)
    with pytest.raises(ValueError, match="at most max_parameters"):
        ResNet(ResNetConfig(widths=(100_000,), depths=(1,)))


def test_residual_block_errors_and_identity() -> None:
    with pytest.raises(ValueError, match="stride must be a positive integer, got 0"):
        ResidualBlock(2, 2, stride=0)
    torch.manual_seed(0)
    block = ResidualBlock(3, 3).eval()
    with torch.no_grad():
        block.norm2.weight.zero_()
        block.norm2.bias.zero_()
    x = torch.randn(2, 3, 6, 6)
    # With the residual branch zeroed the block is relu(x).
    torch.testing.assert_close(block(x), torch.relu(x))


def test_channels_last_and_bf16_autocast() -> None:
    torch.manual_seed(0)
    model = ResNet(ResNetConfig(in_channels=2, widths=(8, 16), depths=(1, 1))).eval()
    randomise_batch_norm(model)
    x = torch.randn(4, 2, 40, 40)
    with torch.no_grad():
        expected = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        got = model_cl(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model_cl(x.contiguous(memory_format=torch.channels_last))
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), expected, atol=0.1, rtol=0.05)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(x).float().logsumexp(-1).sum()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
