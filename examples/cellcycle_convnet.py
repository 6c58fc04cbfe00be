"""Cell-cycle phase classification with the ConvNet (the original study's network).

Trains ``cellcycle_convnet`` on synthetic cells (default) or a Jurkat ``CellCycle`` folder
(``--data-dir``; G1/S/G2 merged into Interphase) with the shared recipe of
``cellcycle_recipe.py``: stratified train/validation/test split, ``ClassBalancedSampler``
(alpha 0.9), batched augmentation on the device, AdamW with a warm-up + cosine schedule and a head
initialised to the training class prior; a balanced report on the validation split every
epoch; the final table on the test split, next to a linear classifier on raw pixels.

Outputs under ``--out``: ``results.json``, ``checkpoint.pt``, ``confusion_matrix.png``,
``curves.png`` and ``pca_val.png``.

Examples::

    PYTHONPATH=src python examples/cellcycle_convnet.py --quick
    PYTHONPATH=src python examples/cellcycle_convnet.py --out runs/convnet
    PYTHONPATH=src python examples/cellcycle_convnet.py --data-dir /data/CellCycle --epochs 20
"""

from __future__ import annotations

from collections.abc import Sequence

from cellcycle_recipe import main

#: Script defaults (the recipe's own defaults fill in the rest).
DEFAULTS: dict[str, object] = {
    "epochs": 30,
    "lr": 3e-3,
    "width": 32,
    "depth": 4,
    "dropout": 0.0,
    "baseline_epochs": 12,
}
#: What ``--quick`` changes (unless given on the command line).
QUICK: dict[str, object] = {
    "epochs": 10,
    "baseline_epochs": 10,
    "batch_size": 32,
    "width": 16,
    "depth": 3,
}


def run(argv: Sequence[str] | None = None) -> None:
    """Run the example with command-line arguments ``argv``."""
    main(argv, description=__doc__, model="cellcycle_convnet", defaults=DEFAULTS, quick=QUICK)


if __name__ == "__main__":
    run()
