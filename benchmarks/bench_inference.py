"""Real-time inference: the default cell-cycle prediction path against the 0.1.0 default.

Times ``TrainedClassifier.predict_proba`` exactly as a user (and ``cellvision cellcycle
predict``) gets it: uint16 tiles in, per-channel normalisation, the recipe's test-time
augmentation and post-hoc adjustment if any, the model, softmax (and the sum of the G1/S/G2
probabilities into Interphase for a recipe trained on the release classes), probabilities out.
Eval mode, batches of 512 cells of 40x40 pixels, on ``--threads`` CPU threads (default 2).

Rows, each measured in this run:

1. ``legacy`` (the 0.1.0 default: ``cellcycle_convnet`` on brightfield Ch3) in float32: the
   baseline (766 cells/s on this machine at the 0.1.0 release);
2. the default preset (``realtime``: ``cellcycle_resnet`` on Ch3 + Ch6) in float32;
3. the default preset on its own fast path: bfloat16 autocast + ``channels_last`` (CPUs with
   AMX / AVX-512 bf16; elsewhere bf16 may be slower than float32);
4. the ``accurate`` preset (three members, each over the 8 D4 views) on the same fast path.

Speed does not depend on the weights, so each classifier is trained for one epoch on the
embedded real sample. ``--agreement`` trains the default for its full schedule on 80% of the
sample instead and reports how often the float32 and fast-path predictions agree on the rest.
The target of the default's fast path: >= 5,000 cells/s on 2 threads.

Run ``PYTHONPATH=src python benchmarks/bench_inference.py [--threads 2] [--agreement]``.
"""

from __future__ import annotations

import argparse
import time

import torch

from cellvision.data import CellImageDataset
from cellvision.recipes.cellcycle import (
    CellCycleRecipe,
    TrainedClassifier,
    default_recipe,
    load_data,
    resolve_amp,
    subset,
    train,
)
from cellvision.splits import stratified_split

BATCH = 512


def cells_per_second(classifier: TrainedClassifier, images: torch.Tensor, repeats: int) -> float:
    """Best-of-``repeats`` throughput of ``predict_proba`` on one batch of ``images``."""
    classifier.predict_proba(images, batch_size=BATCH)  # warm-up (oneDNN kernels, layouts)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        classifier.predict_proba(images, batch_size=BATCH)
        best = min(best, time.perf_counter() - start)
    return images.shape[0] / best


def batch_of(channels: tuple[str, ...], n: int) -> torch.Tensor:
    """``n`` uint16 cells of the sample (repeated as needed) with the classifier's channels."""
    cells, _ = load_data(channels=channels)
    index = torch.arange(n) % len(cells)
    return cells.images[index]


def quick_classifier(recipe: CellCycleRecipe, data: CellImageDataset) -> TrainedClassifier:
    return train(recipe.replace(epochs=1, baseline_epochs=0), data, device="cpu", progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per row (default: 5)")
    parser.add_argument(
        "--agreement", action="store_true", help="also compare float32 and fast-path predictions"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, 40x40")

    rows: list[tuple[str, TrainedClassifier]] = []
    legacy = default_recipe(preset="legacy")
    realtime = default_recipe(preset="realtime")
    accurate = default_recipe(preset="accurate")
    legacy_cells, _ = load_data(channels=legacy.channels)
    cells, _ = load_data(channels=realtime.channels, release_labels=True)
    baseline = quick_classifier(legacy, legacy_cells).with_options(amp="none", channels_last=False)
    fast = quick_classifier(realtime, cells)
    rows.append(("legacy (0.1.0 ConvNet, Ch3), float32", baseline))
    rows.append(("default (realtime), float32", fast.with_options(amp="none", channels_last=False)))
    fast_dtype = "bf16" if resolve_amp(realtime.amp, "cpu") else "float32"
    rows.append((f"default (realtime), amp={realtime.amp} ({fast_dtype}) channels_last", fast))
    name = f"accurate ({accurate.n_models} members x {8 if accurate.tta == 'd4' else 1} views)"
    rows.append((f"{name}, same fast path", quick_classifier(accurate, cells)))

    base_rate = 0.0
    for name, classifier in rows:
        images = batch_of(classifier.channels, BATCH)
        rate = cells_per_second(classifier, images, args.repeats)
        base_rate = base_rate or rate
        print(f"{name:48s} {rate:9.0f} cells/s   x{rate / base_rate:5.2f} vs legacy")

    if args.agreement:
        train_idx, test_idx = stratified_split(cells.targets, 0.2, seed=0)
        trained = train(realtime, subset(cells, train_idx), device="cpu", progress=False)
        test = subset(cells, test_idx)
        slow = trained.with_options(amp="none", channels_last=False).predict(test.images)
        quick = trained.predict(test.images)
        agree = float((slow == quick).float().mean())
        print(f"float32 vs fast path on {len(test)} held-out sample cells: {agree:.2%} agree")


if __name__ == "__main__":
    main()
