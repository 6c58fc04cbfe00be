"""``TimeHoldoutSplitter``: the latest samples held out after a purge gap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import TimeSeriesSplit, cross_val_score

from cellvision.splits import TimeHoldoutSplitter


@settings(max_examples=40)
@given(n=st.integers(3, 200), fraction=st.floats(0.05, 0.6), gap=st.integers(0, 10))
def test_positions_match_sklearn_time_series_split(n: int, fraction: float, gap: int) -> None:
    n_test = max(1, round(fraction * n))
    # scikit-learn needs two splits; its last one is the hold-out (it needs room for both)
    assume(n - 2 * n_test - gap >= 1)
    train, test = next(TimeHoldoutSplitter(fraction, gap=gap).split(np.zeros(n)))
    *_, (ref_train, ref_test) = TimeSeriesSplit(n_splits=2, test_size=n_test, gap=gap).split(
        np.zeros(n))  # fmt: skip
    np.testing.assert_array_equal(train, ref_train)
    np.testing.assert_array_equal(test, ref_test)


@settings(max_examples=40)
@given(
    ends=st.lists(st.integers(0, 500), min_size=4, max_size=80, unique=True),
    width=st.integers(1, 12),
    fraction=st.floats(0.1, 0.4),
    gap=st.integers(0, 24),
)
def test_spans_against_a_naive_reference(
    ends: list[int], width: int, fraction: float, gap: int
) -> None:
    order = np.random.default_rng(len(ends)).permutation(len(ends))
    end = np.asarray(ends)[order]
    spans = np.stack([end - width, end], axis=1)
    by_time = sorted(range(len(end)), key=lambda i: end[i])
    n_test = max(1, round(fraction * len(end)))
    test = sorted(by_time[-n_test:])
    first_test_start = min(end[i] - width for i in test)
    train = sorted(i for i in range(len(end)) if end[i] < first_test_start - gap)
    splitter = TimeHoldoutSplitter(fraction, gap=gap)
    if not train:
        with pytest.raises(ValueError, match="no training sample is left"):
            next(splitter.split(spans, groups=spans))
        return
    got_train, got_test = next(splitter.split(spans, groups=spans))
    assert got_train.tolist() == train
    assert got_test.tolist() == test
    assert got_train.dtype == np.intp


def test_datetime_groups_with_timedelta_or_hours() -> None:
    ts = np.arange("2004-01-01T00", "2004-01-02T00", dtype="datetime64[h]")
    a = next(TimeHoldoutSplitter(0.25, gap=np.timedelta64(3, "h")).split(ts, groups=ts))
    b = next(TimeHoldoutSplitter(0.25, gap=3).split(ts, groups=ts))
    assert a[0].tolist() == b[0].tolist() == list(range(15))  # ends before 18 - 3
    assert a[1].tolist() == list(range(18, 24))


def test_protocol_and_sklearn() -> None:
    splitter = TimeHoldoutSplitter(0.2, gap=1)
    assert splitter.get_n_splits() == 1
    x = np.arange(50.0)[:, None]
    scores = cross_val_score(LinearRegression(), x, 2 * x[:, 0], cv=splitter)
    assert scores.shape == (1,)
    assert scores[0] == pytest.approx(1.0)
    assert "gap=1" in repr(splitter)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"test_fraction": 0.0}, ValueError, r"test_fraction must be in \(0, 1\), got 0.0"),
        ({"test_fraction": 1}, ValueError, r"test_fraction must be in \(0, 1\), got 1"),
        ({"test_fraction": "0.1"}, TypeError, "test_fraction must be a number"),
        ({"gap": -1}, ValueError, "gap must be a non-negative number"),
        ({"gap": np.timedelta64(-1, "h")}, ValueError, "gap must be a non-negative timedelta"),
        ({"gap": True}, TypeError, "gap must be a non-negative number or timedelta64"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        TimeHoldoutSplitter(**kwargs)  # type: ignore[arg-type]


def test_bad_groups() -> None:
    splitter = TimeHoldoutSplitter(0.5)
    with pytest.raises(ValueError, match="one row per sample of X"):
        next(splitter.split(np.zeros(4), groups=np.arange(3)))
    with pytest.raises(ValueError, match="numbers or datetime64"):
        next(splitter.split(np.zeros(2), groups=np.array(["a", "b"])))
    with pytest.raises(ValueError, match="timedelta64 gap needs datetime64 groups"):
        next(TimeHoldoutSplitter(gap=np.timedelta64(1, "h")).split(np.zeros(5)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        next(splitter.split(np.zeros(1)))
