"""Tests for MonthFoldSplitter against a naive hour-by-hour month oracle and scikit-learn."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_validate

from cellvision.data.windows import SlidingWindowDataset
from cellvision.splits import MonthFoldSplitter

START = dt.datetime(2004, 3, 10, 18)


def hourly(n: int, start: dt.datetime = START) -> np.ndarray:
    return np.datetime64(start, "h") + np.arange(n).astype("timedelta64[h]")


def naive_fold(months_per_fold: int, month: int) -> int:
    return (month - 1) // months_per_fold


def naive_split(spans: list[tuple[dt.datetime, dt.datetime]], k: int, fold: int, gap: int):
    train, test = [], []
    for i, (a, b) in enumerate(spans):
        hours = int((b - a).total_seconds() // 3600)
        inner = {naive_fold(k, (a + dt.timedelta(hours=h)).month) for h in range(hours + 1)}
        widened = {
            naive_fold(k, (a + dt.timedelta(hours=h)).month) for h in range(-gap, hours + gap + 1)
        }
        if inner == {fold}:
            test.append(i)
        if fold not in widened:
            train.append(i)
    return train, test


def test_calendar_months_ignore_the_year() -> None:
    ts = hourly(9357)
    splitter = MonthFoldSplitter()
    assert splitter.get_n_splits() == 6
    assert splitter.fold_names == ("Jan-Feb", "Mar-Apr", "May-Jun", "Jul-Aug", "Sep-Oct", "Nov-Dec")
    folds = list(splitter.split(ts, groups=ts))
    assert len(folds) == 6
    months = ts.astype("datetime64[M]").astype(int) % 12 + 1
    years = ts.astype("datetime64[Y]").astype(int) + 1970
    for f, (train, test) in enumerate(folds):
        expected_test = np.flatnonzero((months - 1) // 2 == f)
        np.testing.assert_array_equal(test, expected_test)
        np.testing.assert_array_equal(train, np.setdiff1d(np.arange(ts.size), expected_test))
    _, mar_apr = folds[1]
    assert set(years[mar_apr]) == {2004, 2005}  # March 2004 and March/April 2005 together


@settings(max_examples=20)
@given(
    k=st.sampled_from([1, 2, 3, 4, 6]),
    gap=st.integers(0, 100),
    window=st.integers(1, 900),
    seed=st.integers(0, 2**16),
)
def test_purging_matches_naive(k: int, gap: int, window: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 15
    offsets = np.sort(rng.integers(0, 24 * 400, size=n))
    starts = [START + dt.timedelta(hours=int(o)) for o in offsets]
    spans = [(a, a + dt.timedelta(hours=window)) for a in starts]
    groups = np.array(
        [[a, a + dt.timedelta(hours=window // 2), b] for a, b in spans], "datetime64[s]"
    )
    splitter = MonthFoldSplitter(k, gap_hours=gap, empty="skip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        got = list(splitter.split(np.zeros(n), groups=groups))
    expected = []
    for fold in range(12 // k):
        train, test = naive_split(spans, k, fold, gap)
        if train and test:
            expected.append((train, test))
    assert [(tr.tolist(), te.tolist()) for tr, te in got] == expected
    for train, test in got:
        assert not set(train) & set(test)


def test_windows_dataset_supplies_timestamps_and_purges() -> None:
    ts = hourly(24 * 100)  # 10 March to 18 June
    series = np.random.default_rng(0).normal(size=(ts.size, 2)).astype(np.float32)
    ds = SlidingWindowDataset(series, window=48, timestamps=ts)
    splitter = MonthFoldSplitter(empty="skip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from_dataset = list(splitter.split(ds))
        from_groups = list(splitter.split(ds, groups=ds.sample_timestamps))
        from_keyword = list(splitter.split(ds, timestamps=ds.sample_timestamps))
    assert len(from_dataset) == splitter.get_n_splits(ds) == 2  # Mar-Apr and May-Jun
    for a, b, c in zip(from_dataset, from_groups, from_keyword, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], c[1])
    train, test = from_dataset[0]
    spans = ds.sample_timestamps
    test_months = spans[test].astype("datetime64[M]").astype(int) % 12 + 1
    assert set(np.unique(test_months)) <= {3, 4}
    train_months = spans[train].astype("datetime64[M]").astype(int) % 12 + 1
    assert not set(np.unique(train_months)) & {3, 4}
    dropped = len(ds) - len(train) - len(test)
    assert dropped == 48  # windows whose span or target crosses 1 May 00:00


def test_cross_validate_matches_manual_loop() -> None:
    ts = hourly(24 * 400, dt.datetime(2004, 1, 1))
    rng = np.random.default_rng(0)
    series = np.cumsum(rng.normal(size=(ts.size, 2)), axis=0).astype(np.float32)
    ds = SlidingWindowDataset(series, window=6, target_columns=[0], timestamps=ts)
    x, y = ds[np.arange(len(ds))]
    X = x.reshape(len(ds), -1).numpy()
    target = y[:, 0].numpy()
    groups = ds.sample_timestamps
    splitter = MonthFoldSplitter(gap_hours=12)
    result = cross_validate(
        Ridge(alpha=1.0), X, target, groups=groups, cv=splitter, return_indices=True
    )
    manual = []
    for train, test in splitter.split(X, target, groups):
        model = Ridge(alpha=1.0).fit(X[train], target[train])
        manual.append(model.score(X[test], target[test]))
    np.testing.assert_allclose(result["test_score"], manual)
    assert len(result["indices"]["test"]) == 6


def test_empty_folds_raise_or_skip() -> None:
    ts = hourly(24 * 50, dt.datetime(2004, 1, 1))  # January and February only
    with pytest.raises(ValueError, match=r"fold 0 \(Jan-Feb\) has no training samples"):
        list(MonthFoldSplitter().split(ts, groups=ts))
    with pytest.raises(ValueError, match=r"fold 0 \(Jan-Mar\) has no training samples"):
        list(MonthFoldSplitter(3).split(ts, groups=ts))
    splitter = MonthFoldSplitter(1, empty="skip")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folds = list(splitter.split(ts, groups=ts))
    assert len(folds) == 2
    messages = [str(w.message) for w in caught]
    assert len(messages) == 10
    assert messages[0].startswith("fold 2 (Mar) has no test samples")
    assert splitter.get_n_splits(ts, groups=ts) == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"months_per_fold": 5}, ValueError, r"months_per_fold must be one of \(1, 2, 3, 4, 6\)"),
        ({"months_per_fold": 12}, ValueError, r"months_per_fold must be one of"),
        ({"months_per_fold": 2.0}, TypeError, r"months_per_fold must be an integer"),
        ({"gap_hours": -1}, ValueError, r"gap_hours must be a non-negative integer, got -1"),
        ({"empty": "warn"}, ValueError, r"empty must be one of \('raise', 'skip'\), got 'warn'"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        MonthFoldSplitter(**kwargs)  # type: ignore[arg-type]


def test_bad_timestamps() -> None:
    splitter = MonthFoldSplitter()
    ts = hourly(10)
    with pytest.raises(ValueError, match="groups must hold per-sample datetime64"):
        list(splitter.split(np.zeros(10)))
    with pytest.raises(ValueError, match="groups must be datetime64"):
        list(splitter.split(np.zeros(10), groups=np.arange(10)))
    with pytest.raises(ValueError, match=r"one row per sample of X \(9\), got 10"):
        list(splitter.split(np.zeros(9), groups=ts))
    with pytest.raises(ValueError, match="NaT"):
        list(splitter.split(np.zeros(1), groups=np.array(["NaT"], "datetime64[h]")))
    with pytest.raises(ValueError, match="not both"):
        list(splitter.split(np.zeros(10), groups=ts, timestamps=ts))
