"""Tests for ZScoreScaler against scikit-learn and numpy NaN-aware oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.preprocessing import StandardScaler

from cellvision.data.scaling import ZScoreScaler


def test_matches_sklearn_on_complete_rows() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(50, 4))
    ours = ZScoreScaler().fit(x)
    ref = StandardScaler().fit(x)
    np.testing.assert_allclose(ours.mean_, ref.mean_)
    np.testing.assert_allclose(ours.scale_, ref.scale_)
    np.testing.assert_allclose(ours.transform(x), ref.transform(x))
    np.testing.assert_allclose(ours.inverse_transform(ours.transform(x)), x)


def test_ignores_nan_and_uses_only_given_rows() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    train = np.arange(25)
    scaler = ZScoreScaler().fit(x, rows=train)
    np.testing.assert_allclose(scaler.mean_, np.nanmean(x[train].astype(np.float64), axis=0))
    np.testing.assert_allclose(scaler.scale_, np.nanstd(x[train].astype(np.float64), axis=0))
    # test rows have no influence on the statistics
    changed = x.copy()
    changed[25:] = 1e6
    again = ZScoreScaler().fit(changed, rows=train)
    np.testing.assert_array_equal(again.mean_, scaler.mean_)
    mask = np.zeros(40, dtype=bool)
    mask[train] = True
    np.testing.assert_array_equal(ZScoreScaler().fit(x, rows=mask).mean_, scaler.mean_)
    z = scaler.transform(x)
    assert z.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(z), np.isnan(x))


def test_tensor_round_trip_and_target_columns() -> None:
    x = torch.tensor([[1.0, 100.0], [3.0, 300.0], [5.0, 500.0]])
    scaler = ZScoreScaler().fit(x)
    z = scaler.transform(x)
    assert isinstance(z, torch.Tensor)
    assert z.dtype == torch.float32
    torch.testing.assert_close(z[:, 1], torch.tensor([-1.0, 0.0, 1.0]) * (1.5**0.5))
    predictions = z[:, 1:]  # e.g. a model output for the target column 1
    torch.testing.assert_close(scaler.inverse_transform(predictions, columns=[1]), x[:, 1:])


def test_disabled_is_identity_and_constant_columns_are_centred() -> None:
    x = np.array([[2.0, 7.0], [4.0, 7.0]])
    off = ZScoreScaler(enabled=False).fit(x)
    assert off.transform(x) is x
    assert off.inverse_transform(x) is x
    on = ZScoreScaler().fit(x)
    np.testing.assert_array_equal(on.transform(x), [[-1.0, 0.0], [1.0, 0.0]])


def test_state_dict_round_trip() -> None:
    scaler = ZScoreScaler().fit(np.array([[1.0, 2.0], [3.0, 6.0]]))
    clone = ZScoreScaler.from_state_dict(scaler.state_dict())
    np.testing.assert_array_equal(clone.mean_, scaler.mean_)
    np.testing.assert_array_equal(clone.scale_, scaler.scale_)
    with pytest.raises(ValueError, match="state must"):
        ZScoreScaler.from_state_dict({"mean": [1.0]})


def test_errors() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        ZScoreScaler().transform(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="x must be a 2-D"):
        ZScoreScaler().fit(np.zeros(3))
    with pytest.raises(ValueError, match=r"column\(s\) \[1\] have none"):
        ZScoreScaler().fit(np.array([[1.0, np.nan], [2.0, np.nan]]))
    with pytest.raises(ValueError, match="rows must select at least one row"):
        ZScoreScaler().fit(np.zeros((3, 2)), rows=[])
    with pytest.raises(ValueError, match=r"rows must be indices in \[0, 3\)"):
        ZScoreScaler().fit(np.zeros((3, 2)), rows=[5])
    scaler = ZScoreScaler().fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="x must have 2 features"):
        scaler.transform(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"columns must be in \[0, 2\)"):
        scaler.inverse_transform(np.zeros((3, 1)), columns=[2])
    with pytest.raises(TypeError, match="enabled must be a bool"):
        ZScoreScaler(enabled="yes")  # type: ignore[arg-type]
