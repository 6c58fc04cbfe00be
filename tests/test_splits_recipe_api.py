"""train_val_test_split and StratifiedKFoldSplitter (scikit-learn's splitter protocol)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellvision.splits import StratifiedKFoldSplitter, stratified_kfold, train_val_test_split


def test_three_way_split_is_disjoint_stratified_and_seeded() -> None:
    labels = torch.from_numpy(np.repeat(np.arange(5), [200, 40, 12, 6, 8]))
    train, val, test = train_val_test_split(labels, 0.15, 0.15, seed=3)
    assert len(np.union1d(np.union1d(train, val), test)) == len(labels)
    assert len(train) + len(val) + len(test) == len(labels)
    for part in (val, test):
        counts = np.bincount(labels.numpy()[part], minlength=5)
        # round(n * 0.15) per class (at least one): an independent hand computation.
        assert counts.tolist() == [30, 6, 2, 1, 1]
    again = train_val_test_split(labels, 0.15, 0.15, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    other = train_val_test_split(labels, 0.15, 0.15, seed=4)
    assert not np.array_equal(other[2], test)


@settings(max_examples=30, deadline=None)
@given(counts=st.lists(st.integers(3, 40), min_size=2, max_size=5), seed=st.integers(0, 99))
def test_every_class_with_three_cells_lands_in_all_parts(counts: list[int], seed: int) -> None:
    labels = np.repeat(np.arange(len(counts)), counts)
    parts = train_val_test_split(labels, 0.2, 0.2, seed=seed)
    for part in parts:
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0)  # sorted, no duplicates
        assert set(labels[part]) == set(range(len(counts)))


@pytest.mark.parametrize(
    ("val", "test", "match"),
    [(0.0, 0.2, "val_fraction must be in"), (0.2, 1.0, "test_fraction must be in"),
     (0.6, 0.5, "val_fraction \\+ test_fraction must be below 1")],
)  # fmt: skip
def test_three_way_split_rejects_bad_fractions(val: float, test: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        train_val_test_split([0, 1] * 10, val, test)


def test_splitter_yields_the_functional_folds_and_balances_classes() -> None:
    labels = np.repeat(np.arange(3), [23, 9, 5])
    splitter = StratifiedKFoldSplitter(5, seed=2)
    folds = list(splitter.split(np.zeros((len(labels), 2)), labels))
    for (a_train, a_test), (b_train, b_test) in zip(
        folds, stratified_kfold(labels, 5, seed=2), strict=True
    ):
        assert np.array_equal(a_train, b_train)
        assert np.array_equal(a_test, b_test)
    tests = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(tests), np.arange(len(labels)))  # a partition
    per_fold = np.array([np.bincount(labels[test], minlength=3) for _, test in folds])
    assert (per_fold.max(0) - per_fold.min(0) <= 1).all()
    assert splitter.get_n_splits() == 5


def test_splitter_works_as_cv_of_sklearn_cross_validate() -> None:
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_validate

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [30, 12, 8])
    x = rng.normal(size=(len(y), 3)) + y[:, None]
    splitter = StratifiedKFoldSplitter(4, seed=1)
    result = cross_validate(LogisticRegression(), x, y, cv=splitter, return_indices=True)
    assert len(result["test_score"]) == 4
    for k, (_, test) in enumerate(splitter.split(x, y)):
        assert np.array_equal(np.sort(result["indices"]["test"][k]), test)


def test_splitter_rejects_missing_labels_and_bad_n_splits() -> None:
    with pytest.raises(ValueError, match="y must be the class labels"):
        next(StratifiedKFoldSplitter(2).split(np.zeros(4)))
    with pytest.raises(ValueError, match="X and y must have the same length"):
        next(StratifiedKFoldSplitter(2).split(np.zeros(5), [0, 0, 1, 1]))
    with pytest.raises(ValueError, match="n_splits must be at least 2"):
        StratifiedKFoldSplitter(1)
