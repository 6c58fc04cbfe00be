"""``window_loader``: whole batches of windows gathered at once, against per-sample slicing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellvision.data.windows import SlidingWindowDataset, window_loader


def _naive_batch(series: torch.Tensor, ends: list[int], window: int) -> tuple[torch.Tensor, ...]:
    x = torch.stack([series[t - window + 1 : t + 1] for t in ends])
    y = torch.stack([series[t + 1, :1] for t in ends])
    return x, y


@settings(max_examples=25)
@given(
    rows=st.integers(6, 40),
    window=st.integers(1, 5),
    batch_size=st.integers(1, 9),
    drop_last=st.booleans(),
    data=st.data(),
)
def test_batches_equal_naive_slicing(
    rows: int, window: int, batch_size: int, drop_last: bool, data: st.DataObject
) -> None:
    series = torch.randn(rows, 2, generator=torch.Generator().manual_seed(rows))
    ds = SlidingWindowDataset(series, window=window, target_columns=[0])
    indices = data.draw(st.lists(st.integers(0, len(ds) - 1), max_size=20))
    loader = window_loader(ds, indices, batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    n_full, rest = divmod(len(indices), batch_size)
    assert len(batches) == n_full + (1 if rest and not drop_last else 0)
    for b, (x, y) in enumerate(batches):
        chunk = indices[b * batch_size : (b + 1) * batch_size]
        nx, ny = _naive_batch(series, [int(ds.end_rows[i]) for i in chunk], window)
        torch.testing.assert_close(x, nx, rtol=0, atol=0)
        torch.testing.assert_close(y, ny, rtol=0, atol=0)


def test_shuffle_is_reproducible_and_visits_every_index_once_per_pass() -> None:
    ds = SlidingWindowDataset(torch.arange(60.0)[:, None], window=4)
    picks = np.arange(0, len(ds), 2)

    def targets(seed: int, passes: int) -> list[list[float]]:
        loader = window_loader(
            ds, picks, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(seed)
        )
        return [[float(v) for _, y in loader for v in y[:, 0]] for _ in range(passes)]

    first, second = targets(0, 2)
    expected = sorted(float(ds.end_rows[i] + 1) for i in picks)
    assert sorted(first) == sorted(second) == expected
    assert first != second  # a new order on every pass
    assert targets(0, 2) == [first, second]
    assert targets(1, 1)[0] != first


def test_all_samples_by_default() -> None:
    ds = SlidingWindowDataset(torch.arange(10.0)[:, None], window=3)
    ys = [float(v) for _, y in window_loader(ds, batch_size=4) for v in y[:, 0]]
    assert ys == [float(t + 1) for t in ds.end_rows]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be an integer >= 1, got 2.0"),
        ({"indices": [0, 7]}, ValueError, r"indices must be sample positions in \[0, 7\)"),
        ({"indices": [[0]]}, ValueError, "indices must be 1-D"),
        ({"indices": [0.5]}, TypeError, "indices must hold integers"),
        ({"generator": torch.Generator()}, ValueError, "generator must be None unless shuffle"),
        ({"shuffle": 1}, TypeError, "shuffle must be a bool, got 1"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    ds = SlidingWindowDataset(torch.arange(10.0)[:, None], window=3)
    with pytest.raises(error, match=match):
        window_loader(ds, **kwargs)  # type: ignore[arg-type]
