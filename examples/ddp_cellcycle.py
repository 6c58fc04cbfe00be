"""Distributed (DDP) training of the cell-cycle ConvNet with the shared recipe.

Run it under ``torchrun``; every process trains a ``DistributedDataParallel`` replica:

* CPU (gloo)::

      PYTHONPATH=src torchrun --standalone --nproc_per_node=2 examples/ddp_cellcycle.py --quick

* GPUs (nccl, one process per GPU)::

      PYTHONPATH=src torchrun --standalone --nproc_per_node=2 examples/ddp_cellcycle.py \\
          --device cuda

The recipe is the one of ``cellcycle_convnet.py`` (``cellcycle_recipe.py``): every rank reads
the same data and split; ``ClassBalancedSampler`` shards one global draw per epoch across the
ranks (``num_replicas``/``rank`` from the process group), so the ranks together see the same
number of samples per epoch as one process (``--batch-size`` is per process); validation and
test cells are split between the ranks and the engine's ``evaluate`` synchronises the metrics
(``torcheval`` ``sync_and_compute``) and the losses across them, so every rank computes the
global report. Rank 0 alone prints, plots and writes the checkpoint.

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) it runs as a single process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.distributed as dist
from cellcycle_convnet import DEFAULTS, QUICK  # the same recipe as the one-process script
from cellcycle_recipe import build_parser, parse_args, run_from_args


def run(argv: Sequence[str] | None = None) -> None:
    """Initialise the process group from the ``torchrun`` environment and run the study."""
    parser = build_parser(__doc__ or "", model="cellcycle_convnet", defaults=DEFAULTS)
    args = parse_args(parser, argv, QUICK)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = args.device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        parser.error(f"--device {args.device} needs CUDA, which is not available")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    elif args.threads is None:
        # Processes share the cores: one process per core-share instead of oversubscribing.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    distributed = world_size > 1
    if distributed:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        run_from_args(parser, args, model="cellcycle_convnet", device=device)
        if distributed:
            # Tear down together: a rank that leaves while rank 0 still writes its files can
            # abort in gloo's shutdown ("terminate called without an active exception").
            dist.barrier()
    finally:
        if distributed:
            dist.destroy_process_group()


if __name__ == "__main__":
    run()
