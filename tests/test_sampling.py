"""Tests for cellvision.sampling against independent oracles (closed-form probabilities,
chi-square goodness of fit, a naive sharding reference and torch's own samplers)."""

from __future__ import annotations

import math
import os
import statistics
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

import cellvision
from cellvision.sampling import (
    ClassBalancedSampler,
    _class_sorted_positions,
    class_weights,
    expected_class_distribution,
)
from tests._distributed import free_port, gloo_group

# Small, very imbalanced label set (Jurkat-like skew), classes interleaved in a fixed order so
# that the class-sorted permutation inside the sampler is not the identity.
SMALL_COUNTS = (40, 12, 5, 2, 1)
SMALL_LABELS = torch.from_numpy(
    np.random.default_rng(7).permutation(np.repeat(np.arange(5), SMALL_COUNTS))
)

# Chi-square tests reject at significance level 1e-3 (fixed seeds, so the outcome is fixed).
CHI2_LEVEL = 0.999


def chi2_critical(quantile: float, df: int) -> float:
    """Chi-square quantile by the Wilson-Hilferty cube-root normal approximation."""
    z = statistics.NormalDist().inv_cdf(quantile)
    h = 2.0 / (9.0 * df)
    return df * (1.0 - h + z * math.sqrt(h)) ** 3


def chi2_statistic(observed: np.ndarray, expected: np.ndarray) -> float:
    return float(((observed - expected) ** 2 / expected).sum())


def oracle_sample_weights(labels: np.ndarray, alpha: float) -> np.ndarray:
    """Per-sample weights (1 / n_c) ** alpha computed from scratch with a Python Counter."""
    counts = Counter(labels.tolist())
    return np.array([(1.0 / counts[y]) ** alpha for y in labels.tolist()])


# --------------------------------------------------------------------------- helpers / oracles


def test_wilson_hilferty_matches_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (4, 29, 59, 199):
        exact = float(scipy_stats.chi2.ppf(CHI2_LEVEL, df))
        assert chi2_critical(CHI2_LEVEL, df) == pytest.approx(exact, rel=0.02)


def test_class_weights_matches_hand_computation() -> None:
    labels = [0] * 16 + [1] * 4 + [3]
    weights = class_weights(labels, alpha=0.5)
    np.testing.assert_allclose(weights.numpy(), [0.25, 0.5, 0.0, 1.0])
    assert weights.dtype == torch.float64


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9, 1.0])
def test_expected_class_distribution_matches_closed_form(alpha: float) -> None:
    counts = np.array([31_550, 606, 68, 15, 27], dtype=np.float64)
    labels = np.repeat(np.arange(5), counts.astype(np.int64))
    mass = counts * counts ** (-alpha)
    expected = mass / mass.sum()
    got = expected_class_distribution(labels, alpha)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    if alpha == 1.0:
        np.testing.assert_allclose(got.numpy(), np.full(5, 0.2))


def test_expected_class_distribution_with_explicit_weights() -> None:
    got = expected_class_distribution([0, 0, 0, 1, 2, 2], class_weights=[1.0, 3.0, 0.0, 5.0])
    np.testing.assert_allclose(got.numpy(), [3 / 6, 3 / 6, 0.0, 0.0])


# --------------------------------------------------------------------------- distribution


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9, 1.0])
def test_per_sample_frequencies_chi_square(alpha: float) -> None:
    draws = 10**6
    sampler = ClassBalancedSampler(SMALL_LABELS, alpha=alpha, num_samples=draws, seed=2024)
    indices = sampler.global_indices().numpy()
    assert indices.shape == (draws,)

    weights = oracle_sample_weights(SMALL_LABELS.numpy(), alpha)
    expected = draws * weights / weights.sum()
    observed = np.bincount(indices, minlength=len(weights))
    df = len(weights) - 1
    assert chi2_statistic(observed, expected) < chi2_critical(CHI2_LEVEL, df)

    class_observed = np.bincount(SMALL_LABELS.numpy()[indices], minlength=5)
    class_expected = draws * expected_class_distribution(SMALL_LABELS, alpha).numpy()
    assert chi2_statistic(class_observed, class_expected) < chi2_critical(CHI2_LEVEL, 4)


