"""``cellvision.data.features``: calendar, lag and missing-indicator columns with names."""

from __future__ import annotations

import ast
import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cellvision.data.airquality as airquality
import cellvision.data.windows as windows
from cellvision.data.features import (
    CALENDAR_COLUMNS,
    FeatureColumns,
    calendar_columns,
    calendar_features,
    lag_features,
    lagged_columns,
    missing_indicator_columns,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "cellvision" / "data"


def _stamps(
    n: int, start: dt.datetime = dt.datetime(2004, 3, 10, 18), step: int = 7
) -> list[dt.datetime]:
    return [start + dt.timedelta(hours=step * i) for i in range(n)]


def test_former_import_paths_are_the_same_functions() -> None:
    assert airquality.calendar_features is calendar_features
    assert windows.lag_features is lag_features
    from cellvision.data import lag_features as exported

    assert exported is lag_features


@pytest.mark.parametrize("module", ["windows.py", "features.py"])
def test_generic_modules_do_not_import_a_data_set(module: str) -> None:
    tree = ast.parse((SRC / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not {m for m in imported if "airquality" in m or "cellcycle" in m}, imported


def test_calendar_columns_against_datetime() -> None:
    stamps = _stamps(60)
    block = calendar_columns(
        np.array(stamps, dtype="datetime64[s]"), hour_one_hot=True, weekend=True
    )
    expected_names = (*CALENDAR_COLUMNS, *(f"hour_{h:02d}" for h in range(24)), "weekend")
    assert block.names == expected_names
    assert block.values.shape == (60, 29)
    assert block.values.dtype == np.float32
    for row, stamp in zip(block.values, stamps, strict=True):
        a, b = 2 * math.pi * stamp.hour / 24, 2 * math.pi * stamp.weekday() / 7
        np.testing.assert_allclose(
            row[:4], [math.sin(a), math.cos(a), math.sin(b), math.cos(b)], atol=1e-6
        )
        one_hot = np.zeros(24, np.float32)
        one_hot[stamp.hour] = 1.0
        np.testing.assert_array_equal(row[4:28], one_hot)
        assert row[28] == (1.0 if stamp.weekday() >= 5 else 0.0)


def test_calendar_columns_options() -> None:
    ts = np.array(_stamps(5), dtype="datetime64[s]")
    assert calendar_columns(ts).names == CALENDAR_COLUMNS
    assert calendar_columns(ts, weekend=True).names == (*CALENDAR_COLUMNS, "weekend")
    np.testing.assert_array_equal(calendar_columns(ts).values, calendar_features(ts))
    with pytest.raises(TypeError, match="weekend must be a bool, got 1"):
        calendar_columns(ts, weekend=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timestamps must be a 1-D datetime64"):
        calendar_columns(np.zeros(3))


@settings(max_examples=30)
@given(
    rows=st.integers(1, 30),
    cols=st.integers(1, 3),
    lags=st.lists(st.integers(1, 35), min_size=1, max_size=3, unique=True),
)
def test_lagged_columns_match_a_naive_shift(rows: int, cols: int, lags: list[int]) -> None:
    values = np.random.default_rng(rows).normal(size=(rows, cols))
    names = [f"c{j}" for j in range(cols)]
    block = lagged_columns(values, names, lags)
    assert block.names == tuple(f"c{j}_lag{lag}" for lag in lags for j in range(cols))
    for k, lag in enumerate(lags):
        for j in range(cols):
            column = block.values[:, k * cols + j]
            for t in range(rows):
                if t < lag:
                    assert np.isnan(column[t])
                else:
                    assert column[t] == pytest.approx(values[t - lag, j], rel=1e-6)


def test_lagged_columns_need_one_name_per_column() -> None:
    with pytest.raises(ValueError, match="names must name the 2 columns of values"):
        lagged_columns(np.zeros((4, 2)), ["a"], 1)
    with pytest.raises(ValueError, match="lags must be an integer >= 1, got 0"):
        lagged_columns(np.zeros((4, 2)), ["a", "b"], [0])


def test_missing_indicators_against_a_loop() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 4))
    values[rng.random((40, 4)) < 0.2] = np.nan
    values[:, 2] = 1.0  # no gap in this column
    names = ["a", "b", "c", "d"]
    block = missing_indicator_columns(values, names)
    assert block.names == ("a_missing", "b_missing", "d_missing")
    everything = missing_indicator_columns(values, names, only_with_gaps=False)
    assert everything.names == tuple(f"{n}_missing" for n in names)
    for j, name in enumerate(names):
        expected = [1.0 if math.isnan(values[t, j]) else 0.0 for t in range(40)]
        assert everything.values[:, j].tolist() == expected
        if name != "c":
            assert block.values[:, block.names.index(f"{name}_missing")].tolist() == expected
    assert missing_indicator_columns(np.ones((3, 1)), ["x"]).values.shape == (3, 0)


def test_feature_columns_concat_and_validation() -> None:
    a = FeatureColumns(np.arange(3.0), ["a"])
    b = FeatureColumns(np.ones((3, 2), np.float64), ("b", "c"))
    joined = FeatureColumns.concat([a, b])
    assert joined.names == ("a", "b", "c")
    assert joined.values.dtype == np.float32
    np.testing.assert_array_equal(joined.values, [[0, 1, 1], [1, 1, 1], [2, 1, 1]])
    with pytest.raises(ValueError, match="names must be 1 distinct names"):
        FeatureColumns(np.arange(3.0), ["a", "b"])
    with pytest.raises(ValueError, match="distinct names"):
        FeatureColumns.concat([a, a])
    with pytest.raises(ValueError, match="same number of rows"):
        FeatureColumns.concat([a, FeatureColumns(np.ones(4), ["z"])])
    with pytest.raises(ValueError, match="at least one"):
        FeatureColumns.concat([])
    with pytest.raises(ValueError, match="values must be a 1-D or 2-D numeric array"):
        FeatureColumns(np.zeros((2, 2, 2)), ["a", "b"])
