"""Sliding windows: memory of views vs materialised windows, and DataLoader epoch time.

Baselines measured in the same run:

* memory: every window materialised as one ``(N, window, F)`` tensor (what a naive
  ``torch.stack`` of all windows costs) and the series itself;
* speed: a naive per-item data set that slices the series in ``__getitem__`` (the usual
  hand-written windowing), fed through ``DataLoader(batch_size=B, shuffle=True)``.

Run ``PYTHONPATH=src python benchmarks/bench_windows.py`` (``--quick`` for a short run).
Timings on a shared machine are noisy: compare the ratios, not the absolute seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cellvision.data.airquality import load_air_quality
from cellvision.data.windows import SlidingWindowDataset, window_loader


class NaiveWindows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Per-item slicing of the series: the common hand-written baseline."""

    def __init__(self, series: torch.Tensor, ends: np.ndarray, window: int, target: int) -> None:
        self.series, self.ends, self.window, self.target = series, ends, window, target

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = int(self.ends[i])
        return self.series[t - self.window + 1 : t + 1], self.series[
            t + 1, self.target : self.target + 1
        ]


def epoch_seconds(loader: DataLoader[object], epochs: int) -> float:
    best = float("inf")
    for _ in range(epochs):
        start = time.perf_counter()
        total = 0.0
        for x, y in loader:
            total += float(x[0, 0, 0]) + float(y[0, 0])  # touch the batch
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one epoch per path, no tiling")
    parser.add_argument("--tile", type=int, default=4, help="repeat the series this many times")
    parser.add_argument("--window", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="best of this many epochs")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1 is stable on busy hosts)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tile = 1 if args.quick else args.tile
    epochs = 1 if args.quick else args.epochs

    aq = load_air_quality(drop_columns=["NMHC(GT)"])
    values = np.ascontiguousarray(np.tile(aq.values, (tile, 1)))
    series = torch.from_numpy(values)
    target = aq.column_index("C6H6(GT)")
    ds = SlidingWindowDataset(series, window=args.window, target_columns=[target])
    series_bytes = series.numel() * series.element_size()
    materialised = ds[np.arange(len(ds))][0]
    mat_bytes = materialised.numel() * materialised.element_size()
    print(f"series: {series.shape[0]} rows x {series.shape[1]} features, {len(ds)} windows")
    print(f"memory  series                : {series_bytes / 2**20:8.2f} MiB  (1.00x)")
    print(
        f"memory  SlidingWindowDataset  : {ds.nbytes() / 2**20:8.2f} MiB  "
        f"({ds.nbytes() / series_bytes:.3f}x series)"
    )
    print(
        f"memory  materialised windows  : {mat_bytes / 2**20:8.2f} MiB  "
        f"({mat_bytes / series_bytes:.1f}x series, {mat_bytes / ds.nbytes():.1f}x the views)"
    )
    del materialised

    torch.manual_seed(0)
    bs = args.batch_size
    naive = NaiveWindows(series, ds.end_rows, args.window, target)
    g = torch.Generator().manual_seed(0)
    t_naive = epoch_seconds(DataLoader(naive, batch_size=bs, shuffle=True, generator=g), epochs)
    t_items = epoch_seconds(DataLoader(ds, batch_size=bs, shuffle=True, generator=g), epochs)
    t_batch = epoch_seconds(window_loader(ds, batch_size=bs, shuffle=True, generator=g), epochs)
    print(f"epoch   naive per-item slicing  : {t_naive:7.3f} s  (baseline)")
    print(f"epoch   __getitems__ (batch_size): {t_items:7.3f} s  ({t_naive / t_items:.1f}x faster)")
    print(f"epoch   window_loader (batched)  : {t_batch:7.3f} s  ({t_naive / t_batch:.1f}x faster)")


if __name__ == "__main__":
    main()
