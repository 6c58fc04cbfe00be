"""Tests for the patch embedding and its remainder policies."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellvision.layers import PatchEmbed, patch_grid_size


def reference_tokens(embed: PatchEmbed, image: torch.Tensor) -> torch.Tensor:
    """Cut an already patch-aligned image into patches by slicing and apply one linear map."""
    p = embed.patch_size
    b, _c, h, w = image.shape
    weight = embed.proj.weight.reshape(embed.proj.out_channels, -1)
    tokens = []
    for i in range(h // p):
        for j in range(w // p):
            patch = image[:, :, i * p : (i + 1) * p, j * p : (j + 1) * p].reshape(b, -1)
            tokens.append(patch @ weight.T + embed.proj.bias)
    return torch.stack(tokens, dim=1)


def test_pad_policy_zero_pads_centred() -> None:
    torch.manual_seed(0)
    embed = PatchEmbed(66, 16, 2, 8, remainder="pad")
    x = torch.randn(3, 2, 66, 66)
    padded = torch.zeros(3, 2, 80, 80)
    padded[:, :, 7:73, 7:73] = x  # 14 pixels of padding, 7 each side
    assert embed.grid_size == (5, 5)
    torch.testing.assert_close(embed(x), reference_tokens(embed, padded), atol=1e-5, rtol=1e-5)


def test_crop_policy_crops_centred() -> None:
    torch.manual_seed(0)
    embed = PatchEmbed(66, 16, 1, 8, remainder="crop")
    x = torch.randn(2, 1, 66, 66)
    assert embed.grid_size == (4, 4)
    expected = reference_tokens(embed, x[:, :, 1:65, 1:65])
    torch.testing.assert_close(embed(x), expected, atol=1e-5, rtol=1e-5)


def test_raise_policy() -> None:
    with pytest.raises(ValueError, match=r"img_size must be a multiple of patch_size=16.*got 66"):
        PatchEmbed(66, 16, 1, 8, remainder="raise")
    assert PatchEmbed(64, 16, 1, 8, remainder="raise").num_patches == 16


@pytest.mark.parametrize(
    ("size", "patch", "policy", "expected"),
    [
        (66, 16, "pad", 5),
        (66, 16, "crop", 4),
        (64, 16, "raise", 4),
        (5, 8, "pad", 1),
        (1, 1, "raise", 1),
    ],
)
def test_grid_size_hand_computed(size: int, patch: int, policy: str, expected: int) -> None:
    assert patch_grid_size(size, patch, policy) == expected  # type: ignore[arg-type]


def test_crop_smaller_than_patch_and_unknown_policy() -> None:
    with pytest.raises(ValueError, match=r"at least patch_size=8 .*'crop', got 5"):
        patch_grid_size(5, 8, "crop")
    with pytest.raises(ValueError, match=r"patch_remainder must be one of .*got 'reflect'"):
        patch_grid_size(5, 8, "reflect")  # type: ignore[arg-type]


def test_input_checks() -> None:
    embed = PatchEmbed(32, 16, 1, 8)
    with pytest.raises(ValueError, match=r"x must be a 4-D .* got shape \(1, 32, 32\)"):
        embed(torch.zeros(1, 32, 32))
    with pytest.raises(ValueError, match=r"x must have 1 channel\(s\) .*\(1, 2, 32, 32\)"):
        embed(torch.zeros(1, 2, 32, 32))
    with pytest.raises(ValueError, match=r"x must be 32x32 \(img_size\), got .*\(1, 1, 30, 32\)"):
        embed(torch.zeros(1, 1, 30, 32))
    with pytest.raises(TypeError, match="x must be a floating-point tensor, got a torch.int64"):
        embed(torch.zeros(1, 1, 32, 32, dtype=torch.int64))


@settings(max_examples=20)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    patch=st.integers(1, 9),
    policy=st.sampled_from(["pad", "crop"]),
)
def test_dynamic_sizes_token_count(h: int, w: int, patch: int, policy: str) -> None:
    embed = PatchEmbed(16, patch, 1, 4, remainder=policy, dynamic_img_size=True)  # type: ignore[arg-type]
    if policy == "crop" and (h < patch or w < patch):
        with pytest.raises(ValueError, match="patch_remainder='crop'"):
            embed(torch.zeros(1, 1, h, w))
        return
    rows = -(-h // patch) if policy == "pad" else h // patch
    cols = -(-w // patch) if policy == "pad" else w // patch
    assert embed.output_grid(h, w) == (rows, cols)
    assert embed(torch.zeros(2, 1, h, w)).shape == (2, rows * cols, 4)
