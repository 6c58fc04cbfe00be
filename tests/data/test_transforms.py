"""Tests for cellvision.data.transforms against numpy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellvision.data.transforms import (
    CenterCropOrPad,
    Compose,
    GaussianNoise,
    Normalize,
    RandomChannelDrop,
    RandomDihedral,
    RandomIntensity,
    RandomRotation,
    RandomTranslate,
    channel_stats,
    to_float_images,
)

RANDOM_TRANSFORMS = [
    RandomDihedral(),
    RandomTranslate(3),
    GaussianNoise(0.1),
    GaussianNoise((0.0, 0.2)),
    RandomIntensity(),
    RandomIntensity(per_channel=True),
    RandomRotation(30, scale=(0.9, 1.1)),
    RandomChannelDrop(0.5),
    RandomChannelDrop(0.7, channels=[1], fill=-1.0),
    Compose([RandomDihedral(), RandomTranslate(2), GaussianNoise(0.05)]),
]
ALL_TRANSFORMS = [*RANDOM_TRANSFORMS, Normalize([0.5, 0.2], [0.1, 2.0]), CenterCropOrPad(10)]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def numpy_dihedral(img: np.ndarray) -> list[np.ndarray]:
    """The 8 symmetries of a (C, H, W) image, computed independently with numpy."""
    out = []
    for flipped in (img, img[:, :, ::-1]):
        for k in range(4):
            out.append(np.rot90(flipped, k, axes=(1, 2)))
    return out


def distinct_images(b: int, c: int = 2, size: int = 7) -> torch.Tensor:
    return torch.randperm(b * c * size * size, generator=gen(1)).float().reshape(b, c, size, size)


devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("transform", ALL_TRANSFORMS, ids=repr)
def test_shape_dtype_device_preserved(transform, dtype, device):
    x = torch.rand(5, 2, 12, 12, generator=gen(), dtype=dtype).to(device)
    y = transform(x, generator=gen())
    expected = (5, 2, 10, 10) if isinstance(transform, CenterCropOrPad) else (5, 2, 12, 12)
    assert y.shape == expected
    assert y.dtype == dtype
    assert y.device == x.device
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("transform", ALL_TRANSFORMS, ids=repr)
def test_single_image_matches_batch_of_one(transform):
    x = torch.rand(2, 12, 12, generator=gen(3))
    single = transform(x, generator=gen(5))
    batched = transform(x.unsqueeze(0), generator=gen(5))
    assert single.shape == batched.shape[1:]
    torch.testing.assert_close(single, batched[0])


@pytest.mark.parametrize("transform", RANDOM_TRANSFORMS, ids=repr)
def test_same_seed_same_output_and_different_seed_differs(transform):
    x = torch.rand(16, 2, 12, 12, generator=gen(2))
    a = transform(x, generator=gen(7))
    b = transform(x, generator=gen(7))
    c = transform(x, generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("transform", RANDOM_TRANSFORMS, ids=repr)
def test_independent_choice_per_sample(transform):
    # The same image repeated: a per-batch (not per-sample) draw would give identical outputs.
    x = torch.rand(1, 2, 12, 12, generator=gen(4)).expand(32, -1, -1, -1).contiguous()
    y = transform(x, generator=gen(0))
    distinct = {tuple(v.flatten().tolist()) for v in y}
    # A channel drop has only 2-3 outcomes (nothing, or one of the channels blanked).
    assert len(distinct) > (1 if isinstance(transform, RandomChannelDrop) else 4)


@pytest.mark.parametrize("transform", RANDOM_TRANSFORMS, ids=repr)
def test_uses_global_rng_without_generator(transform):
    x = torch.rand(8, 2, 12, 12, generator=gen(2))
    torch.manual_seed(123)
    a = transform(x)
    torch.manual_seed(123)
    b = transform(x)
    assert torch.equal(a, b)


def test_dihedral_outputs_are_exact_symmetries_and_all_eight_occur():
    x = distinct_images(200)
    y = RandomDihedral()(x, generator=gen(0))
    seen = set()
    for xi, yi in zip(x.numpy(), y.numpy(), strict=True):
        matches = [k for k, ref in enumerate(numpy_dihedral(xi)) if np.array_equal(ref, yi)]
        assert len(matches) == 1  # pixels are distinct, so exactly one symmetry fits
        seen.add(matches[0])
    assert seen == set(range(8))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.int64, torch.float16])
def test_dihedral_and_translate_work_for_any_dtype(dtype):
    x = torch.randint(0, 200, (6, 1, 9, 9), generator=gen()).to(dtype)
    for t in (RandomDihedral(), RandomTranslate(4)):
        y = t(x, generator=gen())
        assert y.dtype == dtype
        # Dihedral permutes pixels; reflection only copies existing values.
        assert set(y.to(torch.int64).unique().tolist()) <= set(x.to(torch.int64).unique().tolist())


def test_dihedral_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        RandomDihedral()(torch.zeros(2, 1, 4, 5))


def test_translate_matches_numpy_reflect_pad_and_varies_per_sample():
    m = 3
    x = distinct_images(64, size=9)
    y = RandomTranslate(m)(x, generator=gen(0))
    shifts = set()
    for xi, yi in zip(x.numpy(), y.numpy(), strict=True):
        padded = np.pad(xi, ((0, 0), (m, m), (m, m)), mode="reflect")
        found = [
            (dy, dx)
            for dy in range(-m, m + 1)
            for dx in range(-m, m + 1)
            if np.array_equal(padded[:, m - dy : m - dy + 9, m - dx : m - dx + 9], yi)
        ]
        assert len(found) == 1
        shifts.add(found[0])
    assert len(shifts) > 15  # 49 possible shifts, 64 samples


def test_translate_zero_is_identity_and_rejects_large_shift():
    x = torch.rand(3, 1, 5, 5)
    assert torch.equal(RandomTranslate(0)(x), x)
    with pytest.raises(ValueError, match="max_shift"):
        RandomTranslate(5)(x)
    with pytest.raises(ValueError, match="max_shift"):
        RandomTranslate(-1)
    with pytest.raises(TypeError, match="max_shift"):
        RandomTranslate(1.5)  # type: ignore[arg-type]


def test_gaussian_noise_statistics():
    x = torch.full((64, 1, 32, 32), 0.5)
    y = GaussianNoise(0.2)(x, generator=gen(0)) - x
    assert abs(y.mean().item()) < 0.005
    assert abs(y.std().item() - 0.2) < 0.005
    # Range: every sample has its own standard deviation within the range.
    z = GaussianNoise((0.05, 0.3))(torch.zeros(64, 1, 32, 32), generator=gen(1))
    stds = z.flatten(1).std(dim=1)
    assert stds.min() > 0.04
    assert stds.max() < 0.31
    assert stds.max() - stds.min() > 0.1


def test_random_intensity_is_per_sample_affine_within_ranges():
    x = torch.rand(1, 2, 6, 6, generator=gen(0)).expand(50, -1, -1, -1)
    t = RandomIntensity(scale=(0.5, 1.5), offset=(-0.2, 0.3))
    y = t(x, generator=gen(1))
    xs = x[0].flatten().numpy()
    for yi in y.numpy():
        a, b = np.polyfit(xs, yi.flatten(), 1)
        assert 0.5 - 1e-4 <= a <= 1.5 + 1e-4
        assert -0.2 - 1e-4 <= b <= 0.3 + 1e-4
    yc = RandomIntensity(scale=(0.5, 1.5), per_channel=True)(x, generator=gen(1))
    ratio = (yc[:, 0] - yc[:, 0].mean((1, 2), keepdim=True)).std((1, 2)) / (
        yc[:, 1] - yc[:, 1].mean((1, 2), keepdim=True)
    ).std((1, 2))
    base = (x[0, 0] - x[0, 0].mean()).std() / (x[0, 1] - x[0, 1].mean()).std()
    assert not torch.allclose(ratio, base.expand_as(ratio), atol=1e-3)


@pytest.mark.parametrize(
    ("scale", "offset"), [((1.0, 0.5), (0.0, 0.0)), ((1.0, 1.0), (float("nan"), 0.0))]
)
def test_random_intensity_rejects_bad_ranges(scale, offset):
    with pytest.raises(ValueError, match="scale|offset"):
        RandomIntensity(scale=scale, offset=offset)


@pytest.mark.parametrize("channels", [None, (1,), (0, 2)])
def test_channel_drop_blanks_one_eligible_channel_of_picked_samples(channels):
    # Oracle, sample by sample: either the sample is unchanged, or exactly one channel among
    # the eligible ones equals the fill and every other channel is unchanged.
    p, fill = 0.4, -3.0
    x = torch.rand(4000, 3, 4, 4, generator=gen(0)) + 1.0  # never equal to the fill
    y = RandomChannelDrop(p, channels=channels, fill=fill)(x, generator=gen(1))
    eligible = set(range(3)) if channels is None else set(channels)
    blanked = (y == fill).flatten(2).all(2).numpy()  # (B, C): channel set to the fill
    kept = (y == x).flatten(2).all(2).numpy()
    np.testing.assert_array_equal(blanked | kept, np.ones_like(kept))
    n_blanked = blanked.sum(1)
    assert set(n_blanked.tolist()) <= {0, 1}
    dropped = np.flatnonzero(blanked.any(0))
    assert set(dropped.tolist()) == eligible  # every eligible channel occurs, no other one
    # The picked share and the channel choice follow p and the uniform draw (4000 samples:
    # 5 standard errors of a Bernoulli share).
    assert abs(n_blanked.mean() - p) < 5 * math.sqrt(p * (1 - p) / len(x))
    per_channel = blanked.sum(0)[sorted(eligible)] / n_blanked.sum()
    assert np.all(np.abs(per_channel - 1 / len(eligible)) < 0.05)


def test_channel_drop_edge_probabilities_and_bad_arguments():
    x = torch.rand(16, 2, 3, 3, generator=gen(0))
    assert torch.equal(RandomChannelDrop(0.0)(x, generator=gen(1)), x)
    every = RandomChannelDrop(1.0)(x, generator=gen(1))
    assert ((every == 0).flatten(2).all(2).sum(1) == 1).all()
    assert repr(RandomChannelDrop(0.5, channels=[1])) == (
        "RandomChannelDrop(p=0.5, channels=(1,), fill=0.0)"
    )
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        RandomChannelDrop(1.5)
    with pytest.raises(TypeError, match="p must be a number"):
        RandomChannelDrop("0.5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="channels must be a non-empty sequence"):
        RandomChannelDrop(0.5, channels=[])
    with pytest.raises(ValueError, match="channels must be a non-empty sequence.*-1"):
        RandomChannelDrop(0.5, channels=[-1])
    with pytest.raises(ValueError, match="must not repeat"):
        RandomChannelDrop(0.5, channels=[1, 1])
    with pytest.raises(ValueError, match="fill must be a finite number"):
        RandomChannelDrop(0.5, fill=float("nan"))
    with pytest.raises(ValueError, match=r"channels \(2,\) must index the 2 channel"):
        RandomChannelDrop(0.5, channels=[2])(x)
    with pytest.raises(ValueError, match="at least 2 channels"):
        RandomChannelDrop(0.5)(x[:, :1])
    with pytest.raises(TypeError, match="floating-point"):
        RandomChannelDrop(0.5)(torch.zeros(2, 2, 3, 3, dtype=torch.uint8))


def test_normalize_matches_numpy():
    x = torch.rand(4, 3, 5, 5, generator=gen(0), dtype=torch.float64)
    mean, std = [0.1, 0.5, 0.9], [0.2, 1.5, 0.05]
    expected = (x.numpy() - np.array(mean)[None, :, None, None]) / np.array(std)[
        None, :, None, None
    ]
    np.testing.assert_allclose(Normalize(mean, std)(x).numpy(), expected, rtol=1e-12)


def test_normalize_rejects_bad_arguments():
    with pytest.raises(ValueError, match="std"):
        Normalize([0.0], [0.0])
    with pytest.raises(ValueError, match="std must have one value per channel"):
        Normalize([0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="3 channels"):
        Normalize([0.0] * 3, [1.0] * 3)(torch.zeros(1, 2, 4, 4))
    with pytest.raises(TypeError, match="floating-point"):
        Normalize([0.0], [1.0])(torch.zeros(1, 1, 4, 4, dtype=torch.uint8))


def reference_crop_or_pad(x: np.ndarray, th: int, tw: int, fill: float) -> np.ndarray:
    """Naive per-pixel reference: target pixel (i, j) reads source (i + oy, j + ox)."""
    _, h, w = x.shape
    oy, ox = (
        (h - th) // 2 if h > th else -((th - h) // 2),
        (w - tw) // 2 if w > tw else -((tw - w) // 2),
    )
    out = np.full((x.shape[0], th, tw), fill, dtype=x.dtype)
    for i in range(th):
        for j in range(tw):
            si, sj = i + oy, j + ox
            if 0 <= si < h and 0 <= sj < w:
                out[:, i, j] = x[:, si, sj]
    return out


@settings(max_examples=40)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    th=st.integers(1, 9),
    tw=st.integers(1, 9),
)
def test_center_crop_or_pad_matches_reference(h, w, th, tw):
    x = torch.arange(2 * h * w, dtype=torch.float32).reshape(2, h, w) + 1
    y = CenterCropOrPad((th, tw), fill=-1.0)(x)
    np.testing.assert_array_equal(y.numpy(), reference_crop_or_pad(x.numpy(), th, tw, -1.0))


def test_center_crop_or_pad_rejects_bad_size():
    with pytest.raises(ValueError, match="size"):
        CenterCropOrPad(0)
    with pytest.raises(TypeError, match="size"):
        CenterCropOrPad((1, 2, 3))  # type: ignore[arg-type]


def test_compose_applies_in_order_with_shared_generator():
    x = torch.rand(8, 1, 10, 10, generator=gen(0))
    t1, t2 = RandomDihedral(), GaussianNoise(0.1)
    g = gen(3)
    expected = t2(t1(x, generator=g), generator=g)
    assert torch.equal(Compose([t1, t2])(x, generator=gen(3)), expected)
    # Chunked: chunks are transformed in order, each with the shared generator.
    chunked = Compose([t1, t2], chunk_size=3)(x, generator=gen(3))
    g = gen(3)
    parts = [t2(t1(c, generator=g), generator=g) for c in torch.split(x, 3)]
    assert torch.equal(chunked, torch.cat(parts))
    with pytest.raises(ValueError, match="chunk_size"):
        Compose([t1], chunk_size=0)
    with pytest.raises(TypeError, match=r"transforms\[1\]"):
        Compose([t1, 3])  # type: ignore[list-item]


def numpy_rotate(
    img: np.ndarray, degrees: float, zoom: float, mode: str = "bilinear"
) -> np.ndarray:
    """Rotate a (C, H, W) image counter-clockwise on screen about its centre, pixel by pixel.

    Each output pixel samples the input at the inverse rotation of its offset from the centre,
    folded back into the image by mirroring about its outer edges (the pixel borders at -0.5
    and size - 0.5), and interpolates bilinearly between the four nearest pixels or takes the
    nearest one (``mode="nearest"``).
    """
    _c, h, w = img.shape
    t = np.deg2rad(degrees)
    yc, xc = (h - 1) / 2, (w - 1) / 2

    def fold(v: float, size: int) -> float:
        v = (v + 0.5) % (2 * size)
        v = 2 * size - v if v > size else v
        return min(max(v - 0.5, 0.0), size - 1.0)

    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            dx, dy = j - xc, i - yc
            sx = fold(xc + (dx * np.cos(t) - dy * np.sin(t)) / zoom, w)
            sy = fold(yc + (dx * np.sin(t) + dy * np.cos(t)) / zoom, h)
            if mode == "nearest":
                out[:, i, j] = img[:, int(np.rint(sy)), int(np.rint(sx))]
                continue
            x0, y0 = int(np.floor(sx)), int(np.floor(sy))
            x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
            fx, fy = sx - x0, sy - y0
            out[:, i, j] = (
                img[:, y0, x0] * (1 - fx) * (1 - fy)
                + img[:, y0, x1] * fx * (1 - fy)
                + img[:, y1, x0] * (1 - fx) * fy
                + img[:, y1, x1] * fx * fy
            )
    return out


@pytest.mark.parametrize("degrees", [-37.0, 20.0, 90.0, 133.0])
@pytest.mark.parametrize("zoom", [1.0, 1.25, 0.8])
def test_rotation_matches_a_pixel_by_pixel_reference(degrees, zoom):
    x = torch.rand(2, 2, 5, 7, generator=gen(6), dtype=torch.float64)
    y = RandomRotation((degrees, degrees), scale=(zoom, zoom))(x, generator=gen())
    for k in range(2):
        expected = numpy_rotate(x[k].numpy(), degrees, zoom)
        np.testing.assert_allclose(y[k].numpy(), expected, atol=1e-9)


@pytest.mark.parametrize("degrees", [-37.0, 20.0, 133.0])
@pytest.mark.parametrize("zoom", [1.0, 1.25])
def test_nearest_rotation_matches_the_reference_and_keeps_the_pixel_values(degrees, zoom):
    x = torch.rand(2, 2, 5, 7, generator=gen(6), dtype=torch.float64)
    rotation = RandomRotation((degrees, degrees), scale=(zoom, zoom), interpolation="nearest")
    y = rotation(x, generator=gen())
    for k in range(2):
        expected = numpy_rotate(x[k].numpy(), degrees, zoom, mode="nearest")
        np.testing.assert_array_equal(y[k].numpy(), expected)
        # Every output value is one of the input's, channel by channel.
        for c in range(2):
            assert set(y[k, c].flatten().tolist()) <= set(x[k, c].flatten().tolist())
    assert "interpolation='nearest'" in repr(rotation)


@pytest.mark.parametrize("k", [1, 2, 3, -1])
def test_quarter_turns_equal_rot90_and_zero_is_identity(k):
    x = torch.rand(3, 2, 6, 6, generator=gen(2))
    y = RandomRotation((90.0 * k, 90.0 * k))(x)
    torch.testing.assert_close(y, torch.rot90(x, k, dims=(2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(RandomRotation(0)(x), x, atol=1e-6, rtol=0)


def test_rotation_draws_angles_within_the_range():
    # A single bright pixel off the centre: its angle about the centre after the rotation is
    # the angle drawn, which must stay inside [-40, 40] and spread over it.
    x = torch.zeros(400, 1, 41, 41, dtype=torch.float64)
    x[:, 0, 20, 35] = 1.0
    y = RandomRotation(40, padding="zeros")(x, generator=gen(3))
    rows, cols = torch.meshgrid(torch.arange(41.0), torch.arange(41.0), indexing="ij")
    mass = y.sum(dim=(1, 2, 3))
    cy = (y[:, 0] * rows.double()).sum(dim=(1, 2)) / mass
    cx = (y[:, 0] * cols.double()).sum(dim=(1, 2)) / mass
    angle = torch.rad2deg(torch.atan2(20.0 - cy, cx - 20.0))  # counter-clockwise, y up
    assert angle.abs().max() <= 40.5
    assert angle.min() < -30
    assert angle.max() > 30


def test_rotation_keeps_low_precision_dtypes_and_rejects_bad_arguments():
    x = torch.rand(2, 1, 8, 8).to(torch.bfloat16)
    assert RandomRotation(20)(x, generator=gen()).dtype == torch.bfloat16
    with pytest.raises(TypeError, match="floating-point"):
        RandomRotation(10)(torch.zeros(1, 4, 4, dtype=torch.uint8))
    with pytest.raises(TypeError, match="degrees must be a number or a"):
        RandomRotation("45")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="degrees must be finite"):
        RandomRotation(math.inf)
    with pytest.raises(ValueError, match="degrees must be a finite"):
        RandomRotation((10, -10))
    with pytest.raises(ValueError, match=r"scale must hold positive zoom factors, got \(0, 1\)"):
        RandomRotation(10, scale=(0, 1))
    with pytest.raises(ValueError, match="padding must be one of"):
        RandomRotation(10, padding="wrap")
    with pytest.raises(ValueError, match="interpolation must be one of .* got 'cubic'"):
        RandomRotation(10, interpolation="cubic")


@settings(max_examples=25)
@given(
    b=st.integers(1, 4),
    c=st.integers(1, 3),
    size=st.integers(2, 10),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_random_transforms_keep_shape_and_are_finite(b, c, size, seed):
    x = torch.rand(b, c, size, size, generator=gen(seed))
    aug = Compose(
        [
            RandomDihedral(),
            RandomRotation(45, scale=(0.8, 1.2)),
            RandomTranslate(size - 1),
            GaussianNoise(0.1),
            RandomIntensity(),
        ]
    )
    y = aug(x, generator=gen(seed))
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_gradients_flow_through_transforms():
    x = torch.rand(4, 1, 8, 8, requires_grad=True)
    aug = Compose(
        [
            RandomDihedral(),
            RandomRotation(30),
            RandomTranslate(2),
            RandomIntensity(),
            Normalize([0.5], [2]),
        ]
    )
    aug(x, generator=gen()).sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        RandomDihedral()(np.zeros((1, 4, 4)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"x must have shape \(B, C, H, W\)"):
        RandomDihedral()(torch.zeros(4, 4))
    with pytest.raises(TypeError, match="floating-point"):
        GaussianNoise(0.1)(torch.zeros(1, 4, 4, dtype=torch.uint8))
    with pytest.raises(TypeError, match="generator"):
        GaussianNoise(0.1)(torch.zeros(1, 4, 4), generator=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="std"):
        GaussianNoise(-1.0)


def test_to_float_images():
    x8 = torch.tensor([0, 255], dtype=torch.uint8)
    x16 = torch.tensor([0, 65535], dtype=torch.uint16)
    assert to_float_images(x8).tolist() == [0.0, 1.0]
    assert to_float_images(x16).tolist() == [0.0, 1.0]
    assert to_float_images(torch.tensor([0.5], dtype=torch.float64)).dtype == torch.float32
    with pytest.raises(TypeError, match="uint8, uint16"):
        to_float_images(torch.tensor([1], dtype=torch.int32))


def test_channel_stats_matches_numpy_for_float_uint8_and_batches():
    x = torch.rand(37, 3, 6, 5, generator=gen(0), dtype=torch.float64) * 10 + 3
    mean, std = channel_stats(x, chunk_size=4)
    np.testing.assert_allclose(mean.numpy(), x.numpy().mean(axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(std.numpy(), x.numpy().std(axis=(0, 2, 3)), rtol=1e-10)

    u8 = torch.randint(0, 256, (20, 2, 4, 4), generator=gen(1), dtype=torch.uint8)
    mean8, std8 = channel_stats(u8)
    ref = u8.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean8.numpy(), ref.mean(axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(std8.numpy(), ref.std(axis=(0, 2, 3)), rtol=1e-10)

    loader = [(x[:10], None), (x[10:11], None), (x[11:], None)]
    mean_b, std_b = channel_stats(loader)  # type: ignore[arg-type]
    torch.testing.assert_close(mean_b, mean)
    torch.testing.assert_close(std_b, std)


def test_channel_stats_is_stable_for_large_offsets():
    x = torch.rand(50, 1, 8, 8, generator=gen(0), dtype=torch.float64) + 1e6
    _, std = channel_stats(x, chunk_size=3)
    np.testing.assert_allclose(std.numpy(), x.numpy().std(), rtol=1e-6)


def test_channel_stats_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one pixel"):
        channel_stats([])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        channel_stats(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="channels"):
        channel_stats([torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, 2)])
