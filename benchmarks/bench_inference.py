"""Real-time inference of the label-free cell-cycle default vs the 0.1.0 default model.

Prints cells/s of the whole prediction path (uint16 tiles -> float -> per-channel
normalisation -> [dihedral test-time views] -> model -> softmax [-> mean over views]) at batch
512, 40x40 pixels, in eval mode, for:

1. ``cellcycle_convnet`` (the 0.1.0 default) on one channel in float32: the baseline;
2. ``cellcycle_resnet`` (the new default, brightfield Ch3 + darkfield Ch6) in float32;
3. ``cellcycle_resnet`` on the fast path: bf16 autocast + channels_last (CPU with AMX /
   AVX-512 bf16; elsewhere bf16 may be slower than float32).

and the ratio of each against the baseline measured in the same run. Target: the fast path of
the default (``--tta`` as the default recipe uses it) >= 5,000 cells/s on 2 threads.

With ``--data-dir`` (a montage folder ``<Class>/Ch<k>_CP<nnnn>.tif``, default
``../shared/data/jurkat/Experiment_1`` when present) the script also trains the default model
briefly on 80% of the real cells (stratified, seed 0) and compares its float32 and fast-path
predictions on the other 20%: the agreement of the predicted classes and the balanced accuracy
of each, so the speed-up is shown not to change the answers.

Timings interleave the models and report the best of several rounds, which keeps the ratios
meaningful on a busy machine; absolute numbers still move with the load.

Run ``PYTHONPATH=src python benchmarks/bench_inference.py --help``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as nnf

from cellvision.data import (
    Normalize,
    RandomDihedral,
    RandomIntensity,
    RandomTranslate,
    channel_stats,
)
from cellvision.data.transforms import to_float_images
from cellvision.metrics import BalancedClassificationMetrics
from cellvision.models import create_model
from cellvision.sampling import ClassBalancedSampler, expected_class_distribution
from cellvision.splits import stratified_split

#: The release's class folders, in the order of the default model's 7 outputs; G1/S/G2 merge
#: into Interphase, so merged class = max(index - 2, 0).
RELEASE_CLASSES = ("G1", "S_phase", "G2", "Prophase", "Metaphase", "Anaphase", "Telophase")
#: Post-hoc logit adjustment of the default recipe: logits - tau * log(training mix).
POSTHOC_TAU = 1.0
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "jurkat"


def d4_views(x: Tensor) -> Tensor:
    """The 8 dihedral transforms of ``x`` stacked along the batch: ``(8 * B, C, H, W)``."""
    rotations = [torch.rot90(x, k, (2, 3)) for k in range(4)]
    return torch.cat(rotations + [r.flip(3) for r in rotations])


class PredictionPath(nn.Module):
    """uint16 tiles -> class probabilities, as a user's prediction call runs it.

    ``logit_offset`` (post-hoc logit adjustment, e.g. ``-log(training prior)``) is added to the
    logits; with ``merge_fine`` the model's 7 release classes (G1, S, G2, Prophase, ...) are
    merged into the 5 phases by summing the three interphase probabilities.
    """

    def __init__(
        self,
        model: nn.Module,
        normalize: Normalize,
        *,
        tta: bool,
        channels_last: bool = False,
        logit_offset: Tensor | None = None,
        merge_fine: bool = False,
    ) -> None:
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.normalize = normalize
        self.tta = tta
        self.channels_last = channels_last
        self.logit_offset = logit_offset
        self.merge_fine = merge_fine

    def forward(self, tiles: Tensor) -> Tensor:
        x = self.normalize(to_float_images(tiles))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        batch = x.shape[0]
        if self.tta:
            x = d4_views(x)
        logits = self.model(x).float()
        if self.logit_offset is not None:
            logits = logits + self.logit_offset
        probs = nnf.softmax(logits, dim=-1)
        if self.tta:
            probs = probs.view(8, batch, -1).mean(0)
        if self.merge_fine:
            probs = torch.cat([probs[:, :3].sum(1, keepdim=True), probs[:, 3:]], 1)
        return probs


def autocast(enabled: bool) -> AbstractContextManager[object]:
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else nullcontext()


def cells_per_second(
    path: PredictionPath, tiles: Tensor, *, bf16: bool, repeats: int
) -> Callable[[], float]:
    """A timer: returns the cells/s of ``repeats`` batches (after the warm-up call)."""

    def run() -> float:
        with torch.inference_mode(), autocast(bf16):
            start = time.perf_counter()
            for _ in range(repeats):
                path(tiles)
            return repeats * tiles.shape[0] / (time.perf_counter() - start)

    with torch.inference_mode(), autocast(bf16):
        path(tiles)  # warm-up (oneDNN primitive creation)
    return run


# --------------------------------------------------------------------------- real cells
def read_montage_tiles(path: Path, tile: int = 40) -> np.ndarray:
    """The cell tiles of one release montage (column-major, padding tiles dropped)."""
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image, dtype=np.uint16)
    rows, cols = pixels.shape[0] // tile, pixels.shape[1] // tile
    grid = pixels.reshape(rows, tile, cols, tile).transpose(2, 0, 1, 3)  # (col, row, y, x)
    tiles = grid.reshape(rows * cols, tile, tile)
    padding = (tiles == tiles[:, :1, :]).all(axis=(1, 2))  # every column constant
    return tiles[~padding]


def read_cells(folder: Path, channels: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    """Tiles ``(N, len(channels), 40, 40)`` uint16 and release labels (0-6) of a montage folder."""
    images, labels = [], []
    for label, name in enumerate(RELEASE_CLASSES):
        per_channel = [
            np.concatenate([read_montage_tiles(p) for p in sorted((folder / name).glob(f"{c}_*"))])
            for c in channels
        ]
        images.append(np.stack(per_channel, 1))
        labels += [label] * len(per_channel[0])
    return torch.from_numpy(np.concatenate(images).astype(np.int32)).to(torch.uint16), torch.tensor(
        labels
    )


def train_default(
    tiles: Tensor, labels: Tensor, *, epochs: int, seed: int
) -> tuple[nn.Module, Normalize]:
    """Train ``cellcycle_resnet`` on the 7 release classes (the default recipe, shortened)."""
    x = to_float_images(tiles)
    mean, std = channel_stats(x)
    normalize = Normalize(mean.float(), std.float().clamp(min=1e-6))
    x = normalize(x)
    prior = expected_class_distribution(labels, 0.9)
    torch.manual_seed(seed)
    model = create_model(
        "cellcycle_resnet", n_classes=len(RELEASE_CLASSES), class_freqs=prior.tolist()
    )
    sampler = ClassBalancedSampler(labels, alpha=0.9, seed=seed)
    batch = 64
    steps = epochs * math.ceil(len(sampler) / batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, 3e-3, total_steps=steps, pct_start=0.2, anneal_strategy="cos"
    )
    generator = torch.Generator().manual_seed(seed)
    augment = [RandomDihedral(), RandomTranslate(4), RandomIntensity((0.9, 1.1), (-0.1, 0.1))]
    model.train()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        order = torch.as_tensor(list(sampler))
        for index in order.split(batch):
            xb = x[index]
            for t in augment:
                xb = t(xb, generator=generator)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = nnf.cross_entropy(model(xb).float(), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.eval(), normalize


def accuracy_check(folder: Path, args: argparse.Namespace) -> None:
    channels = ("Ch3", "Ch6")
    tiles, labels = read_cells(folder, channels)
    train, test = stratified_split(labels, 0.2, seed=0)
    start = time.perf_counter()
    train_labels = labels[torch.from_numpy(train)]
    model, normalize = train_default(
        tiles[torch.from_numpy(train)], train_labels, epochs=args.train_epochs, seed=0
    )
    offset = -POSTHOC_TAU * expected_class_distribution(train_labels, 0.9).log()
    print(f"\nreal cells: {folder} ({', '.join(channels)}), {len(labels)} cells; "
          f"trained {args.train_epochs} epochs on {len(train)} in "
          f"{time.perf_counter() - start:.0f} s, tested on {len(test)}")  # fmt: skip
    test_tiles = tiles[torch.from_numpy(test)]
    test_labels = (labels[torch.from_numpy(test)] - 2).clamp(min=0)  # the 5 merged phases
    probs = {}
    for name, bf16 in (("float32", False), ("bf16 + channels_last", True)):
        path = PredictionPath(model, normalize, tta=args.tta, channels_last=bf16,
                              logit_offset=offset, merge_fine=True)  # fmt: skip
        with torch.inference_mode(), autocast(bf16):
            probs[name] = torch.cat([path(b) for b in test_tiles.split(args.batch)])
        metric = BalancedClassificationMetrics(5)
        report = metric.update(probs[name], test_labels).compute()
        print(f"  {name:22s} balanced accuracy {report.balanced_accuracy:.3f}  "
              f"kappa {report.cohen_kappa:.3f}")  # fmt: skip
    a, b = probs.values()
    agree = (a.argmax(1) == b.argmax(1)).float().mean().item()
    print(
        f"  predicted classes agree on {agree:.2%} of the test cells; "
        f"largest probability difference {(a - b).abs().max().item():.4f}"
    )


# --------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--batch", type=int, default=512, help="cells per batch")
    p.add_argument("--rounds", type=int, default=5, help="timing rounds (best is reported)")
    p.add_argument("--repeats", type=int, default=4, help="batches per timing")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=False,
                   help="8 dihedral test-time views for the default model")  # fmt: skip
    p.add_argument("--data-dir", type=Path, default=None, help="montage folder for the accuracy "
                   "check (default: ../shared/data/jurkat/Experiment_1 if present)")  # fmt: skip
    p.add_argument("--train-epochs", type=int, default=40, help="epochs of the accuracy check")
    p.add_argument("--no-accuracy", action="store_true", help="skip the real-cell check")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)

    def tiles(channels: int) -> Tensor:
        raw = torch.randint(0, 4096, (args.batch, channels, 40, 40), generator=gen)
        return raw.to(torch.int32).to(torch.uint16)

    torch.manual_seed(0)
    baseline = create_model("cellcycle_convnet", img_size=40).eval()
    n_fine = len(RELEASE_CLASSES)
    default = create_model("cellcycle_resnet", n_classes=n_fine).eval()
    offset = torch.zeros(n_fine)
    norm1, norm2 = Normalize([0.01], [0.001]), Normalize([0.01, 0.0004], [0.001, 0.0003])
    tiles1, tiles2 = tiles(1), tiles(2)
    default_fast = create_model("cellcycle_resnet", n_classes=n_fine).eval()
    default_fast.load_state_dict(default.state_dict())
    candidates = {
        "cellcycle_convnet 1x40x40 float32 (0.1.0)": cells_per_second(
            PredictionPath(baseline, norm1, tta=False), tiles1, bf16=False, repeats=args.repeats
        ),
        f"cellcycle_resnet 2x40x40 float32{' + D4 TTA' if args.tta else ''}": cells_per_second(
            PredictionPath(default, norm2, tta=args.tta, logit_offset=offset, merge_fine=True),
            tiles2,
            bf16=False,
            repeats=args.repeats,
        ),
        f"cellcycle_resnet 2x40x40 bf16 + channels_last{' + D4 TTA' if args.tta else ''}": (
            cells_per_second(
                PredictionPath(
                    default_fast,
                    norm2,
                    tta=args.tta,
                    channels_last=True,
                    logit_offset=offset,
                    merge_fine=True,
                ),
                tiles2,
                bf16=True,
                repeats=args.repeats,
            )
        ),
    }
    best = dict.fromkeys(candidates, 0.0)
    for _ in range(args.rounds):
        for name, timer in candidates.items():
            best[name] = max(best[name], timer())
    base = next(iter(best.values()))
    print(f"prediction path incl. normalisation, batch {args.batch}, {args.threads} threads, "
          f"best of {args.rounds} rounds")  # fmt: skip
    for name, value in best.items():
        print(f"  {name:52s} {value:9.0f} cells/s   x{value / base:5.2f} vs 0.1.0")
    target = list(best.values())[-1]
    print(f"fast path >= 5,000 cells/s: {'yes' if target >= 5000 else 'NO'} ({target:.0f}); "
          f"on a busy machine read the ratio: at the 0.1.0 model's reported 766 cells/s it is "
          f"{766 * target / base:.0f} cells/s")  # fmt: skip

    folder = args.data_dir
    if folder is None and (DEFAULT_DATA / "Experiment_1").is_dir():
        folder = DEFAULT_DATA / "Experiment_1"
    if folder is not None and not args.no_accuracy:
        accuracy_check(folder, args)


if __name__ == "__main__":
    main()
