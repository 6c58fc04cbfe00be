"""Benchmark the image classifiers against named baselines measured in the same run.

Prints, for the cell-cycle study's original ViT (64x64x1 images, patch 16, width 512, 8 heads,
MLP 2048, 3 blocks, batch 64):

1. ViT train step (forward + backward + AdamW step) vs an ``nn.TransformerEncoder``
   (``norm_first=True``, GELU) model with the same parameter count. Target ratio <= 1.00.
2. Attention forward + backward vs a naive per-head loop and vs ``nn.MultiheadAttention``.
   Target ratio <= 1.00 vs ``nn.MultiheadAttention``.
3. Achieved GFLOP/s of the ViT train step (FLOPs counted by
   ``torch.utils.flop_counter.FlopCounterMode``) as a fraction of a 2048x2048 float32 matmul's
   GFLOP/s. Target >= 0.85.
4. ConvNet train step at the original config (66x66x1, batch 64), for reference.

Timings interleave the candidate and its baseline and report the best of several rounds,
which keeps the ratios meaningful on a busy machine; absolute numbers still move with the load.
On a machine where other processes already use every core, ``--threads 1`` avoids the
thread-synchronisation stalls of oversubscription and gives steadier figures.

Run ``PYTHONPATH=src python benchmarks/bench_models.py --help``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import cast

import torch
from torch import nn
from torch.nn import functional as nnf
from torch.utils.flop_counter import FlopCounterMode

from cellvision.layers import MultiHeadSelfAttention
from cellvision.models import ConvNet, ConvNetConfig, ViT, ViTConfig


class TorchEncoderViT(nn.Module):
    """Baseline: the same ViT built around ``nn.TransformerEncoder``."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        dim = config.emb_size
        self.patch = nn.Conv2d(config.in_channels, dim, config.patch_size, config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.grid_size**2, dim))
        layer = nn.TransformerEncoderLayer(
            dim,
            config.n_heads,
            config.hidden_size,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, config.n_blks, norm=nn.LayerNorm(dim), enable_nested_tensor=False
        )
        self.head = nn.Linear(dim, config.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed
        out: torch.Tensor = self.head(self.encoder(tokens)[:, 0])
        return out


class NaivePerHeadAttention(nn.Module):
    """Baseline: one small attention per head in a Python loop, explicit softmax."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        outs = []
        for h in range(self.n_heads):
            sl = slice(h * self.head_dim, (h + 1) * self.head_dim)
            scores = q[..., sl] @ k[..., sl].transpose(-2, -1) / math.sqrt(self.head_dim)
            outs.append(scores.softmax(dim=-1) @ v[..., sl])
        out: torch.Tensor = self.proj(torch.cat(outs, dim=-1))
        return out


class MHAWrapper(nn.Module):
    """``nn.MultiheadAttention`` as self-attention without returned weights."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, n_heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.mha(x, x, x, need_weights=False)[0]
        return out


def make_optimizer(model: nn.Module, impl: str) -> torch.optim.Optimizer:
    """AdamW with the requested implementation (the same for every model in a run)."""
    if impl == "fused":
        return torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    if impl == "foreach":
        return torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
    return torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False)


def make_train_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, impl: str
) -> Callable[[], None]:
    optimizer = make_optimizer(model, impl)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(nnf.cross_entropy(model(x), y))
        optimizer.step()

    return step


