"""Embeddings: pooled features from a model and their 2-D projections.

:func:`extract_features` runs a registered model's ``forward_features`` over a loader and
collects the ``(N, D)`` embeddings with their targets; :func:`pca` projects them onto their
leading principal components (computed with :func:`torch.linalg.svd`) and :func:`tsne` embeds
them with t-SNE (scikit-learn, the optional ``tsne`` extra), for plots such as
:func:`cellvision.plotting.plot_embedding`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from cellvision.config import check_positive_int
from cellvision.models import unwrap_model

__all__ = ["PCAResult", "TSNEResult", "extract_features", "pca", "tsne"]


def extract_features(
    model: nn.Module,
    loader: Iterable[Any],
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Return the pooled embeddings and targets of every sample in ``loader``.

    Runs ``model.forward_features`` (through DDP/compiled wrappers) in eval mode without
    gradients, then restores the model's previous train/eval mode.

    Parameters
    ----------
    model : torch.nn.Module
        A model with ``forward_features(x) -> (B, D)``, already on ``device``.
    loader : iterable
        Yields ``(inputs, targets)`` tensor pairs.
    device : torch.device or str, optional
        Where batches go; defaults to the device of the model's first parameter.

    Returns
    -------
    features : torch.Tensor
        ``(N, D)`` float32 embeddings on the CPU, in loader order.
    targets : torch.Tensor
        ``(N, ...)`` targets on the CPU, in loader order.

    Raises
    ------
    TypeError
        If the model has no ``forward_features`` or the loader does not yield
        ``(inputs, targets)`` tensor pairs.
    ValueError
        If the loader is empty, ``device`` is invalid or ``forward_features`` does not return a
        ``(B, D)`` tensor.

    Examples
    --------
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> class Embedder(nn.Module):
    ...     def __init__(self) -> None:
    ...         super().__init__()
    ...         self.body = nn.Linear(4, 3)
    ...         self.head = nn.Linear(3, 2)
    ...     def forward_features(self, x: Tensor) -> Tensor:
    ...         return self.body(x)
    ...     def forward(self, x: Tensor) -> Tensor:
    ...         return self.head(self.forward_features(x))
    >>> data = TensorDataset(torch.randn(10, 4), torch.arange(10) % 2)
    >>> features, targets = extract_features(Embedder(), DataLoader(data, batch_size=4))
    >>> features.shape, targets.tolist()
    (torch.Size([10, 3]), [0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    """
    inner = unwrap_model(model)
    forward_features = getattr(inner, "forward_features", None)
    if not callable(forward_features):
        raise TypeError(
            f"model must define forward_features(x) -> (B, D), got {type(inner).__name__}"
        )
    if device is None:
        first = next(iter(inner.parameters()), None)
        dev = first.device if first is not None else torch.device("cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device must be a valid torch device, got {device!r}") from exc
    non_blocking = dev.type == "cuda"

    features: list[Tensor] = []
    targets: list[Tensor] = []
    was_training = inner.training
    inner.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                    raise TypeError(
                        f"loader must yield (inputs, targets) pairs, got {type(batch).__name__}"
                    )
                x, y = batch
                if not isinstance(x, Tensor) or not isinstance(y, Tensor):
                    raise TypeError(
                        "loader must yield (inputs, targets) tensor pairs, got "
                        f"({type(x).__name__}, {type(y).__name__})"
                    )
                out = forward_features(x.to(dev, non_blocking=non_blocking))
                if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != x.shape[0]:
                    shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                    raise ValueError(
                        f"forward_features must return a (B, D) tensor with B={x.shape[0]}, "
                        f"got {shape!r}"
                    )
                features.append(out.float().cpu())
                targets.append(y.cpu())
    finally:
        inner.train(was_training)
    if not features:
        raise ValueError("loader must yield at least one batch, got an empty loader")
    return torch.cat(features), torch.cat(targets)


class PCAResult(NamedTuple):
    """Output of :func:`pca`; unpack it as ``points, ratio = pca(features)``.

    Parameters
    ----------
    points : torch.Tensor
        ``(N, n_components)`` projections onto the principal components.
    explained_variance_ratio : torch.Tensor
        ``(n_components,)`` fraction of the total variance each component explains.

    Examples
    --------
    >>> result = PCAResult(torch.zeros(3, 2), torch.tensor([0.7, 0.2]))
    >>> result.explained_variance_ratio.sum().item() <= 1.0
    True
    """

    points: Tensor
    explained_variance_ratio: Tensor


