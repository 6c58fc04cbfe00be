"""Tests for the fused multi-head self-attention against independent references."""

from __future__ import annotations

import math
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import cellvision.layers.attention as attention_module
from cellvision.layers import MultiHeadSelfAttention


def naive_attention(attn: MultiHeadSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """Per-head loop written from the paper's equations, sharing only the weights."""
    dim, n_heads = attn.dim, attn.n_heads
    head_dim = dim // n_heads
    w, b = attn.qkv.weight, attn.qkv.bias
    assert b is not None
    wq, wk, wv = w[:dim], w[dim : 2 * dim], w[2 * dim :]
    bq, bk, bv = b[:dim], b[dim : 2 * dim], b[2 * dim :]
    heads = []
    for h in range(n_heads):
        sl = slice(h * head_dim, (h + 1) * head_dim)
        q = x @ wq[sl].T + bq[sl]
        k = x @ wk[sl].T + bk[sl]
        v = x @ wv[sl].T + bv[sl]
        scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)
        heads.append(torch.softmax(scores, dim=-1) @ v)
    concat = torch.cat(heads, dim=-1)
    return concat @ attn.proj.weight.T + attn.proj.bias


def copy_to_mha(attn: MultiHeadSelfAttention, dropout: float) -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(attn.dim, attn.n_heads, dropout=dropout, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(attn.qkv.weight)
        mha.in_proj_bias.copy_(attn.qkv.bias)
        mha.out_proj.weight.copy_(attn.proj.weight)
        mha.out_proj.bias.copy_(attn.proj.bias)
    return mha


# (training mode, dropout rate): dropout either zero in training mode, or non-zero but
# disabled by eval mode.
MODES = [pytest.param(True, 0.0, id="train-no-dropout"), pytest.param(False, 0.3, id="eval")]


@pytest.mark.parametrize(("training", "dropout"), MODES)
def test_equals_naive_per_head_loop(training: bool, dropout: float) -> None:
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(32, 4, attn_dropout=dropout, proj_dropout=dropout)
    attn.train(training)
    x = torch.randn(3, 11, 32)
    diff = (attn(x) - naive_attention(attn, x)).abs().max().item()
    assert diff <= 1e-5


@pytest.mark.parametrize(("training", "dropout"), MODES)
def test_equals_torch_multihead_attention(training: bool, dropout: float) -> None:
    torch.manual_seed(1)
    attn = MultiHeadSelfAttention(48, 6, attn_dropout=dropout, proj_dropout=0.0)
    mha = copy_to_mha(attn, dropout)
    attn.train(training)
    mha.train(training)
    x = torch.randn(2, 9, 48, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out = attn(x)
    ref, _ = mha(x_ref, x_ref, x_ref, need_weights=False)
    assert (out - ref).abs().max().item() <= 1e-5
    # Gradients agree too: same function, same parameters.
    out.square().sum().backward()
    ref.square().sum().backward()
    assert x.grad is not None
    assert x_ref.grad is not None
    assert (x.grad - x_ref.grad).abs().max().item() <= 1e-4
    assert attn.qkv.weight.grad is not None
    assert mha.in_proj_weight.grad is not None
    torch.testing.assert_close(attn.qkv.weight.grad, mha.in_proj_weight.grad, atol=1e-4, rtol=1e-4)


def test_calls_scaled_dot_product_attention_once_for_all_heads() -> None:
    attn = MultiHeadSelfAttention(16, 4)
    real = attention_module.scaled_dot_product_attention
    with mock.patch.object(
        attention_module, "scaled_dot_product_attention", side_effect=real
    ) as spy:
        attn(torch.randn(2, 5, 16))
    assert spy.call_count == 1
    q = spy.call_args.args[0]
    assert q.shape == (2, 4, 5, 4)  # (batch, heads, tokens, head_dim): heads batched


def test_attention_dropout_active_only_in_training() -> None:
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(16, 2, attn_dropout=0.5)
    x = torch.randn(2, 6, 16)
    attn.eval()
    eval_out = attn(x)
    attn.train()
    torch.manual_seed(3)
    train_a = attn(x)
    torch.manual_seed(3)
    train_b = attn(x)
    assert not torch.allclose(train_a, eval_out)
    torch.testing.assert_close(train_a, train_b)  # same seed, same dropout mask


@settings(max_examples=15)
@given(
    n_heads=st.integers(1, 4),
    head_dim=st.integers(1, 6),
    batch=st.integers(1, 3),
    tokens=st.integers(1, 7),
)
def test_shapes_and_finite_gradients(n_heads: int, head_dim: int, batch: int, tokens: int) -> None:
    dim = n_heads * head_dim
    attn = MultiHeadSelfAttention(dim, n_heads)
    x = torch.randn(batch, tokens, dim, requires_grad=True)
    out = attn(x)
    assert out.shape == (batch, tokens, dim)
    assert out.dtype == torch.float32
    out.sum().backward()
    for name, p in attn.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dim": 10, "n_heads": 4}, ValueError, "dim must be divisible by n_heads"),
        ({"dim": 0, "n_heads": 1}, ValueError, "dim must be a positive integer, got 0"),
        ({"dim": 8, "n_heads": -2}, ValueError, "n_heads must be a positive integer, got -2"),
        ({"dim": 8, "n_heads": 2, "attn_dropout": 1.0}, ValueError, r"attn_dropout must be in"),
        ({"dim": 8, "n_heads": 2, "proj_dropout": -0.1}, ValueError, r"proj_dropout must be in"),
        ({"dim": 8.0, "n_heads": 2}, TypeError, "dim must be a positive integer, got 8.0"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        MultiHeadSelfAttention(**kwargs)  # type: ignore[arg-type]


def test_wrong_input_shape() -> None:
    attn = MultiHeadSelfAttention(8, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, tokens, 8\), got \(2, 8\)"):
        attn(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"got \(2, 3, 4\)"):
        attn(torch.randn(2, 3, 4))
