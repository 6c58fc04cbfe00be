"""Tests for SlidingWindowDataset against a naive per-window reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from cellvision.data.airquality import load_air_quality
from cellvision.data.scaling import ZScoreScaler
from cellvision.data.windows import SlidingWindowDataset, lag_features


def naive_samples(
    series: np.ndarray,
    window: int,
    horizon: int,
    targets: list[int],
    inputs: list[int] | None = None,
    drop_incomplete: bool = False,
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Every (end row, input window, target) pair, by explicit loops."""
    inputs = list(range(series.shape[1])) if inputs is None else inputs
    out = []
    for t in range(window - 1, series.shape[0] - horizon):
        x = series[t - window + 1 : t + 1][:, inputs]
        y = series[t + horizon, targets]
        if any(math.isnan(v) for v in y):
            continue
        if drop_incomplete and np.isnan(x).any():
            continue
        out.append((t, x, y))
    return out


def random_series(rows: int, cols: int, nan_fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    series = rng.normal(size=(rows, cols)).astype(np.float32)
    series[rng.random((rows, cols)) < nan_fraction] = np.nan
    return series


@settings(max_examples=40)
@given(
    rows=st.integers(3, 40),
    cols=st.integers(1, 4),
    window=st.integers(1, 10),
    horizon=st.integers(1, 5),
    nan_fraction=st.sampled_from([0.0, 0.1, 0.3]),
    drop=st.booleans(),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_matches_naive_windows(
    rows: int,
    cols: int,
    window: int,
    horizon: int,
    nan_fraction: float,
    drop: bool,
    seed: int,
    data: st.DataObject,
) -> None:
    series = random_series(rows, cols, nan_fraction, seed)
    targets = data.draw(st.lists(st.integers(0, cols - 1), min_size=1, max_size=cols, unique=True))
    inputs = data.draw(
        st.none() | st.lists(st.integers(0, cols - 1), min_size=1, max_size=cols, unique=True)
    )
    expected = (
        naive_samples(series, window, horizon, targets, inputs, drop)
        if window + horizon <= rows
        else []
    )
    options = {
        "window": window,
        "horizon": horizon,
        "target_columns": targets,
        "input_columns": inputs,
        "drop_incomplete_inputs": drop,
    }
    if not expected:
        with pytest.raises(ValueError, match=r"window \+ horizon|at least one sample"):
            SlidingWindowDataset(series, **options)
        return
    ds = SlidingWindowDataset(series, **options)
    assert len(ds) == len(expected)
    np.testing.assert_array_equal(ds.end_rows, [t for t, _, _ in expected])
    for i, (_, x, y) in enumerate(expected):
        xi, yi = ds[i]
        np.testing.assert_array_equal(xi.numpy(), x)
        np.testing.assert_array_equal(yi.numpy(), y)
    order = data.draw(st.permutations(range(len(expected))))
    xb, yb = ds[list(order)]
    np.testing.assert_array_equal(xb.numpy(), np.stack([expected[i][1] for i in order]))
    np.testing.assert_array_equal(yb.numpy(), np.stack([expected[i][2] for i in order]))


@settings(max_examples=25)
@given(window=st.integers(1, 12), horizon=st.integers(1, 6))
def test_no_target_row_reading_enters_inputs(window: int, horizon: int) -> None:
    rows = 30
    # every value encodes its row, so inputs reveal which rows they came from
    series = np.repeat(np.arange(rows, dtype=np.float32)[:, None], 3, axis=1)
    ds = SlidingWindowDataset(series, window=window, horizon=horizon, target_columns=[1])
    x, y = ds[list(range(len(ds)))]
    assert torch.all(x.amax(dim=(1, 2)) + horizon == y[:, 0])  # inputs end at t, target at t+h
    assert torch.all(x[:, -1, 0] == y[:, 0] - horizon)
    assert torch.all(x[:, 0, 0] == y[:, 0] - horizon - window + 1)  # exactly `window` steps


def test_items_are_views_and_memory_is_bounded() -> None:
    aq = load_air_quality(drop_columns=["NMHC(GT)"])
    series = torch.from_numpy(aq.values)
    ds = SlidingWindowDataset.from_air_quality(aq)
    assert ds.series.data_ptr() == series.data_ptr()  # no copy of the series
    x, y = ds[5]
    base = series.untyped_storage().data_ptr()
    assert x.untyped_storage().data_ptr() == base
    assert y.untyped_storage().data_ptr() == base
    assert ds.windows.untyped_storage().data_ptr() == base
    series_bytes = series.numel() * series.element_size()
    assert ds.nbytes() <= 1.1 * series_bytes
    materialised = len(ds) * ds.window * series.shape[1] * series.element_size()
    assert materialised > 40 * series_bytes  # what views avoid


def test_air_quality_defaults_and_skips() -> None:
    aq = load_air_quality()
    ds = SlidingWindowDataset.from_air_quality(aq)
    assert (ds.window, ds.horizon) == (48, 1)
    benzene = aq["C6H6(GT)"]
    # targets are rows 48 .. T-1; one sample per observed target among them
    assert len(ds) == int((~np.isnan(benzene[48:])).sum())
    x, y = ds[0]
    assert x.shape == (48, 13)
    assert y.shape == (1,)
    t = int(ds.end_rows[0])
    assert y.item() == benzene[t + 1]
    ts = ds.sample_timestamps
    assert ts.shape == (len(ds), 3)
    np.testing.assert_array_equal(ts[:, 0], aq.timestamps[ds.end_rows - 47])
    np.testing.assert_array_equal(ts[:, 1], aq.timestamps[ds.end_rows])
    np.testing.assert_array_equal(ts[:, 2], aq.timestamps[ds.end_rows + 1])
    assert np.all(ts[:, 2] - ts[:, 1] == np.timedelta64(1, "h"))
    complete = SlidingWindowDataset.from_air_quality(
        aq.drop(["NMHC(GT)"]), drop_incomplete_inputs=True
    )
    x, _ = complete[list(range(0, len(complete), 97))]
    assert not torch.isnan(x).any()
    assert len(complete) < len(ds)


def test_select_columns_by_name() -> None:
    aq = load_air_quality()
    ds = SlidingWindowDataset.from_air_quality(aq, input_columns=["T", "C6H6(GT)"], window=4)
    x, _ = ds[0]
    t = int(ds.end_rows[0])
    np.testing.assert_array_equal(x[:, 0].numpy(), aq["T"][t - 3 : t + 1])
    np.testing.assert_array_equal(x[:, 1].numpy(), aq["C6H6(GT)"][t - 3 : t + 1])


def test_dataloader_paths_match_naive() -> None:
    series = random_series(60, 3, 0.1, seed=1)
    ds = SlidingWindowDataset(series, window=5, horizon=2, target_columns=[0, 2])
    expected = naive_samples(series, 5, 2, [0, 2])
    ex = torch.from_numpy(np.stack([x for _, x, _ in expected]))
    ey = torch.from_numpy(np.stack([y for _, _, y in expected]))
    # automatic batching goes through __getitems__
    batches = list(DataLoader(ds, batch_size=8))
    torch.testing.assert_close(torch.cat([b[0] for b in batches]), ex, equal_nan=True)
    torch.testing.assert_close(torch.cat([b[1] for b in batches]), ey)
    # batch-sampler path: the data set receives index lists and returns whole batches
    sampler = BatchSampler(SequentialSampler(ds), batch_size=8, drop_last=False)
    batches = list(DataLoader(ds, sampler=sampler, batch_size=None))
    assert batches[0][0].shape == (8, 5, 3)
    torch.testing.assert_close(torch.cat([b[0] for b in batches]), ex, equal_nan=True)
    torch.testing.assert_close(torch.cat([b[1] for b in batches]), ey)


def test_seeded_shuffle_is_reproducible() -> None:
    ds = SlidingWindowDataset(random_series(50, 2, 0.0, 3), window=4)

    def first_batch(seed: int) -> torch.Tensor:
        loader = DataLoader(
            ds, batch_size=6, shuffle=True, generator=torch.Generator().manual_seed(seed)
        )
        return next(iter(loader))[0]

    torch.testing.assert_close(first_batch(7), first_batch(7))
    assert not torch.equal(first_batch(7), first_batch(8))


def test_covered_rows_matches_naive() -> None:
    ds = SlidingWindowDataset(random_series(40, 2, 0.2, 5), window=4, horizon=3)
    picked = [0, 3, len(ds) - 1]
    expected: set[int] = set()
    for i in picked:
        t = int(ds.end_rows[i])
        expected.update(range(t - 3, t + 3 + 1))
    np.testing.assert_array_equal(ds.covered_rows(picked), sorted(expected))
    assert ds.covered_rows().tolist() == sorted(
        {r for t in ds.end_rows for r in range(int(t) - 3, int(t) + 4)}
    )


def test_negative_and_slice_indexing() -> None:
    ds = SlidingWindowDataset(np.arange(20, dtype=np.float32)[:, None], window=3)
    assert ds[-1][1].item() == 19.0
    xb, yb = ds[2:5]
    assert yb[:, 0].tolist() == [5.0, 6.0, 7.0]
    assert xb.shape == (3, 3, 1)
    xb, _ = ds[np.array([0, -1])]
    assert xb[:, 0, 0].tolist() == [0.0, 16.0]


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"series": np.zeros(5)}, ValueError, r"series must be a 2-D"),
        ({"window": 10}, ValueError, r"window \+ horizon must be at most the series length 6"),
        ({"window": 0}, ValueError, r"window must be an integer >= 1, got 0"),
        ({"horizon": 1.5}, TypeError, r"horizon must be an integer >= 1, got 1.5"),
        (
            {"target_columns": [5]},
            ValueError,
            r"target_columns must hold column indices in \[0, 2\)",
        ),
        ({"target_columns": []}, ValueError, r"target_columns must be a non-empty sequence"),
        ({"target_columns": ["x"]}, ValueError, r"target_columns must name columns"),
        ({"input_columns": [0, 0]}, ValueError, r"input_columns must not repeat"),
        ({"timestamps": np.arange(5).astype("datetime64[h]")}, ValueError, r"timestamps must be"),
        ({"timestamps": np.zeros(6, dtype="datetime64[h]")}, ValueError, r"strictly increasing"),
        ({"series": np.full((6, 2), np.nan)}, ValueError, r"at least one sample"),
        ({"series": np.array([["a", "b"]] * 6)}, ValueError, r"series must be numeric"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception], pattern: str) -> None:
    args: dict[str, object] = {"series": np.zeros((6, 2), np.float32), "window": 2}
    args.update(kwargs)
    with pytest.raises(error, match=pattern):
        SlidingWindowDataset(**args)  # type: ignore[arg-type]


