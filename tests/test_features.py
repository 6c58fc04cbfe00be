"""Tests for cellvision.features: extract_features, pca and tsne."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import KNeighborsClassifier
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from cellvision.features import PCAResult, TSNEResult, extract_features, pca, tsne
from tests._engine_models import GRUConfig, GRURegressor, MLPClassifier, MLPConfig, make_blobs


def _correlated(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 0.2, d)  # distinct variances: well-separated components
    mixing = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return (rng.normal(size=(n, d)) * scales) @ mixing.T + rng.normal(size=d)


def _assert_equal_up_to_sign(actual: np.ndarray, expected: np.ndarray, atol: float) -> None:
    for k in range(expected.shape[1]):
        sign = 1.0 if np.dot(actual[:, k], expected[:, k]) >= 0 else -1.0
        np.testing.assert_allclose(sign * actual[:, k], expected[:, k], atol=atol, rtol=0)


@pytest.mark.parametrize(("n", "d", "k"), [(60, 8, 2), (60, 8, 3), (12, 30, 5), (40, 4, 4)])
def test_pca_matches_scikit_learn_up_to_sign(n: int, d: int, k: int) -> None:
    x = _correlated(n, d, seed=n + d + k)
    oracle = PCA(n_components=k, svd_solver="full").fit(x)
    points, ratio = pca(torch.from_numpy(x), n_components=k)
    assert points.dtype == torch.float64
    _assert_equal_up_to_sign(points.numpy(), oracle.transform(x), atol=1e-5)
    np.testing.assert_allclose(ratio.numpy(), oracle.explained_variance_ratio_, atol=1e-5)


def test_pca_float32_and_numpy_input() -> None:
    x = _correlated(50, 6, seed=0).astype(np.float32)
    result = pca(x, n_components=2)
    assert isinstance(result, PCAResult)
    assert result.points.dtype == torch.float32
    oracle = PCA(n_components=2, svd_solver="full").fit(x.astype(np.float64))
    _assert_equal_up_to_sign(result.points.numpy(), oracle.transform(x), atol=1e-4)


def test_pca_matches_a_naive_covariance_eigendecomposition() -> None:
    x = _correlated(30, 5, seed=3)
    centred = x - x.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / (len(x) - 1))
    order = np.argsort(eigenvalues)[::-1]
    points, ratio = pca(torch.from_numpy(x), n_components=2)
    _assert_equal_up_to_sign(points.numpy(), centred @ eigenvectors[:, order[:2]], atol=1e-8)
    np.testing.assert_allclose(ratio.numpy(), eigenvalues[order[:2]] / eigenvalues.sum())


def test_pca_signs_are_deterministic() -> None:
    x = torch.from_numpy(_correlated(20, 4, seed=1))
    first = pca(x, n_components=3)
    second = pca(x.clone(), n_components=3)
    assert torch.equal(first.points, second.points)
    # Negating the data negates the projections: the sign follows the loadings, not the data.
    torch.testing.assert_close(pca(-x, n_components=3).points, -first.points)


@settings(max_examples=25)
@given(
    n=st.integers(min_value=3, max_value=20),
    d=st.integers(min_value=2, max_value=6),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_pca_properties(n: int, d: int, seed: int) -> None:
    x = torch.from_numpy(_correlated(n, d, seed))
    k = min(n, d)
    points, ratio = pca(x, n_components=k)
    assert points.shape == (n, k)
    assert ratio.shape == (k,)
    assert bool((ratio >= 0).all())
    assert bool((ratio[:-1] >= ratio[1:] - 1e-12).all())
    assert ratio.sum().item() == pytest.approx(1.0, abs=1e-9)  # all components kept
    torch.testing.assert_close(points.mean(dim=0), torch.zeros(k, dtype=x.dtype), atol=1e-9, rtol=0)
    # Projections onto distinct components are uncorrelated.
    gram = points.T @ points
    off = gram - torch.diag(torch.diagonal(gram))
    assert off.abs().max().item() <= 1e-8 * max(1.0, gram.abs().max().item())


@pytest.mark.parametrize(
    ("features", "kwargs", "error", "match"),
    [
        (torch.zeros(5), {}, ValueError, r"features must be a 2-D \(N, D\) tensor"),
        (torch.zeros(1, 3), {}, ValueError, "N >= 2"),
        (torch.randn(5, 3), {"n_components": 4}, ValueError, r"at most min\(N, D\) = 3"),
        (torch.randn(5, 3), {"n_components": 0}, ValueError, "n_components must be a positive"),
        (torch.tensor([[0.0, 1.0], [float("nan"), 2.0]]), {}, ValueError, "must be finite"),
        (torch.ones(4, 3), {}, ValueError, "zero total variance"),
        (torch.randn(4, 3, dtype=torch.complex64), {}, TypeError, "real-valued"),
        ([[1.0, 2.0]], {}, TypeError, "features must be a tensor or numpy array"),
    ],
)
def test_pca_rejects_bad_input(
    features: object, kwargs: dict[str, int], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        pca(features, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- extract_features
def test_extract_features_matches_forward_features_and_restores_mode() -> None:
    torch.manual_seed(0)
    model = MLPClassifier(MLPConfig(dropout=0.5))
    x, y = make_blobs(37)
    model.train()
    features, targets = extract_features(model, DataLoader(TensorDataset(x, y), batch_size=8))
    assert model.training
    model.eval()
    with torch.no_grad():
        expected = model.forward_features(x)
    torch.testing.assert_close(features, expected)
    assert torch.equal(targets, y)
    assert features.shape == (37, 16)


def test_extract_features_unwraps_wrappers_and_handles_regression_targets() -> None:
    torch.manual_seed(0)
    model = GRURegressor(GRUConfig())
    x = model.example_input(10, generator=torch.Generator().manual_seed(0))
    y = torch.randn(10)
    features, targets = extract_features(
        nn.DataParallel(model), DataLoader(TensorDataset(x, y), batch_size=4), device="cpu"
    )
    with torch.no_grad():
        torch.testing.assert_close(features, model.forward_features(x))
    assert torch.equal(targets, y)


def test_extract_features_rejects_bad_models_and_loaders() -> None:
    x, y = make_blobs(8)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    with pytest.raises(TypeError, match="model must define forward_features"):
        extract_features(nn.Linear(6, 3), loader)

    class Flat(nn.Module):
        def forward_features(self, x: Tensor) -> Tensor:
            return x[:, 0]

    with pytest.raises(ValueError, match=r"forward_features must return a \(B, D\) tensor"):
        extract_features(Flat(), loader)
    with pytest.raises(ValueError, match="empty loader"):
        extract_features(MLPClassifier(MLPConfig()), [])
    with pytest.raises(ValueError, match="device must be a valid torch device"):
        extract_features(MLPClassifier(MLPConfig()), loader, device="gpu:zero")
    with pytest.raises(TypeError, match=r"\(inputs, targets\) pairs"):
        extract_features(MLPClassifier(MLPConfig()), [x])


# --------------------------------------------------------------------------------------- tsne
def _blobs(n_per: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=8.0, size=(3, d))
    x = np.concatenate([c + rng.normal(size=(n_per, d)) for c in centres])
    return x, np.repeat(np.arange(3), n_per)


def test_tsne_matches_scikit_learn_with_the_same_settings() -> None:
    x, _ = _blobs(15, 6, seed=0)
    result = tsne(torch.from_numpy(x), perplexity=8.0, max_iter=300, seed=3)
    assert isinstance(result, TSNEResult)
    oracle = TSNE(
        n_components=2, perplexity=8.0, init="pca", learning_rate="auto", random_state=3,
        max_iter=300,
    )  # fmt: skip
    expected = oracle.fit_transform(x)
    np.testing.assert_allclose(result.points.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert result.kl_divergence == pytest.approx(oracle.kl_divergence_)
    assert result.points.dtype == torch.float64


def test_tsne_keeps_neighbourhoods_of_wide_features_after_the_pca_step() -> None:
    x, y = _blobs(20, 80, seed=1)  # D = 80 > pca_components: reduced to 50 first
    points, kl = tsne(x.astype(np.float32), perplexity=10.0, seed=0)
    assert points.shape == (60, 2)
    assert points.dtype == torch.float32
    assert kl > 0
    knn = KNeighborsClassifier(n_neighbors=5).fit(points.numpy(), y)
    assert knn.score(points.numpy(), y) == 1.0
    again, _ = tsne(x.astype(np.float32), perplexity=10.0, seed=0)
    torch.testing.assert_close(again, points)  # seeded: reproducible


def test_tsne_one_and_three_dimensions_and_integer_input() -> None:
    x = torch.arange(60).reshape(20, 3) % 7
    for k in (1, 3):
        points, _ = tsne(x, n_components=k, perplexity=5.0, max_iter=250)
        assert points.shape == (20, k)
        assert points.dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_components": 4}, ValueError, "n_components must be 1, 2 or 3"),
        ({"perplexity": 10.0}, ValueError, r"perplexity must be a number in \(0, N=10\)"),
        ({"perplexity": 0}, ValueError, "perplexity"),
        ({"perplexity": "5"}, TypeError, "perplexity"),
        ({"pca_components": 0}, ValueError, "pca_components must be a positive"),
        ({"max_iter": 100}, ValueError, "max_iter must be at least 250"),
        ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ],
)
def test_tsne_rejects_bad_options(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        tsne(torch.randn(10, 3), **{"perplexity": 3.0, **kwargs})  # type: ignore[arg-type]


def test_tsne_rejects_bad_features_like_pca() -> None:
    with pytest.raises(ValueError, match="N >= 2"):
        tsne(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="must be finite"):
        tsne(torch.tensor([[0.0, 1.0], [float("inf"), 2.0], [1.0, 1.0]]), perplexity=1.0)


def test_missing_scikit_learn_names_the_tsne_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(ImportError, match=r'pip install "cellvision\[tsne\]"'):
        tsne(torch.randn(10, 3), perplexity=3.0)
