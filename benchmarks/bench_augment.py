"""Benchmark: batched augmentation vs the same transform applied per sample in a Python loop.

Augments N single-channel 66x66 images (default N = 32,768) with
``Compose([RandomDihedral(), RandomTranslate(4), RandomIntensity(), GaussianNoise(0.02)])``
once on the whole batch, and compares it with two per-sample baselines:

* ``loop (same transform)``: the same transform objects called on one ``(C, H, W)`` image at a
  time, which is what a per-sample ``Dataset.__getitem__`` transform does (the issue's
  baseline; target ratio >= 20x);
* ``loop (plain torch)``: a lean hand-written per-sample loop (``torch.rot90``/``flip``,
  reflect-pad and slice, scale/offset, ``randn``) without argument checking, the fastest
  per-sample code a user would write.

It prints seconds per run and the ratios. ``--clock cpu`` measures process CPU time instead
of wall time, which is less disturbed by other processes on a shared machine (use it with
``--threads 1``). Not run in CI.

Usage::

    PYTHONPATH=src python benchmarks/bench_augment.py                  # N = 32,768
    PYTHONPATH=src python benchmarks/bench_augment.py --quick          # N = 4,096
    PYTHONPATH=src python benchmarks/bench_augment.py --threads 1 --clock cpu
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import torch
from torch.nn import functional

from cellvision.data.transforms import (
    Compose,
    GaussianNoise,
    RandomDihedral,
    RandomIntensity,
    RandomTranslate,
)

MAX_SHIFT = 4


def timed(fn: Callable[[], object], repeats: int, clock: Callable[[], float]) -> float:
    """Best time of ``repeats`` calls (the run least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def plain_geometric(image: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Hand-written per-sample dihedral + reflect translation (no checks, plain torch calls)."""
    k = int(torch.randint(0, 8, (1,), generator=g))
    if k >= 4:
        image = image.flip(-1)
    image = torch.rot90(image, k % 4, dims=(1, 2))
    dy, dx = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (2,), generator=g).tolist()
    h, w = image.shape[-2:]
    padded = functional.pad(image.unsqueeze(0), (MAX_SHIFT,) * 4, mode="reflect")[0]
    return padded[:, MAX_SHIFT - dy : MAX_SHIFT - dy + h, MAX_SHIFT - dx : MAX_SHIFT - dx + w]


def plain_full(image: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Hand-written per-sample version of the full pipeline."""
    image = plain_geometric(image, g)
    scale, offset = torch.rand(2, generator=g).tolist()
    image = image * (0.9 + 0.2 * scale) + (-0.05 + 0.1 * offset)
    return image + 0.02 * torch.randn(image.shape, generator=g)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32768, help="number of images (default 32768)")
    parser.add_argument("--size", type=int, default=66, help="image height and width")
    parser.add_argument("--repeats", type=int, default=3, help="timed batched repeats")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--quick", action="store_true", help="N = 4096, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 4096, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time

    x = torch.rand(args.n, 1, args.size, args.size, generator=torch.Generator().manual_seed(0))
    pipelines: dict[str, tuple[Compose, Callable[[torch.Tensor, torch.Generator], torch.Tensor]]]
    pipelines = {
        "geometric": (Compose([RandomDihedral(), RandomTranslate(MAX_SHIFT)]), plain_geometric),
        "full": (
            Compose(
                [
                    RandomDihedral(),
                    RandomTranslate(MAX_SHIFT),
                    RandomIntensity(),
                    GaussianNoise(0.02),
                ]
            ),
            plain_full,
        ),
    }
    print(
        f"N={args.n} images of 1x{args.size}x{args.size}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), {args.clock} clock"
    )
    print("geometric = dihedral + translate(4); full = geometric + intensity + noise(0.02)")
    print(
        f"{'pipeline':<10} {'method':<24} {'seconds':>9} {'us/image':>9} {'batched speed-up':>17}"
    )
    for name, (aug, plain) in pipelines.items():
        g = torch.Generator().manual_seed(1)
        batched = timed(functools.partial(aug, x, generator=g), args.repeats, clock)

        def loop(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
            out = torch.empty_like(x)
            for i in range(x.shape[0]):
                out[i] = fn(x[i])

        same = timed(functools.partial(loop, functools.partial(aug, generator=g)), 1, clock)

        def by_hand(
            im: torch.Tensor, p: Callable[..., torch.Tensor] = plain, gen: torch.Generator = g
        ) -> torch.Tensor:
            return p(im, gen)

        hand = timed(functools.partial(loop, by_hand), 1, clock)
        for method, seconds in (
            ("batched (one call)", batched),
            ("loop (same transform)", same),
            ("loop (plain torch)", hand),
        ):
            print(
                f"{name:<10} {method:<24} {seconds:>9.3f} {1e6 * seconds / args.n:>9.1f} "
                f"{seconds / batched:>16.1f}x"
            )


if __name__ == "__main__":
    main()