def test_chi_square_detects_a_wrong_alpha() -> None:
    # The test above must be able to fail: alpha=0.9 draws are far from the alpha=0.5 weights.
    draws = 10**5
    indices = ClassBalancedSampler(SMALL_LABELS, alpha=0.9, num_samples=draws).global_indices()
    weights = oracle_sample_weights(SMALL_LABELS.numpy(), 0.5)
    observed = np.bincount(indices.numpy(), minlength=len(weights))
    statistic = chi2_statistic(observed, draws * weights / weights.sum())
    assert statistic > chi2_critical(CHI2_LEVEL, len(weights) - 1)


def test_explicit_class_weights_chi_square_and_zero_weight_class() -> None:
    draws = 200_000
    weights_per_class = [2.0, 0.0, 1.0, 4.0, 1.0]
    sampler = ClassBalancedSampler(
        SMALL_LABELS, class_weights=weights_per_class, num_samples=draws, seed=5
    )
    indices = sampler.global_indices().numpy()
    labels = SMALL_LABELS.numpy()
    assert not np.any(labels[indices] == 1)
    per_sample = np.array([weights_per_class[y] for y in labels.tolist()])
    keep = per_sample > 0
    expected = draws * per_sample[keep] / per_sample.sum()
    observed = np.bincount(indices, minlength=len(labels))[keep]
    assert chi2_statistic(observed, expected) < chi2_critical(CHI2_LEVEL, int(keep.sum()) - 1)


def test_alpha_weights_equal_explicit_class_weights_draw() -> None:
    by_alpha = ClassBalancedSampler(SMALL_LABELS, alpha=0.7, num_samples=500, seed=9)
    explicit = (1.0 / np.array(SMALL_COUNTS, dtype=np.float64)) ** 0.7
    by_weights = ClassBalancedSampler(SMALL_LABELS, class_weights=explicit, num_samples=500, seed=9)
    assert torch.equal(by_alpha.global_indices(), by_weights.global_indices())


def test_works_beyond_2_pow_24_where_weighted_random_sampler_raises() -> None:
    n = 2**24 + 5
    # Class 1 is only at the last five positions, all beyond 2**24.
    labels = torch.zeros(n, dtype=torch.uint8)
    labels[-5:] = 1

    per_sample = torch.ones(n, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="2\\^24"):
        next(iter(WeightedRandomSampler(per_sample, num_samples=10)))
    del per_sample

    draws = 4000
    sampler = ClassBalancedSampler(labels, alpha=1.0, num_samples=draws, seed=11)
    indices = sampler.global_indices()
    del sampler
    assert indices.dtype == torch.int64
    assert int(indices.min()) >= 0
    assert int(indices.max()) < n
    rare = indices[labels[indices] == 1]
    common = indices[labels[indices] == 0]
    # alpha=1: each class half of the draws (binomial sd ~ 32; allow 5 sd).
    assert abs(rare.numel() - draws / 2) < 160
    assert set(rare.tolist()) == set(range(n - 5, n))
    # Within class 0 the draw is uniform over [0, 2**24): mean 2**23, sd 2**24/sqrt(12 k).
    sd = 2**24 / math.sqrt(12 * common.numel())
    assert abs(float(common.double().mean()) - 2**23) < 5 * sd
    assert int(common.max()) > 0.99 * 2**24


# --------------------------------------------------------------------------- without replacement


def test_without_replacement_pair_probabilities_chi_square() -> None:
    # Successive weighted sampling of 2 items: P(i then j) = w_i / W * w_j / (W - w_i).
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    weights = oracle_sample_weights(labels.numpy(), 1.0)
    total = weights.sum()
    sampler = ClassBalancedSampler(labels, alpha=1.0, num_samples=2, replacement=False, seed=3)
    epochs = 10_000
    observed: Counter[tuple[int, int]] = Counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        first, second = list(sampler)
        observed[(first, second)] += 1
    cells = [(i, j) for i in range(6) for j in range(6) if i != j]
    expected = np.array(
        [epochs * weights[i] / total * weights[j] / (total - weights[i]) for i, j in cells]
    )
    counts = np.array([observed[c] for c in cells], dtype=np.float64)
    assert sum(observed.values()) == counts.sum()  # never the same item twice
    assert chi2_statistic(counts, expected) < chi2_critical(CHI2_LEVEL, len(cells) - 1)


def test_without_replacement_full_epoch_is_a_permutation() -> None:
    sampler = ClassBalancedSampler(SMALL_LABELS, replacement=False, seed=1)
    indices = list(sampler)
    assert sorted(indices) == list(range(len(SMALL_LABELS)))


