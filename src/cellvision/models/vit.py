"""Pre-LayerNorm Vision Transformer with fused attention and a class-prior head.

Registered names: ``vit`` (the config defaults) and ``cellcycle_vit`` (the cell-cycle study:
66x66 single-channel Jurkat images, patch 16, 3 blocks of width 512 with 8 heads and 2048
hidden units, 5 classes).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch
from torch import nn
from torch.nn.functional import interpolate

from cellvision.config import (
    Config,
    check_choice,
    check_positive_int,
    check_probability,
)
from cellvision.layers._checks import check_features, check_image_batch, random_images
from cellvision.layers.heads import ClassFreqsLike, as_class_freqs
from cellvision.layers.patch_embed import (
    PATCH_REMAINDER_POLICIES,
    PatchEmbed,
    PatchRemainder,
    patch_grid_size,
)
from cellvision.layers.transformer import PreNormTransformerBlock
from cellvision.models._common import (
    as_int,
    check_bool,
    check_n_classes,
    check_parameter_budget,
    init_head,
)
from cellvision.models._registry import register_model

__all__ = ["ViT", "ViTConfig"]

_INT_FIELDS = (
    "in_channels",
    "img_size",
    "patch_size",
    "n_classes",
    "n_blks",
    "emb_size",
    "n_heads",
    "hidden_size",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ViTConfig(Config):
    """Configuration of :class:`ViT`; the field names follow the original notebook.

    Parameters
    ----------
    img_size : int, default 64
        Side of the square input images in pixels. It need not be a multiple of
        ``patch_size``: see ``patch_remainder``.
    patch_size : int, default 16
        Side of the square patches.
    n_classes : int, default 2
        Number of classes (>= 2).
    n_blks : int, default 3
        Number of pre-LayerNorm transformer blocks.
    emb_size : int, default 512
        Token width; must be divisible by ``n_heads``.
    n_heads : int, default 8
        Attention heads per block.
    hidden_size : int, default 2048
        Hidden units of each block's GELU MLP (``emb_size -> hidden_size -> emb_size``); not
        the token width, which is ``emb_size``.
    in_channels : int, default 1
        Image channels.
    dropout : float, default 0.0
        Dropout on the embedded tokens, after each attention projection and inside each MLP.
    attn_dropout : float, default 0.0
        Dropout on the attention probabilities.
    pool : {"cls", "mean"}, default "cls"
        Embedding returned by :meth:`ViT.forward_features`: the final class token, or the
        mean of the final patch tokens. The class token is part of the sequence either way.
    patch_remainder : {"pad", "crop", "raise"}, default "pad"
        Policy for image sides that are not a multiple of ``patch_size``. ``"pad"`` zero-pads
        the image, centred, to the next multiple (66 -> 80 with patch 16: 5x5 patches and no
        pixel lost); ``"crop"`` centre-crops to the previous multiple (66 -> 64: 4x4 patches,
        the outer pixel ring dropped); ``"raise"`` rejects such sizes when the config is
        built.
    dynamic_img_size : bool, default False
        Accept inputs whose size differs from ``img_size`` by bicubically interpolating the
        learned patch position embeddings to the input's patch grid. When ``False`` such
        inputs raise ``ValueError``.
    qkv_bias : bool, default True
        Learn a bias in the fused qkv projections.
    class_freqs : tensor, ndarray or sequence of float, optional
        Training-set class counts or proportions, one per class, all > 0. The head bias is
        initialised to ``log(freq / freq.sum())`` so an untrained model predicts the prior.
        Stored as a tuple of floats so the config serialises to JSON.
    zero_init_head : bool, default False
        Zero the head weight at initialisation, so the untrained model's softmax equals the
        class prior (or the uniform distribution without ``class_freqs``) exactly.

    Raises
    ------
    TypeError
        If a field has the wrong type.
    ValueError
        If a size is not positive, ``emb_size % n_heads != 0``, ``n_classes < 2``, a dropout
        rate is outside ``[0, 1)``, ``img_size`` is invalid under ``patch_remainder`` or
        ``class_freqs`` has the wrong length or a non-positive entry.

    Examples
    --------
    The original notebook's call works verbatim (``class_freqs`` may be a tensor):

    >>> config = ViTConfig(img_size=66, patch_size=16, n_classes=3, n_blks=3, emb_size=512,
    ...                    n_heads=8, hidden_size=2048,
    ...                    class_freqs=torch.tensor([60.0, 30.0, 10.0], dtype=torch.float32))
    >>> config.class_freqs
    (60.0, 30.0, 10.0)
    >>> ViTConfig.from_json(config.to_json()) == config
    True
    >>> ViTConfig(emb_size=100, n_heads=8)
    Traceback (most recent call last):
        ...
    ValueError: emb_size must be divisible by n_heads, got emb_size=100 and n_heads=8
    """

    img_size: int = 64
    patch_size: int = 16
    n_classes: int = 2
    n_blks: int = 3
    emb_size: int = 512
    n_heads: int = 8
    hidden_size: int = 2048
    in_channels: int = 1
    dropout: float = 0.0
    attn_dropout: float = 0.0
    pool: Literal["cls", "mean"] = "cls"
    patch_remainder: PatchRemainder = "pad"
    dynamic_img_size: bool = False
    qkv_bias: bool = True
    class_freqs: ClassFreqsLike | None = None
    zero_init_head: bool = False

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            object.__setattr__(self, name, as_int(getattr(self, name)))
            if name != "n_classes":
                check_positive_int(name, getattr(self, name))
        check_n_classes(self.n_classes)
        if self.emb_size % self.n_heads != 0:
            raise ValueError(
                f"emb_size must be divisible by n_heads, got emb_size={self.emb_size!r} "
                f"and n_heads={self.n_heads!r}"
            )
        object.__setattr__(self, "dropout", check_probability("dropout", self.dropout))
        object.__setattr__(
            self, "attn_dropout", check_probability("attn_dropout", self.attn_dropout)
        )
        check_choice("pool", self.pool, ("cls", "mean"))
        check_choice("patch_remainder", self.patch_remainder, PATCH_REMAINDER_POLICIES)
        patch_grid_size(self.img_size, self.patch_size, self.patch_remainder)
        for name in ("dynamic_img_size", "qkv_bias", "zero_init_head"):
            check_bool(name, getattr(self, name))
        freqs = as_class_freqs(self.class_freqs, n_classes=self.n_classes)
        object.__setattr__(self, "class_freqs", freqs)

    def parameter_count(self) -> int:
        """Return the number of learnable parameters of a :class:`ViT` with this config.

        Computed from the fields alone, without building anything, so that an absurd config
        (``patch_size=10**5``, or one from a crafted checkpoint) is refused before any
        allocation.

        Returns
        -------
        int
            Equal to ``sum(p.numel() for p in ViT(config).parameters())``.

        Examples
        --------
        >>> config = ViTConfig(n_blks=1, emb_size=8, n_heads=2, hidden_size=16)
        >>> config.parameter_count() == sum(p.numel() for p in ViT(config).parameters())
        True
        """
        d, h, p = self.emb_size, self.hidden_size, self.patch_size
        patches = self.in_channels * d * p * p + d
        tokens = d + (1 + self.grid_size**2) * d  # class token + position embeddings
        attention = d * 3 * d + (3 * d if self.qkv_bias else 0) + d * d + d
        block = 2 * d + attention + 2 * d + d * h + h + h * d + d
        head = 2 * d + d * self.n_classes + self.n_classes  # final LayerNorm + linear head
        return patches + tokens + self.n_blks * block + head

    @property
    def grid_size(self) -> int:
        """Patches per image side at ``img_size`` under ``patch_remainder``.

        Returns
        -------
        int
            For example 5 for 66x66 images, patch 16 and the ``"pad"`` policy.

        Examples
        --------
        >>> ViTConfig(img_size=66, patch_size=16, patch_remainder="crop").grid_size
        4
        """
        return patch_grid_size(self.img_size, self.patch_size, self.patch_remainder)


@register_model("cellcycle_vit", img_size=66, n_classes=5)
@register_model("vit")
class ViT(nn.Module):
    """Pre-LayerNorm Vision Transformer classifier.

    ``PatchEmbed -> [class token; patch tokens] + position embeddings -> n_blks x
    PreNormTransformerBlock -> LayerNorm -> pool (class token or mean) -> Linear``.
    The model returns logits; use :func:`torch.nn.functional.cross_entropy` on them.

    Parameters
    ----------
    config : ViTConfig
        The architecture; available afterwards as ``model.config``.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`ViTConfig`.

    Notes
    -----
    Weights are drawn from torch's global random generator: call :func:`torch.manual_seed`
    first for a reproducible initialisation. Linear layers and the position embeddings use a
    truncated normal with standard deviation 0.02 and zero biases.

    References
    ----------
    A. Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition
    at Scale", ICLR 2021.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> model = ViT(ViTConfig(img_size=66, patch_size=16, n_classes=5, n_blks=1, emb_size=32,
    ...                       n_heads=4, hidden_size=64)).eval()
    >>> x = model.example_input(batch_size=3)
    >>> x.shape
    torch.Size([3, 1, 66, 66])
    >>> model.forward_features(x).shape  # embeddings, e.g. for PCA / t-SNE
    torch.Size([3, 32])
    >>> model(x).shape
    torch.Size([3, 5])
    """

    config_class: ClassVar[type[ViTConfig]] = ViTConfig

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        if not isinstance(config, ViTConfig):
            raise TypeError(f"config must be a ViTConfig, got {type(config).__name__}")
        check_parameter_budget(config)
        self.config = config
        dim = config.emb_size
        self.patch_embed = PatchEmbed(
            config.img_size,
            config.patch_size,
            config.in_channels,
            dim,
            remainder=config.patch_remainder,
            dynamic_img_size=config.dynamic_img_size,
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.patch_embed.num_patches, dim))
        self.pos_drop = nn.Dropout(config.dropout)
        self.blocks = nn.Sequential(
            *(
                PreNormTransformerBlock(
                    dim,
                    config.n_heads,
                    config.hidden_size,
                    dropout=config.dropout,
                    attn_dropout=config.attn_dropout,
                    qkv_bias=config.qkv_bias,
                )
                for _ in range(config.n_blks)
            )
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, config.n_classes)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-initialise every weight, including the class-prior head.

        Examples
        --------
        >>> model = ViT(ViTConfig(n_blks=1, emb_size=8, n_heads=2, hidden_size=8,
        ...                       class_freqs=[3, 1], zero_init_head=True))
        >>> model.reset_parameters()
        >>> model(model.example_input(1)).softmax(-1).detach()
        tensor([[0.7500, 0.2500]])
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        self.patch_embed.proj.reset_parameters()
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        init_head(self.head, self.config.class_freqs, self.config.zero_init_head)

    def _position_embedding(self, rows: int, cols: int) -> torch.Tensor:
        grid = self.patch_embed.grid_size
        if (rows, cols) == grid:
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        dim = patch_pos.shape[-1]
        patch_pos = patch_pos.reshape(1, grid[0], grid[1], dim).permute(0, 3, 1, 2)
        patch_pos = interpolate(patch_pos, size=(rows, cols), mode="bicubic", align_corners=False)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Return the final normalised tokens, class token first.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(B, in_channels, H, W)``.

        Returns
        -------
        torch.Tensor
            Shape ``(B, 1 + n_patches, emb_size)``.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point tensor of the model's dtype (float32 unless the
            model was converted; any float under :func:`torch.autocast`).
        ValueError
            If ``x`` is not 4-D with ``in_channels`` channels and (unless
            ``dynamic_img_size``) side ``img_size``.

        Examples
        --------
        >>> model = ViT(ViTConfig(img_size=32, n_blks=1, emb_size=8, n_heads=2, hidden_size=8))
        >>> model.forward_tokens(model.example_input(2)).shape
        torch.Size([2, 5, 8])
        """
        check_image_batch(x, self.config.in_channels, dtype=self.pos_embed.dtype)
        tokens: torch.Tensor = self.patch_embed(x)
        rows, cols = self.patch_embed.output_grid(x.shape[-2], x.shape[-1])
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self._position_embedding(rows, cols)
        tokens = self.blocks(self.pos_drop(tokens))
        out: torch.Tensor = self.norm(tokens)
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the pooled embedding ``(B, emb_size)`` (class token or mean of patches).

        Parameters
        ----------
        x : torch.Tensor
            Images ``(B, in_channels, H, W)``.

        Returns
        -------
        torch.Tensor
            Shape ``(B, emb_size)``; the input of :meth:`forward_head`.

        Raises
        ------
        TypeError, ValueError
            As :meth:`forward_tokens`.

        Examples
        --------
        >>> model = ViT(ViTConfig(img_size=32, n_blks=1, emb_size=8, n_heads=2, hidden_size=8))
        >>> model.forward_features(torch.zeros(4, 1, 32, 32)).shape
        torch.Size([4, 8])
        >>> model.forward_features(torch.zeros(4, 32, 32))
        Traceback (most recent call last):
            ...
        ValueError: x must be a 4-D (batch, channels, height, width) tensor, got shape (4, 32, 32)
        """
        tokens = self.forward_tokens(x)
        if self.config.pool == "mean":
            return tokens[:, 1:].mean(dim=1)
        return tokens[:, 0]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Map pooled embeddings to class logits.

        Parameters
        ----------
        features : torch.Tensor
            Shape ``(B, emb_size)``.

        Returns
        -------
        torch.Tensor
            Logits ``(B, n_classes)``.

        Raises
        ------
        TypeError, ValueError
            If ``features`` is not a floating ``(B, emb_size)`` tensor.

        Examples
        --------
        >>> model = ViT(ViTConfig(n_classes=3, n_blks=1, emb_size=8, n_heads=2, hidden_size=8))
        >>> model.forward_head(torch.zeros(2, 8)).shape
        torch.Size([2, 3])
        """
        check_features(features, self.config.emb_size, dtype=self.head.weight.dtype)
        logits: torch.Tensor = self.head(features)
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``forward_head(forward_features(x))``.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(B, in_channels, H, W)``.

        Returns
        -------
        torch.Tensor
            Logits ``(B, n_classes)``.

        Raises
        ------
        TypeError, ValueError
            As :meth:`forward_tokens`.

        Examples
        --------
        >>> model = ViT(ViTConfig(n_classes=4, n_blks=1, emb_size=8, n_heads=2, hidden_size=8))
        >>> model(torch.randn(2, 1, 64, 64)).shape
        torch.Size([2, 4])
        """
        return self.forward_head(self.forward_features(x))

    def example_input(
        self, batch_size: int = 2, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Return a standard-normal image batch valid for this model's config.

        Parameters
        ----------
        batch_size : int, default 2
            Number of images.
        generator : torch.Generator, optional
            Source of randomness (and device) for reproducible inputs.

        Returns
        -------
        torch.Tensor
            Shape ``(batch_size, in_channels, img_size, img_size)``, float32.

        Raises
        ------
        TypeError, ValueError
            If ``batch_size`` is not a positive integer.

        Examples
        --------
        >>> model = ViT(ViTConfig(img_size=66, n_blks=1, emb_size=8, n_heads=2, hidden_size=8))
        >>> g = torch.Generator().manual_seed(0)
        >>> model.example_input(3, generator=g).shape
        torch.Size([3, 1, 66, 66])
        """
        return random_images(
            batch_size, self.config.in_channels, self.config.img_size, generator
        ).to(self.pos_embed.device)