def _check_feature_matrix(features: object) -> Tensor:
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(features)
    if not isinstance(features, Tensor):
        raise TypeError(f"features must be a tensor or numpy array, got {type(features).__name__}")
    if features.is_complex() or features.dtype == torch.bool:
        raise TypeError(f"features must be real-valued, got dtype {features.dtype}")
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(
            f"features must be a 2-D (N, D) tensor with N >= 2, got shape {tuple(features.shape)}"
        )
    return features


def pca(features: Tensor | np.ndarray[Any, Any], n_components: int = 2) -> PCAResult:
    """Project ``features`` onto their leading principal components.

    The features are centred and decomposed with :func:`torch.linalg.svd` (in float64 for
    accuracy); component ``k`` is the ``k``-th right singular vector, signed so that its
    largest-magnitude loading is positive (a deterministic choice, as scikit-learn makes).

    Parameters
    ----------
    features : torch.Tensor or numpy.ndarray
        ``(N, D)`` real features with ``N >= 2``.
    n_components : int, default 2
        Number of components, at most ``min(N, D)``.

    Returns
    -------
    PCAResult
        ``points`` (``(N, n_components)``) and ``explained_variance_ratio``
        (``(n_components,)``), in the dtype of ``features`` (float32 for integer input) on
        its device.

    Raises
    ------
    TypeError
        If ``features`` is not a real-valued tensor or array.
    ValueError
        If ``features`` is not 2-D with at least two rows, holds non-finite values or has
        zero variance, or ``n_components`` is out of range.

    References
    ----------
    Pearson, K. (1901). On lines and planes of closest fit to systems of points in space.
    Philosophical Magazine 2(11), 559-572.

    Examples
    --------
    >>> x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    >>> points, ratio = pca(x, n_components=1)
    >>> ratio
    tensor([1.])
    >>> points[:, 0]
    tensor([-2.1213, -0.7071,  0.7071,  2.1213])
    """
    features = _check_feature_matrix(features)
    check_positive_int("n_components", n_components)
    n, d = features.shape
    if n_components > min(n, d):
        raise ValueError(
            f"n_components must be at most min(N, D) = {min(n, d)}, got {n_components!r}"
        )
    out_dtype = features.dtype if features.is_floating_point() else torch.float32
    x = features.to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("features must be finite, got NaN or infinite values")
    centred = x - x.mean(dim=0, keepdim=True)
    u, s, vh = torch.linalg.svd(centred, full_matrices=False)
    variance = s.square()
    total = variance.sum()
    if not bool(total > 0):
        raise ValueError("features must vary, got identical rows (zero total variance)")
    vh = vh[:n_components]
    u = u[:, :n_components]
    # Deterministic signs: the largest-magnitude loading of each component is positive.
    pivot = vh.abs().argmax(dim=1)
    signs = torch.sign(vh.gather(1, pivot[:, None]))
    signs[signs == 0] = 1.0
    points = u * s[:n_components] * signs.T
    ratio = variance[:n_components] / total
    return PCAResult(points.to(out_dtype), ratio.to(out_dtype))


class TSNEResult(NamedTuple):
    """Output of :func:`tsne`; ``points`` plots like :attr:`PCAResult.points`.

    Parameters
    ----------
    points : torch.Tensor
        ``(N, n_components)`` t-SNE coordinates.
    kl_divergence : float
        Final Kullback-Leibler divergence between the input and embedding affinities.

    Examples
    --------
    >>> result = TSNEResult(torch.zeros(3, 2), 0.5)
    >>> points, kl = result
    >>> points.shape, kl
    (torch.Size([3, 2]), 0.5)
    """

    points: Tensor
    kl_divergence: float


