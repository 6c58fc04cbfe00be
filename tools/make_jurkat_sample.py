"""Regenerate the real-cell sample shipped as ``src/cellvision/data/jurkat_sample.npz``.

Reads the developer copy of the Jurkat montage release (``../shared/data/jurkat/Experiment_1``
from the repository root by default) with :func:`cellvision.data.load_cells` and keeps a
stratified subset of it: **every** cell of the three rarest phases (Metaphase, Anaphase,
Telophase) and a seeded random draw of ``--per-phase`` cells from each of G1, S, G2 and
Prophase. Only the label-free channels Ch3 (brightfield) and Ch6 (darkfield) are stored, as
``uint16`` tiles, with the phase name and the reader's id of every cell, in a compressed
``.npz`` that numpy reads without Pillow. The images are redistributed under the BSD 3-Clause
License of ``minh-doan/MLCP``; the notice ships next to the file (``JURKAT_LICENSE.txt``).

Usage (needs Pillow, the ``images`` extra)::

    PYTHONPATH=src python tools/make_jurkat_sample.py
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from cellvision.data import CELL_CYCLE_PHASES, LABEL_FREE_CHANNELS, load_cells

REPO = Path(__file__).resolve().parents[1]
# ../shared/data from the repository root, or $CELLVISION_SHARED/data (e.g. from a git worktree).
SOURCES = [
    Path(os.environ.get("CELLVISION_SHARED", REPO.parent / "shared"))
    / "data"
    / "jurkat"
    / "Experiment_1"
]
KEEP_ALL = ("Metaphase", "Anaphase", "Telophase")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_source = next((p for p in SOURCES if p.is_dir()), SOURCES[0])
    parser.add_argument("--source", type=Path, default=default_source)
    parser.add_argument(
        "--out", type=Path, default=REPO / "src" / "cellvision" / "data" / "jurkat_sample.npz"
    )
    parser.add_argument("--per-phase", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cells = load_cells(args.source, channels=LABEL_FREE_CHANNELS, merge=None)
    assert cells.ids is not None
    rng = np.random.default_rng(args.seed)
    targets = cells.targets.numpy()
    chosen = []
    for label, phase in enumerate(CELL_CYCLE_PHASES):
        members = np.flatnonzero(targets == label)
        if phase not in KEEP_ALL and len(members) > args.per_phase:
            members = np.sort(rng.choice(members, size=args.per_phase, replace=False))
        chosen.append(members)
    index = np.concatenate(chosen)
    images = cells.images.numpy()[index]
    phases = np.array([CELL_CYCLE_PHASES[t] for t in targets[index]])
    ids = np.array([cells.ids[i] for i in index])
    np.savez_compressed(
        args.out,
        images=images,
        channels=np.array(LABEL_FREE_CHANNELS),
        phases=phases,
        ids=ids,
        source=np.array("minh-doan/MLCP images/Experiment_1 (BSD-3-Clause), developer subset"),
    )
    counts = {p: int((phases == p).sum()) for p in CELL_CYCLE_PHASES}
    size = args.out.stat().st_size
    print(f"wrote {args.out}: {len(index)} cells {counts}, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
