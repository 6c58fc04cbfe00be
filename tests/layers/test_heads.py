"""Tests for the class-prior head helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from cellvision.layers import as_class_freqs, class_prior_log_probs, init_class_prior_


@pytest.mark.parametrize(
    "value",
    [
        torch.tensor([4.0, 2.0, 2.0]),
        np.array([4, 2, 2]),
        [4, 2, 2],
        (4.0, 2.0, 2.0),
        torch.tensor([4, 2, 2], dtype=torch.int64),
    ],
)
def test_as_class_freqs_accepts_tensor_array_sequence(value: object) -> None:
    out = as_class_freqs(value, n_classes=3)  # type: ignore[arg-type]
    assert out == (4.0, 2.0, 2.0)
    assert all(type(v) is float for v in out)


def test_as_class_freqs_none_passes_through() -> None:
    assert as_class_freqs(None, n_classes=3) is None


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ([1.0, 0.0], ValueError, r"class_freqs must be finite and > 0, got \(1.0, 0.0\)"),
        ([1.0, -2.0], ValueError, r"class_freqs must be finite and > 0, got \(1.0, -2.0\)"),
        ([1.0, float("nan")], ValueError, "class_freqs must be finite and > 0"),
        ([1.0, float("inf")], ValueError, "class_freqs must be finite and > 0"),
        ([[1.0, 2.0]], ValueError, r"non-empty 1-D sequence, got shape \(1, 2\)"),
        ([], ValueError, "non-empty 1-D sequence"),
        ("12", TypeError, "class_freqs must be a tensor, ndarray or sequence"),
        (5, TypeError, "class_freqs must be a tensor, ndarray or sequence"),
        (["a", "b"], TypeError, "class_freqs must be a tensor, ndarray or sequence"),
        ([1.0, 2.0, 3.0], ValueError, r"n_classes=2 entries, got 3"),
    ],
)
def test_as_class_freqs_rejects(value: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        as_class_freqs(value, n_classes=2)  # type: ignore[arg-type]


def test_log_prior_hand_computed() -> None:
    # 6, 3, 1 out of 10
    expected = torch.tensor([math.log(0.6), math.log(0.3), math.log(0.1)])
    torch.testing.assert_close(class_prior_log_probs([6, 3, 1]), expected)


def test_init_sets_bias_and_keeps_weight() -> None:
    torch.manual_seed(0)
    head = nn.Linear(5, 4)
    weight = head.weight.detach().clone()
    freqs = np.array([70.0, 20.0, 7.0, 3.0])
    init_class_prior_(head, freqs)
    np.testing.assert_allclose(head.bias.detach().numpy(), np.log(freqs / freqs.sum()), rtol=1e-6)
    torch.testing.assert_close(head.weight.detach(), weight)


def test_zero_weight_gives_prior_exactly_for_any_input() -> None:
    head = init_class_prior_(nn.Linear(7, 3), [5.0, 3.0, 2.0], zero_weight=True)
    probs = head(torch.randn(10, 7) * 100).softmax(-1).detach()
    expected = torch.tensor([0.5, 0.3, 0.2]).expand(10, 3)
    torch.testing.assert_close(probs, expected, atol=1e-7, rtol=0)


def test_init_errors() -> None:
    with pytest.raises(ValueError, match="n_classes=3 entries, got 2"):
        init_class_prior_(nn.Linear(2, 3), [1.0, 2.0])
    with pytest.raises(ValueError, match="linear must have a bias"):
        init_class_prior_(nn.Linear(2, 2, bias=False), [1.0, 2.0])
    with pytest.raises(TypeError, match="linear must be an nn.Linear, got Conv1d"):
        init_class_prior_(nn.Conv1d(2, 2, 1), [1.0, 2.0])  # type: ignore[arg-type]
