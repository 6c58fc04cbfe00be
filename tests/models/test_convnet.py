"""Tests for the convolution-block stack classifier."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellvision.models import ConvNet, ConvNetConfig, ViTConfig, create_model, model_name_of
from tests.models._contract import check_classifier_contract

# torch's own compile/export machinery touches torch.jit internally and warns about it.
TORCH_JIT_DEPRECATION = "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"


def functional_reference(model: ConvNet, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode forward pass rewritten with torch primitives, sharing only the weights."""
    nnf = torch.nn.functional
    pad = model.config.kernel_size // 2
    y = nnf.conv2d(x, model.stem.weight, model.stem.bias, padding=pad)
    y = nnf.max_pool2d(y, 2)
    for block in model.blocks:
        if isinstance(block, torch.nn.MaxPool2d):
            y = nnf.max_pool2d(y, 2, ceil_mode=True)
            continue
        y = nnf.conv2d(y, block.conv.weight, None, padding=pad)
        bn = block.norm
        y = (y - bn.running_mean[:, None, None]) / torch.sqrt(
            bn.running_var[:, None, None] + bn.eps
        )
        y = torch.relu(y * bn.weight[:, None, None] + bn.bias[:, None, None])
    feats = y.mean(dim=(2, 3))
    head = model.head
    hidden = torch.relu(feats @ head.fc1.weight.T + head.fc1.bias)
    return hidden @ head.fc2.weight.T + head.fc2.bias


def randomise_batch_norm(model: ConvNet) -> None:
    with torch.no_grad():
        for block in model.blocks:
            if isinstance(block, torch.nn.MaxPool2d):
                continue
            block.norm.running_mean.uniform_(-0.5, 0.5)
            block.norm.running_var.uniform_(0.5, 2.0)
            block.norm.weight.uniform_(0.5, 1.5)
            block.norm.bias.uniform_(-0.5, 0.5)


def test_matches_functional_reference() -> None:
    torch.manual_seed(0)
    model = ConvNet(ConvNetConfig(in_channels=2, n_classes=4, channels=8, n_blocks=3)).eval()
    randomise_batch_norm(model)
    x = torch.randn(3, 2, 15, 17)
    torch.testing.assert_close(model(x), functional_reference(model, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("n_blocks", "pool_every", "n_pools"), [(3, 1, 2), (4, 2, 1), (2, 3, 0)])
def test_pool_every_matches_functional_reference(
    n_blocks: int, pool_every: int, n_pools: int
) -> None:
    torch.manual_seed(1)
    config = ConvNetConfig(in_channels=1, n_classes=3, channels=6, n_blocks=n_blocks,
                           pool_every=pool_every)  # fmt: skip
    model = ConvNet(config).eval()
    randomise_batch_norm(model)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.blocks) == n_pools
    # Odd sizes exercise ceil mode: 19 -> 9 (stem pool) -> 5 -> 3.
    x = torch.randn(2, 1, 19, 21)
    torch.testing.assert_close(model(x), functional_reference(model, x), atol=1e-5, rtol=1e-5)
    # Pools add no parameters; the smallest input still works.
    plain = ConvNet(config.replace(pool_every=None))
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters())
    assert model(torch.randn(1, 1, 2, 2)).shape == (1, 3)


def test_registry_presets_and_parameter_count() -> None:
    model = create_model("cellcycle_convnet")
    assert isinstance(model, ConvNet)
    c = model.config
    assert (c.in_channels, c.n_classes, c.n_blocks, c.channels, c.kernel_size) == (1, 5, 4, 64, 3)
    assert c.img_size == 66
    # stem 1*64*9+64; 4 blocks of 64*64*9 (no bias) + BN 2*64; head 64*64+64 and 64*5+5
    expected = (9 * 64 + 64) + 4 * (64 * 64 * 9 + 128) + (64 * 64 + 64) + (64 * 5 + 5)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model_name_of(model) == "convnet"
    assert create_model("convnet").config.n_classes == 2


def test_linear_head_when_mlp_hidden_is_none() -> None:
    model = ConvNet(ConvNetConfig(channels=4, n_blocks=1, mlp_hidden=None))
    assert isinstance(model.head, torch.nn.Linear)
    assert model.classifier is model.head


def test_prior_head() -> None:
    freqs = np.array([14333, 8616, 8601, 606, 68], dtype=np.float64)
    model = ConvNet(ConvNetConfig(n_classes=5, channels=8, n_blocks=1, class_freqs=freqs))
    np.testing.assert_allclose(
        model.classifier.bias.detach().numpy(), np.log(freqs / freqs.sum()), rtol=1e-6
    )
    model = ConvNet(
        ConvNetConfig(n_classes=5, channels=8, n_blocks=1, class_freqs=freqs, zero_init_head=True)
    ).eval()
    probs = torch.softmax(model(model.example_input(3)), -1).detach().double()
    expected = torch.from_numpy(freqs / freqs.sum()).expand(3, 5)
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=0)
    assert math.isclose(probs[0].sum().item(), 1.0, rel_tol=1e-6)


