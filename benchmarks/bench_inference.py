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

Speed does not depend on the weights, so the ``legacy`` and ``accurate`` classifiers are
trained for one epoch on the embedded real sample. A recipe with a test-time augmentation gate
(``tta_confidence`` below 1) is the exception: how many cells it views 8 ways depends on how
sure the trained network is, so it is trained for its full schedule on 80% of the sample and
timed on the held-out 20% (repeated to fill the batch), the fraction of cells it viewed
printed; two more rows time the same classifier with every cell viewed (the worst case) and
with one view only. ``--gate C [C ...]`` does the same for the default with D4 views gated at
each ``C`` (one row and one printed fraction per gate), whatever the preset's own gate.
``--members CH[,CH] ...`` also times the default as an ensemble whose members see those
channels (``member_channels``, e.g. ``--members Ch3,Ch6 Ch3``) on the same fast path.
``--agreement`` reports how often the float32 and fast-path predictions of the default agree
on the held-out cells. The target of the default's fast path: >= 5,000
cells/s on 2 threads.

Run ``PYTHONPATH=src python benchmarks/bench_inference.py [--threads 2] [--agreement]
[--gate 0.5 0.8] [--members Ch3,Ch6 Ch3]``.
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


def repeat_to(images: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` cells: ``images`` repeated as needed."""
    return images[torch.arange(n) % len(images)]


def quick_classifier(recipe: CellCycleRecipe, data: CellImageDataset) -> TrainedClassifier:
    return train(recipe.replace(epochs=1, baseline_epochs=0), data, device="cpu", progress=False)


def gated_fraction(classifier: TrainedClassifier, images: torch.Tensor, gate: float) -> float:
    """Fraction of ``images`` whose one-view top probability is within ``gate``."""
    single = classifier.with_options(tta="none").predict_proba(images, batch_size=BATCH)
    return float((single.amax(dim=1) <= gate).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per row (default: 5)")
    parser.add_argument(
        "--agreement", action="store_true", help="also compare float32 and fast-path predictions"
    )
    parser.add_argument(
        "--gate",
        type=float,
        nargs="+",
        default=[],
        metavar="C",
        help="also time the default with D4 views gated at each C (tta_confidence)",
    )
    parser.add_argument(
        "--members",
        nargs="+",
        default=[],
        metavar="CH[,CH]",
        help="also time the default as an ensemble of members on these channels",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, 40x40")

    legacy = default_recipe(preset="legacy")
    realtime = default_recipe(preset="realtime")
    accurate = default_recipe(preset="accurate")
    legacy_cells, _ = load_data(channels=legacy.channels)
    cells, _ = load_data(channels=realtime.channels, release_labels=True)
    train_idx, test_idx = stratified_split(cells.targets, 0.2, seed=0)
    held_out = subset(cells, test_idx)
    own_gate = realtime.tta != "none" and realtime.tta_confidence < 1.0
    gated = own_gate or bool(args.gate)
    if gated or args.agreement:
        print(f"training the default on {len(train_idx)} sample cells ({realtime.epochs} epochs)")
        fast = train(realtime, subset(cells, train_idx), device="cpu", progress=False)
    else:
        fast = quick_classifier(realtime, cells)
    fast_dtype = "bf16" if resolve_amp(realtime.amp, "cpu") else "float32"
    views = f"tta {realtime.tta}" + (f" gated at {realtime.tta_confidence}" if own_gate else "")
    rows: list[tuple[str, TrainedClassifier, torch.Tensor]] = [
        (
            "legacy (0.1.0 ConvNet, Ch3), float32",
            quick_classifier(legacy, legacy_cells).with_options(amp="none", channels_last=False),
            repeat_to(legacy_cells.images, BATCH),
        )
    ]
    # Gated rows are timed on held-out cells: the network is surer of its training cells.
    sample = repeat_to(held_out.images if gated else cells.images, BATCH)
    rows.append((f"default (realtime, {views}), float32",
                 fast.with_options(amp="none", channels_last=False), sample))  # fmt: skip
    rows.append((f"default, amp={realtime.amp} ({fast_dtype}) channels_last", fast, sample))
    for gate in args.gate:
        rows.append((f"default, fast path, 8 views gated at {gate}",
                     fast.with_options(tta="d4", tta_confidence=gate), sample))  # fmt: skip
    if gated:
        every = fast.with_options(tta="d4", tta_confidence=1.0)
        rows.append(("default, fast path, every cell 8 views", every, sample))
        rows.append(("default, fast path, one view", fast.with_options(tta="none"), sample))
    if args.members:
        members = tuple(tuple(entry.split(",")) for entry in args.members)
        mixed = realtime.replace(n_models=len(members), member_channels=members)
        rows.append((f"default, members on {' / '.join(args.members)}, same fast path",
                     quick_classifier(mixed, cells), sample))  # fmt: skip
    name = f"accurate ({accurate.n_models} members x {8 if accurate.tta == 'd4' else 1} views)"
    rows.append((f"{name}, same fast path", quick_classifier(accurate, cells),
                 repeat_to(cells.images, BATCH)))  # fmt: skip

    base_rate = 0.0
    for name, classifier, images in rows:
        rate = cells_per_second(classifier, images, args.repeats)
        base_rate = base_rate or rate
        print(f"{name:52s} {rate:9.0f} cells/s   x{rate / base_rate:5.2f} vs legacy")
    for gate in ([realtime.tta_confidence] if own_gate else []) + args.gate:
        share = gated_fraction(fast, held_out.images, gate)
        print(
            f"the gate {gate} viewed {share:.1%} of the {len(held_out)} held-out sample cells"
            " 8 ways"
        )

    if args.agreement:
        slow = fast.with_options(amp="none", channels_last=False).predict(held_out.images)
        quick = fast.predict(held_out.images)
        agree = float((slow == quick).float().mean())
        print(f"float32 vs fast path on {len(held_out)} held-out sample cells: {agree:.2%} agree")


if __name__ == "__main__":
    main()
