"""cellvision.engine.predict and predict_ensemble against direct forward passes."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cellvision.engine import predict, predict_ensemble


def conv_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.Dropout(0.5), nn.Flatten(), nn.Linear(64, 3))


def test_predict_equals_the_eval_mode_forward_and_restores_training_mode() -> None:
    model = conv_model(0).train()
    x, y = torch.randn(7, 2, 6, 6), torch.zeros(7, dtype=torch.long)
    out = predict(model, DataLoader(TensorDataset(x, y), batch_size=3))
    assert model.training
    with torch.no_grad():
        expected = model.eval()(x)  # dropout off: eval mode
    torch.testing.assert_close(out, expected)
    # Bare input batches work too.
    torch.testing.assert_close(predict(model, [x[:4], x[4:]]), expected)


def test_channels_last_and_bf16_autocast() -> None:
    model = conv_model(1).eval()
    x = torch.randn(5, 2, 6, 6)
    plain = predict(model, [x])
    torch.testing.assert_close(predict(model, [x], channels_last=True), plain)
    low = predict(model, [x], amp_dtype=torch.bfloat16)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, plain, atol=0.05, rtol=0.05)


def test_ensemble_averages_probabilities_or_outputs() -> None:
    models = [conv_model(s).eval() for s in range(3)]
    x = torch.randn(4, 2, 6, 6)
    with torch.no_grad():
        outs = [m(x) for m in models]
    mean_proba = sum(torch.softmax(o, -1) for o in outs) / 3
    torch.testing.assert_close(predict_ensemble(models, [x], activation="softmax"), mean_proba)
    torch.testing.assert_close(predict_ensemble(models, [x]), sum(outs) / 3)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="empty loader"):
        predict(nn.Linear(2, 2), [])
    with pytest.raises(TypeError, match="loader must yield input tensors"):
        predict(nn.Linear(2, 2), [[1.0, 2.0]])
    with pytest.raises(ValueError, match="models must hold at least one model"):
        predict_ensemble([], [torch.zeros(1, 2)])
    with pytest.raises(ValueError, match="models must give outputs of one shape"):
        predict_ensemble([nn.Linear(2, 2), nn.Linear(2, 3)], [torch.zeros(1, 2)])
