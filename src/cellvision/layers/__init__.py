"""Reusable ``torch.nn`` building blocks shared by the model families.

Examples
--------
>>> import torch
>>> from cellvision.layers import PreNormTransformerBlock
>>> PreNormTransformerBlock(dim=8, n_heads=2, hidden_size=16)(torch.zeros(1, 3, 8)).shape
torch.Size([1, 3, 8])
"""

from __future__ import annotations

from cellvision.layers.attention import MultiHeadSelfAttention
from cellvision.layers.conv import ConvBlock, ResidualBlock, check_odd_kernel_size
from cellvision.layers.heads import (
    ClassFreqsLike,
    as_class_freqs,
    class_prior_log_probs,
    init_class_prior_,
)
from cellvision.layers.mlp import MLP
from cellvision.layers.patch_embed import (
    PATCH_REMAINDER_POLICIES,
    PatchEmbed,
    PatchRemainder,
    patch_grid_size,
)
from cellvision.layers.transformer import PreNormTransformerBlock

__all__ = [
    "MLP",
    "PATCH_REMAINDER_POLICIES",
    "ClassFreqsLike",
    "ConvBlock",
    "MultiHeadSelfAttention",
    "PatchEmbed",
    "PatchRemainder",
    "PreNormTransformerBlock",
    "ResidualBlock",
    "as_class_freqs",
    "check_odd_kernel_size",
    "class_prior_log_probs",
    "init_class_prior_",
    "patch_grid_size",
]
