"""Benchmark: ClassBalancedSampler vs torch.utils.data.WeightedRandomSampler.

Both samplers draw one epoch of ``N`` indices (with replacement) from ``N`` labels with
Jurkat-like class proportions (31,550 / 606 / 68 / 15 / 27) and the same per-sample weights
``(1 / n_c) ** 0.9``; the time is "draw and iterate every index as a Python int", best of
``--repeats`` epochs. Ratios are measured in the same run. Then ``N = --big`` (default 5e7, above
WeightedRandomSampler's 2**24 limit) runs in fresh subprocesses: WeightedRandomSampler fails,
ClassBalancedSampler reports its time and peak resident memory.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_sampler.py          # 1e5, 1e6, 1e7 and 5e7
    PYTHONPATH=src python benchmarks/bench_sampler.py --quick  # 1e5, 1e6 and 2e7
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import cast

import torch
from torch.utils.data import WeightedRandomSampler

from cellvision.sampling import ClassBalancedSampler, class_weights

JURKAT_COUNTS = (31_550, 606, 68, 15, 27)
ALPHA = 0.9


def jurkat_like_labels(n: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` uint8 labels with Jurkat proportions, shuffled (deterministic)."""
    counts = torch.tensor(JURKAT_COUNTS, dtype=torch.float64)
    sizes = torch.floor(counts / counts.sum() * n).to(torch.int64)
    sizes[0] += n - int(sizes.sum())
    labels = torch.repeat_interleave(torch.arange(len(JURKAT_COUNTS), dtype=torch.uint8), sizes)
    generator = torch.Generator().manual_seed(seed)
    return labels[torch.randperm(n, generator=generator)]


def consume(iterable: Iterable[int]) -> None:
    for _ in iterable:
        pass


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def best_time(function: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        function()
        best = min(best, clock() - start)
    return best


def as_weights(weights: torch.Tensor) -> Sequence[float]:
    """The tensor itself: torch accepts it, its stubs only declare ``Sequence[float]``."""
    return cast(Sequence[float], weights)


def compare(n: int, repeats: int) -> dict[str, float]:
    labels = jurkat_like_labels(n)
    start = time.perf_counter()
    ours = ClassBalancedSampler(labels, alpha=ALPHA, seed=0)
    build = time.perf_counter() - start
    weights = class_weights(labels, ALPHA)[labels.long()]
    theirs = WeightedRandomSampler(as_weights(weights), num_samples=n, generator=torch.Generator())

    epoch = iter(range(10**9))

    def ours_epoch() -> None:
        ours.set_epoch(next(epoch))
        consume(ours)

    def ours_tensor() -> None:
        ours.set_epoch(next(epoch))
        ours.global_indices()

    def theirs_tensor() -> None:
        torch.multinomial(weights, n, replacement=True, generator=theirs.generator)

    return {
        "n": n,
        "build_s": build,
        "ours_s": best_time(ours_epoch, repeats),
        "wrs_s": best_time(lambda: consume(theirs), repeats),
        "ours_tensor_s": best_time(ours_tensor, repeats),
        "wrs_tensor_s": best_time(theirs_tensor, repeats),
    }


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status (Linux), in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # the value is in kB
    raise RuntimeError(f"{field} not found in /proc/self/status")


def rss_mib() -> float:
    """Current resident set size, in MiB."""
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    """Peak resident set size of this process image, in MiB.

    VmHWM is reset by exec, unlike ``ru_maxrss``, which a child started by ``subprocess``
    inherits from its (large) parent.
    """
    return _status_mib("VmHWM")


def big_worker(kind: str, n: int) -> dict[str, object]:
    """Run in a fresh process so that its peak memory is its own."""
    labels = jurkat_like_labels(n)
    baseline = rss_mib()
    result: dict[str, object] = {"kind": kind, "n": n, "rss_after_labels_mib": baseline}
    if kind == "wrs":
        weights = class_weights(labels, ALPHA)[labels.long()]
        try:
            consume(WeightedRandomSampler(as_weights(weights), num_samples=n))
            result["error"] = None
        except RuntimeError as error:
            result["error"] = str(error).splitlines()[0]
        return result
    start = clock()
    sampler = ClassBalancedSampler(labels, alpha=ALPHA, seed=0)
    result["build_s"] = clock() - start
    start = clock()
    count = 0
    for _ in sampler:
        count += 1
    result["epoch_s"] = clock() - start
    result["yielded"] = count
    result["peak_rss_mib"] = peak_rss_mib()
    result["peak_over_labels_mib"] = peak_rss_mib() - baseline
    return result


def run_big(n: int, clock_name: str) -> None:
    for kind in ("wrs", "ours"):
        command = [sys.executable, __file__, "--big-worker", kind, "--big", str(n)]
        command += ["--threads", str(torch.get_num_threads()), "--clock", clock_name]
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            print(f"{kind}: worker failed\n{completed.stderr}")
            continue
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        if kind == "wrs":
            status = "raised RuntimeError: " + str(result["error"]) if result["error"] else "ran"
            print(f"WeightedRandomSampler     N={n:.0e}: {status}")
        else:
            print(
                f"ClassBalancedSampler      N={n:.0e}: build {result['build_s']:.2f} s, "
                f"one epoch (draw + iterate {result['yielded']:,} ints) {result['epoch_s']:.2f} s, "
                f"peak RSS {result['peak_rss_mib']:.0f} MiB "
                f"({result['peak_over_labels_mib']:.0f} MiB above the process with its labels)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (1e5, 1e6; big 2e7)")
    parser.add_argument("--sizes", type=float, nargs="+", default=None, help="N values to compare")
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per sampler (best)")
    parser.add_argument("--big", type=float, default=None, help="N beyond 2**24 (default 5e7)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall time, or process CPU time (steadier on a loaded machine)",
    )
    parser.add_argument("--big-worker", choices=("wrs", "ours"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    global clock
    clock = CLOCKS[args.clock]

    if args.big_worker:
        print(json.dumps(big_worker(args.big_worker, int(args.big))))
        return

    sizes = args.sizes or ([1e5, 1e6] if args.quick else [1e5, 1e6, 1e7])
    big = int(args.big or (2e7 if args.quick else 5e7))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, "
        f"{args.clock} clock, alpha={ALPHA}"
    )
    print("one epoch = draw N indices with replacement and iterate them as Python ints (best of")
    print(f"{args.repeats}); baseline: torch.utils.data.WeightedRandomSampler, same weights\n")
    header = (
        f"{'N':>8} {'build':>8} {'ours':>9} {'WRS':>9} {'ratio':>7}"
        f" {'ours draw':>10} {'WRS draw':>9} {'ratio':>7}"
    )
    print(header)
    for size in sizes:
        row = compare(int(size), args.repeats)
        print(
            f"{row['n']:>8.0e} {row['build_s']:>7.3f}s {row['ours_s']:>8.3f}s {row['wrs_s']:>8.3f}s"
            f" {row['wrs_s'] / row['ours_s']:>6.1f}x {row['ours_tensor_s']:>9.3f}s"
            f" {row['wrs_tensor_s']:>8.3f}s {row['wrs_tensor_s'] / row['ours_tensor_s']:>6.1f}x"
        )
    print("('build' is ClassBalancedSampler's one-off construction; 'draw' = index tensor only)\n")
    run_big(big, args.clock)


if __name__ == "__main__":
    main()
