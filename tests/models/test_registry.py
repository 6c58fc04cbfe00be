"""Tests for the model registry."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from cellvision.config import Config, check_positive_int
from cellvision.models import (
    create_model,
    get_model_entry,
    list_models,
    model_name_of,
    register_model,
    unwrap_model,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProbeConfig(Config):
    width: int = 4
    depth: int = 1

    def __post_init__(self) -> None:
        check_positive_int("width", self.width)


@register_model("test_probe_big", width=64, depth=3)
@register_model("test_probe")
class Probe(nn.Module):
    config_class = ProbeConfig

    def __init__(self, config: ProbeConfig) -> None:
        super().__init__()
        self.config = config
        self.linear = nn.Linear(config.width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def example_input(
        self, batch_size: int = 2, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return torch.randn(batch_size, self.config.width, generator=generator)


def test_create_applies_preset_then_overrides() -> None:
    model = create_model("test_probe_big")
    assert isinstance(model, Probe)
    assert model.config == ProbeConfig(width=64, depth=3)
    model = create_model("test_probe_big", depth=5)
    assert model.config == ProbeConfig(width=64, depth=5)
    assert model.linear.in_features == 64


def test_list_models_sorted_and_filtered() -> None:
    names = list_models()
    assert names == sorted(names)
    assert {"test_probe", "test_probe_big"} <= set(names)
    assert list_models("test_probe*") == ["test_probe", "test_probe_big"]
    assert list_models("*_big") == [n for n in names if n.endswith("_big")]


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(ValueError, match=r"unknown model name 'test_prob'.*'test_probe'"):
        create_model("test_prob")


def test_unknown_override_lists_fields() -> None:
    with pytest.raises(ValueError, match=r"\['widht'\].*valid fields are \['width', 'depth'\]"):
        create_model("test_probe", widht=3)


def test_invalid_override_is_validated() -> None:
    with pytest.raises(ValueError, match="width must be a positive integer, got 0"):
        create_model("test_probe", width=0)


def test_model_name_of_unwraps() -> None:
    model = create_model("test_probe_big")
    assert model_name_of(model) == "test_probe"  # first name registered for the class
    assert model_name_of(nn.DataParallel(model)) == "test_probe"
    assert unwrap_model(nn.DataParallel(model)) is model
    # the name plus the config rebuilds an identical architecture
    rebuilt = create_model(model_name_of(model), **model.config.to_dict())
    assert rebuilt.config == model.config


def test_duplicate_name_for_other_class_rejected() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register_model("test_probe")
        class Other(nn.Module):
            config_class = ProbeConfig

            def __init__(self, config: ProbeConfig) -> None:
                super().__init__()


def test_register_validates_class_and_defaults() -> None:
    with pytest.raises(TypeError, match="nn.Module subclass"):
        register_model("test_bad")(int)  # type: ignore[type-var]

    class NoConfig(nn.Module):
        pass

    with pytest.raises(TypeError, match="config_class must be a Config subclass"):
        register_model("test_bad")(NoConfig)
    with pytest.raises(ValueError, match="unknown ProbeConfig field"):
        register_model("test_bad", colour="red")(Probe)
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        register_model("")
    assert "test_bad" not in list_models()


def test_entry_exposes_classes() -> None:
    entry = get_model_entry("test_probe_big")
    assert entry.model_class is Probe
    assert entry.config_class is ProbeConfig
    assert dict(entry.defaults) == {"width": 64, "depth": 3}
