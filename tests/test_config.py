"""Tests for the configuration base: round trips, coercion, validation errors."""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellvision.config import (
    Config,
    check_choice,
    check_non_negative_int,
    check_positive_float,
    check_positive_int,
    check_probability,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimConfig(Config):
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["cosine", "constant"] = "cosine"

    def __post_init__(self) -> None:
        check_positive_float("lr", self.lr)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig(Config):
    name: str = "run"
    epochs: int = 10
    widths: tuple[int, ...] = (32, 64)
    amp: bool = False
    seed: int | None = None
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        check_positive_int("epochs", self.epochs)


finite = st.floats(min_value=1e-8, max_value=1e8, allow_nan=False)
optim_configs = st.builds(
    OptimConfig,
    lr=finite,
    betas=st.tuples(finite, finite),
    schedule=st.sampled_from(["cosine", "constant"]),
)
run_configs = st.builds(
    RunConfig,
    name=st.text(max_size=20),
    epochs=st.integers(1, 10_000),
    widths=st.lists(st.integers(1, 4096), max_size=5).map(tuple),
    amp=st.booleans(),
    seed=st.none() | st.integers(0, 2**31),
    optim=optim_configs,
)


@given(run_configs)
def test_dict_round_trip(cfg: RunConfig) -> None:
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


@given(run_configs)
def test_json_round_trip_keeps_tuples(cfg: RunConfig) -> None:
    back = RunConfig.from_json(cfg.to_json())
    assert back == cfg
    assert isinstance(back.widths, tuple)
    assert isinstance(back.optim.betas, tuple)


@given(run_configs)
def test_flat_dict_round_trip(cfg: RunConfig) -> None:
    flat = cfg.to_flat_dict()
    assert all(not isinstance(v, Config) for v in flat.values())
    assert RunConfig.from_flat_dict(flat) == cfg


@given(run_configs)
def test_flat_dict_from_strings(cfg: RunConfig) -> None:
    # Sweep tools may hand back every value as a string.
    flat = {
        k: json.dumps(list(v)) if isinstance(v, tuple) else ("" if v is None else str(v))
        for k, v in cfg.to_flat_dict().items()
        if v is not None and k != "name"
    }
    back = RunConfig.from_flat_dict(flat)
    assert back.replace(name=cfg.name, seed=cfg.seed) == cfg


def test_flat_dict_coerces_declared_types() -> None:
    cfg = RunConfig.from_flat_dict(
        {"epochs": "3", "amp": "true", "widths": "8,16", "optim.lr": "1e-2", "seed": "7"}
    )
    assert cfg.epochs == 3
    assert cfg.amp is True
    assert cfg.widths == (8, 16)
    assert cfg.optim.lr == pytest.approx(0.01)
    assert cfg.seed == 7


def test_flat_keys_use_dots() -> None:
    flat = RunConfig().to_flat_dict()
    assert "optim.lr" in flat
    assert "optim.betas" in flat
    assert "optim" not in flat


def test_from_dict_does_not_parse_strings() -> None:
    with pytest.raises(TypeError, match="RunConfig.epochs"):
        RunConfig.from_dict({"epochs": "3"})


def test_unknown_key_lists_valid_fields() -> None:
    with pytest.raises(ValueError, match=r"\['epoch'\].*valid fields are.*'epochs'"):
        RunConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="epcohs"):
        RunConfig().replace(epcohs=3)
    with pytest.raises(ValueError, match="optim.lrr|lrr"):
        RunConfig.from_flat_dict({"optim.lrr": 0.1})


def test_replace_revalidates() -> None:
    cfg = RunConfig()
    assert cfg.replace(epochs=4).epochs == 4
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        cfg.replace(epochs=0)


def test_frozen_and_keyword_only() -> None:
    cfg = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        RunConfig("x")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "exc", "match"),
    [
        ({"epochs": 2.5}, TypeError, "epochs must be an int, got 2.5"),
        ({"epochs": True}, TypeError, "epochs must be an int, got True"),
        ({"widths": 5}, TypeError, "widths must be a list or tuple, got 5"),
        ({"optim": {"betas": [0.9]}}, ValueError, "betas must have 2 items"),
        ({"optim": {"schedule": "step"}}, ValueError, "schedule must be one of"),
        ({"optim": {"lr": -1.0}}, ValueError, "lr must be a finite number > 0, got -1.0"),
        ({"optim": 3}, TypeError, "optim must be a mapping"),
        ({"amp": "yes"}, TypeError, "amp must be a bool"),
    ],
)
def test_bad_values(data: dict[str, object], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        RunConfig.from_dict(data)


def test_from_json_rejects_non_objects() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        RunConfig.from_json("[1, 2]")
    with pytest.raises(ValueError, match="invalid JSON"):
        RunConfig.from_json("{not json")


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(TypeError, match="data must be a mapping, got list"):
        RunConfig.from_dict([("epochs", 1)])  # type: ignore[arg-type]


def test_plain_class_is_rejected() -> None:
    class NotADataclass(Config):
        pass

    with pytest.raises(TypeError, match="dataclass"):
        NotADataclass.from_dict({})


@pytest.mark.parametrize(
    ("func", "value", "exc"),
    [
        (check_positive_int, 0, ValueError),
        (check_positive_int, -3, ValueError),
        (check_positive_int, 1.0, TypeError),
        (check_positive_int, True, TypeError),
        (check_non_negative_int, -1, ValueError),
        (check_non_negative_int, "1", TypeError),
        (check_positive_float, 0.0, ValueError),
        (check_positive_float, float("inf"), ValueError),
        (check_positive_float, "1", TypeError),
        (check_probability, 1.0, ValueError),
        (check_probability, -0.1, ValueError),
        (check_probability, float("nan"), ValueError),
        (check_probability, None, TypeError),
    ],
)
def test_check_helpers_reject(func: object, value: object, exc: type[Exception]) -> None:
    with pytest.raises(exc, match=f"x must .*got {value!r}"):
        func("x", value)  # type: ignore[operator]


def test_check_helpers_accept() -> None:
    check_positive_int("x", 1)
    check_non_negative_int("x", 0)
    check_positive_float("x", 2)
    check_probability("x", 0.0)
    check_probability("x", 1.0, inclusive_high=True)
    check_choice("x", "a", ("a", "b"))
    with pytest.raises(ValueError, match=r"x must be one of \('a', 'b'\), got 'c'"):
        check_choice("x", "c", ("a", "b"))
