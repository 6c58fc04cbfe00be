"""Tests for the stratified split functions in cellvision.splits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellvision.splits import stratified_kfold, stratified_split

JURKAT_COUNTS = {
    "Interphase": 31550,
    "Prophase": 606,
    "Metaphase": 68,
    "Anaphase": 15,
    "Telophase": 27,
}

label_lists = st.lists(st.integers(0, 5), min_size=2, max_size=200)


def jurkat_labels() -> np.ndarray:
    return np.repeat(np.arange(5), list(JURKAT_COUNTS.values()))


def test_jurkat_counts_keep_every_class_on_both_sides():
    y = jurkat_labels()
    train, val = stratified_split(y, val_fraction=0.2, seed=0)
    val_counts = np.bincount(y[val], minlength=5)
    # Hand-computed: round(n * 0.2) per class.
    assert val_counts.tolist() == [6310, 121, 14, 3, 5]
    assert (
        np.bincount(y[train], minlength=5) == np.array(list(JURKAT_COUNTS.values())) - val_counts
    ).all()


@settings(max_examples=60)
@given(labels=label_lists, val_fraction=st.floats(0.01, 0.99), seed=st.integers(0, 10**6))
def test_split_is_disjoint_complete_and_stratified(labels, val_fraction, seed):
    y = np.array(labels)
    train, val = stratified_split(y, val_fraction, seed)
    assert train.dtype == np.int64
    assert val.dtype == np.int64
    assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(y.size))
    for cls, n in zip(*np.unique(y, return_counts=True), strict=True):
        n_val = int((y[val] == cls).sum())
        if n >= 2:
            assert 1 <= n_val <= n - 1
            assert n_val == min(max(int(np.floor(n * val_fraction + 0.5)), 1), n - 1)
        else:
            assert n_val == 0


def test_split_is_seeded():
    y = np.repeat(np.arange(3), [40, 10, 5])
    a = stratified_split(y, 0.3, seed=1)
    b = stratified_split(y, 0.3, seed=1)
    c = stratified_split(y, 0.3, seed=2)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])


def test_split_accepts_tensors_and_objects_with_targets():
    y = torch.tensor([0, 0, 1, 1, 1, 1])

    class Data:
        targets = y

    for labels in (y, Data(), y.tolist()):
        _train, val = stratified_split(labels, 0.5, seed=0)
        assert sorted(y[val].tolist()) == [0, 1, 1]


@pytest.mark.parametrize(
    ("labels", "fraction", "error", "match"),
    [
        ([0, 1], 0.0, ValueError, "val_fraction"),
        ([0, 1], 1.0, ValueError, "val_fraction"),
        ([0, 1], "0.2", TypeError, "val_fraction"),
        ([], 0.2, ValueError, "labels"),
        ([[0, 1]], 0.2, ValueError, "labels must be 1-D"),
        ([0.5, 1.0], 0.2, TypeError, "labels must be integers"),
    ],
)
def test_split_rejects_bad_input(labels, fraction, error, match):
    with pytest.raises(error, match=match):
        stratified_split(labels, fraction, seed=0)


@settings(max_examples=60)
@given(labels=label_lists, n_splits=st.integers(2, 6), seed=st.integers(0, 10**6))
def test_kfold_partitions_and_stratifies(labels, n_splits, seed):
    y = np.array(labels)
    if n_splits > y.size:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        folds = stratified_kfold(y, n_splits, seed)
    assert len(folds) == n_splits
    all_val = np.concatenate([val for _, val in folds])
    assert np.array_equal(np.sort(all_val), np.arange(y.size))  # validation sets partition
    sizes = [val.size for _, val in folds]
    assert max(sizes) - min(sizes) <= 1
    for train, val in folds:
        assert np.intersect1d(train, val).size == 0
        assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(y.size))
        for cls, n in zip(*np.unique(y, return_counts=True), strict=True):
            n_val = int((y[val] == cls).sum())
            assert n_val in (n // n_splits, -(-n // n_splits))  # floor or ceil, like sklearn
            if n >= n_splits:
                assert n_val >= 1
                assert (y[train] == cls).sum() >= 1


def test_kfold_matches_sklearn_class_counts():
    sklearn_model_selection = pytest.importorskip("sklearn.model_selection")
    y = jurkat_labels()
    ours = sorted(np.bincount(y[val], minlength=5).tolist() for _, val in stratified_kfold(y, 5))
    skf = sklearn_model_selection.StratifiedKFold(5, shuffle=True, random_state=0)
    theirs = sorted(
        np.bincount(y[val], minlength=5).tolist() for _, val in skf.split(np.zeros(y.size), y)
    )
    # Per-class fold counts are floor/ceil of n / k in both; compare the per-class multisets.
    for cls in range(5):
        assert sorted(f[cls] for f in ours) == sorted(f[cls] for f in theirs)


def test_kfold_warns_for_classes_smaller_than_n_splits_and_keeps_them_in_training():
    y = np.array([0] * 10 + [1] * 2)
    with pytest.warns(UserWarning, match="fewer than n_splits=5"):
        folds = stratified_kfold(y, 5, seed=0)
    for train, _ in folds:
        assert (y[train] == 1).sum() >= 1
    assert sum(int((y[val] == 1).sum()) for _, val in folds) == 2


def test_kfold_is_seeded_and_rejects_bad_n_splits():
    y = np.repeat(np.arange(3), [20, 10, 6])
    a, b = stratified_kfold(y, 3, seed=4), stratified_kfold(y, 3, seed=4)
    assert all(np.array_equal(p[1], q[1]) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[0][1], stratified_kfold(y, 3, seed=5)[0][1])
    with pytest.raises(ValueError, match="n_splits"):
        stratified_kfold(y, 1)
    with pytest.raises(ValueError, match="n_splits"):
        stratified_kfold([0, 1], 3)
    with pytest.raises(TypeError, match="seed"):
        stratified_kfold(y, 3, seed=1.5)  # type: ignore[arg-type]