def tsne(
    features: Tensor | np.ndarray[Any, Any],
    n_components: int = 2,
    *,
    perplexity: float = 30.0,
    pca_components: int | None = 50,
    max_iter: int = 1000,
    seed: int = 0,
) -> TSNEResult:
    """Embed ``features`` in 2-D (or 3-D) with t-SNE, for plots like :func:`pca`'s.

    scikit-learn's :class:`~sklearn.manifold.TSNE` (Barnes-Hut, PCA initialisation, automatic
    learning rate) does the work. As is usual for t-SNE, wide features are first reduced to
    ``pca_components`` principal components with :func:`pca`, which removes noise and makes the
    neighbour search cheaper. Distances between clusters and cluster sizes in a t-SNE map carry
    little meaning; neighbourhoods do.

    Parameters
    ----------
    features : torch.Tensor or numpy.ndarray
        ``(N, D)`` real, finite features with ``N >= 2``.
    n_components : int, default 2
        Output dimensions, 1 to 3.
    perplexity : float, default 30.0
        Effective number of neighbours, ``> 0`` and ``< N``.
    pca_components : int or None, default 50
        Reduce to this many principal components first when ``D`` is larger; ``None`` skips it.
    max_iter : int, default 1000
        Optimisation iterations (at least 250).
    seed : int, default 0
        Random state of the optimisation, for reproducible maps.

    Returns
    -------
    TSNEResult
        ``points`` (``(N, n_components)``, in the dtype of ``features``, float32 for integer
        input, on its device) and ``kl_divergence``.

    Raises
    ------
    ImportError
        If scikit-learn is not installed (``pip install "cellvision[tsne]"``).
    TypeError
        If ``features`` is not a real-valued tensor or array, or an option has the wrong type.
    ValueError
        If ``features`` is not 2-D with at least two rows or holds non-finite values, or an
        option is out of range.

    References
    ----------
    L. van der Maaten and G. Hinton, "Visualizing Data using t-SNE", JMLR 9, 2008.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> blobs = torch.cat([torch.randn(20, 8, generator=g), torch.randn(20, 8, generator=g) + 6])
    >>> points, kl = tsne(blobs, perplexity=10.0, seed=0)
    >>> points.shape
    torch.Size([40, 2])
    >>> centre_a, centre_b = points[:20].mean(0), points[20:].mean(0)
    >>> spread = points[:20].std(0).norm()
    >>> bool((centre_a - centre_b).norm() > 3 * spread)  # the two blobs stay apart
    True
    """
    features = _check_feature_matrix(features)
    n, d = features.shape
    check_positive_int("n_components", n_components)
    if n_components > 3:
        raise ValueError(
            f"n_components must be 1, 2 or 3 for Barnes-Hut t-SNE, got {n_components!r}"
        )
    if isinstance(perplexity, np.generic):
        perplexity = perplexity.item()
    if isinstance(perplexity, bool) or not isinstance(perplexity, (int, float)):
        raise TypeError(f"perplexity must be a number in (0, N={n}), got {perplexity!r}")
    if not (math.isfinite(perplexity) and 0 < perplexity < n):
        raise ValueError(f"perplexity must be a number in (0, N={n}), got {perplexity!r}")
    if pca_components is not None:
        check_positive_int("pca_components", pca_components)
    check_positive_int("max_iter", max_iter)
    if max_iter < 250:
        raise ValueError(
            f"max_iter must be at least 250 (scikit-learn's minimum), got {max_iter!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    try:
        from sklearn.manifold import TSNE
    except ImportError as exc:
        raise ImportError(
            'tsne needs scikit-learn; install it with: pip install "cellvision[tsne]"'
        ) from exc

    out_dtype = features.dtype if features.is_floating_point() else torch.float32
    x = features.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("features must be finite, got NaN or infinite values")
    if pca_components is not None and d > pca_components:
        x = pca(x, n_components=min(pca_components, n)).points
    # scikit-learn renamed n_iter to max_iter in 1.5; the extra allows 1.3.
    iterations = "max_iter" if "max_iter" in inspect.signature(TSNE).parameters else "n_iter"
    model = TSNE(
        n_components=n_components,
        perplexity=float(perplexity),
        init="pca",
        learning_rate="auto",
        random_state=int(seed),
        **{iterations: max_iter},
    )
    points = model.fit_transform(x.numpy())
    return TSNEResult(
        torch.from_numpy(np.ascontiguousarray(points)).to(features.device, out_dtype),
        float(model.kl_divergence_),
    )
