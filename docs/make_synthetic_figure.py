"""Draw the synthetic-cells figure of the "Cell-cycle data" guide page.

Writes ``docs/guide/figures/synthetic_cells.png``: eight synthetic cells of each of the five
classes, brightfield-like channel. Needs matplotlib (the ``plot`` extra).

Usage::

    PYTHONPATH=src python docs/make_synthetic_figure.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cellvision.data import make_synthetic_cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).parent / "guide" / "figures" / "synthetic_cells.png"
    parser.add_argument("--out", type=Path, default=default)
    parser.add_argument("--per-class", type=int, default=8)
    args = parser.parse_args()

    n = args.per_class
    ds = make_synthetic_cells([n] * 5, size=66, channels=1, seed=0)
    fig, axes = plt.subplots(5, n, figsize=(n * 0.9, 5 * 0.95), squeeze=False)
    for row, name in enumerate(ds.class_names):
        members = (ds.targets == row).nonzero().flatten()
        for col in range(n):
            ax = axes[row][col]
            ax.imshow(ds.images[members[col], 0].numpy(), cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("Synthetic cells (not real data), channel 0 (brightfield-like)", fontsize=9)
    fig.tight_layout(pad=0.3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=60)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
