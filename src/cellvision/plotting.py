"""Figures for training runs: loss/metric curves, confusion matrices, embeddings, activation maps.

matplotlib is optional (the ``plot`` extra: ``pip install "cellvision[plot]"``) and imported
inside each function. Every function returns a :class:`matplotlib.figure.Figure` (built
without :mod:`matplotlib.pyplot`, so nothing is registered globally and nothing is shown): save
it with ``fig.savefig(...)`` or let a notebook display it. Pass ``ax=`` to draw into an existing
axes instead; its figure is returned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from cellvision.engine import History

__all__ = [
    "history_label",
    "plot_activation_maps",
    "plot_confusion_matrix",
    "plot_embedding",
    "plot_history",
]

#: Readable names of the metric part of history keys.
_METRIC_LABELS = {
    "loss": "loss",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro F1",
    "macro_precision": "macro precision",
    "macro_recall": "macro recall",
    "cohen_kappa": "Cohen's kappa",
    "roc_auc": "ROC AUC",
    "mse": "MSE",
    "rmse": "RMSE",
    "mae": "MAE",
}
_SPLIT_LABELS = {"train": "training", "val": "validation", "test": "test"}


def history_label(key: str) -> str:
    """A readable axis/legend label for a history key such as ``"val_cohen_kappa"``.

    The split prefix (``train_``, ``val_``, ``test_``) becomes a word and known metric names
    are spelled out; other keys have their underscores replaced by spaces.

    Parameters
    ----------
    key : str
        A record key of :class:`cellvision.engine.History`.

    Returns
    -------
    str
        The label.

    Examples
    --------
    >>> history_label("val_cohen_kappa"), history_label("train_loss"), history_label("lr")
    ("validation Cohen's kappa", 'training loss', 'lr')
    """
    split, _, rest = key.partition("_")
    if split in _SPLIT_LABELS and rest:
        return f"{_SPLIT_LABELS[split]} {_METRIC_LABELS.get(rest, rest.replace('_', ' '))}"
    return _METRIC_LABELS.get(key, key.replace("_", " "))


def _y_label(keys: Sequence[str]) -> str:
    metrics = {k.partition("_")[2] if k.partition("_")[0] in _SPLIT_LABELS else k for k in keys}
    if len(keys) == 1:
        return history_label(keys[0])
    if len(metrics) == 1:
        (metric,) = metrics
        return _METRIC_LABELS.get(metric, metric.replace("_", " "))
    splits = {k.partition("_")[0] for k in keys}
    if len(splits) == 1 and next(iter(splits)) in _SPLIT_LABELS:
        return f"{_SPLIT_LABELS[next(iter(splits))]} metric"
    return "metric"


def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            'plotting needs matplotlib; install it with: pip install "cellvision[plot]"'
        ) from exc
    return Figure


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    Figure = _figure_class()  # noqa: N806 (the class, imported lazily)
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _as_numpy(value: Any, name: str) -> np.ndarray[Any, Any]:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a tensor or array-like, got {type(value).__name__}"
        ) from exc


def _check_names(class_names: Sequence[str] | None, n: int, name: str) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(n)]
    names = [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(f"class_names must have {n} entries to match {name}, got {len(names)}")
    return names


def plot_history(
    history: History | Sequence[Mapping[str, Any]],
    keys: str | Sequence[str] | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Plot per-epoch values (losses, metrics) of a training history against the epoch.

    Epochs are counted from 1, as in the history records of :func:`cellvision.engine.fit`;
    legends and the y label use readable names (:func:`history_label`).

    Parameters
    ----------
    history : History or sequence of dict
        A :class:`cellvision.engine.History` or its records.
    keys : str or sequence of str, optional
        Record keys to draw, one line each; default: every key ending in ``"loss"``.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (``x`` label ``"epoch"``; one line per key, labelled with
        :func:`history_label`).

    Raises
    ------
    ValueError
        If the history is empty, a key appears in no record or holds non-numeric values.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> records = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2},
    ...            {"epoch": 2, "train_loss": 0.6, "val_loss": 0.9}]
    >>> fig = plot_history(records)
    >>> [line.get_label() for line in fig.axes[0].get_lines()], fig.axes[0].get_ylabel()
    (['training loss', 'validation loss'], 'loss')
    """
    records = [dict(r) for r in history]
    if not records:
        raise ValueError("history must hold at least one epoch, got an empty history")
    available: dict[str, None] = {}
    for record in records:
        available.update(dict.fromkeys(record))
    if keys is None:
        key_list = [k for k in available if k.endswith("loss")]
        if not key_list:
            raise ValueError(f"keys must be given: no key ends in 'loss' among {list(available)!r}")
    else:
        key_list = [keys] if isinstance(keys, str) else list(keys)
    series: dict[str, list[float]] = {}
    for key in key_list:
        if key not in available:
            raise ValueError(f"keys must be record keys, one of {list(available)!r}, got {key!r}")
        values = []
        for record in records:
            value = record.get(key)
            if value is None:
                values.append(math.nan)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                values.append(float(value))
            else:
                raise ValueError(f"history values of {key!r} must be numbers, got {value!r}")
        series[key] = values
    epochs = [record.get("epoch", index + 1) for index, record in enumerate(records)]

    fig, axes = _new_axes(ax, (6.0, 4.0))
    for key, values in series.items():
        axes.plot(epochs, values, marker="o", label=history_label(key))
    axes.set_xlabel("epoch")
    axes.set_ylabel(_y_label(key_list))
    axes.legend()
    axes.grid(True, alpha=0.3)
    if title is not None:
        axes.set_title(title)
    return fig


