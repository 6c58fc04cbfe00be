"""Tests for the recurrent regressors against a hand-unrolled reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellvision.models import create_model, list_models, model_name_of
from cellvision.models.recurrent import RecurrentConfig, RecurrentRegressor


def reference_forward(
    model: RecurrentRegressor, x: torch.Tensor, lengths: list[int]
) -> torch.Tensor:
    """Unroll the cell equations step by step with the module's own weights."""
    cfg = model.config
    rnn = model.rnn
    outputs = []
    for b in range(x.shape[0]):
        seq = x[b, : lengths[b]]
        for layer in range(cfg.num_layers):
            w_ih = getattr(rnn, f"weight_ih_l{layer}")
            w_hh = getattr(rnn, f"weight_hh_l{layer}")
            b_ih = getattr(rnn, f"bias_ih_l{layer}")
            b_hh = getattr(rnn, f"bias_hh_l{layer}")
            h = torch.zeros(cfg.hidden_size, dtype=x.dtype)
            c = torch.zeros(cfg.hidden_size, dtype=x.dtype)
            states = []
            for x_t in seq:
                gi = w_ih @ x_t + b_ih
                gh = w_hh @ h + b_hh
                if cfg.cell == "rnn":
                    act = torch.tanh if cfg.nonlinearity == "tanh" else torch.relu
                    h = act(gi + gh)
                elif cfg.cell == "gru":
                    i_r, i_z, i_n = gi.chunk(3)
                    h_r, h_z, h_n = gh.chunk(3)
                    r = torch.sigmoid(i_r + h_r)
                    z = torch.sigmoid(i_z + h_z)
                    n = torch.tanh(i_n + r * h_n)
                    h = (1 - z) * n + z * h
                else:
                    i, f, g, o = (gi + gh).chunk(4)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                states.append(h)
            seq = torch.stack(states)
        outputs.append(model.head.weight @ seq[-1] + model.head.bias)
    return torch.stack(outputs)


@pytest.mark.parametrize(
    ("cell", "nonlinearity"), [("rnn", "tanh"), ("rnn", "relu"), ("gru", "tanh"), ("lstm", "tanh")]
)
def test_matches_hand_unrolled_reference(cell: str, nonlinearity: str) -> None:
    torch.manual_seed(0)
    cfg = RecurrentConfig(
        cell=cell,  # type: ignore[arg-type]
        input_size=3,
        hidden_size=5,
        num_layers=2,
        output_size=2,
        dropout=0.3,
        nonlinearity=nonlinearity,  # type: ignore[arg-type]
    )
    model = RecurrentRegressor(cfg).double().eval()
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    expected = reference_forward(model, x, [7, 7, 7, 7])
    torch.testing.assert_close(model(x), expected)
    lengths = [7, 3, 1, 5]
    expected = reference_forward(model, x, lengths)
    torch.testing.assert_close(model(x, lengths=torch.tensor(lengths)), expected)
    # padding values beyond each length are ignored
    padded = x.clone()
    padded[1, 3:] = 1e3
    torch.testing.assert_close(model(padded, lengths=torch.tensor(lengths)), expected)


@settings(max_examples=15)
@given(
    cell=st.sampled_from(["rnn", "gru", "lstm"]),
    input_size=st.integers(1, 4),
    hidden_size=st.integers(1, 6),
    num_layers=st.integers(1, 3),
    output_size=st.integers(1, 3),
    batch=st.integers(1, 3),
    steps=st.integers(1, 6),
    dropout=st.sampled_from([0.0, 0.5]),
)
def test_shapes_and_finite_gradients(
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    output_size: int,
    batch: int,
    steps: int,
    dropout: float,
) -> None:
    model = RecurrentRegressor(
        RecurrentConfig(
            cell=cell,  # type: ignore[arg-type]
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            output_size=output_size,
            dropout=dropout,
        )
    )
    x = model.example_input(batch, seq_len=steps, generator=torch.Generator().manual_seed(1))
    x.requires_grad_(True)
    features = model.forward_features(x)
    assert features.shape == (batch, hidden_size)
    out = model.forward_head(features)
    assert out.shape == (batch, output_size)
    out.square().sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    for p in model.parameters():
        assert p.grad is not None
        assert torch.isfinite(p.grad).all()


def test_registry_presets() -> None:
    assert {"rnn_regressor", "gru_regressor", "lstm_regressor"} <= set(list_models())
    for name, cell in [
        ("rnn_regressor", "rnn"),
        ("gru_regressor", "gru"),
        ("lstm_regressor", "lstm"),
    ]:
        model = create_model(name)
        assert isinstance(model, RecurrentRegressor)
        assert model.config.cell == cell
        assert model.config.input_size == 1  # a univariate series: no data set's width
        x = model.example_input(generator=torch.Generator().manual_seed(0))
        assert x.shape == (2, 48, 1)
        assert model(x).shape == (2, 1)
        rebuilt = create_model(model_name_of(model), **model.config.to_dict())
        assert rebuilt.config == model.config
    assert isinstance(create_model("gru_regressor").rnn, torch.nn.GRU)
    assert isinstance(create_model("lstm_regressor").rnn, torch.nn.LSTM)


def test_example_input_is_seeded() -> None:
    model = create_model("lstm_regressor", input_size=2)
    a = model.example_input(3, generator=torch.Generator().manual_seed(5))  # type: ignore[operator]
    b = model.example_input(3, generator=torch.Generator().manual_seed(5))  # type: ignore[operator]
    torch.testing.assert_close(a, b)


def test_config_round_trip() -> None:
    cfg = RecurrentConfig(cell="gru", input_size=12, hidden_size=32, dropout=0.1)
    assert RecurrentConfig.from_json(cfg.to_json()) == cfg
    assert RecurrentConfig.from_flat_dict({"cell": "rnn", "num_layers": "3"}).num_layers == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        (
            {"cell": "transformer"},
            ValueError,
            r"cell must be one of \('rnn', 'gru', 'lstm'\), got 'transformer'",
        ),
        ({"input_size": 0}, ValueError, r"input_size must be a positive integer, got 0"),
        ({"hidden_size": 2.5}, TypeError, r"hidden_size must be a positive integer, got 2.5"),
        ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\), got 1.0"),
        ({"nonlinearity": "gelu"}, ValueError, r"nonlinearity must be one of"),
    ],
)
def test_bad_config(kwargs: dict[str, object], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        RecurrentConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    model = RecurrentRegressor(RecurrentConfig(input_size=3, hidden_size=4))
    with pytest.raises(
        ValueError, match=r"x must be a 3-D tensor \(batch, time, features\), got shape \(5, 3\)"
    ):
        model(torch.zeros(5, 3))
    with pytest.raises(
        ValueError,
        match=r"x must have input_size=3 features on its last axis, got shape \(2, 5, 4\)",
    ):
        model(torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="at least one sample and one step"):
        model(torch.zeros(2, 0, 3))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(2, 5, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 5\]"):
        model(torch.zeros(2, 5, 3), lengths=torch.tensor([5, 0]))
    with pytest.raises(ValueError, match="lengths must be a 1-D integer tensor of 2"):
        model(torch.zeros(2, 5, 3), lengths=torch.tensor([5]))
    with pytest.raises(ValueError, match=r"features must have shape \(batch, 4\)"):
        model.forward_head(torch.zeros(2, 5))
    with pytest.raises(TypeError, match="config must be a RecurrentConfig"):
        RecurrentRegressor({"cell": "gru"})  # type: ignore[arg-type]
