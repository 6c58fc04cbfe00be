"""Draw the synthetic-cells figure of the "Cell-cycle data" guide page.

Writes ``docs/guide/figures/synthetic_cells.png``: a few synthetic cells of each of the five
classes in the two label-free-like channels (brightfield-like and darkfield-like), drawn at
the 40-pixel size of the real tiles so they can be compared with ``real_cells.png``. Each
channel uses one grey scale for all its cells. Needs matplotlib (the ``plot`` extra).

Usage::

    PYTHONPATH=src python docs/make_synthetic_figure.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cellvision.data import make_synthetic_cells

CHANNELS = ("brightfield-like (as Ch3)", "darkfield-like (as Ch6)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).parent / "guide" / "figures" / "synthetic_cells.png"
    parser.add_argument("--out", type=Path, default=default)
    parser.add_argument("--per-class", type=int, default=5)
    parser.add_argument("--size", type=int, default=40)
    args = parser.parse_args()

    n = args.per_class
    ds = make_synthetic_cells([n] * 5, size=args.size, channels=2, seed=0)
    images = ds.images.numpy().astype(np.float64)
    limits = [np.percentile(images[:, c], [1, 99.5]) for c in range(2)]
    fig, axes = plt.subplots(5, 2 * n, figsize=(2 * n * 0.62 + 0.9, 5 * 0.66), squeeze=False)
    for row, name in enumerate(ds.class_names):
        members = (ds.targets == row).nonzero().flatten().tolist()
        for c, channel in enumerate(CHANNELS):
            for j in range(n):
                ax = axes[row][c * n + j]
                ax.imshow(images[members[j], c], cmap="gray", vmin=limits[c][0], vmax=limits[c][1])
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if row == 0 and j == n // 2:
                    ax.set_title(channel, fontsize=8)
        axes[row][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout(pad=0.2, w_pad=0.05, h_pad=0.05)
    fig.subplots_adjust(left=0.12)  # room for the phase names
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
