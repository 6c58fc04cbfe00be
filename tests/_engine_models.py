"""Small registered models and synthetic data shared by the engine/checkpoint/features tests.

The models follow the cross-area model interface (``config_class``, ``config``,
``forward_features``, ``forward_head``, ``example_input``) and are registered under test-only
names, so checkpoint tests that iterate over ``list_models()`` cover them as well as the real
model families.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from cellvision.config import Config, check_positive_int, check_probability
from cellvision.models import register_model


@dataclasses.dataclass(frozen=True, kw_only=True)
class MLPConfig(Config):
    in_features: int = 6
    hidden_size: int = 16
    n_classes: int = 3
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_positive_int("in_features", self.in_features)
        check_positive_int("hidden_size", self.hidden_size)
        check_positive_int("n_classes", self.n_classes)
        check_probability("dropout", self.dropout)


@register_model("test_engine_mlp_wide", hidden_size=32)
@register_model("test_engine_mlp")
class MLPClassifier(nn.Module):
    """Linear -> BatchNorm -> ReLU -> Dropout body and a linear head (has buffers)."""

    config_class = MLPConfig

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        self.body = nn.Sequential(
            nn.Linear(config.in_features, config.hidden_size),
            nn.BatchNorm1d(config.hidden_size),
            nn.ReLU(),
            nn.Dropout(config.dropout),
        )
        self.head = nn.Linear(config.hidden_size, config.n_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def example_input(
        self, batch_size: int = 2, *, generator: torch.Generator | None = None
    ) -> Tensor:
        return torch.randn(batch_size, self.config.in_features, generator=generator)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GRUConfig(Config):
    n_features: int = 3
    hidden_size: int = 8
    window: int = 5

    def __post_init__(self) -> None:
        check_positive_int("n_features", self.n_features)
        check_positive_int("hidden_size", self.hidden_size)
        check_positive_int("window", self.window)


@register_model("test_engine_gru")
class GRURegressor(nn.Module):
    """GRU over (B, T, F) windows; the last hidden state regresses one value per window."""

    config_class = GRUConfig

    def __init__(self, config: GRUConfig) -> None:
        super().__init__()
        self.config = config
        self.rnn = nn.GRU(config.n_features, config.hidden_size, batch_first=True)
        self.head = nn.Linear(config.hidden_size, 1)

    def forward_features(self, x: Tensor) -> Tensor:
        _, hidden = self.rnn(x)
        return hidden[-1]

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features).squeeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def example_input(
        self, batch_size: int = 2, *, generator: torch.Generator | None = None
    ) -> Tensor:
        shape = (batch_size, self.config.window, self.config.n_features)
        return torch.randn(shape, generator=generator)


def make_blobs(
    n: int = 96, n_features: int = 6, n_classes: int = 3, *, seed: int = 0, spread: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Gaussian blobs around well-separated class centres: an easy classification problem."""
    g = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.randn(n_classes, n_features, generator=g)
    y = torch.arange(n) % n_classes
    x = centres[y] + spread * torch.randn(n, n_features, generator=g)
    return x, y


def make_series(
    n: int = 64, window: int = 5, n_features: int = 3, *, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Windows whose target is the mean of the first feature: an easy regression problem."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, window, n_features, generator=g)
    return x, x[:, :, 0].mean(dim=1)
