"""Tests for cellvision.losses against naive references written here and known identities."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from cellvision.engine import fit
from cellvision.losses import (
    BalancedSoftmaxLoss,
    FocalLoss,
    LogitAdjustedCrossEntropy,
    OneVsAllLoss,
    adjust_logits,
    balanced_softmax_loss,
    class_balanced_weights,
    focal_loss,
    init_prior_log_odds_,
    logit_adjusted_cross_entropy,
    one_vs_all_loss,
    one_vs_all_probabilities,
)
from cellvision.sampling import expected_class_distribution


def _batch(b: int = 16, c: int = 5, seed: int = 0, scale: float = 3.0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(b, c, generator=g, dtype=torch.float64)
    target = torch.randint(0, c, (b,), generator=g)
    return logits, target


# ---- naive references: one sample at a time, with math on Python floats ----------------------


def _naive_log_softmax(row: list[float]) -> list[float]:
    total = sum(math.exp(v) for v in row)
    return [v - math.log(total) for v in row]


def _naive_ce(logits: Tensor, target: Tensor, shift: list[float] | None = None) -> list[float]:
    out = []
    for row, t in zip(logits.tolist(), target.tolist(), strict=True):
        if shift is not None:
            row = [v + s for v, s in zip(row, shift, strict=True)]
        out.append(-_naive_log_softmax(row)[t])
    return out


def _naive_focal(
    logits: Tensor, target: Tensor, gamma: float, alpha: list[float] | None
) -> list[float]:
    out = []
    for row, t in zip(logits.tolist(), target.tolist(), strict=True):
        p = math.exp(_naive_log_softmax(row)[t])
        a = 1.0 if alpha is None else alpha[t]
        out.append(-a * (1.0 - p) ** gamma * math.log(p))
    return out


def _naive_one_vs_all(logits: Tensor, target: Tensor, pos_weight: list[float]) -> list[float]:
    out = []
    for row, t in zip(logits.tolist(), target.tolist(), strict=True):
        total = 0.0
        for c, z in enumerate(row):
            sig = 1.0 / (1.0 + math.exp(-z))
            total += -pos_weight[c] * math.log(sig) if c == t else -math.log(1.0 - sig)
        out.append(total)
    return out


# ---- values against the references ------------------------------------------------------------


def test_logit_adjusted_cross_entropy_matches_reference() -> None:
    logits, target = _batch()
    prior = [0.5, 0.2, 0.15, 0.1, 0.05]
    tau = 0.7
    shift = [tau * math.log(p) for p in prior]
    expected = _naive_ce(logits, target, shift)
    got = logit_adjusted_cross_entropy(logits, target, prior, tau=tau, reduction="none")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    mean = logit_adjusted_cross_entropy(logits, target, torch.tensor(prior), tau=tau)
    assert mean.item() == pytest.approx(sum(expected) / len(expected), rel=1e-10)


def test_prior_is_normalised_so_counts_work() -> None:
    logits, target = _batch()
    counts = [500, 200, 150, 100, 50]
    proportions = [c / 1000 for c in counts]
    torch.testing.assert_close(
        logit_adjusted_cross_entropy(logits, target, counts),
        logit_adjusted_cross_entropy(logits, target, proportions),
    )


def test_logit_adjustment_with_tau_zero_is_cross_entropy() -> None:
    logits, target = _batch()
    got = logit_adjusted_cross_entropy(logits, target, [0.9, 0.04, 0.03, 0.02, 0.01], tau=0.0)
    torch.testing.assert_close(got, F.cross_entropy(logits, target))


def test_balanced_softmax_is_cross_entropy_on_shifted_logits() -> None:
    logits, target = _batch()
    counts = torch.tensor([3155.0, 606.0, 68.0, 15.0, 27.0], dtype=torch.float64)
    prior = counts / counts.sum()
    expected = F.cross_entropy(logits + prior.log(), target)
    torch.testing.assert_close(balanced_softmax_loss(logits, target, counts), expected)
    # ... and it equals logit adjustment with tau = 1.
    torch.testing.assert_close(
        balanced_softmax_loss(logits, target, counts, reduction="sum"),
        logit_adjusted_cross_entropy(logits, target, prior, tau=1.0, reduction="sum"),
    )
    np.testing.assert_allclose(
        balanced_softmax_loss(logits, target, counts, reduction="none").numpy(),
        _naive_ce(logits, target, [math.log(p) for p in prior.tolist()]),
        rtol=1e-10,
    )


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
def test_focal_loss_matches_reference(gamma: float) -> None:
    logits, target = _batch(scale=2.0)
    alpha = [0.1, 0.4, 1.0, 2.0, 0.0]
    expected = _naive_focal(logits, target, gamma, alpha)
    got = focal_loss(logits, target, gamma=gamma, alpha=alpha, reduction="none")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-300)
    plain = focal_loss(logits, target, gamma=gamma, reduction="sum")
    assert plain.item() == pytest.approx(sum(_naive_focal(logits, target, gamma, None)), rel=1e-9)


def test_focal_loss_with_gamma_zero_is_cross_entropy_weighted_or_not() -> None:
    logits, target = _batch()
    torch.testing.assert_close(
        focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits, target)
    )
    alpha = torch.tensor([0.5, 1.0, 2.0, 0.25, 3.0], dtype=torch.float64)
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(
            focal_loss(logits, target, gamma=0, alpha=alpha, reduction=reduction),
            F.cross_entropy(logits, target, weight=alpha, reduction=reduction),
        )


def test_focal_loss_is_below_cross_entropy_and_lowest_on_easy_samples() -> None:
    logits, target = _batch(b=64)
    ce = F.cross_entropy(logits, target, reduction="none")
    fl = focal_loss(logits, target, gamma=2.0, reduction="none")
    assert bool((fl <= ce).all())
    p_true = logits.softmax(1).gather(1, target[:, None]).squeeze(1)
    ratio = fl / ce
    torch.testing.assert_close(ratio, (1 - p_true) ** 2)


def test_one_vs_all_is_sum_of_per_class_binary_cross_entropies() -> None:
    logits, target = _batch()
    per_class = [
        F.binary_cross_entropy_with_logits(logits[:, c], (target == c).double(), reduction="none")
        for c in range(logits.shape[1])
    ]
    expected = torch.stack(per_class, dim=1).sum(1)
    torch.testing.assert_close(one_vs_all_loss(logits, target, reduction="none"), expected)
    torch.testing.assert_close(one_vs_all_loss(logits, target), expected.mean())
    torch.testing.assert_close(one_vs_all_loss(logits, target, reduction="sum"), expected.sum())


@pytest.mark.parametrize("pos_weight", [[1.0, 2.0, 3.0, 0.5, 10.0], 4.0, np.float32(2.5)])
def test_one_vs_all_pos_weight_matches_reference(pos_weight: Any) -> None:
    logits, target = _batch()
    weights = [float(pos_weight)] * 5 if np.ndim(pos_weight) == 0 else list(pos_weight)
    expected = _naive_one_vs_all(logits, target, weights)
    got = one_vs_all_loss(logits, target, pos_weight=pos_weight, reduction="none")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    module = OneVsAllLoss(pos_weight, n_classes=5, reduction="sum")
    assert module(logits.float(), target).item() == pytest.approx(sum(expected), rel=1e-5)


def test_one_vs_all_probabilities_normalise_the_sigmoids() -> None:
    logits, _ = _batch()
    sig = torch.sigmoid(logits)
    torch.testing.assert_close(one_vs_all_probabilities(logits), sig / sig.sum(1, keepdim=True))
    extreme = torch.tensor([[-200.0, -300.0, -250.0]])  # every sigmoid underflows in float32
    probs = one_vs_all_probabilities(extreme)
    assert bool(torch.isfinite(probs).all())
    assert probs.argmax(1).item() == 0
    assert probs.sum().item() == pytest.approx(1.0)


def test_init_prior_log_odds_starts_each_sigmoid_at_its_frequency() -> None:
    counts = [31550.0, 606.0, 68.0, 15.0, 27.0]
    head = init_prior_log_odds_(nn.Linear(3, 5), counts, zero_weight=True)
    total = sum(counts)
    out = torch.sigmoid(head(torch.randn(4, 3))).detach()
    torch.testing.assert_close(out, torch.tensor([[c / total for c in counts]] * 4))
    with pytest.raises(ValueError, match="must have a bias"):
        init_prior_log_odds_(nn.Linear(3, 5, bias=False), counts)
    with pytest.raises(ValueError, match="n_classes=2 entries"):
        init_prior_log_odds_(nn.Linear(3, 2), counts)
    with pytest.raises(TypeError, match="nn.Linear"):
        init_prior_log_odds_(nn.Conv2d(1, 1, 1), counts)  # type: ignore[arg-type]


def test_class_balanced_weights_match_the_effective_number_formula() -> None:
    counts = [31550, 606, 68, 15, 27]
    for beta in (0.0, 0.9, 0.999, 0.9999):
        raw = [(1 - beta) / (1 - beta**n) for n in counts]
        expected = [w * len(counts) / sum(raw) for w in raw]
        got = class_balanced_weights(counts, beta, dtype=torch.float64)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)
    # beta -> 1 approaches inverse frequency.
    inverse = [1 / n for n in counts]
    inverse = [w * 5 / sum(inverse) for w in inverse]
    np.testing.assert_allclose(class_balanced_weights(counts, 1 - 1e-9).numpy(), inverse, rtol=1e-3)
    assert class_balanced_weights(np.array(counts), np.float32(0.5)).dtype == torch.float32


def test_adjust_logits_subtracts_the_log_prior_and_recovers_balanced_predictions() -> None:
    logits, _ = _batch()
    prior = torch.tensor([0.4, 0.3, 0.2, 0.06, 0.04], dtype=torch.float64)
    got = adjust_logits(logits, prior, tau=0.5)
    torch.testing.assert_close(got, logits - 0.5 * prior.log())
    torch.testing.assert_close(adjust_logits(logits, prior, tau=0), logits)
    to_uniform = adjust_logits(logits, prior, target_prior=[1, 1, 1, 1, 1])
    torch.testing.assert_close(to_uniform.softmax(1), adjust_logits(logits, prior).softmax(1))
    # Round trip: adjusting to the training prior and back is the identity.
    there = adjust_logits(logits, [1, 1, 1, 1, 1], target_prior=prior)
    torch.testing.assert_close(adjust_logits(there, prior), logits - math.log(0.2))
    assert adjust_logits(logits.float(), prior).dtype == torch.float32


def test_adjust_logits_on_a_known_posterior_is_bayes_optimal_for_balanced_error() -> None:
    # Two 1-D Gaussian classes with a 95:5 prior; the posterior's argmax favours the common
    # class, the adjusted one is the likelihood-ratio rule (threshold at the midpoint 0).
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    log_lik = torch.stack([-0.5 * (x + 1) ** 2, -0.5 * (x - 1) ** 2], dim=1)
    prior = torch.tensor([0.95, 0.05], dtype=torch.float64)
    posterior_logits = log_lik + prior.log()
    assert bool((posterior_logits.argmax(1)[x < 1.4] == 0).all())  # biased threshold
    adjusted = adjust_logits(posterior_logits, prior).argmax(1)
    torch.testing.assert_close(adjusted, (x > 0).long())


def test_adjust_logits_with_the_sampler_mix() -> None:
    labels = [0] * 90 + [1] * 9 + [2]
    mix = expected_class_distribution(labels, alpha=0.5)
    logits = torch.zeros(2, 3)
    torch.testing.assert_close(
        adjust_logits(logits, mix).softmax(1)[0].double(), (1 / mix) / (1 / mix).sum()
    )


# ---- modules equal functions, and work as engine loss_fn ---------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_modules_equal_their_functions(reduction: Any) -> None:
    logits, target = _batch()
    logits = logits.float()
    prior = [0.5, 0.2, 0.15, 0.1, 0.05]
    alpha = [1.0, 2.0, 3.0, 4.0, 5.0]
    pairs = [
        (OneVsAllLoss(reduction=reduction), one_vs_all_loss(logits, target, reduction=reduction)),
        (
            LogitAdjustedCrossEntropy(prior, tau=0.3, reduction=reduction),
            logit_adjusted_cross_entropy(logits, target, prior, 0.3, reduction),
        ),
        (
            BalancedSoftmaxLoss(prior, reduction=reduction),
            balanced_softmax_loss(logits, target, prior, reduction),
        ),
        (
            FocalLoss(1.5, alpha, reduction=reduction),
            focal_loss(logits, target, 1.5, alpha, reduction),
        ),
    ]
    for module, expected in pairs:
        torch.testing.assert_close(module(logits, target), expected)


def test_modules_move_with_to_and_serialise_their_buffers() -> None:
    module = LogitAdjustedCrossEntropy([0.75, 0.25])
    state = module.state_dict()
    torch.testing.assert_close(state["shift"], torch.tensor([0.75, 0.25]).log())
    assert module.to(torch.float64).shift.dtype == torch.float64


def test_module_works_as_fit_loss_fn() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0.8).long()  # about 20% positives
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    counts = torch.bincount(y, minlength=2).tolist()
    for loss_fn in (BalancedSoftmaxLoss(counts), FocalLoss(2.0), OneVsAllLoss()):
        history = fit(model, loader, optimizer, epochs=2, loss_fn=loss_fn)
        assert len(history) == 2
        assert all(math.isfinite(r["train_loss"]) for r in history)


# ---- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda z, t: logit_adjusted_cross_entropy(z, t, [0.5, 0.5]), ValueError, "n_classes=3"),
        (lambda z, t: logit_adjusted_cross_entropy(z, t, [1, 0, 1]), ValueError, "prior must be"),
        (lambda z, t: logit_adjusted_cross_entropy(z, t, [1, -1, 1]), ValueError, "prior must"),
        (lambda z, t: logit_adjusted_cross_entropy(z, t, [1, math.nan, 1]), ValueError, "finite"),
        (lambda z, t: logit_adjusted_cross_entropy(z, t, "abc"), TypeError, "prior must be a"),
        (lambda z, t: logit_adjusted_cross_entropy(z, t, [1, 1, 1], tau=-1), ValueError, "tau"),
        (lambda z, t: logit_adjusted_cross_entropy(z, t, [1, 1, 1], tau=True), TypeError, "tau"),
        (lambda z, t: balanced_softmax_loss(z, t, [3, 0, 1]), ValueError, "counts must be"),
        (lambda z, t: balanced_softmax_loss(z, t, [[3, 1, 1]]), ValueError, "1-D"),
        (lambda z, t: focal_loss(z, t, gamma=-0.5), ValueError, r"gamma must be .*\[0.0, inf\)"),
        (lambda z, t: focal_loss(z, t, gamma=math.inf), ValueError, "gamma"),
        (lambda z, t: focal_loss(z, t, gamma="2"), TypeError, "gamma must be a real number"),
        (lambda z, t: focal_loss(z, t, alpha=[0, 0, 0]), ValueError, "alpha must be"),
        (lambda z, t: focal_loss(z, t, alpha=[1, 1]), ValueError, "alpha must have n_classes=3"),
        (lambda z, t: one_vs_all_loss(z, t, pos_weight=0.0), ValueError, "pos_weight"),
        (lambda z, t: one_vs_all_loss(z, t, pos_weight=[1, 2]), ValueError, "pos_weight"),
        (lambda z, t: one_vs_all_loss(z, t, reduction="avg"), ValueError, "reduction must be"),
        (lambda z, t: one_vs_all_loss(z, t.float()), TypeError, "target must be an integer"),
        (lambda z, t: one_vs_all_loss(z, t[:2]), ValueError, r"target must have shape \(4,\)"),
        (lambda z, t: focal_loss(z.long(), t), TypeError, "logits must be a floating"),
        (lambda z, t: focal_loss(z[0], t), ValueError, r"logits must have shape \(batch"),
        (lambda z, t: adjust_logits(z, [1, 2, 3], tau=-0.1), ValueError, "tau"),
        (lambda z, t: adjust_logits(z, [1, 2, 0]), ValueError, "train_prior must be"),
        (lambda z, t: adjust_logits(z, [1, 2, 3], target_prior=[1]), ValueError, "target_prior"),
        (lambda z, t: class_balanced_weights([1, 2], beta=1.0), ValueError, r"beta .*\[0.0, 1"),
        (lambda z, t: class_balanced_weights([1, 0], beta=0.9), ValueError, "counts must be"),
    ],
)
def test_bad_inputs_get_clear_errors(call: Any, error: type[Exception], match: str) -> None:
    logits = torch.zeros(4, 3)
    target = torch.tensor([0, 1, 2, 0])
    with pytest.raises(error, match=match):
        call(logits, target)


def test_modules_validate_at_construction_and_call() -> None:
    with pytest.raises(ValueError, match="prior must be"):
        LogitAdjustedCrossEntropy([1.0, 0.0])
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1)
    with pytest.raises(ValueError, match="n_classes must be given"):
        OneVsAllLoss(pos_weight=2.0)
    with pytest.raises(ValueError, match="logits must have 2 classes to match prior"):
        LogitAdjustedCrossEntropy([1.0, 3.0])(torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        BalancedSoftmaxLoss([1, 2], reduction="batchmean")  # type: ignore[arg-type]


# ---- stability, dtypes, gradients (hypothesis) --------------------------------------------------

_LOSSES = {
    "one_vs_all": lambda z, t: one_vs_all_loss(z, t, pos_weight=3.0),
    "logit_adjusted": lambda z, t: logit_adjusted_cross_entropy(
        z, t, torch.linspace(1, 50, z.shape[1])
    ),
    "balanced_softmax": lambda z, t: balanced_softmax_loss(z, t, torch.arange(1, z.shape[1] + 1)),
    "focal": lambda z, t: focal_loss(z, t, gamma=0.5, alpha=torch.ones(z.shape[1])),
    "focal_g2": lambda z, t: focal_loss(z, t, gamma=2.0),
}


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 6),
    c=st.integers(2, 6),
    scale=st.sampled_from([1e-3, 1.0, 30.0, 1e3, 1e4]),
    seed=st.integers(0, 2**16),
    name=st.sampled_from(sorted(_LOSSES)),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.float16]),
)
def test_losses_are_finite_with_finite_gradients(
    b: int, c: int, scale: float, seed: int, name: str, dtype: torch.dtype
) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(b, c, generator=g)).to(dtype).requires_grad_(True)
    target = torch.randint(0, c, (b,), generator=g)
    loss = _LOSSES[name](logits, target)
    assert loss.shape == ()
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert bool(torch.isfinite(loss))
    (grad,) = torch.autograd.grad(loss, logits)
    assert grad.dtype == dtype
    assert bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("name", sorted(_LOSSES))
def test_gradients_are_finite_under_bf16_autocast(name: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 5))
    x = 50 * torch.randn(32, 8)
    target = torch.randint(0, 5, (32,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
        assert logits.dtype == torch.bfloat16
        loss = _LOSSES[name](logits, target)
    assert loss.dtype == torch.float32
    loss.backward()
    for p in model.parameters():
        assert p.grad is not None
        assert bool(torch.isfinite(p.grad).all())


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 5), c=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_reduction_none_shapes_and_mean_sum_consistency(b: int, c: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, generator=g, dtype=torch.float64)
    target = torch.randint(0, c, (b,), generator=g)
    prior = torch.rand(c, generator=g, dtype=torch.float64) + 0.1
    for fn in (
        lambda r: one_vs_all_loss(logits, target, reduction=r),
        lambda r: logit_adjusted_cross_entropy(logits, target, prior, 2.0, r),
        lambda r: balanced_softmax_loss(logits, target, prior, r),
        lambda r: focal_loss(logits, target, 3.0, reduction=r),
    ):
        per_sample = fn("none")
        assert per_sample.shape == (b,)
        assert bool((per_sample >= 0).all())
        torch.testing.assert_close(fn("sum"), per_sample.sum())
        torch.testing.assert_close(fn("mean"), per_sample.mean())


def test_confident_samples_have_tiny_but_exact_focal_loss() -> None:
    # p_t within float32 rounding of one: 1 - p_t must come from expm1, not from 1 - exp.
    logits = torch.tensor([[20.0, 0.0]])
    target = torch.tensor([0])
    got = focal_loss(logits, target, gamma=1.0).item()
    q = math.exp(-20.0) / (1 + math.exp(-20.0))  # 1 - p_t
    assert got == pytest.approx(q * -math.log1p(-q), rel=1e-4)


def _fit_threshold(loss_fn: Any, x: Tensor, y: Tensor) -> float:
    """Train a 2-class linear model on 1-D data; return its decision threshold on x."""
    torch.manual_seed(0)
    model = nn.Linear(1, 2).double()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=200)

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss: Tensor = loss_fn(model(x[:, None]), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    w = model.weight[1, 0] - model.weight[0, 0]
    b = model.bias[1] - model.bias[0]
    return float((-b / w).detach())


def test_training_with_the_prior_shift_learns_the_balanced_threshold() -> None:
    # Unit Gaussians at -1 and +1 with a 95:5 prior. Cross-entropy's optimum threshold is
    # log(0.95 / 0.05) / 2 = 1.47 (Bayes for the plain error); the balanced one is 0.
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(20_000, generator=g) < 0.05).long()
    x = torch.randn(20_000, generator=g, dtype=torch.float64) + 2.0 * y - 1.0
    counts = torch.bincount(y, minlength=2).double()
    plain = _fit_threshold(F.cross_entropy, x, y)
    adjusted = _fit_threshold(LogitAdjustedCrossEntropy(counts), x, y)
    balanced = _fit_threshold(BalancedSoftmaxLoss(counts), x, y)
    assert plain == pytest.approx(0.5 * math.log(float(counts[0] / counts[1])), abs=0.1)
    assert adjusted == pytest.approx(0.0, abs=0.1)
    assert balanced == pytest.approx(adjusted, abs=1e-3)