def test_without_replacement_skips_zero_weight_classes() -> None:
    labels = torch.tensor([0, 1, 1, 2, 2, 2])
    sampler = ClassBalancedSampler(
        labels, class_weights=[1.0, 0.0, 1.0], num_samples=4, replacement=False
    )
    assert sorted(sampler) == [0, 3, 4, 5]


# --------------------------------------------------------------------------- sharding


def naive_global(draw: list[int], num_replicas: int, drop_last: bool) -> list[int]:
    """DistributedSampler's rule written out: pad by repeating the start, or drop the tail."""
    if drop_last:
        return draw[: len(draw) // num_replicas * num_replicas]
    total = math.ceil(len(draw) / num_replicas) * num_replicas
    padded = list(draw)
    while len(padded) < total:
        padded += draw[: total - len(padded)]
    return padded


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("num_replicas", [1, 2, 3, 8])
def test_shards_partition_the_global_draw(
    num_replicas: int, drop_last: bool, replacement: bool
) -> None:
    num_samples = 53  # divisible by none of 2, 3, 8
    common = {"alpha": 0.9, "num_samples": num_samples, "replacement": replacement, "seed": 4}
    single = ClassBalancedSampler(SMALL_LABELS, **common)  # type: ignore[arg-type]
    single.set_epoch(2)
    draw = list(single)
    assert len(draw) == num_samples

    reference = naive_global(draw, num_replicas, drop_last)
    shards = []
    for rank in range(num_replicas):
        sampler = ClassBalancedSampler(
            SMALL_LABELS,
            num_replicas=num_replicas,
            rank=rank,
            drop_last=drop_last,
            **common,  # type: ignore[arg-type]
        )
        sampler.set_epoch(2)
        shard = list(sampler)
        assert len(shard) == len(sampler)
        assert shard == sampler.local_indices().tolist()
        assert sampler.global_indices().tolist() == reference
        shards.append(shard)

    lengths = {len(s) for s in shards}
    expected_length = num_samples // num_replicas if drop_last else -(-num_samples // num_replicas)
    assert lengths == {expected_length}
    # Rank r holds global positions r, r + R, ...: put every shard back in place; the positions
    # are disjoint, cover the padded (or dropped) draw, and reproduce it.
    rebuilt: list[int | None] = [None] * len(reference)
    for rank, shard in enumerate(shards):
        for k, index in enumerate(shard):
            assert rebuilt[rank + k * num_replicas] is None
            rebuilt[rank + k * num_replicas] = index
    assert rebuilt == reference


def test_same_seed_and_epoch_identical_different_epoch_or_seed_differs() -> None:
    def draw(seed: int, epoch: int) -> list[int]:
        sampler = ClassBalancedSampler(SMALL_LABELS, num_samples=200, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert draw(0, 3) == draw(0, 3)
    assert draw(0, 3) != draw(0, 4)
    assert draw(0, 3) != draw(1, 3)
    # seed + epoch collisions (as in DistributedSampler) are avoided.
    assert draw(0, 1) != draw(1, 0)


def test_iteration_is_repeatable_within_an_epoch_and_yields_python_ints() -> None:
    sampler = ClassBalancedSampler(SMALL_LABELS, num_samples=30)
    first = list(sampler)
    assert first == list(sampler)
    assert all(type(i) is int for i in first)


@settings(max_examples=40)
@given(
    counts=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=5).filter(
        lambda c: sum(c) > 0
    ),
    num_samples=st.integers(min_value=1, max_value=40),
    num_replicas=st.integers(min_value=1, max_value=5),
    drop_last=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**40),
    alpha=st.floats(min_value=0.0, max_value=2.0),
)
def test_sharding_properties(
    counts: list[int],
    num_samples: int,
    num_replicas: int,
    drop_last: bool,
    seed: int,
    alpha: float,
) -> None:
    if drop_last and num_samples < num_replicas:
        return
    labels = np.repeat(np.arange(len(counts)), counts)
    shards = [
        ClassBalancedSampler(
            labels,
            alpha=alpha,
            num_samples=num_samples,
            seed=seed,
            num_replicas=num_replicas,
            rank=rank,
            drop_last=drop_last,
        )
        for rank in range(num_replicas)
    ]
    drawn = [list(s) for s in shards]
    assert len({len(d) for d in drawn}) == 1
    interleaved = [i for group in zip(*drawn, strict=True) for i in group]
    assert interleaved == shards[0].global_indices().tolist()
    assert all(0 <= i < len(labels) for i in interleaved)


