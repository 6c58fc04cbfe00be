"""Tests for the MLP, the convolution block and the pre-LN transformer block."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cellvision.layers import MLP, ConvBlock, PreNormTransformerBlock


def test_mlp_matches_manual_composition() -> None:
    torch.manual_seed(0)
    mlp = MLP(6, 10, 3, activation="gelu")
    x = torch.randn(4, 6)
    hidden = x @ mlp.fc1.weight.T + mlp.fc1.bias
    hidden = 0.5 * hidden * (1 + torch.erf(hidden / 2**0.5))  # exact GELU
    expected = hidden @ mlp.fc2.weight.T + mlp.fc2.bias
    torch.testing.assert_close(mlp(x), expected)


def test_mlp_relu_and_errors() -> None:
    mlp = MLP(2, 3, activation="relu")
    assert isinstance(mlp.act, nn.ReLU)
    with pytest.raises(ValueError, match="activation must be one of .*got 'tanh'"):
        MLP(2, 3, activation="tanh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.5"):
        MLP(2, 3, dropout=1.5)


def test_conv_block_eval_matches_functional_reference() -> None:
    torch.manual_seed(0)
    block = ConvBlock(3, 5, kernel_size=5, dropout=0.5)
    with torch.no_grad():  # non-trivial running statistics
        block.norm.running_mean.uniform_(-1, 1)
        block.norm.running_var.uniform_(0.5, 2)
        block.norm.weight.uniform_(0.5, 1.5)
        block.norm.bias.uniform_(-1, 1)
    block.eval()
    x = torch.randn(2, 3, 9, 7)
    y = torch.conv2d(x, block.conv.weight, padding=2)
    mean = block.norm.running_mean[:, None, None]
    var = block.norm.running_var[:, None, None]
    y = (y - mean) / torch.sqrt(var + block.norm.eps)
    y = y * block.norm.weight[:, None, None] + block.norm.bias[:, None, None]
    expected = y.clamp_min(0)
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel_size", [2, 0, -3])
def test_conv_block_rejects_bad_kernel(kernel_size: int) -> None:
    with pytest.raises(
        ValueError, match=f"kernel_size must be an odd positive integer, got {kernel_size}"
    ):
        ConvBlock(1, 2, kernel_size)


@pytest.mark.parametrize("training", [True, False])
def test_transformer_block_matches_torch_encoder_layer(training: bool) -> None:
    torch.manual_seed(0)
    block = PreNormTransformerBlock(dim=32, n_heads=4, hidden_size=64)
    ref = nn.TransformerEncoderLayer(
        32, 4, dim_feedforward=64, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    )
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(block.attn.qkv.weight)
        ref.self_attn.in_proj_bias.copy_(block.attn.qkv.bias)
        ref.self_attn.out_proj.weight.copy_(block.attn.proj.weight)
        ref.self_attn.out_proj.bias.copy_(block.attn.proj.bias)
        ref.linear1.load_state_dict(block.mlp.fc1.state_dict())
        ref.linear2.load_state_dict(block.mlp.fc2.state_dict())
        ref.norm1.load_state_dict(block.norm1.state_dict())
        ref.norm2.load_state_dict(block.norm2.state_dict())
    block.train(training)
    ref.train(training)
    x = torch.randn(3, 10, 32)
    diff = (block(x) - ref(x)).abs().max().item()
    assert diff <= 1e-5
