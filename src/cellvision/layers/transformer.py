"""Pre-LayerNorm transformer encoder block."""

from __future__ import annotations

import torch
from torch import nn

from cellvision.config import check_positive_int, check_probability
from cellvision.layers.attention import MultiHeadSelfAttention
from cellvision.layers.mlp import MLP

__all__ = ["PreNormTransformerBlock"]


class PreNormTransformerBlock(nn.Module):
    """``x + Attn(LN(x))`` then ``x + MLP(LN(x))`` (pre-LayerNorm residual block).

    Normalising before each sub-layer keeps the residual stream an identity path, which makes
    training stable without learning-rate warm-up tricks for shallow and deep stacks alike.

    Parameters
    ----------
    dim : int
        Token width; divisible by ``n_heads``.
    n_heads : int
        Attention heads.
    hidden_size : int
        Hidden units of the GELU feed-forward MLP.
    dropout : float, default 0.0
        Dropout after the attention projection and inside the MLP, in ``[0, 1)``.
    attn_dropout : float, default 0.0
        Dropout on the attention probabilities, in ``[0, 1)``.
    qkv_bias : bool, default True
        Learn a bias in the fused qkv projection.
    norm_eps : float, default 1e-5
        LayerNorm epsilon.

    Raises
    ------
    TypeError, ValueError
        On invalid sizes or dropout rates (see :class:`MultiHeadSelfAttention` and
        :class:`MLP`).

    References
    ----------
    R. Xiong et al., "On Layer Normalization in the Transformer Architecture", ICML 2020.

    Examples
    --------
    >>> block = PreNormTransformerBlock(dim=16, n_heads=4, hidden_size=32)
    >>> block(torch.randn(2, 7, 16)).shape
    torch.Size([2, 7, 16])
    """

    def __init__(
        self,
        dim: int,
        n_heads: int,
        hidden_size: int,
        *,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        check_positive_int("hidden_size", hidden_size)
        check_probability("dropout", dropout)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = MultiHeadSelfAttention(
            dim, n_heads, qkv_bias=qkv_bias, attn_dropout=attn_dropout, proj_dropout=dropout
        )
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MLP(dim, hidden_size, activation="gelu", dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the two residual sub-layers.

        Parameters
        ----------
        x : torch.Tensor
            Tokens ``(B, N, dim)``.

        Returns
        -------
        torch.Tensor
            Shape ``(B, N, dim)``.

        Examples
        --------
        >>> block = PreNormTransformerBlock(dim=4, n_heads=1, hidden_size=8).eval()
        >>> x = torch.randn(1, 2, 4)
        >>> torch.equal(block(x), block(x))
        True
        """
        x = x + self.attn(self.norm1(x))
        out: torch.Tensor = x + self.mlp(self.norm2(x))
        return out