# --------------------------------------------------------------------------- inputs


@settings(max_examples=30)
@given(
    labels=st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=300),
    narrow=st.booleans(),
)
def test_class_sorted_positions_is_a_stable_argsort(labels: list[int], narrow: bool) -> None:
    # Both code paths (one pass per class for <= 32 classes, argsort beyond) against numpy.
    tensor = torch.tensor(labels, dtype=torch.uint8 if narrow else torch.int64)
    counts = torch.bincount(tensor.long())
    order = _class_sorted_positions(tensor, counts)
    assert order.dtype == torch.int32
    np.testing.assert_array_equal(order.numpy(), np.argsort(np.array(labels), kind="stable"))


class _Dataset:
    def __init__(self, targets: torch.Tensor) -> None:
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)


@pytest.mark.parametrize(
    "labels",
    [
        SMALL_LABELS,
        SMALL_LABELS.numpy().astype(np.int32),
        SMALL_LABELS.numpy().astype(np.uint8),
        SMALL_LABELS.numpy().astype(np.uint32),
        SMALL_LABELS.to(torch.int8),
        SMALL_LABELS.to(torch.int16),
        SMALL_LABELS.tolist(),
        tuple(SMALL_LABELS.tolist()),
        _Dataset(SMALL_LABELS),
    ],
    ids=[
        "tensor",
        "int32-ndarray",
        "uint8-ndarray",
        "uint32-ndarray",
        "int8-tensor",
        "int16-tensor",
        "list",
        "tuple",
        "dataset-targets",
    ],
)
def test_label_containers_give_the_same_draw(labels: object) -> None:
    reference = ClassBalancedSampler(SMALL_LABELS, num_samples=64, seed=8)
    sampler = ClassBalancedSampler(labels, num_samples=64, seed=8)
    assert list(sampler) == list(reference)
    assert torch.equal(sampler.class_counts, torch.tensor(SMALL_COUNTS))


def test_defaults_num_samples_to_dataset_size_and_works_in_a_dataloader() -> None:
    values = torch.arange(len(SMALL_LABELS)) * 10
    sampler = ClassBalancedSampler(SMALL_LABELS, seed=2)
    assert len(sampler) == len(SMALL_LABELS)
    loader = DataLoader(TensorDataset(values), batch_size=7, sampler=sampler)
    batches = torch.cat([batch for (batch,) in loader])
    assert batches.tolist() == [10 * i for i in sampler]


def test_top_level_export() -> None:
    assert cellvision.ClassBalancedSampler is ClassBalancedSampler
    assert "ClassBalancedSampler" in cellvision.__all__


