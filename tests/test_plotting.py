"""Tests for cellvision.plotting (Agg backend; figures are inspected, never shown)."""

from __future__ import annotations

import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from cellvision.engine import History
from cellvision.features import TSNEResult, pca
from cellvision.interpret import class_activation_maps
from cellvision.models import create_model
from cellvision.plotting import (
    plot_activation_maps,
    plot_confusion_matrix,
    plot_embedding,
    plot_history,
)

RECORDS = [
    {"epoch": 0, "train_loss": 1.2, "val_loss": 1.3, "val_acc": 0.4, "val_recall": [0.1, 0.2]},
    {"epoch": 1, "train_loss": 0.8, "val_loss": 1.0, "val_acc": 0.6, "val_recall": [0.3, 0.4]},
    {"epoch": 2, "train_loss": 0.5, "val_loss": 0.9, "val_acc": 0.7, "val_recall": [0.5, 0.6]},
]


@pytest.fixture(autouse=True)
def _never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("plotting functions must never call show()")

    monkeypatch.setattr(plt, "show", fail)
    monkeypatch.setattr(Figure, "show", fail)


def test_plot_history_draws_one_line_per_key_against_the_epoch() -> None:
    figures_before = plt.get_fignums()
    fig = plot_history(History(RECORDS), title="run 1")
    assert isinstance(fig, Figure)
    assert plt.get_fignums() == figures_before  # nothing registered with pyplot
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["training loss", "validation loss"]
    np.testing.assert_allclose(lines[0].get_xdata(), [0, 1, 2])
    np.testing.assert_allclose(lines[0].get_ydata(), [1.2, 0.8, 0.5])
    np.testing.assert_allclose(lines[1].get_ydata(), [1.3, 1.0, 0.9])
    assert ax.get_xlabel() == "epoch"
    assert ax.get_ylabel() == "loss"
    assert ax.get_title() == "run 1"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "training loss",
        "validation loss",
    ]


def test_plot_history_single_key_and_missing_values() -> None:
    records = [dict(r) for r in RECORDS]
    del records[1]["val_acc"]
    fig = plot_history(records, "val_acc")
    (line,) = fig.axes[0].get_lines()
    assert fig.axes[0].get_ylabel() == "validation acc"
    np.testing.assert_allclose(line.get_ydata(), [0.4, np.nan, 0.7])


def test_plot_history_draws_into_a_given_axes() -> None:
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_history(RECORDS, ["val_acc"], ax=ax) is fig
    assert len(ax.get_lines()) == 1


@pytest.mark.parametrize(
    ("history", "keys", "match"),
    [
        ([], None, "at least one epoch"),
        (RECORDS, "val_f1", r"keys must be record keys, one of \['epoch'"),
        (RECORDS, "val_recall", "values of 'val_recall' must be numbers"),
        ([{"epoch": 0, "acc": 0.5}], None, "no key ends in 'loss'"),
    ],
)
def test_plot_history_rejects_bad_input(history: Any, keys: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plot_history(history, keys)


def test_plot_confusion_matrix_row_normalises_like_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, size=200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 4, size=200))
    counts = confusion_matrix(y_true, y_pred, labels=range(4))
    names = ["G1", "S", "G2", "M"]
    fig = plot_confusion_matrix(torch.from_numpy(counts), names)
    ax = fig.axes[0]
    shown = ax.get_images()[0].get_array()
    expected = confusion_matrix(y_true, y_pred, labels=range(4), normalize="true")
    np.testing.assert_allclose(np.asarray(shown), expected)
    assert ax.get_xlabel() == "Predicted label"
    assert ax.get_ylabel() == "True label"
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert [t.get_text() for t in ax.texts] == [f"{v:.2f}" for v in expected.ravel()]
    assert len(fig.axes) == 2  # the matrix and its colour bar


