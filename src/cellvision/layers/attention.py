"""Multi-head self-attention with one fused qkv projection and ``scaled_dot_product_attention``."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.functional import dropout, scaled_dot_product_attention

from cellvision.config import check_positive_int, check_probability

__all__ = ["MultiHeadSelfAttention"]


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention computing every head in one batched call.

    One ``Linear(dim, 3 * dim)`` projects the tokens to queries, keys and values for all
    heads at once; the heads become a batch dimension and
    :func:`torch.nn.functional.scaled_dot_product_attention` runs them together, so PyTorch
    can pick its fused kernels (FlashAttention or memory-efficient attention on GPUs, the
    fused CPU kernel on CPUs). The weight layout matches :class:`torch.nn.MultiheadAttention`
    (``qkv.weight`` is its ``in_proj_weight``, ``proj`` its ``out_proj``). Setting
    ``keep_attention = True`` (as :func:`cellvision.interpret.class_activation_maps` does)
    switches to an explicit ``softmax(q k^T / sqrt(d)) v`` that keeps the attention
    probabilities, differentiable, in ``last_attention``; the default fused path is unchanged.

    Parameters
    ----------
    dim : int
        Token width ``D``; must be divisible by ``n_heads``.
    n_heads : int
        Number of attention heads.
    qkv_bias : bool, default True
        Learn a bias in the qkv projection.
    attn_dropout : float, default 0.0
        Dropout on the attention probabilities (training mode only), in ``[0, 1)``.
    proj_dropout : float, default 0.0
        Dropout after the output projection (training mode only), in ``[0, 1)``.

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive integer, ``dim % n_heads != 0`` or a dropout rate is
        outside ``[0, 1)``.

    References
    ----------
    A. Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    T. Dao et al., "FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness",
    NeurIPS 2022.

    Examples
    --------
    >>> attn = MultiHeadSelfAttention(dim=8, n_heads=2)
    >>> attn(torch.randn(3, 5, 8)).shape
    torch.Size([3, 5, 8])
    >>> MultiHeadSelfAttention(dim=10, n_heads=4)
    Traceback (most recent call last):
        ...
    ValueError: dim must be divisible by n_heads, got dim=10 and n_heads=4
    """

    def __init__(
        self,
        dim: int,
        n_heads: int,
        *,
        qkv_bias: bool = True,
        attn_dropout: float = 0.0,
        proj_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        check_positive_int("n_heads", n_heads)
        if dim % n_heads != 0:
            raise ValueError(
                f"dim must be divisible by n_heads, got dim={dim!r} and n_heads={n_heads!r}"
            )
        check_probability("attn_dropout", attn_dropout)
        check_probability("proj_dropout", proj_dropout)
        self.dim = dim
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.attn_dropout = float(attn_dropout)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_dropout = nn.Dropout(proj_dropout)
        # Opt-in for interpretation (cellvision.interpret): when True, forward computes the
        # attention probabilities explicitly (no fused kernel) and keeps them, still part of
        # the autograd graph, in ``last_attention`` (B, n_heads, N, N).
        self.keep_attention = False
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend every token to every token.

        Parameters
        ----------
        x : torch.Tensor
            Tokens of shape ``(B, N, dim)``.

        Returns
        -------
        torch.Tensor
            Shape ``(B, N, dim)``.

        Raises
        ------
        ValueError
            If ``x`` is not 3-D or its last dimension is not ``dim``.

        Examples
        --------
        >>> attn = MultiHeadSelfAttention(dim=4, n_heads=2).eval()
        >>> x = torch.randn(1, 3, 4)
        >>> torch.equal(attn(x), attn(x))
        True
        """
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape (batch, tokens, {self.dim}), got {tuple(x.shape)}")
        b, n, _ = x.shape
        # (B, N, 3*D) -> (3, B, H, N, Dh): q, k, v for all heads from a single matmul.
        qkv = self.qkv(x).reshape(b, n, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        dropout_p = self.attn_dropout if self.training else 0.0
        if self.keep_attention:
            attn = (q @ k.transpose(-2, -1) * self.head_dim**-0.5).softmax(dim=-1)
            self.last_attention = attn
            out = dropout(attn, dropout_p, self.training) @ v
        else:
            out = scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        out = out.transpose(1, 2).reshape(b, n, self.dim)
        result: torch.Tensor = self.proj_dropout(self.proj(out))
        return result

    def extra_repr(self) -> str:
        """Return the head count and dropout rate shown by ``print(module)``.

        Returns
        -------
        str
            For example ``'n_heads=2, head_dim=4, attn_dropout=0.0'``.

        Examples
        --------
        >>> MultiHeadSelfAttention(dim=8, n_heads=2).extra_repr()
        'n_heads=2, head_dim=4, attn_dropout=0.0'
        """
        return f"n_heads={self.n_heads}, head_dim={self.head_dim}, attn_dropout={self.attn_dropout}"