def test_bad_indices_and_missing_timestamps() -> None:
    ds = SlidingWindowDataset(np.zeros((6, 1), np.float32), window=2)
    with pytest.raises(IndexError, match=r"index must be in \[-4, 4\), got 4"):
        ds[4]
    with pytest.raises(IndexError, match=r"got values from 0 to 9"):
        ds[[0, 9]]
    with pytest.raises(TypeError, match="index must hold integers"):
        ds[[True, False]]
    with pytest.raises(ValueError, match="timestamps must be given"):
        _ = ds.sample_timestamps


def test_fill_inputs_keeps_targets_as_measured() -> None:
    aq = load_air_quality(drop_columns=["NMHC(GT)"])
    raw = SlidingWindowDataset.from_air_quality(aq)
    filled = SlidingWindowDataset.from_air_quality(aq, fill_inputs="ffill")
    j = aq.column_index("C6H6(GT)")
    np.testing.assert_array_equal(filled.end_rows, raw.end_rows)  # same samples
    np.testing.assert_array_equal(filled.targets[:, 0].numpy(), aq.values[:, j])
    benzene_history = filled.series[:, j].numpy()
    assert np.isnan(benzene_history).sum() < np.isnan(aq.values[:, j]).sum()
    i = 500
    t = int(filled.end_rows[i])
    np.testing.assert_array_equal(filled[i][1].numpy(), aq.values[t + 1, [j]])


