"""Tests for cellvision.tta: dihedral views and test-time-augmented prediction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from cellvision.losses import one_vs_all_probabilities
from cellvision.models import create_model
from cellvision.tta import TTA_GROUPS, dihedral_views, predict_tta


def _numpy_d4(image: np.ndarray) -> list[np.ndarray]:
    """The 8 symmetries of a 2-D array, numbered as RandomDihedral (mirror if k >= 4)."""
    return [np.rot90(np.fliplr(image) if k >= 4 else image, k % 4) for k in range(8)]


def _numpy_flips(image: np.ndarray) -> list[np.ndarray]:
    return [image, np.fliplr(image), np.flipud(image), np.flipud(np.fliplr(image))]


class _FlatLinear(nn.Module):
    """Not invariant to anything: a linear map of the flattened pixels."""

    def __init__(self, h: int, w: int, c: int = 2, n_classes: int = 3) -> None:
        super().__init__()
        self.c, self.h, self.w = c, h, w
        self.fc = nn.Linear(c * h * w, n_classes)
        self.calls = 0
        self.seen_batch_sizes: list[int] = []

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        self.seen_batch_sizes.append(x.shape[0])
        out: Tensor = self.fc(x.reshape(x.shape[0], -1))
        return out


class _SymmetricConv(nn.Module):
    """D4-invariant by construction: a conv with a D4-symmetric kernel, then global pooling."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        conv = nn.Conv2d(1, 6, 5, padding=2)
        with torch.no_grad():
            w = conv.weight
            sym = sum(
                torch.rot90(w.flip(-1) if k >= 4 else w, k % 4, dims=(2, 3)) for k in range(8)
            )
            conv.weight.copy_(sym / 8)
        self.conv = conv
        self.head = nn.Linear(6, 4)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))
        return out


def test_dihedral_views_match_numpy_rotations_and_mirrors() -> None:
    x = torch.randn(3, 2, 5, 5, dtype=torch.float64)
    views = dihedral_views(x, "d4")
    assert views.shape == (8, 3, 2, 5, 5)
    for b in range(3):
        for c in range(2):
            expected = _numpy_d4(x[b, c].numpy())
            for k in range(8):
                np.testing.assert_array_equal(views[k, b, c].numpy(), expected[k])
    flat = {tuple(views[k, 0, 0].flatten().tolist()) for k in range(8)}
    assert len(flat) == 8  # eight distinct symmetries of a generic image


def test_flip_views_work_on_non_square_images() -> None:
    x = torch.randn(2, 1, 4, 7)
    views = dihedral_views(x, "flips")
    assert views.shape == (4, 2, 1, 4, 7)
    for k, expected in enumerate(_numpy_flips(x[1, 0].numpy())):
        np.testing.assert_array_equal(views[k, 1, 0].numpy(), expected)
    torch.testing.assert_close(dihedral_views(x, "none")[0], x)


def test_invariant_model_gives_the_same_output_with_and_without_tta() -> None:
    model = _SymmetricConv().eval()
    x = torch.randn(6, 1, 12, 12)
    with torch.no_grad():
        plain = model(x).softmax(1)
    # The construction really is invariant (checked on one explicit rotation).
    with torch.no_grad():
        torch.testing.assert_close(model(torch.rot90(x, 1, dims=(2, 3))).softmax(1), plain)
    for group in ("d4", "flips", "none"):
        torch.testing.assert_close(predict_tta(model, x, group), plain)  # type: ignore[arg-type]


def test_pixelwise_model_is_invariant_too() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)
    )
    x = torch.randn(4, 1, 9, 9)
    with torch.no_grad():
        plain = model(x).softmax(1)
    torch.testing.assert_close(predict_tta(model, x), plain)


@pytest.mark.parametrize(("group", "views"), [("d4", _numpy_d4), ("flips", _numpy_flips)])
def test_tta_equals_the_mean_of_explicit_transforms(group: Any, views: Any) -> None:
    torch.manual_seed(1)
    h, w = (6, 6) if group == "d4" else (4, 6)
    model = _FlatLinear(h, w).double()
    x = torch.randn(5, 2, h, w, dtype=torch.float64)
    expected = np.zeros((5, 3))
    with torch.no_grad():
        for b in range(5):
            per_channel = [views(x[b, c].numpy()) for c in range(2)]
            n = len(per_channel[0])
            for k in range(n):
                image = np.stack([per_channel[c][k] for c in range(2)])[None]
                logits = model(torch.from_numpy(image.copy()))
                expected[b] += logits.softmax(1)[0].numpy() / n
    model.calls = 0
    model.seen_batch_sizes = []
    got = predict_tta(model, x, group)
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-6)
    assert model.calls == 1  # one batched forward pass
    assert model.seen_batch_sizes == [TTA_GROUPS[group] * 5]
    # It differs from the plain prediction: the model is not invariant.
    assert not torch.allclose(got, predict_tta(model, x, "none"), atol=1e-4)


