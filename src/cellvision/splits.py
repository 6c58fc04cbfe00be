"""Splitting helpers for cross-validation and hold-out validation.

The stratified functions keep every class present on both sides of a split, which matters for
data sets where a class has only a handful of samples (15 anaphase cells among ~32,000 Jurkat
images). They need numpy only.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cellvision.config import check_positive_int

__all__ = ["stratified_kfold", "stratified_split"]


def _labels_array(labels: object) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Return ``labels`` (array-like, tensor or object with ``targets``) as a 1-D int64 array."""
    source = getattr(labels, "targets", labels)
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    try:
        arr = np.asarray(source)
    except (TypeError, ValueError):
        raise TypeError(f"labels must be a 1-D sequence of integers, got {labels!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape!r}")
    if arr.size == 0:
        raise ValueError("labels must not be empty, got 0 labels")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {arr.dtype!s}")
    return arr.astype(np.int64)


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return int(seed)


def stratified_split(
    labels: Sequence[int] | np.ndarray[Any, Any] | torch.Tensor | object,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.int64]]]:
    """Split sample indices into train and validation sets class by class.

    Every class takes ``round(n_c * val_fraction)`` of its ``n_c`` samples into validation
    (halves round up), clipped so that a class with at least two samples always has at least
    one sample on each side; a class with a single sample stays in training. For example 15
    anaphase cells give 3 validation cells at ``val_fraction=0.2``.

    Parameters
    ----------
    labels : array-like of int, Tensor, or object with ``targets``
        Class label of every sample (a data set exposing ``targets`` works too).
    val_fraction : float, default 0.2
        Fraction of each class put into validation, in ``(0, 1)``.
    seed : int, default 0
        Seed of the shuffle; the same seed gives the same split.

    Returns
    -------
    train_idx, val_idx : numpy.ndarray
        Sorted, disjoint int64 index arrays that together cover every sample.

    Raises
    ------
    TypeError
        If ``labels`` are not integers or ``seed``/``val_fraction`` are not numbers.
    ValueError
        If ``labels`` is empty or not 1-D, or ``val_fraction`` is not in ``(0, 1)``.

    Examples
    --------
    >>> labels = [0] * 10 + [1] * 5 + [2] * 2
    >>> train, val = stratified_split(labels, val_fraction=0.2, seed=0)
    >>> len(train), len(val)
    (13, 4)
    >>> sorted(labels[i] for i in val)
    [0, 0, 1, 2]
    """
    y = _labels_array(labels)
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
        raise TypeError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    rng = np.random.default_rng(_check_seed(seed))
    val_parts = []
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        n = members.size
        if n < 2:
            continue
        n_val = min(max(int(np.floor(n * val_fraction + 0.5)), 1), n - 1)
        val_parts.append(rng.permutation(members)[:n_val])
    val_idx = np.sort(np.concatenate(val_parts)) if val_parts else np.zeros(0, dtype=np.int64)
    mask = np.ones(y.size, dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask).astype(np.int64), val_idx.astype(np.int64)


def stratified_kfold(
    labels: Sequence[int] | np.ndarray[Any, Any] | torch.Tensor | object,
    n_splits: int = 5,
    seed: int = 0,
) -> list[tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.int64]]]]:
    """Stratified k-fold cross-validation indices.

    The samples of every class are shuffled and dealt round-robin to the ``n_splits`` folds,
    starting each class at the fold after the previous class stopped, so fold sizes differ by
    at most one overall and per class. Each fold is the validation set once. A class with at
    least ``n_splits`` samples is therefore on both sides of every split; a class with
    ``2 <= n < n_splits`` samples is in training for every split but in validation for only
    ``n`` of them (a ``UserWarning`` says so).

    Parameters
    ----------
    labels : array-like of int, Tensor, or object with ``targets``
        Class label of every sample.
    n_splits : int, default 5
        Number of folds, at least 2 and at most the number of samples.
    seed : int, default 0
        Seed of the shuffle.

    Returns
    -------
    list of (train_idx, val_idx)
        ``n_splits`` pairs of sorted int64 index arrays; the validation sets partition the
        samples.

    Raises
    ------
    TypeError
        If ``labels`` are not integers or ``n_splits``/``seed`` are not ints.
    ValueError
        If ``n_splits < 2`` or larger than the number of samples.

    Warns
    -----
    UserWarning
        If a class has fewer than ``n_splits`` samples.

    Examples
    --------
    >>> labels = [0] * 6 + [1] * 3
    >>> folds = stratified_kfold(labels, n_splits=3, seed=0)
    >>> [sorted(labels[i] for i in val) for _, val in folds]
    [[0, 0, 1], [0, 0, 1], [0, 0, 1]]
    """
    y = _labels_array(labels)
    check_positive_int("n_splits", n_splits)
    if n_splits < 2 or n_splits > y.size:
        raise ValueError(
            f"n_splits must be between 2 and the number of samples ({y.size}), got {n_splits!r}"
        )
    rng = np.random.default_rng(_check_seed(seed))
    fold_of = np.empty(y.size, dtype=np.int64)
    start = 0
    small = []
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        n = members.size
        if n < n_splits:
            small.append((int(cls), n))
        fold_of[members] = (start + np.arange(n)) % n_splits
        start = (start + n) % n_splits
    if small:
        warnings.warn(
            f"classes with fewer than n_splits={n_splits} samples (class, count): {small}; "
            "they are missing from some validation folds",
            UserWarning,
            stacklevel=2,
        )
    return [
        (
            np.flatnonzero(fold_of != k).astype(np.int64),
            np.flatnonzero(fold_of == k).astype(np.int64),
        )
        for k in range(n_splits)
    ]
