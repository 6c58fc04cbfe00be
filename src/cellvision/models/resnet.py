"""Small residual network for small cell images (fast enough for real-time CPU inference).

Registered names: ``resnet`` (the config defaults) and ``cellcycle_resnet`` (the label-free
cell-cycle preset: brightfield + darkfield 40x40 tiles, 5 classes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from cellvision.config import Config, check_positive_int, check_probability
from cellvision.layers._checks import check_features, check_image_batch, random_images
from cellvision.layers.conv import ResidualBlock
from cellvision.layers.heads import ClassFreqsLike, as_class_freqs
from cellvision.models._common import (
    as_int,
    check_bool,
    check_n_classes,
    check_parameter_budget,
    init_head,
)
from cellvision.models._registry import register_model

__all__ = ["ResNet", "ResNetConfig"]


def _as_int_tuple(name: str, value: object) -> tuple[int, ...]:
    """Return ``value`` (a non-empty sequence of positive integers) as a tuple of ints."""
    if isinstance(value, np.ndarray | torch.Tensor) and value.ndim == 1:
        value = value.tolist()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a non-empty sequence of positive integers, got {value!r}")
    items = tuple(as_int(v) for v in value)
    if not items:
        raise ValueError(f"{name} must be a non-empty sequence of positive integers, got {value!r}")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise TypeError(
                f"{name} must be a non-empty sequence of positive integers, got {value!r}"
            )
        if item <= 0:
            raise ValueError(
                f"{name} must be a non-empty sequence of positive integers, got {value!r}"
            )
    return items


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResNetConfig(Config):
    """Configuration of :class:`ResNet`.

    Parameters
    ----------
    in_channels : int, default 1
        Image channels.
    n_classes : int, default 2
        Number of classes (>= 2).
    stem_channels : int, default 32
        Output channels of the stem ``Conv3x3 -> BatchNorm -> ReLU``.
    stem_stride : int, default 2
        Stride of the stem convolution. 2 halves the image at once (early downsampling): a
        40x40 cell then enters the first stage at 20x20, which makes the network about four
        times cheaper than a stride-1 stem at a small cost in fine detail.
    widths : sequence of int, default (32, 64, 128)
        Channels of each stage. Every stage starts with a stride-2 residual block, so stage
        ``i`` works at ``1 / (stem_stride * 2 ** (i + 1))`` of the input size. The last width
        is the embedding size. Stored as a tuple.
    depths : sequence of int, optional
        Residual blocks per stage, one entry per entry of ``widths``; default one block per
        stage. Stored as a tuple.
    dropout : float, default 0.0
        Dropout on the pooled embedding before the linear head, in ``[0, 1)``.
    img_size : int, default 64
        Nominal image side, used by :meth:`ResNet.example_input`. The network accepts any size
        of at least 1x1 (global average pooling removes the size).
    class_freqs : tensor, ndarray or sequence of float, optional
        Training class counts or proportions, one per class, all > 0; the head's bias is
        initialised to ``log(freq / freq.sum())``. Stored as a tuple of floats.
    zero_init_head : bool, default False
        Zero the head's weight at initialisation, so the untrained model's softmax equals the
        class prior (or the uniform distribution) exactly.

    Raises
    ------
    TypeError
        If a field has the wrong type.
    ValueError
        If a size is not positive, ``stem_stride`` is not 1 or 2, ``widths`` and ``depths``
        differ in length, ``n_classes < 2``, ``dropout`` is outside ``[0, 1)`` or
        ``class_freqs`` has the wrong length or a non-positive entry.

    Examples
    --------
    >>> ResNetConfig(n_classes=5, widths=[16, 32], depths=[1, 2])
    ResNetConfig(in_channels=1, n_classes=5, ..., widths=(16, 32), depths=(1, 2), ...)
    >>> ResNetConfig(widths=(16, 32), depths=(1,))
    Traceback (most recent call last):
        ...
    ValueError: depths must have one entry per stage (len(widths)=2), got (1,)
    """

    in_channels: int = 1
    n_classes: int = 2
    stem_channels: int = 32
    stem_stride: int = 2
    widths: tuple[int, ...] = (32, 64, 128)
    depths: tuple[int, ...] | None = None
    dropout: float = 0.0
    img_size: int = 64
    class_freqs: ClassFreqsLike | None = None
    zero_init_head: bool = False

    def __post_init__(self) -> None:
        for name in ("in_channels", "n_classes", "stem_channels", "stem_stride", "img_size"):
            object.__setattr__(self, name, as_int(getattr(self, name)))
        for name in ("in_channels", "stem_channels", "stem_stride", "img_size"):
            check_positive_int(name, getattr(self, name))
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride!r}")
        check_n_classes(self.n_classes)
        object.__setattr__(self, "widths", _as_int_tuple("widths", self.widths))
        depths = _as_int_tuple("depths", self.depths) if self.depths is not None else None
        if depths is None:
            depths = (1,) * len(self.widths)
        if len(depths) != len(self.widths):
            raise ValueError(
                f"depths must have one entry per stage (len(widths)={len(self.widths)}), "
                f"got {depths!r}"
            )
        object.__setattr__(self, "depths", depths)
        check_probability("dropout", self.dropout)
        check_bool("zero_init_head", self.zero_init_head)
        freqs = as_class_freqs(self.class_freqs, n_classes=self.n_classes)
        object.__setattr__(self, "class_freqs", freqs)

    @property
    def embed_dim(self) -> int:
        """Size of the pooled embedding (the last stage width).

        Returns
        -------
        int
            ``widths[-1]``.

        Examples
        --------
        >>> ResNetConfig(widths=(8, 24)).embed_dim
        24
        """
        return self.widths[-1]

    def parameter_count(self) -> int:
        """Return the number of learnable parameters of a :class:`ResNet` with this config.

        Computed from the fields alone, without building anything, so that an absurd config
        (for instance from a crafted checkpoint) is refused before any allocation.

        Returns
        -------
        int
            Equal to ``sum(p.numel() for p in ResNet(config).parameters())``.

        Examples
        --------
        >>> config = ResNetConfig(in_channels=2, n_classes=5, widths=(8, 16), depths=(2, 1))
        >>> config.parameter_count() == sum(p.numel() for p in ResNet(config).parameters())
        True
        """
        # Convolutions have no bias; every BatchNorm has a weight and a bias per channel.
        count = self.in_channels * self.stem_channels * 9 + 2 * self.stem_channels
        channels = self.stem_channels
        depths = self.depths if self.depths is not None else (1,) * len(self.widths)
        for width, depth in zip(self.widths, depths, strict=True):
            for i in range(depth):
                count += channels * width * 9 + width * width * 9 + 4 * width
                if i == 0 or channels != width:  # the first block of a stage has stride 2
                    count += channels * width + 2 * width
                channels = width
        return count + self.embed_dim * self.n_classes + self.n_classes


@register_model(
    "cellcycle_resnet",
    in_channels=2,
    n_classes=5,
    img_size=40,
    stem_channels=16,
    stem_stride=1,
    widths=(32, 64, 128),
    depths=(1, 1, 1),
)
@register_model("resnet")
class ResNet(nn.Module):
    """Small residual network: strided stem, stages of basic residual blocks, linear head.

    ``Conv3x3(stride=stem_stride) -> BatchNorm -> ReLU -> stages -> global average pool ->
    Dropout -> Linear``. Each stage is ``depths[i]`` :class:`~cellvision.layers.ResidualBlock`
    of ``widths[i]`` channels, the first with stride 2. The model returns logits.

    The ``cellcycle_resnet`` preset (2 channels, 40x40, a stride-1 stem of 16 channels at full
    resolution, stages 32-64-128 at 20-10-5 pixels, one block each) is the label-free
    cell-cycle default: about 0.3 M parameters and several thousand cells per second on two
    CPU threads with bf16 autocast and ``channels_last``. Keeping the stem at full resolution
    matters on real cells: the fine brightfield texture separates G2 from prophase.

    Parameters
    ----------
    config : ResNetConfig
        The architecture; available afterwards as ``model.config``.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`ResNetConfig`.

    Notes
    -----
    Weights use PyTorch's default initialisation from the global random generator: call
    :func:`torch.manual_seed` first for reproducibility.

    References
    ----------
    K. He, X. Zhang, S. Ren, J. Sun, "Deep residual learning for image recognition", CVPR 2016.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> model = ResNet(ResNetConfig(in_channels=2, n_classes=5, widths=(8, 16))).eval()
    >>> x = model.example_input(batch_size=3)
    >>> model.forward_features(x).shape
    torch.Size([3, 16])
    >>> model(x).shape
    torch.Size([3, 5])
    """

    config_class: ClassVar[type[ResNetConfig]] = ResNetConfig

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        if not isinstance(config, ResNetConfig):
            raise TypeError(f"config must be a ResNetConfig, got {type(config).__name__}")
        check_parameter_budget(config)
        self.config = config
        self.stem = nn.Sequential(
            nn.Conv2d(
                config.in_channels,
                config.stem_channels,
                3,
                stride=config.stem_stride,
                padding=1,
                bias=False,
            ),
            nn.BatchNorm2d(config.stem_channels),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        channels = config.stem_channels
        depths = config.depths if config.depths is not None else (1,) * len(config.widths)
        for width, depth in zip(config.widths, depths, strict=True):
            for i in range(depth):
                blocks.append(ResidualBlock(channels, width, stride=2 if i == 0 else 1))
                channels = width
        self.stages = nn.Sequential(*blocks)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.embed_dim, config.n_classes)
        init_head(self.head, config.class_freqs, config.zero_init_head)

    @property
    def classifier(self) -> nn.Linear:
        """The final ``nn.Linear`` producing the logits (the one holding the class prior).

        Returns
        -------
        torch.nn.Linear
            The head.

        Examples
        --------
        >>> ResNet(ResNetConfig(n_classes=3, widths=(8,), depths=(1,))).classifier
        Linear(in_features=8, out_features=3, bias=True)
        """
        return self.head

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last stage's feature map ``(B, widths[-1], H', W')``, before pooling.

        Its spatial mean is :meth:`forward_features`; dense heads (a decoder of an auxiliary
        image task, a class activation map) read it.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(B, in_channels, H, W)``.

        Returns
        -------
        torch.Tensor
            Shape ``(B, widths[-1], H', W')``, the input downsampled by the stem's stride
            and by 2 per stage.

        Raises
        ------
        TypeError, ValueError
            As :meth:`forward_features`.

        Examples
        --------
        >>> model = ResNet(ResNetConfig(in_channels=2, widths=(4, 8), depths=(1, 1)))
        >>> model.forward_feature_map(torch.zeros(3, 2, 40, 40)).shape
        torch.Size([3, 8, 5, 5])
        """
        check_image_batch(x, self.config.in_channels, dtype=self.head.weight.dtype)
        out: torch.Tensor = self.stages(self.stem(x))
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the pooled embedding ``(B, widths[-1])``.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(B, in_channels, H, W)``, any memory format (``channels_last`` is faster
            on CPU under bf16 autocast).

        Returns
        -------
        torch.Tensor
            Shape ``(B, widths[-1])``; the input of :meth:`forward_head`.

        Raises
        ------
        TypeError, ValueError
            If ``x`` is not a 4-D tensor of the model's dtype (any floating dtype under
            autocast) with ``in_channels`` channels.

        Examples
        --------
        >>> model = ResNet(ResNetConfig(widths=(4,), depths=(1,)))
        >>> model.forward_features(torch.zeros(2, 1, 30, 40)).shape
        torch.Size([2, 4])
        >>> model.forward_features(torch.zeros(2, 3, 30, 40))
        Traceback (most recent call last):
            ...
        ValueError: x must have 1 channel(s) (in_channels), got shape (2, 3, 30, 40)
        """
        return self.forward_feature_map(x).mean(dim=(2, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Map pooled embeddings to class logits.

        Parameters
        ----------
        features : torch.Tensor
            Shape ``(B, widths[-1])``.

        Returns
        -------
        torch.Tensor
            Logits ``(B, n_classes)``.

        Raises
        ------
        TypeError, ValueError
            If ``features`` is not a ``(B, widths[-1])`` tensor of the model's dtype (any
            floating dtype under autocast).

        Examples
        --------
        >>> ResNet(ResNetConfig(widths=(4,), depths=(1,))).forward_head(torch.zeros(3, 4)).shape
        torch.Size([3, 2])
        """
        check_features(features, self.config.embed_dim, dtype=self.head.weight.dtype)
        logits: torch.Tensor = self.head(self.drop(features))
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
        >>> model = ResNet(ResNetConfig(n_classes=4, class_freqs=[4, 2, 1, 1],
        ...                             zero_init_head=True)).eval()
        >>> model(torch.randn(1, 1, 40, 40)).softmax(-1).detach()
        tensor([[0.5000, 0.2500, 0.1250, 0.1250]])
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
        >>> ResNet(ResNetConfig(in_channels=2, img_size=40)).example_input(4).shape
        torch.Size([4, 2, 40, 40])
        """
        device = self.head.weight.device
        return random_images(
            batch_size, self.config.in_channels, self.config.img_size, generator
        ).to(device)