def test_batch_size_chunks_the_forward_passes_without_changing_the_result() -> None:
    torch.manual_seed(2)
    model = _FlatLinear(6, 6)
    x = torch.randn(7, 2, 6, 6)
    full = predict_tta(model, x)
    model.seen_batch_sizes = []
    chunked = predict_tta(model, x, batch_size=3)
    torch.testing.assert_close(chunked, full)
    assert model.seen_batch_sizes == [24, 24, 8]


def test_eval_mode_no_grad_and_mode_restored() -> None:
    torch.manual_seed(0)
    model = create_model("convnet", n_classes=3, channels=4, n_blocks=1, dropout=0.5)
    model.train()
    x = torch.randn(4, 1, 16, 16)
    a = predict_tta(model, x)
    b = predict_tta(model, x)
    torch.testing.assert_close(a, b)  # dropout off: eval mode
    assert model.training
    assert not a.requires_grad
    assert a.dtype == torch.float32


def test_bf16_autocast_and_channels_last_pass_through() -> None:
    torch.manual_seed(0)
    model = create_model("convnet", n_classes=3, channels=8, n_blocks=2).eval()
    x = torch.randn(3, 1, 16, 16)
    reference = predict_tta(model, x)
    bf16 = predict_tta(model, x, amp_dtype=torch.bfloat16)
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(bf16, reference, atol=3e-2, rtol=0)
    torch.testing.assert_close(predict_tta(model, x, channels_last=True), reference)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"group": "d8"}, ValueError, r"group must be one of \('d4', 'flips', 'none'\)"),
        ({"images": torch.zeros(2, 1, 4, 5)}, ValueError, "square for group='d4'"),
        ({"images": torch.zeros(2, 4, 4)}, ValueError, "images must be a non-empty"),
        ({"images": torch.zeros(2, 1, 4, 4, dtype=torch.long)}, TypeError, "floating"),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer"),
        ({"amp_dtype": torch.int8}, TypeError, "amp_dtype"),
        ({"channels_last": 1}, TypeError, "channels_last must be a bool"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    model = _FlatLinear(4, 4, c=1)
    args: dict[str, Any] = {"images": torch.zeros(2, 1, 4, 4)}
    args.update(kwargs)
    images = args.pop("images")
    with pytest.raises(error, match=match):
        predict_tta(model, images, **args)


def test_model_returning_the_wrong_shape_is_reported() -> None:
    with pytest.raises(ValueError, match=r"model must return \(N, n_classes\) logits"):
        predict_tta(nn.Identity(), torch.zeros(2, 1, 4, 4))


@settings(max_examples=20, deadline=None)
@given(
    b=st.integers(1, 5),
    side=st.integers(1, 6),
    group=st.sampled_from(sorted(TTA_GROUPS)),
    batch_size=st.one_of(st.none(), st.integers(1, 6)),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_probabilities_have_the_right_shape_and_sum_to_one(
    b: int, side: int, group: Any, batch_size: int | None, dtype: torch.dtype
) -> None:
    torch.manual_seed(0)
    model = _FlatLinear(side, side, c=1, n_classes=4).to(dtype)
    x = torch.randn(b, 1, side, side, dtype=dtype)
    probs = predict_tta(model, x, group, batch_size=batch_size)
    assert probs.shape == (b, 4)
    assert probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(1), torch.ones(b))
    assert bool((probs >= 0).all())


def test_one_vs_all_models_average_normalised_sigmoids() -> None:
    torch.manual_seed(4)
    model = _FlatLinear(4, 4, c=1)
    x = torch.randn(3, 1, 4, 4)
    got = predict_tta(model, x, "flips", to_probabilities=one_vs_all_probabilities)
    with torch.no_grad():
        views = [x, x.flip(-1), x.flip(-2), x.flip(-1).flip(-2)]
        sigmoids = [torch.sigmoid(model(v)) for v in views]
        expected = sum(s / s.sum(1, keepdim=True) for s in sigmoids) / 4
    torch.testing.assert_close(got, expected)
    with pytest.raises(TypeError, match="to_probabilities must be callable"):
        predict_tta(model, x, to_probabilities="sigmoid")  # type: ignore[arg-type]
