"""Gloo process groups on localhost for the multi-process tests (sampler, metrics, engine)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import torch.distributed as dist


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gloo_group(rank: int, world_size: int, port: int) -> Iterator[None]:
    """Join a gloo group over ``tcp://127.0.0.1:port`` and leave it together with the others.

    On success every rank waits at a barrier before ``destroy_process_group``: a rank that tears
    its group down and exits while a peer is still working can abort in gloo's shutdown
    ("terminate called without an active exception", SIGABRT). After an exception the group is
    destroyed without the barrier, which the failed peer would never reach.
    """
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    try:
        yield
        dist.barrier()
    finally:
        dist.destroy_process_group()