def plot_confusion_matrix(
    matrix: Any,
    class_names: Sequence[str] | None = None,
    normalize: bool = True,
    *,
    ax: Axes | None = None,
    cmap: str = "Blues",
    title: str | None = None,
) -> Figure:
    """Draw a confusion matrix with true classes as rows and predicted classes as columns.

    Parameters
    ----------
    matrix : torch.Tensor or array-like
        ``(C, C)`` counts; ``matrix[i, j]`` is the number of class-``i`` samples predicted as
        ``j`` (torcheval's convention).
    class_names : sequence of str, optional
        ``C`` names; default ``"0" ... "C-1"``.
    normalize : bool, default True
        Divide each row by its total, so the diagonal shows per-class recall (rows with no
        samples stay zero).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes.
    cmap : str, default "Blues"
        Colour map name.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure; each cell is annotated with its (normalised) value.

    Raises
    ------
    ValueError
        If ``matrix`` is not square, has negative or non-finite entries, or ``class_names`` has
        the wrong length.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> fig = plot_confusion_matrix(torch.tensor([[8, 2], [1, 3]]), ["G1", "M"])
    >>> ax = fig.axes[0]
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('Predicted label', 'True label')
    >>> [t.get_text() for t in ax.texts]
    ['0.80', '0.20', '0.25', '0.75']
    """
    values = _as_numpy(matrix, "matrix").astype(np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] == 0:
        raise ValueError(
            f"matrix must be a non-empty square (C, C) array, got shape {values.shape}"
        )
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError("matrix must hold finite non-negative counts")
    n = values.shape[0]
    names = _check_names(class_names, n, "matrix")
    if normalize:
        totals = values.sum(axis=1, keepdims=True)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)

    fig, axes = _new_axes(ax, (1.2 * n + 2.0, 1.2 * n + 1.5))
    image = axes.imshow(values, cmap=cmap, vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(image, ax=axes)
    axes.set_xticks(range(n), names, rotation=45, ha="right")
    axes.set_yticks(range(n), names)
    axes.set_xlabel("Predicted label")
    axes.set_ylabel("True label")
    threshold = (values.max() if values.size else 0.0) / 2.0
    for i in range(n):
        for j in range(n):
            value = values[i, j]
            text = f"{value:.2f}" if normalize else f"{value:.0f}"
            axes.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                color="white" if value > threshold else "black",
            )
    if title is not None:
        axes.set_title(title)
    return fig


