"""The persistence baseline against a walk-back loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellvision.metrics import persistence_forecast, persistence_mse


def _last_reading(values: list[float], t: int) -> float:
    while math.isnan(values[t]):
        t -= 1
        if t < 0:
            raise LookupError
    return values[t]


@settings(max_examples=50)
@given(
    values=st.lists(st.one_of(st.floats(-100, 100), st.just(math.nan)), min_size=3, max_size=40),
    horizon=st.integers(1, 3),
    separate=st.booleans(),
)
def test_against_a_walk_back_loop(values: list[float], horizon: int, separate: bool) -> None:
    values[0] = 1.0  # a first reading, so every row has one at or before it
    target = [v * 2 + 1 for v in values] if separate else values
    rows = [t for t in range(len(values) - horizon) if not math.isnan(target[t + horizon])]
    if not rows:
        return
    forecast = [_last_reading(values, t) for t in rows]
    np.testing.assert_array_equal(persistence_forecast(values, rows), forecast)
    expected = np.mean(
        [(f - target[t + horizon]) ** 2 for f, t in zip(forecast, rows, strict=True)]
    )
    got = persistence_mse(
        torch.tensor(values, dtype=torch.float64),
        np.array(rows),
        horizon=horizon,
        target=target if separate else None,
    )
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_numpy_integer_horizon_and_float32_input() -> None:
    values = np.array([1.0, 3.0, 6.0], np.float32)
    assert persistence_mse(values, [0], horizon=np.int64(2)) == 25.0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: persistence_mse([1.0, 2.0], []), ValueError, "at least one row"),
        (lambda: persistence_mse([1.0, 2.0], [1]), ValueError, r"rows in \[0, 1\)"),
        (lambda: persistence_mse([np.nan, 2.0], [0]), ValueError, "a reading at or before"),
        (lambda: persistence_mse([1.0, np.nan], [0]), ValueError, "NaN at row 1"),
        (lambda: persistence_mse([1.0, 2.0], [0], horizon=0), ValueError, "horizon must be"),
        (lambda: persistence_mse([[1.0, 2.0]], [0]), ValueError, "1-D numeric series"),
        (lambda: persistence_mse([1.0, 2.0], [0], target=[1.0]), ValueError, "target must have"),
        (lambda: persistence_forecast([1.0], [0.5]), ValueError, "row indices"),
    ],
)
def test_bad_input(call: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()  # type: ignore[operator]
