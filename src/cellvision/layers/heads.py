"""Class-prior classifier heads: validate class frequencies and initialise a head from them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import torch
from torch import nn

__all__ = ["ClassFreqsLike", "as_class_freqs", "class_prior_log_probs", "init_class_prior_"]

#: What ``class_freqs`` arguments accept: one positive count or proportion per class. The
#: first member is what configs store (a JSON-serialisable tuple of floats).
ClassFreqsLike: TypeAlias = (
    tuple[float, ...] | Sequence[float] | torch.Tensor | np.ndarray[Any, Any]
)


def as_class_freqs(
    value: ClassFreqsLike | None,
    *,
    n_classes: int | None = None,
    name: str = "class_freqs",
) -> tuple[float, ...] | None:
    """Normalise class frequencies (counts or proportions) to a tuple of floats.

    Parameters
    ----------
    value : tensor, ndarray, sequence of float or None
        One finite, strictly positive frequency per class. ``None`` passes through.
    n_classes : int, optional
        When given, the number of frequencies must equal it.
    name : str, default "class_freqs"
        Argument name used in error messages.

    Returns
    -------
    tuple of float or None
        The frequencies as plain Python floats (JSON-serialisable), or ``None``.

    Raises
    ------
    TypeError
        If ``value`` is not a tensor, array or sequence of real numbers.
    ValueError
        If it is not one-dimensional, has the wrong length, or holds a zero, negative or
        non-finite frequency.

    Examples
    --------
    >>> as_class_freqs(torch.tensor([30.0, 10.0]))
    (30.0, 10.0)
    >>> as_class_freqs([3, 1, 0])
    Traceback (most recent call last):
        ...
    ValueError: class_freqs must be finite and > 0, got (3.0, 1.0, 0.0)
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(
        value, (torch.Tensor, np.ndarray, Sequence)
    ):
        raise TypeError(f"{name} must be a tensor, ndarray or sequence of floats, got {value!r}")
    if isinstance(value, torch.Tensor):
        array = value.detach().to("cpu", torch.float64).numpy()
    else:
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} must be a tensor, ndarray or sequence of floats, got {value!r}"
            ) from exc
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {array.shape}")
    freqs = tuple(float(v) for v in array)
    if not all(math.isfinite(f) and f > 0 for f in freqs):
        raise ValueError(f"{name} must be finite and > 0, got {freqs!r}")
    if n_classes is not None and len(freqs) != n_classes:
        raise ValueError(
            f"{name} must have n_classes={n_classes} entries, got {len(freqs)}: {freqs!r}"
        )
    return freqs


def class_prior_log_probs(class_freqs: ClassFreqsLike) -> torch.Tensor:
    """Return ``log(freq / freq.sum())`` as a float32 tensor.

    Parameters
    ----------
    class_freqs : sequence of float or tensor
        Positive class frequencies (validated with :func:`as_class_freqs`).

    Returns
    -------
    torch.Tensor
        Log prior probabilities, shape ``(n_classes,)``; ``exp`` of it sums to one.

    Raises
    ------
    ValueError
        If a frequency is not finite and positive.

    Examples
    --------
    >>> class_prior_log_probs([3.0, 1.0]).exp()
    tensor([0.7500, 0.2500])
    """
    freqs = _required_freqs(class_freqs, None)
    t = torch.tensor(freqs, dtype=torch.float64)
    # Divide by the largest frequency first: the sum of [1e308, 1e308] overflows to inf.
    t = t / t.max()
    return (t / t.sum()).log().to(torch.float32)


@torch.no_grad()
def init_class_prior_(
    linear: nn.Linear,
    class_freqs: ClassFreqsLike,
    *,
    zero_weight: bool = False,
) -> nn.Linear:
    """Initialise a classifier's bias to the log class prior, in place.

    With ``bias = log(freq / freq.sum())`` the softmax of an untrained model starts near the
    training prior instead of the uniform distribution, which removes the large initial loss
    (and the wasted first updates) on imbalanced data. With ``zero_weight=True`` the weight
    is zeroed too, so the softmax equals the prior *exactly* for every input.

    Parameters
    ----------
    linear : torch.nn.Linear
        The final layer; it must have a bias and ``out_features == len(class_freqs)``.
    class_freqs : sequence of float or tensor
        Positive class frequencies (counts or proportions).
    zero_weight : bool, default False
        Also set the weight to zero.

    Returns
    -------
    torch.nn.Linear
        ``linear``, modified in place.

    Raises
    ------
    TypeError
        If ``linear`` is not an ``nn.Linear``.
    ValueError
        If it has no bias, the lengths disagree or a frequency is not positive.

    References
    ----------
    A. Karpathy, "A Recipe for Training Neural Networks" (2019), section "init well".

    Examples
    --------
    >>> head = init_class_prior_(nn.Linear(4, 2), [3.0, 1.0], zero_weight=True)
    >>> head(torch.randn(1, 4)).softmax(-1).detach()
    tensor([[0.7500, 0.2500]])
    """
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
    if linear.bias is None:
        raise ValueError("linear must have a bias to hold the class prior, got bias=None")
    freqs = _required_freqs(class_freqs, linear.out_features)
    linear.bias.copy_(class_prior_log_probs(freqs))
    if zero_weight:
        linear.weight.zero_()
    return linear


def _required_freqs(class_freqs: ClassFreqsLike, n_classes: int | None) -> tuple[float, ...]:
    freqs = as_class_freqs(class_freqs, n_classes=n_classes)
    if freqs is None:
        raise TypeError("class_freqs must be a tensor, ndarray or sequence of floats, got None")
    return freqs
