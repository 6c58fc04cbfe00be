"""Distributed (DDP) training of the cell-cycle ConvNet with the library's recipe.

Run it under ``torchrun``; every process trains a ``DistributedDataParallel`` replica:

* CPU (gloo)::

      torchrun --standalone --nproc_per_node=2 examples/ddp_cellcycle.py --quick

* GPUs (nccl, one process per GPU)::

      torchrun --standalone --nproc_per_node=2 examples/ddp_cellcycle.py --device cuda

:func:`cellvision.recipes.cellcycle.run_study` is DDP-aware: every rank reads the same data
and split; ``ClassBalancedSampler`` shards one global draw per epoch across the ranks
(``num_replicas``/``rank`` from the process group), so the ranks together see as many samples
per epoch as one process (``--batch-size`` is per process); validation and test cells are
split between the ranks and the engine synchronises the metrics and losses, so every rank
computes the global report. Rank 0 alone prints and writes the outputs.

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) it runs as a single process.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist

from cellvision.recipes.cellcycle import default_recipe, load_data, run_study


def build_parser() -> argparse.ArgumentParser:
    """The command line (a subset of ``cellvision cellcycle train``'s)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-dir", help="Jurkat CellCycle folder (default: synthetic cells)")
    p.add_argument("--counts", type=int, nargs=5, metavar="N", help="synthetic cells per class")
    p.add_argument("--size", type=int, help="synthetic image side (default 66, --quick 48)")
    p.add_argument("--epochs", type=int, help="training epochs (default 30, --quick 10)")
    p.add_argument("--batch-size", type=int, help="batch size per process (default 64)")
    p.add_argument("--baseline-epochs", type=int, help="raw-pixel baseline epochs (0: skip)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--quick", action="store_true", help="small data, short schedule")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/cellcycle-ddp"),
        help="output folder (default runs/cellcycle-ddp)",
    )
    p.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (nccl)")
    p.add_argument("--no-progress", action="store_true", help="accepted for symmetry; no bars")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Initialise the process group from the ``torchrun`` environment and run the study."""
    parser = build_parser()
    args = parser.parse_args(argv)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = args.device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        parser.error(f"--device {args.device} needs CUDA, which is not available")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    else:
        # Processes share the cores: one process per core-share instead of oversubscribing.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    changes = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "baseline_epochs": args.baseline_epochs,
        "seed": args.seed,
    }
    recipe = default_recipe(
        "cellcycle_convnet", quick=args.quick, **{k: v for k, v in changes.items() if v is not None}
    )
    data, description = load_data(
        args.data_dir, quick=args.quick, counts=args.counts, size=args.size, seed=recipe.seed
    )
    distributed = world_size > 1
    if distributed:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        result = run_study(
            recipe, data, data_description=description, device=device, progress=False
        )
        if not distributed or dist.get_rank() == 0:
            result.save(args.out)
        if distributed:
            # Tear down together: a rank that leaves while rank 0 still writes its files can
            # abort in gloo's shutdown ("terminate called without an active exception").
            dist.barrier()
    finally:
        if distributed:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