def test_scaled_matches_manual_z_scores() -> None:
    series = random_series(30, 3, 0.1, seed=2)
    ds = SlidingWindowDataset(series, window=4, target_columns=[1])
    train = np.arange(0, len(ds) // 2)
    rows = ds.covered_rows(train)
    scaler = ZScoreScaler().fit(series, rows=rows)
    mean = np.nanmean(series[rows].astype(np.float64), axis=0)
    std = np.nanstd(series[rows].astype(np.float64), axis=0)
    manual = ((series - mean) / std).astype(np.float32)
    scaled = ds.scaled(scaler)
    assert len(scaled) == len(ds)
    for i in (0, len(ds) - 1):
        t = int(ds.end_rows[i])
        np.testing.assert_allclose(scaled[i][0].numpy(), manual[t - 3 : t + 1], rtol=1e-5)
        np.testing.assert_allclose(scaled[i][1].numpy(), manual[t + 1, [1]], rtol=1e-5)
        back = scaler.inverse_transform(scaled[i][1], columns=list(ds.target_columns))
        np.testing.assert_allclose(back.numpy(), series[t + 1, [1]], rtol=1e-5)


def test_with_series_checks_shapes() -> None:
    ds = SlidingWindowDataset(np.zeros((6, 2), np.float32), window=2)
    with pytest.raises(ValueError, match=r"series must have shape \(6, 2\), got \(6, 3\)"):
        ds.with_series(np.zeros((6, 3)))
    with pytest.raises(ValueError, match="targets must not be given"):
        ds.with_series(np.zeros((6, 2)), targets=np.zeros(6))
    separate = SlidingWindowDataset(np.zeros((6, 2), np.float32), window=2, targets=np.ones(6))
    with pytest.raises(ValueError, match="targets must be given"):
        separate.with_series(np.zeros((6, 2)))
    with pytest.raises(ValueError, match=r"targets must have shape \(6, 1\)"):
        SlidingWindowDataset(np.zeros((6, 2), np.float32), window=2, targets=np.ones((6, 2)))


def test_numpy_inputs_are_shared_or_converted_once() -> None:
    shared = np.arange(12, dtype=np.float32).reshape(6, 2)
    ds = SlidingWindowDataset(shared, window=2)
    assert ds.series.data_ptr() == shared.ctypes.data  # float32 array: no copy
    converted = SlidingWindowDataset(shared.astype(np.float64), window=2)
    assert converted.series.dtype == torch.float32
    torch.testing.assert_close(converted[1][0], ds[1][0])


def _naive_lags(values: np.ndarray, lags: list[int]) -> np.ndarray:
    cols = values.reshape(len(values), -1)
    out = np.full((len(cols), cols.shape[1] * len(lags)), np.nan)
    for k, lag in enumerate(lags):
        for t in range(len(cols)):
            for c in range(cols.shape[1]):
                if t - lag >= 0:
                    out[t, k * cols.shape[1] + c] = cols[t - lag, c]
    return out


@settings(max_examples=40)
@given(
    rows=st.integers(1, 30),
    cols=st.integers(1, 3),
    lags=st.lists(st.integers(1, 35), min_size=1, max_size=3),
    flat=st.booleans(),
)
def test_lag_features_matches_naive_shift(
    rows: int, cols: int, lags: list[int], flat: bool
) -> None:
    rng = np.random.default_rng(rows * 100 + cols)
    values = rng.normal(size=(rows,) if flat else (rows, cols))
    out = lag_features(values, lags)
    width = 1 if flat else cols
    assert out.shape == (rows, width * len(lags))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _naive_lags(values, lags), rtol=1e-6)