def test_plot_confusion_matrix_counts_and_empty_rows() -> None:
    counts = [[3, 1, 0], [0, 0, 0], [2, 0, 5]]
    fig = plot_confusion_matrix(counts, normalize=False, title="counts")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["3", "1", "0", "0", "0", "0", "2", "0", "5"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    assert ax.get_title() == "counts"
    normalised = plot_confusion_matrix(counts).axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(np.asarray(normalised)[1], [0.0, 0.0, 0.0])  # no NaN row


@pytest.mark.parametrize(
    ("matrix", "names", "match"),
    [
        ([[1, 2, 3]], None, r"square \(C, C\)"),
        ([[1, -1], [0, 2]], None, "finite non-negative counts"),
        ([[1, 0], [0, 1]], ["a", "b", "c"], "class_names must have 2 entries"),
    ],
)
def test_plot_confusion_matrix_rejects_bad_input(matrix: Any, names: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plot_confusion_matrix(matrix, names)


def test_plot_embedding_one_scatter_per_present_class() -> None:
    rng = np.random.default_rng(1)
    points = torch.from_numpy(rng.normal(size=(30, 2)))
    labels = torch.tensor([0] * 10 + [2] * 20)
    fig = plot_embedding(
        points, labels, ["G1", "S", "M"], explained_variance_ratio=torch.tensor([0.5, 0.25])
    )
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["G1", "M"]
    offsets = [np.asarray(c.get_offsets()) for c in ax.collections]
    np.testing.assert_allclose(offsets[0], points[:10].numpy())
    np.testing.assert_allclose(offsets[1], points[10:].numpy())
    assert ax.get_xlabel() == "PC1 (50.0%)"
    assert ax.get_ylabel() == "PC2 (25.0%)"


def test_plot_embedding_defaults() -> None:
    fig = plot_embedding(np.zeros((4, 2)), np.array([1, 0, 1, 0]))
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("PC1", "PC2")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "1"]


@pytest.mark.parametrize(
    ("points", "labels", "kwargs", "match"),
    [
        (np.zeros((4, 3)), np.zeros(4, dtype=int), {}, r"points must have shape \(N, 2\)"),
        (np.zeros((4, 2)), np.zeros(3, dtype=int), {}, r"labels must have shape \(4,\)"),
        (np.zeros((2, 2)), np.array([0.5, 1.0]), {}, "labels must be integers"),
        (np.zeros((2, 2)), np.array([-1, 0]), {}, "labels must be non-negative"),
        (np.zeros((2, 2)), np.array([0, 3]), {"class_names": ["a"]}, "must have 4 entries"),
        (np.zeros((2, 2)), np.array([0, 1]), {"explained_variance_ratio": [0.9]}, "2 entries"),
    ],
)
def test_plot_embedding_rejects_bad_input(
    points: Any, labels: Any, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        plot_embedding(points, labels, **kwargs)


def test_plot_embedding_takes_pca_and_tsne_results() -> None:
    rng = np.random.default_rng(2)
    features = torch.from_numpy(rng.normal(size=(12, 5)))
    labels = torch.tensor([0, 1, 2] * 4)
    result = pca(features)
    ax = plot_embedding(result, labels).axes[0]
    ratio = result.explained_variance_ratio
    assert ax.get_xlabel() == f"PC1 ({100 * float(ratio[0]):.1f}%)"
    assert ax.get_ylabel() == f"PC2 ({100 * float(ratio[1]):.1f}%)"
    offsets = np.concatenate([np.asarray(c.get_offsets()) for c in ax.collections])
    expected = np.concatenate([result.points[labels == k].numpy() for k in range(3)])
    np.testing.assert_allclose(offsets, expected)
    tsne_like = TSNEResult(torch.from_numpy(rng.normal(size=(12, 2))), 0.3)
    ax = plot_embedding(tsne_like, labels).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("t-SNE 1", "t-SNE 2")
    np.testing.assert_allclose(np.asarray(ax.collections[0].get_offsets()), tsne_like.points[::3])


def test_plot_activation_maps_one_panel_per_image_with_the_data_drawn() -> None:
    rng = np.random.default_rng(3)
    images = rng.normal(size=(5, 1, 6, 6)) * 3 + 1
    maps = rng.random(size=(5, 6, 6))
    titles = [f"cell {i}" for i in range(5)]
    figures_before = plt.get_fignums()
    fig = plot_activation_maps(torch.from_numpy(images), torch.from_numpy(maps), titles, ncols=3)
    assert plt.get_fignums() == figures_before
    assert len(fig.axes) == 5  # no empty panels
    assert [ax.get_title() for ax in fig.axes] == titles
    assert fig.axes[3].get_subplotspec().rowspan.start == 1  # 3 per row
    for i, ax in enumerate(fig.axes):
        cell, heat = ax.get_images()
        image = images[i, 0]
        np.testing.assert_allclose(
            np.asarray(cell.get_array()), (image - image.min()) / (image.max() - image.min())
        )
        np.testing.assert_allclose(np.asarray(heat.get_array()), maps[i])
        assert heat.get_alpha() == 0.5
        assert heat.get_clim() == (0.0, 1.0)
        assert not ax.axison


def test_plot_activation_maps_of_real_model_maps_rgb_and_channel_choice() -> None:
    torch.manual_seed(0)
    model = create_model("convnet", n_classes=3, channels=4, n_blocks=1, in_channels=3)
    images = torch.rand(2, 3, 16, 16)
    maps = class_activation_maps(model, images, target=0)
    fig = plot_activation_maps(images, maps)
    assert np.asarray(fig.axes[0].get_images()[0].get_array()).shape == (16, 16, 3)
    np.testing.assert_allclose(np.asarray(fig.axes[1].get_images()[1].get_array()), maps[1])
    two_channel = torch.rand(1, 2, 4, 4)
    fig = plot_activation_maps(two_channel, torch.zeros(1, 4, 4), channel=1)
    shown = np.asarray(fig.axes[0].get_images()[0].get_array())
    second = two_channel[0, 1].numpy()
    np.testing.assert_allclose(shown, (second - second.min()) / (second.max() - second.min()))


@pytest.mark.parametrize(
    ("images", "maps", "kwargs", "error", "match"),
    [
        (np.zeros((2, 1, 4, 4)), np.zeros((2, 4, 5)), {}, ValueError, r"maps must have shape"),
        (np.zeros((2, 4)), np.zeros((2, 4, 4)), {}, ValueError, "images must have shape"),
        (np.zeros((1, 1, 2, 2)), np.zeros((1, 2, 2)), {"titles": ["a", "b"]}, ValueError, "titles"),
        (np.zeros((1, 2, 2, 2)), np.zeros((1, 2, 2)), {"channel": 2}, ValueError, "channel"),
        (np.zeros((1, 1, 2, 2)), np.zeros((1, 2, 2)), {"alpha": 1.5}, ValueError, "alpha"),
        (np.zeros((1, 1, 2, 2)), np.zeros((1, 2, 2)), {"ncols": 0}, ValueError, "ncols"),
        (np.zeros((1, 1, 2, 2)), np.full((1, 2, 2), np.nan), {}, ValueError, "maps must be"),
    ],
)
def test_plot_activation_maps_rejects_bad_input(
    images: Any, maps: Any, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        plot_activation_maps(images, maps, **kwargs)


def test_missing_matplotlib_names_the_plot_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "cellvision\[plot\]"'):
        plot_history(RECORDS)


def test_missing_matplotlib_names_the_plot_extra_for_activation_maps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "cellvision\[plot\]"'):
        plot_activation_maps(np.zeros((1, 1, 2, 2)), np.zeros((1, 2, 2)))


def test_history_labels_are_readable_and_y_label_names_the_shared_metric() -> None:
    records = [
        {"epoch": 1, "val_balanced_accuracy": 0.5, "val_cohen_kappa": 0.2},
        {"epoch": 2, "val_balanced_accuracy": 0.7, "val_cohen_kappa": 0.4},
    ]
    ax = plot_history(records, ["val_balanced_accuracy", "val_cohen_kappa"]).axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["validation balanced accuracy", "validation Cohen's kappa"]
    assert ax.get_ylabel() == "validation metric"
    # Records without "epoch" are numbered from 1, like fit's records.
    line = plot_history([{"loss": 1.0}, {"loss": 0.5}]).axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), [1, 2])
