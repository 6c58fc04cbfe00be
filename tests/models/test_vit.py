"""Tests for the pre-LN Vision Transformer and its config."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellvision.models import ViT, ViTConfig, create_model, model_name_of
from tests.models._contract import check_classifier_contract

# torch's own compile/export machinery touches torch.jit internally and warns about it.
TORCH_JIT_DEPRECATION = "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"


def tiny_config(**overrides: Any) -> ViTConfig:
    base: dict[str, Any] = {
        "img_size": 20,
        "patch_size": 8,
        "n_classes": 3,
        "n_blks": 2,
        "emb_size": 16,
        "n_heads": 4,
        "hidden_size": 24,
    }
    return ViTConfig(**{**base, **overrides})


def test_notebook_call_works_verbatim() -> None:
    class Dataset:  # stands in for the notebook's dataset object
        classes = 5
        counts: ClassVar[list[tuple[str, int]]] = [
            ("G1", 14333),
            ("S", 8616),
            ("G2", 8601),
            ("Pro", 606),
            ("Ana/Telo", 68),
        ]

    dt = Dataset()
    sample_img = torch.zeros(1, 66, 66)
    vit_config = ViTConfig(
        img_size=sample_img.shape[-1],
        patch_size=16,
        n_classes=dt.classes,
        n_blks=3,
        emb_size=512,
        n_heads=8,
        hidden_size=2048,
        class_freqs=torch.tensor([count for _, count in dt.counts], dtype=torch.float32),
    )
    assert vit_config.class_freqs == (14333.0, 8616.0, 8601.0, 606.0, 68.0)
    assert isinstance(vit_config.class_freqs, tuple)
    assert vit_config.grid_size == 5  # 66 padded to 80
    assert ViTConfig.from_json(vit_config.to_json()) == vit_config


@pytest.mark.parametrize(
    "freqs", [np.array([2.0, 1.0, 1.0]), [2, 1, 1], (2.0, 1.0, 1.0), torch.tensor([2, 1, 1])]
)
def test_class_freqs_accepts_array_like(freqs: Any) -> None:
    assert tiny_config(class_freqs=freqs).class_freqs == (2.0, 1.0, 1.0)


def test_numpy_integer_sizes_are_accepted() -> None:
    image = np.zeros((1, 20, 20))
    config = tiny_config(img_size=image.shape[-1], n_classes=np.int64(3))
    assert config.img_size == 20
    assert type(config.n_classes) is int


def test_registry_presets() -> None:
    model = create_model("cellcycle_vit")
    assert isinstance(model, ViT)
    c = model.config
    assert (c.img_size, c.patch_size, c.n_classes, c.n_blks) == (66, 16, 5, 3)
    assert (c.emb_size, c.n_heads, c.hidden_size, c.in_channels) == (512, 8, 2048, 1)
    # Hand count: patch conv 16*16*512+512, class token 512, 26 positions * 512, per block
    # 2 LayerNorms (2*1024) + qkv (512*1536+1536) + proj (512*512+512) + MLP
    # (512*2048+2048 + 2048*512+512), final LayerNorm 1024, head 512*5+5.
    block = 2 * 1024 + (512 * 1536 + 1536) + (512 * 512 + 512) + (512 * 2048 + 2048)
    block += 2048 * 512 + 512
    expected = (16 * 16 * 512 + 512) + 512 + 26 * 512 + 3 * block + 1024 + 512 * 5 + 5
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model_name_of(model) == "vit"
    assert isinstance(create_model("vit"), ViT)


def test_prior_head_bias_and_exact_prior() -> None:
    freqs = [600.0, 300.0, 100.0]
    model = ViT(tiny_config(class_freqs=freqs))
    expected_bias = torch.tensor([math.log(0.6), math.log(0.3), math.log(0.1)])
    torch.testing.assert_close(model.head.bias.detach(), expected_bias)
    assert model.head.weight.abs().sum() > 0  # weight keeps its random init

    model = ViT(tiny_config(class_freqs=freqs, zero_init_head=True)).eval()
    probs = torch.softmax(model(model.example_input(4)), dim=-1).detach()
    torch.testing.assert_close(probs, torch.tensor([[0.6, 0.3, 0.1]]).expand(4, 3))

    uniform = ViT(tiny_config(zero_init_head=True)).eval()
    probs = torch.softmax(uniform(uniform.example_input(2)), dim=-1).detach()
    torch.testing.assert_close(probs, torch.full((2, 3), 1 / 3))


def test_json_round_trip_rebuilds_identical_model() -> None:
    torch.manual_seed(0)
    config = tiny_config(pool="mean", class_freqs=[3, 2, 1], dropout=0.1)
    model = ViT(config).eval()
    rebuilt_config = ViTConfig.from_json(config.to_json())
    assert rebuilt_config == config
    torch.manual_seed(123)  # different init, then overwritten by the state dict
    rebuilt = ViT(rebuilt_config).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = model.example_input(3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rebuilt(x), model(x), atol=0, rtol=0)


def test_forward_is_head_of_features_and_pooling() -> None:
    torch.manual_seed(0)
    model = ViT(tiny_config()).eval()
    x = model.example_input(2)
    tokens = model.forward_tokens(x)
    feats = model.forward_features(x)
    torch.testing.assert_close(feats, tokens[:, 0])
    torch.testing.assert_close(model(x), feats @ model.head.weight.T + model.head.bias)
    mean_model = ViT(tiny_config(pool="mean")).eval()
    mean_model.load_state_dict(model.state_dict())
    torch.testing.assert_close(mean_model.forward_features(x), tokens[:, 1:].mean(1))


def test_pad_policy_equals_explicitly_padded_input() -> None:
    torch.manual_seed(0)
    padded_model = ViT(tiny_config(img_size=20, patch_size=8, patch_remainder="pad")).eval()
    exact = ViT(tiny_config(img_size=24, patch_size=8, patch_remainder="raise")).eval()
    exact.load_state_dict(padded_model.state_dict())
    x = torch.randn(2, 1, 20, 20)
    big = torch.zeros(2, 1, 24, 24)
    big[..., 2:22, 2:22] = x
    torch.testing.assert_close(padded_model(x), exact(big))


def test_crop_policy_equals_explicitly_cropped_input() -> None:
    torch.manual_seed(0)
    crop_model = ViT(tiny_config(img_size=19, patch_size=8, patch_remainder="crop")).eval()
    exact = ViT(tiny_config(img_size=16, patch_size=8, patch_remainder="raise")).eval()
    exact.load_state_dict(crop_model.state_dict())
    x = torch.randn(2, 1, 19, 19)
    torch.testing.assert_close(crop_model(x), exact(x[..., 1:17, 1:17]))


def test_dynamic_img_size_interpolates_position_embeddings() -> None:
    torch.manual_seed(0)
    fixed = ViT(tiny_config(img_size=16, patch_size=4)).eval()
    dynamic = ViT(tiny_config(img_size=16, patch_size=4, dynamic_img_size=True)).eval()
    dynamic.load_state_dict(fixed.state_dict())
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(dynamic(x), fixed(x))  # native size: no interpolation
    with pytest.raises(ValueError, match=r"x must be 16x16 \(img_size\).*dynamic_img_size"):
        fixed(torch.randn(1, 1, 24, 20))
    out = dynamic(torch.randn(1, 1, 24, 20))
    assert out.shape == (1, 3)
    # Interpolating a 4x4 grid to 4x4 is the identity; to 6x5 the reference is F.interpolate.
    pos = fixed.pos_embed[:, 1:].reshape(1, 4, 4, 16).permute(0, 3, 1, 2)
    ref = torch.nn.functional.interpolate(pos, size=(6, 5), mode="bicubic", align_corners=False)
    got = dynamic._position_embedding(6, 5)[:, 1:].reshape(1, 6, 5, 16).permute(0, 3, 1, 2)
    torch.testing.assert_close(got, ref)


@st.composite
def vit_setups(draw: st.DrawFn) -> tuple[ViTConfig, int, int]:
    n_heads = draw(st.integers(1, 3))
    emb_size = n_heads * draw(st.integers(1, 4))
    patch = draw(st.integers(2, 6))
    img = draw(st.integers(patch, 18))
    config = ViTConfig(
        img_size=img,
        patch_size=patch,
        n_classes=draw(st.integers(2, 4)),
        n_blks=draw(st.integers(1, 2)),
        emb_size=emb_size,
        n_heads=n_heads,
        hidden_size=draw(st.integers(1, 12)),
        in_channels=draw(st.integers(1, 3)),
        pool=draw(st.sampled_from(["cls", "mean"])),
        patch_remainder=draw(st.sampled_from(["pad", "crop"])),
    )
    return config, draw(st.integers(1, 4)), draw(st.integers(0, 2**16))


@settings(max_examples=20)
@given(setup=vit_setups())
def test_properties_on_random_configs(setup: tuple[ViTConfig, int, int]) -> None:
    config, batch, seed = setup
    torch.manual_seed(seed)
    model = ViT(config)
    x = model.example_input(batch, generator=torch.Generator().manual_seed(seed))
    check_classifier_contract(model, x, config.n_classes, config.emb_size)


def test_example_input_is_seeded() -> None:
    model = ViT(tiny_config(in_channels=2))
    a = model.example_input(3, generator=torch.Generator().manual_seed(5))
    b = model.example_input(3, generator=torch.Generator().manual_seed(5))
    assert a.shape == (3, 2, 20, 20)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        model.example_input(0)


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"emb_size": 30, "n_heads": 4}, ValueError, "emb_size must be divisible by n_heads"),
        ({"img_size": 0}, ValueError, "img_size must be a positive integer, got 0"),
        ({"patch_size": -1}, ValueError, "patch_size must be a positive integer, got -1"),
        ({"n_blks": 0}, ValueError, "n_blks must be a positive integer, got 0"),
        ({"hidden_size": 0}, ValueError, "hidden_size must be a positive integer, got 0"),
        ({"in_channels": 0}, ValueError, "in_channels must be a positive integer, got 0"),
        ({"n_heads": 0}, ValueError, "n_heads must be a positive integer, got 0"),
        ({"emb_size": 2.5}, TypeError, "emb_size must be a positive integer, got 2.5"),
        ({"n_classes": 1}, ValueError, "n_classes must be an integer >= 2, got 1"),
        ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\), got 1.0"),
        ({"attn_dropout": -0.1}, ValueError, r"attn_dropout must be in \[0, 1\), got -0.1"),
        ({"pool": "max"}, ValueError, "pool must be one of .*got 'max'"),
        ({"patch_remainder": "wrap"}, ValueError, "patch_remainder must be one of .*got 'wrap'"),
        (
            {"img_size": 66, "patch_size": 16, "patch_remainder": "raise"},
            ValueError,
            "img_size must be a multiple of patch_size=16 .*got 66",
        ),
        ({"img_size": 5, "patch_remainder": "crop"}, ValueError, "at least patch_size=8"),
        ({"class_freqs": [1.0, 2.0]}, ValueError, "class_freqs must have n_classes=3 entries"),
        ({"class_freqs": [1.0, 0.0, 2.0]}, ValueError, "class_freqs must be finite and > 0"),
        ({"class_freqs": [1.0, -1.0, 2.0]}, ValueError, "class_freqs must be finite and > 0"),
        ({"zero_init_head": "yes"}, TypeError, "zero_init_head must be a bool, got 'yes'"),
    ],
)
def test_config_errors(overrides: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        tiny_config(**overrides)


def test_input_errors() -> None:
    model = ViT(tiny_config())
    with pytest.raises(ValueError, match=r"x must be a 4-D .*got shape \(1, 20, 20\)"):
        model(torch.zeros(1, 20, 20))
    with pytest.raises(ValueError, match=r"x must have 1 channel\(s\).*\(2, 3, 20, 20\)"):
        model(torch.zeros(2, 3, 20, 20))
    with pytest.raises(ValueError, match=r"x must be 20x20 \(img_size\).*\(2, 1, 21, 20\)"):
        model(torch.zeros(2, 1, 21, 20))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        model(torch.zeros(2, 1, 20, 20, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"features must have shape \(batch, 16\), got .*\(2, 8\)"):
        model.forward_head(torch.zeros(2, 8))
    with pytest.raises(TypeError, match="config must be a ViTConfig, got dict"):
        ViT({"img_size": 20})  # type: ignore[arg-type]


def test_channels_last_input() -> None:
    torch.manual_seed(0)
    model = ViT(tiny_config(in_channels=3)).eval()
    x = model.example_input(2)
    expected = model(x)
    got = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_bf16_autocast_on_cpu() -> None:
    torch.manual_seed(0)
    model = ViT(tiny_config())
    x = model.example_input(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    assert logits.dtype == torch.bfloat16
    logits.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with torch.no_grad():
        torch.testing.assert_close(logits.float(), model(x), atol=5e-2, rtol=5e-2)


@pytest.mark.slow
@pytest.mark.filterwarnings(TORCH_JIT_DEPRECATION)
def test_torch_compile_matches_eager() -> None:
    torch.manual_seed(0)
    model = ViT(tiny_config(img_size=16, n_blks=1)).eval()
    x = model.example_input(2)
    compiled = torch.compile(model, fullgraph=True)  # no graph breaks in forward
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.filterwarnings(TORCH_JIT_DEPRECATION)
def test_torch_export_matches_eager() -> None:
    torch.manual_seed(0)
    model = ViT(tiny_config(img_size=20, n_blks=1)).eval()  # 20 -> padded to 24
    x = model.example_input(2)
    program = torch.export.export(model, (x,))
    exported = program.module()
    with torch.no_grad():
        torch.testing.assert_close(exported(x), model(x), atol=1e-5, rtol=1e-5)
