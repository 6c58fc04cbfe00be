"""Tests for cellvision.optim: weight-decay groups and the warm-up + cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cellvision.models import create_model
from cellvision.optim import WeightEMA, param_groups, warmup_cosine


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


def _sgd_run(
    model: nn.Module, steps: int, seed: int, ema: WeightEMA | None = None
) -> list[dict[str, torch.Tensor]]:
    """Train ``model`` with SGD on random batches (``ema`` attached to the optimizer, if
    given); the model's state after every step."""
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    if ema is not None:
        ema.attach(optimizer, model)
    states = []
    for _ in range(steps):
        x = torch.randn(8, 3, 4, 4, generator=gen)
        loss = model(x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    return states


def _bn_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 1))


@settings(max_examples=10, deadline=None)
@given(decay=st.floats(0.0, 0.99), steps=st.integers(1, 12), seed=st.integers(0, 100))
def test_weight_ema_matches_a_naive_running_average(decay: float, steps: int, seed: int) -> None:
    torch.manual_seed(seed)
    model = _bn_net()
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ema = WeightEMA(model, decay)
    states = _sgd_run(model, steps, seed, ema=ema)
    # Reference: the recurrence written out per tensor, in float64.
    expected = {k: v.double() for k, v in start.items()}
    for n, state in enumerate(states):
        d = min(decay, (1 + n) / (10 + n))
        for k, v in state.items():
            if v.is_floating_point():
                expected[k] = d * expected[k] + (1 - d) * v.double()
            else:
                expected[k] = v.double()
    assert ema.updates == steps
    for k, v in ema.module.state_dict().items():
        torch.testing.assert_close(v.double(), expected[k], rtol=1e-5, atol=1e-6)
    # BatchNorm's running statistics were averaged too, and the counter copied.
    bn = dict(ema.module.named_modules())["1"]
    assert int(bn.num_batches_tracked) == steps


def test_weight_ema_is_a_frozen_copy_and_leaves_the_model_alone() -> None:
    model = _bn_net()
    ema = WeightEMA(model, 0.9)
    assert all(not p.requires_grad for p in ema.module.parameters())
    assert not ema.module.training
    states = _sgd_run(model, 3, seed=0)
    # No optimizer hook: the average has not moved, the model has.
    assert ema.updates == 0
    assert not torch.equal(states[-1]["3.weight"], ema.module.state_dict()["3.weight"])
    ema.update(model)
    assert ema.module[3].weight.data_ptr() != model[3].weight.data_ptr()


@pytest.mark.parametrize(
    ("decay", "error"),
    [(1.0, ValueError), (-0.1, ValueError), (True, TypeError), ("0.9", TypeError)],
)
def test_weight_ema_rejects_bad_decay(decay: object, error: type) -> None:
    with pytest.raises(error, match="decay"):
        WeightEMA(nn.Linear(1, 1), decay)  # type: ignore[arg-type]


def test_weight_ema_rejects_a_different_model_and_bad_arguments() -> None:
    ema = WeightEMA(nn.Linear(2, 1), 0.9)
    with pytest.raises(ValueError, match="shape"):
        ema.update(nn.Linear(3, 1))
    with pytest.raises(ValueError, match="keys"):
        ema.update(nn.Linear(2, 1, bias=False))
    with pytest.raises(TypeError, match="model must be"):
        WeightEMA("net", 0.9)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="optimizer must be"):
        ema.attach("sgd", nn.Linear(2, 1))  # type: ignore[arg-type]
