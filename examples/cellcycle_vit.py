"""Cell-cycle phase classification with a small Vision Transformer.

Same recipe as ``cellcycle_convnet.py`` (shared in ``cellcycle_recipe.py``): synthetic cells
by default or a Jurkat ``CellCycle`` folder (``--data-dir``; G1/S/G2 merged into Interphase),
stratified train/validation/test split, ``ClassBalancedSampler`` (alpha 0.9), batched
augmentation on the device, AdamW with a warm-up + cosine schedule, a head initialised to the
training class prior and a balanced report on the validation split every epoch. The model is
``cellcycle_vit`` made small enough for a CPU (width 64, 4 blocks of 4 heads, 11x11 patches,
mean-pooled tokens); transformers learn the cell shapes more slowly than the ConvNet, so the
default schedule is longer.

Outputs under ``--out``: ``results.json``, ``checkpoint.pt``, ``confusion_matrix.png``,
``curves.png`` and ``pca_val.png``.

Examples::

    PYTHONPATH=src python examples/cellcycle_vit.py --quick
    PYTHONPATH=src python examples/cellcycle_vit.py --out runs/vit
"""

from __future__ import annotations

from collections.abc import Sequence

from cellcycle_recipe import main

#: Script defaults (the recipe's own defaults fill in the rest).
DEFAULTS: dict[str, object] = {
    "epochs": 100,
    "lr": 1e-3,
    "weight_decay": 0.05,
    "width": 64,
    "depth": 4,
    "n_heads": 4,
    "patch_size": 11,
    "dropout": 0.0,
    "baseline_epochs": 0,
}
#: What ``--quick`` changes (unless given on the command line).
QUICK: dict[str, object] = {
    "epochs": 10,
    "batch_size": 32,
    "width": 32,
    "depth": 2,
    "patch_size": 8,
}


def run(argv: Sequence[str] | None = None) -> None:
    """Run the example with command-line arguments ``argv``."""
    main(argv, description=__doc__, model="cellcycle_vit", defaults=DEFAULTS, quick=QUICK)


if __name__ == "__main__":
    run()