BAD_INPUTS: list[tuple[dict[str, object], type[Exception], str]] = [
    ({"labels": []}, ValueError, "labels must be non-empty"),
    ({"labels": torch.tensor([], dtype=torch.long)}, ValueError, "labels must be non-empty"),
    ({"labels": np.array([], dtype=np.int64)}, ValueError, "labels must be non-empty"),
    ({"labels": [0.5, 1.0]}, TypeError, "labels must be a sequence of integers"),
    ({"labels": torch.tensor([0.0, 1.0])}, TypeError, "labels must have an integer dtype"),
    ({"labels": np.array([0.0, 1.0])}, TypeError, "labels must have an integer dtype"),
    ({"labels": torch.tensor([True, False])}, TypeError, "labels must have an integer dtype"),
    ({"labels": ["a", "b"]}, TypeError, "labels must be a sequence of integers"),
    ({"labels": "0101"}, TypeError, "labels must be a tensor"),
    ({"labels": object()}, TypeError, "labels must be a tensor"),
    ({"labels": [0, -1, 2]}, ValueError, "labels must be non-negative"),
    ({"labels": torch.zeros(2, 3, dtype=torch.long)}, ValueError, "labels must be 1-D"),
    ({"labels": [0, 1, 10**9]}, ValueError, "labels must be class indices 0..C-1"),
    ({"labels": _Dataset(torch.tensor([0.5]))}, TypeError, "labels.targets must have an integer"),
    ({"alpha": -0.1}, ValueError, "alpha must be a finite number >= 0"),
    ({"alpha": float("nan")}, ValueError, "alpha must be a finite number >= 0"),
    ({"alpha": float("inf")}, ValueError, "alpha must be a finite number >= 0"),
    ({"alpha": "0.9"}, TypeError, "alpha must be a finite number"),
    ({"num_samples": 0}, ValueError, "num_samples must be a positive integer"),
    ({"num_samples": -5}, ValueError, "num_samples must be a positive integer"),
    ({"num_samples": 2.5}, TypeError, "num_samples must be a positive integer"),
    ({"num_replicas": 2, "rank": 2}, ValueError, "rank must be in [0, num_replicas=2)"),
    ({"num_replicas": 1, "rank": 5}, ValueError, "rank must be in [0, num_replicas=1)"),
    ({"rank": -1}, ValueError, "rank must be a non-negative integer"),
    ({"num_replicas": 0}, ValueError, "num_replicas must be a positive integer"),
    ({"class_weights": [0.0, 0.0, 0.0]}, ValueError, "class_weights must give a positive"),
    ({"class_weights": [0.0, 0.0, 0.0, 1.0]}, ValueError, "class_weights must give a positive"),
    ({"class_weights": [1.0, -1.0, 1.0]}, ValueError, "class_weights must be finite and non-neg"),
    ({"class_weights": [1.0, float("nan"), 1]}, ValueError, "class_weights must be finite"),
    ({"class_weights": [1.0, 1.0]}, ValueError, "class_weights must be 1-D with one weight"),
    ({"class_weights": 1.0}, TypeError, "class_weights must be a 1-D"),
    ({"replacement": False, "num_samples": 7}, ValueError, "num_samples must be at most 6"),
    ({"replacement": 1}, TypeError, "replacement must be a bool"),
    ({"drop_last": True, "num_replicas": 4, "num_samples": 3}, ValueError, "num_samples must be"),
    ({"seed": -1}, ValueError, "seed must be an integer in [0, 2**64)"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_INPUTS)
def test_bad_inputs_raise_clear_errors(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    arguments: dict[str, object] = {"labels": [0, 0, 0, 1, 1, 2]}
    arguments.update(kwargs)
    labels = arguments.pop("labels")
    with pytest.raises(error, match=None) as info:
        ClassBalancedSampler(labels, **arguments)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_zero_class_weights_for_present_classes_raise() -> None:
    # The present classes 0 and 2 get weight 0, only the absent class 1 is positive.
    with pytest.raises(ValueError, match="class_weights must give a positive weight"):
        ClassBalancedSampler([0, 0, 2], class_weights=[0.0, 1.0, 0.0])


def test_set_epoch_validates() -> None:
    sampler = ClassBalancedSampler([0, 1])
    with pytest.raises(ValueError, match="epoch must be a non-negative integer, got -1"):
        sampler.set_epoch(-1)
    with pytest.raises(TypeError, match="epoch must be a non-negative integer"):
        sampler.set_epoch(1.0)  # type: ignore[arg-type]


def test_helpers_validate_like_the_sampler() -> None:
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0, got -1"):
        class_weights([0, 1], alpha=-1)
    with pytest.raises(ValueError, match="labels must be non-empty"):
        expected_class_distribution([], 0.5)


# --------------------------------------------------------------------------- distributed (gloo)


def _gloo_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    with gloo_group(rank, world_size, port):
        # num_replicas and rank come from the initialised process group.
        sampler = ClassBalancedSampler(SMALL_LABELS, num_samples=41, seed=17)
        sampler.set_epoch(3)
        shard = torch.tensor(list(sampler), dtype=torch.int64)
        gathered = [torch.empty_like(shard) for _ in range(world_size)]
        dist.all_gather(gathered, shard)
        if rank == 0:
            torch.save(
                {"gathered": gathered, "num_replicas": sampler.num_replicas},
                os.path.join(out_dir, "result.pt"),
            )


@pytest.mark.slow
def test_two_process_gloo_shards_equal_single_process_draw(tmp_path: Path) -> None:
    world_size = 2
    mp.spawn(
        _gloo_worker,
        args=(world_size, free_port(), str(tmp_path)),
        nprocs=world_size,
        join=True,
    )
    result = torch.load(tmp_path / "result.pt")
    assert result["num_replicas"] == world_size
    shards = [t.tolist() for t in result["gathered"]]
    assert len(shards[0]) == len(shards[1]) == 21

    single = ClassBalancedSampler(SMALL_LABELS, num_samples=41, seed=17)
    single.set_epoch(3)
    draw = list(single)
    gathered = [i for pair in zip(*shards, strict=True) for i in pair]
    assert gathered == naive_global(draw, world_size, drop_last=False)
    assert gathered[:41] == draw
