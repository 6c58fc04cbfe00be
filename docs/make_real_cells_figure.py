"""Draw the real-cells figure of the "Cell-cycle data" guide page.

Writes ``docs/guide/figures/real_cells.png``: a few real Jurkat cells of each of the seven
phases in each channel (Ch3 brightfield, Ch4 DNA stain, Ch6 darkfield), read from the developer
copy of the montage release with :func:`cellvision.data.load_cells`. Each channel is shown with
one grey scale for all its cells (1st to 99.5th percentile of the cells shown), so brightness
can be compared between phases. Needs matplotlib and Pillow (the ``plot`` and ``images``
extras) and the data (``--source``).

Usage::

    PYTHONPATH=src python docs/make_real_cells_figure.py
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cellvision.data import CELL_CYCLE_PHASES, CHANNEL_SIGNALS, load_cells

REPO = Path(__file__).resolve().parents[1]
SOURCES = [
    Path(os.environ.get("CELLVISION_SHARED", REPO.parent / "shared"))
    / "data"
    / "jurkat"
    / "Experiment_1"
]
CHANNELS = ("Ch3", "Ch4", "Ch6")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_source = next((p for p in SOURCES if p.is_dir()), SOURCES[0])
    parser.add_argument("--source", type=Path, default=default_source)
    parser.add_argument("--out", type=Path, default=REPO / "docs/guide/figures/real_cells.png")
    parser.add_argument("--per-phase", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cells = load_cells(args.source, channels=CHANNELS, merge=None)
    images = cells.images.numpy().astype(np.float64)
    rng = np.random.default_rng(args.seed)
    n = args.per_phase
    picks = []
    for label in range(len(CELL_CYCLE_PHASES)):
        members = np.flatnonzero(cells.targets.numpy() == label)
        picks.append(np.sort(rng.choice(members, size=min(n, len(members)), replace=False)))
    shown = np.concatenate(picks)
    limits = [np.percentile(images[shown, c], [1, 99.5]) for c in range(len(CHANNELS))]

    n_cols = len(CHANNELS) * n
    fig, axes = plt.subplots(
        len(CELL_CYCLE_PHASES), n_cols, figsize=(n_cols * 0.62 + 0.9, 7 * 0.66), squeeze=False
    )
    for row, (phase, members) in enumerate(zip(CELL_CYCLE_PHASES, picks, strict=True)):
        for c, channel in enumerate(CHANNELS):
            for j in range(n):
                ax = axes[row][c * n + j]
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if j < len(members):
                    lo, hi = limits[c]
                    ax.imshow(images[members[j], c], cmap="gray", vmin=lo, vmax=hi)
                if row == 0 and j == n // 2:
                    signal = CHANNEL_SIGNALS[channel].split(" (")[0]
                    ax.set_title(f"{channel}: {signal}", fontsize=8)
        axes[row][0].set_ylabel(phase, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout(pad=0.2, w_pad=0.05, h_pad=0.05)
    fig.subplots_adjust(left=0.09)  # room for the phase names
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
