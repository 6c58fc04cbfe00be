"""Tests for cellvision.optim: weight-decay groups and the warm-up + cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cellvision.models import create_model
from cellvision.optim import param_groups, warmup_cosine


class Tokens(nn.Module):
    """A toy model with every kind of parameter the groups distinguish."""

    def __init__(self) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, 4))
        self.pos_embed = nn.Parameter(torch.randn(1, 3, 4))
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def test_groups_exempt_biases_norms_embeddings_and_class_token() -> None:
    decay, no_decay = param_groups(Tokens(), 0.1)
    # Hand-written expectation.
    assert decay["names"] == ["conv.weight", "fc.weight"]
    assert set(no_decay["names"]) == {
        "cls_token", "pos_embed", "conv.bias", "bn.weight", "bn.bias", "ln.weight",
        "ln.bias", "fc.bias",
    }  # fmt: skip
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)


def test_vit_groups_match_a_name_based_reference() -> None:
    model = create_model("cellcycle_vit", n_classes=5, img_size=32, patch_size=8, emb_size=16,
                         n_blks=2, n_heads=2, hidden_size=32)  # fmt: skip
    decay, no_decay = param_groups(model, 0.05)
    names = [n for n, _ in model.named_parameters()]
    reference = [n for n in names if n.endswith(".weight") and "norm" not in n]
    assert decay["names"] == reference
    assert set(no_decay["names"]) == set(names) - set(reference)
    assert {"pos_embed", "cls_token", "norm.weight"} <= set(no_decay["names"])


def test_adamw_with_the_groups_leaves_exempt_parameters_undecayed() -> None:
    model = Tokens()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(param_groups(model, 0.5), lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: only weight decay can move a parameter
    optimizer.step()
    for name, p in model.named_parameters():
        if name in ("conv.weight", "fc.weight"):
            torch.testing.assert_close(p, before[name] * (1 - 0.1 * 0.5))
        else:
            torch.testing.assert_close(p, before[name])


@pytest.mark.parametrize(
    ("weight_decay", "error"), [(-0.1, ValueError), (math.inf, ValueError), ("0.1", TypeError)]
)
def test_param_groups_rejects_bad_weight_decay(weight_decay: object, error: type) -> None:
    with pytest.raises(error, match="weight_decay must be"):
        param_groups(nn.Linear(2, 2), weight_decay)  # type: ignore[arg-type]


def reference_rate(step: int, total: int, fraction: float, peak: float) -> float:
    warmup = max(1, round(fraction * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min((step - warmup) / max(1, total - warmup), 1.0)
    return peak * (1 + math.cos(math.pi * t)) / 2


@settings(max_examples=40, deadline=None)
@given(total=st.integers(1, 60), fraction=st.floats(0.0, 1.0), peak=st.floats(1e-4, 2.0))
def test_warmup_cosine_matches_the_closed_form(total: int, fraction: float, peak: float) -> None:
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=peak)
    scheduler = warmup_cosine(optimizer, total, fraction)
    for step in range(total):
        rate = optimizer.param_groups[0]["lr"]
        assert rate == pytest.approx(reference_rate(step, total, fraction, peak), rel=1e-9)
        optimizer.step()
        scheduler.step()


def test_warmup_cosine_rejects_bad_arguments() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="total_steps must be a positive integer"):
        warmup_cosine(optimizer, 0)
    with pytest.raises(ValueError, match=r"warmup_fraction must be in \[0, 1\]"):
        warmup_cosine(optimizer, 10, 1.5)
