"""Draw the real-cell figures of the cell-cycle tutorial.

Writes three figures to ``docs/guide/figures/`` (``--out``):

``cellcycle_real_confusion.png``
    The confusion matrix, pooled out of fold, of the default recipe's 5-fold cross-validation
    on the developer copy of the release: read from the ``--oof`` file that
    ``benchmarks/cv_cellcycle_real.py --oof FILE`` writes (row ``--row``, default
    ``ce+posthoc``, which is the default ``realtime`` preset), so it shows exactly the run of
    the tutorial's table.
``cellcycle_real_embeddings.png``
    The default recipe trained on folds 2-5 of the same split (:func:`~cellvision.recipes.
    cellcycle.train`); the pooled embeddings of the held-out fold's cells, projected with
    :func:`~cellvision.features.pca` and :func:`~cellvision.features.tsne`, coloured by
    their true phase.
``cellcycle_real_cam.png``
    Grad-CAM maps (:func:`~cellvision.interpret.class_activation_maps`, the last residual block
    of the same network, for its predicted class) over the brightfield channel of
    ``--per-phase`` held-out cells of each phase (:func:`~cellvision.plotting.
    plot_activation_maps`).

Needs matplotlib, scikit-learn (t-SNE) and the data (``--data-dir``, default
``../shared/data/jurkat/Experiment_1`` or ``$CELLVISION_SHARED/data/jurkat/Experiment_1``).

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/cv_cellcycle_real.py --rows ce ce+posthoc \\
        --oof runs/cv.npz
    PYTHONPATH=src python docs/make_cellcycle_figures.py --oof runs/cv.npz
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cellvision.data import INTERPHASE_MERGE, merge_labels
from cellvision.data.transforms import to_float_images
from cellvision.features import extract_features, pca, tsne
from cellvision.interpret import class_activation_maps
from cellvision.metrics import confusion_matrix
from cellvision.plotting import plot_activation_maps, plot_confusion_matrix, plot_embedding
from cellvision.recipes.cellcycle import default_recipe, load_data, subset, train
from cellvision.splits import StratifiedKFoldSplitter

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CELLVISION_SHARED", REPO.parent / "shared"))
DEFAULT_DATA = SHARED / "data" / "jurkat" / "Experiment_1"


def draw_confusion(oof_file: Path, row: str, out: Path) -> None:
    stored = np.load(oof_file)
    if row not in stored.files:
        rows = [k for k in stored.files if k not in ("targets", "class_names", "fold_of")]
        raise SystemExit(f"row {row!r} is not in {oof_file}; it has {rows}")
    names = [str(n) for n in stored["class_names"]]
    predicted = torch.from_numpy(stored[row]).argmax(dim=1)
    matrix = confusion_matrix(predicted, torch.from_numpy(stored["targets"]), n_classes=len(names))
    fig = plot_confusion_matrix(
        matrix, names, title="default recipe, 5-fold CV, pooled out of fold (recall per row)"
    )
    fig.savefig(out, dpi=80, bbox_inches="tight")
    print(f"wrote {out}; counts (rows true, columns predicted):\n{matrix.numpy()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--oof", type=Path, help="out-of-fold file of cv_cellcycle_real.py")
    parser.add_argument("--row", default="ce+posthoc", help="row of --oof to draw")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "guide" / "figures")
    parser.add_argument("--per-phase", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs (a quick check)")
    parser.add_argument("--preset", help="a named recipe instead of the default")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.oof is not None:
        draw_confusion(args.oof, args.row, args.out / "cellcycle_real_confusion.png")

    recipe = default_recipe(preset=args.preset)
    if args.epochs is not None:
        recipe = recipe.replace(epochs=args.epochs)
    data, _ = load_data(args.data_dir, channels=recipe.channels, release_labels=True)
    merged, names = merge_labels(data.targets, INTERPHASE_MERGE, class_names=data.class_names)
    train_idx, test_idx = next(
        StratifiedKFoldSplitter(5, seed=args.seed).split(data.images, merged)
    )
    trained = train(recipe, subset(data, train_idx), progress=False)
    held_out = torch.from_numpy(test_idx)
    images, truth = data.images[held_out], merged[held_out]
    predicted = trained.predict(images)
    print(
        f"held-out fold: {len(test_idx)} cells, accuracy {(predicted == truth).float().mean():.3f}"
    )

    # Embeddings of the held-out cells: the network's pooled features (first member).
    network = trained.members[0]
    inputs = trained.normalize(to_float_images(images))
    features, _ = extract_features(network, [(inputs, truth)])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    projected = pca(features, 2)
    plot_embedding(projected, truth, names, ax=left, title="PCA of held-out embeddings")
    plot_embedding(tsne(features, seed=0), truth, names, ax=right, title="t-SNE, same cells")
    fig.savefig(args.out / "cellcycle_real_embeddings.png", dpi=100)
    print(f"wrote {args.out / 'cellcycle_real_embeddings.png'}")

    # Grad-CAM over brightfield for a few held-out cells of each phase (seeded pick).
    rng = np.random.default_rng(args.seed)
    picks = []
    for label in range(len(names)):
        members = np.flatnonzero(truth.numpy() == label)
        picks.extend(np.sort(rng.choice(members, min(args.per_phase, len(members)), False)))
    chosen = torch.tensor(picks)
    maps = class_activation_maps(network, inputs[chosen])
    titles = [f"{names[int(truth[i])]}\npred. {names[int(predicted[i])]}" for i in chosen.tolist()]
    fig = plot_activation_maps(
        to_float_images(images[chosen]),
        maps,
        titles,
        ncols=len(names) * args.per_phase // 2,
        channel=0,
    )
    fig.savefig(args.out / "cellcycle_real_cam.png", dpi=100, bbox_inches="tight")
    print(f"wrote {args.out / 'cellcycle_real_cam.png'}")


if __name__ == "__main__":
    main()
