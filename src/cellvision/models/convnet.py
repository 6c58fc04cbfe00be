"""Convolution-block stack classifier (the cell-cycle study's original architecture).

Registered names: ``convnet`` (the config defaults) and ``cellcycle_convnet`` (the original
network for 66x66 single-channel Jurkat images and 5 classes).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from cellvision.config import Config, check_positive_int, check_probability
from cellvision.layers._checks import check_features, check_image_batch, random_images
from cellvision.layers.conv import ConvBlock, check_odd_kernel_size
from cellvision.layers.heads import ClassFreqsLike, as_class_freqs
from cellvision.layers.mlp import MLP
from cellvision.models._common import (
    as_int,
    check_bool,
    check_n_classes,
    check_parameter_budget,
    init_head,
)
from cellvision.models._registry import register_model

__all__ = ["ConvNet", "ConvNetConfig"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvNetConfig(Config):
    """Configuration of :class:`ConvNet`.

    Parameters
    ----------
    in_channels : int, default 1
        Image channels.
    n_classes : int, default 2
        Number of classes (>= 2).
    n_blocks : int, default 4
        Number of ``Conv -> BatchNorm -> ReLU -> Dropout`` blocks after the stem.
    channels : int, default 64
        Channels of the stem and of every block; also the embedding size.
    kernel_size : int, default 3
        Odd kernel side of every convolution (padding keeps the size).
    dropout : float, default 0.1
        Dropout rate in every block and in the MLP head, in ``[0, 1)``.
    mlp_hidden : int or None, default 64
        Hidden units of the two-layer ReLU head; ``None`` makes the head a single linear layer.
        (The ConvNet has no ``hidden_size``: its convolution and embedding width is
        ``channels``.)
    img_size : int, default 64
        Nominal image side, used by :meth:`ConvNet.example_input`. The network itself accepts
        any size of at least 2x2 (global average pooling removes the size); in training mode
        BatchNorm needs more than one value per channel, so a batch of one image must be at
        least 4x4 there.
    class_freqs : tensor, ndarray or sequence of float, optional
        Training-set class counts or proportions, one per class, all > 0; the final layer's
        bias is initialised to ``log(freq / freq.sum())``. Stored as a tuple of floats.
    zero_init_head : bool, default False
        Zero the final layer's weight at initialisation, so the untrained model's softmax
        equals the class prior (or the uniform distribution) exactly.
    pool_every : int or None, default None
        Insert a 2x2 max-pool (ceil mode, so any size of at least 2x2 still works) after every
        ``pool_every`` blocks, except after the last block. ``None`` keeps the original
        network: one pool after the stem only. Pooling inside the stack widens each block's
        receptive field (whole-cell shapes instead of local texture) and divides its cost by
        four per pool.

    Raises
    ------
    TypeError
        If a field has the wrong type.
    ValueError
        If a size is not positive, ``kernel_size`` is even, ``n_classes < 2``, ``dropout`` is
        outside ``[0, 1)``, ``pool_every`` is not a positive integer or ``None``, or
        ``class_freqs`` has the wrong length or a non-positive entry.

    Examples
    --------
    >>> import numpy as np
    >>> ConvNetConfig(n_classes=5, class_freqs=np.array([50, 20, 10, 5, 1]))
    ConvNetConfig(in_channels=1, n_classes=5, ..., class_freqs=(50.0, 20.0, 10.0, 5.0, 1.0), ...)
    >>> ConvNetConfig(n_classes=3, class_freqs=[1.0, 2.0])
    Traceback (most recent call last):
        ...
    ValueError: class_freqs must have n_classes=3 entries, got 2: (1.0, 2.0)
    """

    in_channels: int = 1
    n_classes: int = 2
    n_blocks: int = 4
    channels: int = 64
    kernel_size: int = 3
    dropout: float = 0.1
    mlp_hidden: int | None = 64
    img_size: int = 64
    class_freqs: ClassFreqsLike | None = None
    zero_init_head: bool = False
    pool_every: int | None = None

    def __post_init__(self) -> None:
        for name in ("in_channels", "n_classes", "n_blocks", "channels", "kernel_size"):
            object.__setattr__(self, name, as_int(getattr(self, name)))
        object.__setattr__(self, "mlp_hidden", as_int(self.mlp_hidden))
        object.__setattr__(self, "img_size", as_int(self.img_size))
        for name in ("in_channels", "n_blocks", "channels"):
            check_positive_int(name, getattr(self, name))
        check_n_classes(self.n_classes)
        check_odd_kernel_size(self.kernel_size)
        object.__setattr__(self, "dropout", check_probability("dropout", self.dropout))
        if self.mlp_hidden is not None:
            check_positive_int("mlp_hidden", self.mlp_hidden)
        check_positive_int("img_size", self.img_size)
        if self.img_size < 2:
            raise ValueError(f"img_size must be at least 2 (max-pool of 2), got {self.img_size!r}")
        check_bool("zero_init_head", self.zero_init_head)
        object.__setattr__(self, "pool_every", as_int(self.pool_every))
        if self.pool_every is not None:
            check_positive_int("pool_every", self.pool_every)
        freqs = as_class_freqs(self.class_freqs, n_classes=self.n_classes)
        object.__setattr__(self, "class_freqs", freqs)

    def parameter_count(self) -> int:
        """Return the number of learnable parameters of a :class:`ConvNet` with this config.

        Computed from the fields alone, without building anything, so that an absurd config
        (for instance from a crafted checkpoint) is refused before any allocation.

        Returns
        -------
        int
            Equal to ``sum(p.numel() for p in ConvNet(config).parameters())``.

        Examples
        --------
        >>> config = ConvNetConfig(channels=8, n_blocks=2)
        >>> config.parameter_count() == sum(p.numel() for p in ConvNet(config).parameters())
        True
        """
        c, k = self.channels, self.kernel_size
        stem = self.in_channels * c * k * k + c
        blocks = self.n_blocks * (c * c * k * k + 2 * c)  # bias-free conv + BatchNorm affine
        if self.mlp_hidden is None:
            head = c * self.n_classes + self.n_classes
        else:
            h = self.mlp_hidden
            head = c * h + h + h * self.n_classes + self.n_classes
        return stem + blocks + head


@register_model("cellcycle_convnet", img_size=66, n_classes=5)
@register_model("convnet")
class ConvNet(nn.Module):
    """Stack of convolution blocks with global average pooling and an MLP head.

    ``Conv2d(in_channels -> channels) -> MaxPool2d(2) -> n_blocks x ConvBlock(channels) ->
    AdaptiveAvgPool2d(1) -> flatten -> MLP head`` (with ``pool_every``, more max-pools between
    the blocks). The max-pool adds some translation
    invariance and halves the work of the blocks; the global average pool squeezes each
    feature map to one number, so the embedding has ``channels`` entries whatever the
    image size. The model returns logits.

    Parameters
    ----------
    config : ConvNetConfig
        The architecture; available afterwards as ``model.config``.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`ConvNetConfig`.

    Notes
    -----
    Weights use PyTorch's default initialisation from the global random generator: call
    :func:`torch.manual_seed` first for reproducibility.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> model = ConvNet(ConvNetConfig(n_classes=5, channels=8, n_blocks=2)).eval()
    >>> x = model.example_input(batch_size=3)
    >>> model.forward_features(x).shape
    torch.Size([3, 8])
    >>> model(x).shape
    torch.Size([3, 5])

    With a pool after every block the 64x64 input reaches the last block at 4x4:

    >>> pooled = ConvNet(ConvNetConfig(channels=8, n_blocks=4, pool_every=1))
    >>> sum(isinstance(m, nn.MaxPool2d) for m in pooled.blocks)
    3
    """

    config_class: ClassVar[type[ConvNetConfig]] = ConvNetConfig

    def __init__(self, config: ConvNetConfig) -> None:
        super().__init__()
        if not isinstance(config, ConvNetConfig):
            raise TypeError(f"config must be a ConvNetConfig, got {type(config).__name__}")
        check_parameter_budget(config)
        self.config = config
        k = config.kernel_size
        self.stem = nn.Conv2d(config.in_channels, config.channels, k, padding=k // 2)
        self.stem_pool = nn.MaxPool2d(2)
        layers: list[nn.Module] = []
        for i in range(1, config.n_blocks + 1):
            layers.append(ConvBlock(config.channels, config.channels, k, dropout=config.dropout))
            if config.pool_every is not None and i % config.pool_every == 0 and i < config.n_blocks:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.blocks = nn.Sequential(*layers)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head: nn.Module
        if config.mlp_hidden is None:
            self.head = nn.Linear(config.channels, config.n_classes)
        else:
            self.head = MLP(
                config.channels,
                config.mlp_hidden,
                config.n_classes,
                activation="relu",
                dropout=config.dropout,
                final_dropout=False,
            )
        init_head(self.classifier, config.class_freqs, config.zero_init_head)

    @property
    def classifier(self) -> nn.Linear:
        """The final ``nn.Linear`` producing the logits (the one holding the class prior).

        Returns
        -------
        torch.nn.Linear
            The last layer of the head.

        Examples
        --------
        >>> ConvNet(ConvNetConfig(n_classes=3, mlp_hidden=16)).classifier
        Linear(in_features=16, out_features=3, bias=True)
        """
        if isinstance(self.head, MLP):
            return self.head.fc2
        if not isinstance(self.head, nn.Linear):  # pragma: no cover - built in __init__
            raise TypeError(f"head must be an MLP or nn.Linear, got {type(self.head).__name__}")
        return self.head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the pooled embedding ``(B, channels)``.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(B, in_channels, H, W)`` with ``H, W >= 2``, any memory format.

        Returns
        -------
        torch.Tensor
            Shape ``(B, channels)``; the input of :meth:`forward_head`.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point tensor of the model's dtype.
        ValueError
            If ``x`` is not 4-D with ``in_channels`` channels and at least 2x2 pixels, or, in
            training mode, gives BatchNorm only one value per channel (one image below 4x4).

        Examples
        --------
        >>> model = ConvNet(ConvNetConfig(channels=4, n_blocks=1))
        >>> model.forward_features(torch.zeros(2, 1, 30, 40)).shape
        torch.Size([2, 4])
        >>> model.forward_features(torch.zeros(2, 3, 30, 40))
        Traceback (most recent call last):
            ...
        ValueError: x must have 1 channel(s) (in_channels), got shape (2, 3, 30, 40)
        """
        check_image_batch(x, self.config.in_channels, min_size=2, dtype=self.stem.weight.dtype)
        if self.training:
            self._check_batch_norm_size(x)
        out: torch.Tensor = self.blocks(self.stem_pool(self.stem(x)))
        return torch.flatten(self.global_pool(out), 1)

    def _check_batch_norm_size(self, x: torch.Tensor) -> None:
        # The smallest feature map is the last block's; BatchNorm needs > 1 value per channel.
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        for module in self.blocks:
            if isinstance(module, nn.MaxPool2d):
                h, w = -(-h // 2), -(-w // 2)
        if x.shape[0] * h * w < 2:
            raise ValueError(
                f"x must give BatchNorm more than one value per channel in training mode, got "
                f"shape {tuple(x.shape)} (the last block sees {h}x{w} per image); use a batch "
                "of at least 2, larger images, or model.eval()"
            )

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Map pooled embeddings to class logits.

        Parameters
        ----------
        features : torch.Tensor
            Shape ``(B, channels)``.

        Returns
        -------
        torch.Tensor
            Logits ``(B, n_classes)``.

        Raises
        ------
        TypeError, ValueError
            If ``features`` is not a floating ``(B, channels)`` tensor.

        Examples
        --------
        >>> ConvNet(ConvNetConfig(channels=4)).forward_head(torch.zeros(3, 4)).shape
        torch.Size([3, 2])
        """
        check_features(features, self.config.channels, dtype=self.classifier.weight.dtype)
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
            As :meth:`forward_features`.

        Examples
        --------
        >>> model = ConvNet(ConvNetConfig(n_classes=5, class_freqs=[8, 4, 2, 1, 1],
        ...                               zero_init_head=True)).eval()
        >>> model(torch.randn(1, 1, 66, 66)).softmax(-1).detach()
        tensor([[0.5000, 0.2500, 0.1250, 0.0625, 0.0625]])
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
        >>> model = ConvNet(ConvNetConfig(img_size=66))
        >>> model.example_input(4).shape
        torch.Size([4, 1, 66, 66])
        """
        device = self.stem.weight.device
        return random_images(
            batch_size, self.config.in_channels, self.config.img_size, generator
        ).to(device)