def test_lag_features_keep_windows_causal() -> None:
    # With the lagged column appended, no window reads a value from its target row or later.
    series = np.arange(50, dtype=np.float32)
    data = np.column_stack([series, lag_features(series, 23)])
    ds = SlidingWindowDataset(data, window=4, target_columns=[0], drop_incomplete_inputs=True)
    x, y = ds[: len(ds)]
    assert len(ds) == 50 - 23 - 4  # windows touching the NaN rows are skipped
    assert torch.all(x[:, :, 1] == x[:, :, 0] - 23)
    assert torch.all(x.amax(dim=(1, 2)) < y[:, 0])


@pytest.mark.parametrize(
    ("lags", "error", "match"),
    [
        ([], ValueError, "lags must name at least one lag, got \\[\\]"),
        ([0], ValueError, "lags must be an integer >= 1, got 0"),
        ([1.5], TypeError, "lags must be an integer >= 1, got 1.5"),
        (True, TypeError, "lags must be an integer >= 1, got True"),
    ],
)
def test_lag_features_rejects_bad_lags(lags: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        lag_features(np.zeros(5), lags)  # type: ignore[arg-type]


def test_lag_features_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="values must be a 1-D or 2-D numeric array"):
        lag_features(np.zeros((2, 2, 2)), 1)
    with pytest.raises(ValueError, match="dtype <U1"):
        lag_features(np.array(["a", "b"]), 1)