def make_fwd_bwd(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        module.zero_grad(set_to_none=True)
        module(x).sum().backward()

    return step


def time_interleaved(
    fns: dict[str, Callable[[], None]], *, warmup: int, repeats: int, inner: int
) -> dict[str, float]:
    """Best (minimum) seconds per call of each function; the functions take turns each repeat.

    The minimum is the least-disturbed measurement, the usual choice (as in :mod:`timeit`) on
    a machine shared with other work.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter() - start) / inner)
    return {name: min(vals) for name, vals in samples.items()}


def count_flops(fn: Callable[[], None]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per candidate")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--adamw",
        choices=("fused", "foreach", "for-loop"),
        default="fused",
        help="AdamW implementation used by every train step (default: fused)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time torch.compile(ViT) in benchmark 1 (compilation not timed)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else args.repeats
    warmup = 1 if args.quick else 2
    batch = args.batch_size
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {batch}, "
        f"AdamW {args.adamw}"
    )

    # 1. ViT train step vs nn.TransformerEncoder.
    config = ViTConfig(
        img_size=64, patch_size=16, n_classes=5, n_blks=3, emb_size=512, n_heads=8,
        hidden_size=2048,
    )  # fmt: skip
    vit = ViT(config)
    baseline = TorchEncoderViT(config)
    n_vit = sum(p.numel() for p in vit.parameters())
    n_base = sum(p.numel() for p in baseline.parameters())
    if n_vit != n_base:
        raise RuntimeError(f"parameter counts differ: ViT {n_vit} vs baseline {n_base}")
    x = torch.randn(batch, 1, 64, 64)
    y = torch.randint(0, 5, (batch,))
    vit_step = make_train_step(vit, x, y, args.adamw)
    base_step = make_train_step(baseline, x, y, args.adamw)
    matmul_a, matmul_b = torch.randn(2048, 2048), torch.randn(2048, 2048)

    def matmul() -> None:
        torch.mm(matmul_a, matmul_b)

    candidates = {"vit": vit_step, "encoder": base_step, "matmul": matmul}
    if args.compile:
        compiled_vit = ViT(config)
        compiled_vit.load_state_dict(vit.state_dict())
        compiled = cast(nn.Module, torch.compile(compiled_vit))
        candidates["compiled"] = make_train_step(compiled, x, y, args.adamw)
    times = time_interleaved(
        candidates,
        warmup=warmup,
        repeats=repeats,
        inner=1 if args.quick else 2,
    )
    print(f"\n[1] ViT train step ({n_vit:,} parameters each)")
    print(f"    cellvision ViT            {times['vit'] * 1e3:9.1f} ms/step")
    print(f"    nn.TransformerEncoder ViT {times['encoder'] * 1e3:9.1f} ms/step")
    print(f"    ratio ViT / encoder       {times['vit'] / times['encoder']:9.3f}  (target <= 1.00)")
    if args.compile:
        print(f"    torch.compile(ViT)        {times['compiled'] * 1e3:9.1f} ms/step")
        print(f"    ratio compiled / encoder  {times['compiled'] / times['encoder']:9.3f}")

    # 3. Achieved GFLOP/s vs a large matmul (timed above, in the same rounds).
    step_flops = count_flops(lambda: torch.autograd.backward(nnf.cross_entropy(vit(x), y)))
    vit.zero_grad(set_to_none=True)
    vit_gflops = step_flops / times["vit"] / 1e9
    mm_gflops = 2 * 2048**3 / times["matmul"] / 1e9
    print("\n[3] Achieved throughput")
    print(f"    ViT train step: {step_flops / 1e9:.2f} GFLOP (forward + backward, counted)")
    print(f"    ViT train step {vit_gflops:8.1f} GFLOP/s")
    print(f"    2048^2 matmul  {mm_gflops:8.1f} GFLOP/s")
    print(f"    fraction       {vit_gflops / mm_gflops:8.3f}  (target >= 0.85)")
    if args.compile:
        compiled_gflops = step_flops / times["compiled"] / 1e9
        print(
            f"    compiled ViT   {compiled_gflops:8.1f} GFLOP/s, fraction "
            f"{compiled_gflops / mm_gflops:.3f}"
        )

    # 2. Attention forward + backward.
    tokens = 1 + config.grid_size**2
    xa = torch.randn(batch, tokens, 512, requires_grad=True)
    ours = MultiHeadSelfAttention(512, 8)
    naive = NaivePerHeadAttention(512, 8)
    mha = MHAWrapper(512, 8)
    att = time_interleaved(
        {
            "ours": make_fwd_bwd(ours, xa),
            "naive": make_fwd_bwd(naive, xa),
            "mha": make_fwd_bwd(mha, xa),
        },
        warmup=warmup,
        repeats=repeats,
        inner=2 if args.quick else 5,
    )
    print(f"\n[2] Attention forward + backward, x of shape {tuple(xa.shape)}")
    print(f"    fused (sdpa)             {att['ours'] * 1e3:8.2f} ms")
    print(f"    naive per-head loop      {att['naive'] * 1e3:8.2f} ms")
    print(f"    nn.MultiheadAttention    {att['mha'] * 1e3:8.2f} ms")
    print(f"    ratio fused / naive      {att['ours'] / att['naive']:8.3f}")
    print(f"    ratio fused / MHA        {att['ours'] / att['mha']:8.3f}  (target <= 1.00)")

    # 4. ConvNet train step, for reference.
    convnet = ConvNet(ConvNetConfig(n_classes=5, img_size=66))
    xc = torch.randn(batch, 1, 66, 66)
    conv = time_interleaved(
        {"convnet": make_train_step(convnet, xc, y, args.adamw)},
        warmup=warmup,
        repeats=repeats,
        inner=1,
    )
    print("\n[4] ConvNet train step (66x66x1, original config)")
    print(f"    {conv['convnet'] * 1e3:.1f} ms/step, {batch / conv['convnet']:.0f} images/s")


if __name__ == "__main__":
    main()