def plot_embedding(
    points: Any,
    labels: Any,
    class_names: Sequence[str] | None = None,
    *,
    explained_variance_ratio: Any = None,
    ax: Axes | None = None,
    title: str | None = None,
    point_size: float = 8.0,
    alpha: float = 0.7,
) -> Figure:
    """Scatter 2-D embeddings (a PCA or t-SNE projection), coloured by class.

    Parameters
    ----------
    points : PCAResult, TSNEResult, torch.Tensor or array-like
        ``(N, 2)`` coordinates, or the result of :func:`cellvision.features.pca` (its
        explained-variance ratios then label the axes) or :func:`cellvision.features.tsne`
        (axes ``"t-SNE 1"``, ``"t-SNE 2"``).
    labels : torch.Tensor or array-like
        ``(N,)`` integer class labels in ``[0, C)``.
    class_names : sequence of str, optional
        Names of the ``C`` classes for the legend; default: the label values.
    explained_variance_ratio : tensor or array-like, optional
        Two ratios; the axis labels then read ``"PC1 (62.0%)"``.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes.
    title : str, optional
        Axes title.
    point_size : float, default 8.0
        Marker area.
    alpha : float, default 0.7
        Marker opacity.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, one labelled scatter per class present in ``labels``.

    Raises
    ------
    ValueError
        If ``points`` is not ``(N, 2)``, ``labels`` does not have ``N`` integer entries in
        range, or ``explained_variance_ratio`` does not have two entries.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> points = torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    >>> fig = plot_embedding(points, torch.tensor([0, 1, 1]), ["G1", "M"],
    ...                      explained_variance_ratio=[0.6, 0.3])
    >>> ax = fig.axes[0]
    >>> ax.get_xlabel(), [t.get_text() for t in ax.get_legend().get_texts()]
    ('PC1 (60.0%)', ['G1', 'M'])

    The projections' results plot directly:

    >>> from cellvision.features import pca
    >>> fig = plot_embedding(pca(torch.randn(10, 4)), torch.arange(10) % 2)
    >>> fig.axes[0].get_xlabel().startswith("PC1 (")
    True
    """
    from cellvision.features import PCAResult, TSNEResult

    axis_labels = ["PC1", "PC2"]
    if isinstance(points, PCAResult):
        if explained_variance_ratio is None:
            explained_variance_ratio = points.explained_variance_ratio
        points = points.points
    elif isinstance(points, TSNEResult):
        axis_labels = ["t-SNE 1", "t-SNE 2"]
        points = points.points
    xy = _as_numpy(points, "points")
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {xy.shape}")
    y = _as_numpy(labels, "labels")
    if y.shape != (xy.shape[0],):
        raise ValueError(f"labels must have shape ({xy.shape[0]},) to match points, got {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    n_classes = int(y.max()) + 1 if y.size else 0
    if class_names is not None:
        n_classes = max(n_classes, len(class_names))
    if y.size and y.min() < 0:
        raise ValueError(f"labels must be non-negative, got {int(y.min())}")
    names = _check_names(class_names, n_classes, "the labels")
    if explained_variance_ratio is not None:
        ratio = _as_numpy(explained_variance_ratio, "explained_variance_ratio").reshape(-1)
        if ratio.shape[0] < 2:
            raise ValueError(f"explained_variance_ratio must have 2 entries, got {ratio.shape[0]}")
        axis_labels = [f"PC{k + 1} ({100.0 * float(ratio[k]):.1f}%)" for k in range(2)]

    fig, axes = _new_axes(ax, (6.0, 5.0))
    for cls in range(n_classes):
        mask = y == cls
        if mask.any():
            axes.scatter(xy[mask, 0], xy[mask, 1], s=point_size, alpha=alpha, label=names[cls])
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    axes.legend(markerscale=2.0)
    if title is not None:
        axes.set_title(title)
    return fig


def _display_images(images: Any, channel: int) -> np.ndarray[Any, Any]:
    """``(B, H, W)`` grey or ``(B, H, W, 3)`` RGB images, each scaled to ``[0, 1]``."""
    array = _as_numpy(images, "images").astype(np.float64)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4 or array.shape[0] == 0:
        raise ValueError(
            f"images must have shape (B, C, H, W) or (B, H, W) with B >= 1, got {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError("images must be finite, got NaN or infinite values")
    n_channels = array.shape[1]
    if n_channels == 3:
        shown = array.transpose(0, 2, 3, 1)
    else:
        if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
            raise TypeError(f"channel must be an integer, got {channel!r}")
        if not 0 <= channel < n_channels:
            raise ValueError(f"channel must be in [0, {n_channels}), got {channel!r}")
        shown = array[:, channel]
    axes = tuple(range(1, shown.ndim))
    low = shown.min(axis=axes, keepdims=True)
    span = shown.max(axis=axes, keepdims=True) - low
    scaled: np.ndarray[Any, Any] = np.divide(
        shown - low, span, out=np.zeros_like(shown), where=span > 0
    )
    return scaled


def plot_activation_maps(
    images: Any,
    maps: Any,
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 6,
    alpha: float = 0.5,
    cmap: str = "jet",
    channel: int = 0,
    panel_size: float = 2.0,
) -> Figure:
    """Overlay class activation maps on their images, one panel per image.

    Each image is scaled to ``[0, 1]`` and drawn in grey (or RGB for three channels); its map
    (for example from :func:`cellvision.interpret.class_activation_maps`) is drawn over it,
    translucent, with the colour scale fixed to ``[0, 1]``.

    Parameters
    ----------
    images : torch.Tensor or array-like
        ``(B, C, H, W)`` or ``(B, H, W)`` images.
    maps : torch.Tensor or array-like
        ``(B, H, W)`` maps with values in ``[0, 1]``, at the images' resolution.
    titles : sequence of str, optional
        One title per panel, for example ``"true: Prophase / pred: Prophase"``.
    ncols : int, default 6
        Panels per row.
    alpha : float, default 0.5
        Opacity of the maps, in ``[0, 1]``.
    cmap : str, default "jet"
        Colour map of the maps.
    channel : int, default 0
        Channel drawn for images with other than three channels.
    panel_size : float, default 2.0
        Side of each panel in inches.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, one axes per image (two images each: the cell, then the map).

    Raises
    ------
    TypeError
        If ``channel`` is not an integer.
    ValueError
        If the shapes disagree, values are not finite, ``titles`` has the wrong length or an
        option is out of range.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> images = torch.rand(3, 1, 8, 8)
    >>> maps = torch.zeros(3, 8, 8)
    >>> maps[:, :4, :4] = 1.0
    >>> fig = plot_activation_maps(images, maps, ["a", "b", "c"], ncols=2)
    >>> len(fig.axes), [ax.get_title() for ax in fig.axes]
    (3, ['a', 'b', 'c'])
    >>> len(fig.axes[0].get_images())
    2
    """
    shown = _display_images(images, channel)
    heat = _as_numpy(maps, "maps").astype(np.float64)
    n, h, w = shown.shape[0], shown.shape[1], shown.shape[2]
    if heat.shape != (n, h, w):
        raise ValueError(f"maps must have shape {(n, h, w)} to match the images, got {heat.shape}")
    if not np.isfinite(heat).all():
        raise ValueError("maps must be finite, got NaN or infinite values")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must have {n} entries, one per image, got {len(titles)}")
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if (
        isinstance(panel_size, bool)
        or not isinstance(panel_size, (int, float))
        or not (math.isfinite(panel_size) and panel_size > 0)
    ):
        raise ValueError(f"panel_size must be a finite number > 0, got {panel_size!r}")

    Figure = _figure_class()  # noqa: N806 (the class, imported lazily)
    cols = min(int(ncols), n)
    rows = math.ceil(n / cols)
    extra = 0.3 if titles is not None else 0.0
    fig = Figure(figsize=(panel_size * cols, (panel_size + extra) * rows), layout="constrained")
    for index in range(n):
        axes = fig.add_subplot(rows, cols, index + 1)
        axes.imshow(shown[index], cmap="gray", vmin=0.0, vmax=1.0)
        axes.imshow(heat[index], cmap=cmap, alpha=float(alpha), vmin=0.0, vmax=1.0)
        axes.set_axis_off()
        if titles is not None:
            axes.set_title(str(titles[index]), fontsize="small")
    return fig