def test_json_round_trip_rebuilds_identical_model() -> None:
    torch.manual_seed(0)
    config = ConvNetConfig(n_classes=3, channels=6, n_blocks=2, class_freqs=[5, 3, 2])
    model = ConvNet(config)
    randomise_batch_norm(model)
    model.eval()
    rebuilt = ConvNet(ConvNetConfig.from_json(config.to_json())).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = model.example_input(2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(rebuilt(x), model(x), atol=0, rtol=0)


@st.composite
def convnet_setups(draw: st.DrawFn) -> tuple[ConvNetConfig, int, int, int]:
    config = ConvNetConfig(
        in_channels=draw(st.integers(1, 3)),
        n_classes=draw(st.integers(2, 5)),
        n_blocks=draw(st.integers(1, 3)),
        channels=draw(st.integers(1, 8)),
        kernel_size=draw(st.sampled_from([1, 3, 5])),
        dropout=draw(st.sampled_from([0.0, 0.3])),
        mlp_hidden=draw(st.sampled_from([None, 4])),
        img_size=draw(st.integers(2, 20)),
    )
    return config, draw(st.integers(2, 4)), draw(st.integers(2, 20)), draw(st.integers(0, 9999))


@settings(max_examples=12)
@given(setup=convnet_setups())
def test_properties_on_random_configs(setup: tuple[ConvNetConfig, int, int, int]) -> None:
    config, batch, width, seed = setup
    torch.manual_seed(seed)
    model = ConvNet(config)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, config.in_channels, config.img_size, width, generator=g)
    check_classifier_contract(model, x, config.n_classes, config.channels)


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"in_channels": 0}, ValueError, "in_channels must be a positive integer, got 0"),
        ({"n_blocks": -1}, ValueError, "n_blocks must be a positive integer, got -1"),
        ({"channels": 0}, ValueError, "channels must be a positive integer, got 0"),
        ({"kernel_size": 4}, ValueError, "kernel_size must be an odd positive integer, got 4"),
        ({"mlp_hidden": 0}, ValueError, "mlp_hidden must be a positive integer, got 0"),
        ({"img_size": 1}, ValueError, "img_size must be at least 2"),
        ({"n_classes": 1}, ValueError, "n_classes must be an integer >= 2, got 1"),
        ({"pool_every": 0}, ValueError, "pool_every must be a positive integer, got 0"),
        ({"n_classes": True}, TypeError, "n_classes must be an integer >= 2, got True"),
        ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\), got 1.0"),
        ({"dropout": -0.5}, ValueError, r"dropout must be in \[0, 1\), got -0.5"),
        ({"class_freqs": [1, 2, 3]}, ValueError, "class_freqs must have n_classes=2 entries"),
        ({"class_freqs": [0, 2]}, ValueError, "class_freqs must be finite and > 0"),
    ],
)
def test_config_errors(overrides: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ConvNetConfig(**overrides)


def test_input_errors() -> None:
    model = ConvNet(ConvNetConfig(channels=4, n_blocks=1))
    with pytest.raises(ValueError, match=r"x must be a 4-D .*got shape \(8, 8\)"):
        model(torch.zeros(8, 8))
    with pytest.raises(ValueError, match=r"x must have 1 channel\(s\).*\(1, 3, 8, 8\)"):
        model(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"x must be at least 2x2 pixels.*\(1, 1, 1, 8\)"):
        model(torch.zeros(1, 1, 1, 8))
    with pytest.raises(ValueError, match=r"features must have shape \(batch, 4\)"):
        model.forward_head(torch.zeros(1, 5))
    with pytest.raises(TypeError, match="config must be a ConvNetConfig, got ViTConfig"):
        ConvNet(ViTConfig())  # type: ignore[arg-type]


def test_channels_last_input() -> None:
    torch.manual_seed(0)
    model = ConvNet(ConvNetConfig(in_channels=3, channels=8, n_blocks=2)).eval()
    x = torch.randn(2, 3, 12, 12)
    expected = model(x)
    model_cl = model.to(memory_format=torch.channels_last)
    got = model_cl(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_bf16_autocast_on_cpu() -> None:
    torch.manual_seed(0)
    model = ConvNet(ConvNetConfig(channels=8, n_blocks=2, dropout=0.0))
    x = torch.randn(4, 1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    assert logits.dtype == torch.bfloat16
    logits.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x).float()
    with torch.no_grad():
        torch.testing.assert_close(low, model(x), atol=5e-2, rtol=5e-2)


@pytest.mark.slow
@pytest.mark.filterwarnings(TORCH_JIT_DEPRECATION)
def test_torch_compile_matches_eager() -> None:
    torch.manual_seed(0)
    model = ConvNet(ConvNetConfig(channels=4, n_blocks=1)).eval()
    x = torch.randn(2, 1, 8, 8)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.filterwarnings(TORCH_JIT_DEPRECATION)
def test_torch_export_matches_eager() -> None:
    torch.manual_seed(0)
    model = ConvNet(ConvNetConfig(channels=4, n_blocks=2)).eval()
    x = model.example_input(2)
    exported = torch.export.export(model, (x,)).module()
    with torch.no_grad():
        torch.testing.assert_close(exported(x), model(x), atol=1e-5, rtol=1e-5)
