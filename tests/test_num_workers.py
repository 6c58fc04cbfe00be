"""The data sets give the same batches with worker processes as in the main process."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from cellvision.data import SlidingWindowDataset, load_air_quality, make_synthetic_cells
from cellvision.sampling import ClassBalancedSampler


def _batches(
    dataset: Dataset[tuple[torch.Tensor, torch.Tensor]],
    *,
    num_workers: int,
    sampler: torch.utils.data.Sampler[int] | None = None,
    seed: int = 0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = DataLoader(
        dataset,
        batch_size=16,
        sampler=sampler,
        shuffle=sampler is None,
        generator=torch.Generator().manual_seed(seed),
        num_workers=num_workers,
        persistent_workers=False,
    )
    return [(x.clone(), y.clone()) for x, y in loader]


def _assert_same(
    a: list[tuple[torch.Tensor, torch.Tensor]], b: list[tuple[torch.Tensor, torch.Tensor]]
) -> None:
    assert len(a) == len(b) > 0
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        torch.testing.assert_close(xa, xb, rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(ya, yb, rtol=0, atol=0, equal_nan=True)


@pytest.mark.slow
def test_cell_images_with_sampler_and_workers() -> None:
    cells = make_synthetic_cells([40, 10, 6, 4, 4], size=24, seed=3)
    sampler = ClassBalancedSampler(cells, alpha=0.9, seed=11)
    sampler.set_epoch(2)
    main = _batches(cells, num_workers=0, sampler=sampler)
    workers = _batches(cells, num_workers=2, sampler=sampler)
    _assert_same(main, workers)
    # the draw really is the sampler's: a different epoch gives other batches
    sampler.set_epoch(3)
    assert not torch.equal(_batches(cells, num_workers=0, sampler=sampler)[0][1], main[0][1])


@pytest.mark.slow
def test_cell_images_shuffled_with_workers() -> None:
    cells = make_synthetic_cells([20, 6, 4, 4, 4], size=24, seed=5)
    main = _batches(cells, num_workers=0, seed=7)
    _assert_same(main, _batches(cells, num_workers=2, seed=7))
    assert not torch.equal(_batches(cells, num_workers=0, seed=8)[0][1], main[0][1])


@pytest.mark.slow
def test_windows_with_workers() -> None:
    aq = load_air_quality(drop_columns=["NMHC(GT)"])
    ds = SlidingWindowDataset.from_air_quality(aq, window=48, fill_inputs="ffill")
    subset = torch.utils.data.Subset(ds, range(0, 400))
    main = _batches(subset, num_workers=0, seed=4)
    workers = _batches(subset, num_workers=2, seed=4)
    _assert_same(main, workers)
    assert main[0][0].shape == (16, 48, len(aq.columns))
