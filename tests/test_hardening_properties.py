"""Property tests for the classes of defect behind issue 17.

* Checkpoints: whatever ``save_checkpoint`` accepts, ``load_checkpoint`` returns equal; what it
  cannot store is refused on save with a ``TypeError`` naming the key path.
* Metrics: merging any partition of the updates (with the receiver in the list or not) equals
  one pass over all the data; metrics of different AUROC modes refuse to merge.
* Crafted checkpoints: a config field changed in the file fails with ``ValueError`` before the
  model is allocated.
* Engine: empty batches are skipped; a non-finite loss raises naming epoch and batch, or is
  skipped without touching the weights.

Settings: at most 40 examples per property and ``deadline=None`` (explicitly: the shared CI
machines are slow and busy, and a timing deadline would make these tests flaky, not stricter).
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict, defaultdict, namedtuple
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from cellvision.checkpoint import load_checkpoint, save_checkpoint
from cellvision.engine import train_one_epoch
from cellvision.metrics import BalancedClassificationMetrics
from cellvision.models import ConvNet, ConvNetConfig, RecurrentConfig, RecurrentRegressor

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Colour(enum.IntEnum):
    RED = 1
    GREEN = 2


class Tag(str):
    """A str subclass."""


class Score(float):
    """A float subclass."""


Pair = namedtuple("Pair", ["a", "b"])

# ----------------------------------------------------------------- checkpoint values

_int64 = st.integers(-(2**63), 2**63 - 1)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    _int64.map(np.int64),
    st.integers(-(2**31), 2**31 - 1).map(np.int32),
    st.floats(allow_nan=False, width=32).map(np.float32),
    st.floats(allow_nan=False).map(np.float64),
    st.booleans().map(np.bool_),
    st.sampled_from(list(Colour)),
    st.text(max_size=8).map(Tag),
    st.floats(allow_nan=False).map(Score),
    st.integers(-5, 5).map(lambda n: torch.arange(abs(n), dtype=torch.float32) * n),
)
_keys = st.one_of(st.text(max_size=6), st.integers(-100, 100), st.sampled_from(list(Colour)))


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(_keys, children, max_size=4),
        st.dictionaries(st.text(max_size=6), children, max_size=4).map(
            lambda d: defaultdict(list, d)
        ),
        st.dictionaries(st.text(max_size=6), children, max_size=4).map(OrderedDict),
        st.tuples(children, children).map(lambda t: Pair(*t)),
    )


_values = st.recursive(_scalars, _containers, max_leaves=12)


def _equal(a: Any, b: Any) -> bool:
    """Deep equality where tensors compare with ``torch.equal``."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return (
            isinstance(b, (list, tuple))
            and isinstance(b, list) == isinstance(a, list)
            and len(a) == len(b)
            and all(_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    return bool(a == b)


_PLAIN_TYPES = (type(None), bool, int, float, str, list, tuple, dict, OrderedDict, torch.Tensor)


def _only_plain_types(value: Any) -> bool:
    if type(value) not in _PLAIN_TYPES:
        return False
    if isinstance(value, dict):
        return all(_only_plain_types(k) and _only_plain_types(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_only_plain_types(v) for v in value)
    return True


@pytest.fixture(scope="module")
def tiny_model() -> nn.Module:
    return RecurrentRegressor(RecurrentConfig(input_size=1, hidden_size=1, num_layers=1))


@SETTINGS
@given(value=_values)
def test_checkpoint_returns_every_accepted_value_equal(
    value: Any, tiny_model: nn.Module, tmp_path: Path
) -> None:
    path = save_checkpoint(tmp_path / "v.pt", tiny_model, extra=value)
    loaded = load_checkpoint(path).extra
    assert _equal(value, loaded)
    assert _only_plain_types(loaded)


_unsupported = st.sampled_from(
    [object(), {1, 2}, frozenset({3}), b"raw", 1 + 2j, np.zeros(2), np.complex64(1), range(3)]
)


@SETTINGS
@given(
    path=st.lists(st.one_of(st.text(max_size=4), st.integers(0, 3)), min_size=1, max_size=4),
    bad=_unsupported,
)
def test_checkpoint_refuses_unsupported_values_naming_the_key_path(
    path: list[str | int], bad: Any, tiny_model: nn.Module, tmp_path: Path
) -> None:
    # Build a nest in which the bad value sits at ``path``: str steps are dict keys, int steps
    # list positions (padded with None).
    value: Any = bad
    where = "extra"
    for step in reversed(path):
        value = [None] * step + [value] if isinstance(step, int) else {step: value}
    for step in path:
        where += f"[{step!r}]"
    with pytest.raises(TypeError) as info:
        save_checkpoint(tmp_path / "bad.pt", tiny_model, extra=value)
    assert where in str(info.value)
    assert not (tmp_path / "bad.pt").exists()


# ----------------------------------------------------------------- metrics merging


@st.composite
def _partitioned_updates(draw: st.DrawFn) -> tuple[int, torch.Tensor, torch.Tensor, list[int]]:
    n_classes = draw(st.integers(2, 4))
    n = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    # Few distinct values so that ties occur.
    scores = torch.randint(0, 5, (n, n_classes), generator=gen).float()
    target = torch.randint(0, n_classes, (n,), generator=gen)
    parts = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    return n_classes, scores, target, parts


def _nan_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.equal(torch.isnan(a), torch.isnan(b))) and bool(
        torch.equal(a.nan_to_num(-7.0), b.nan_to_num(-7.0))
    )


@SETTINGS
@given(
    case=_partitioned_updates(),
    auroc=st.sampled_from(["exact", "binned", "none"]),
    receiver_in_list=st.booleans(),
    batches_per_part=st.integers(1, 3),
)
def test_merging_any_partition_equals_one_pass(
    case: tuple[int, torch.Tensor, torch.Tensor, list[int]],
    auroc: str,
    receiver_in_list: bool,
    batches_per_part: int,
) -> None:
    n_classes, scores, target, parts = case
    # score_type="logits": "auto" decides per batch whether scores are probabilities, so
    # it can legitimately differ between batchings; the merge itself must not.
    kwargs: dict[str, Any] = {"auroc": auroc, "score_type": "logits"}
    one_pass = BalancedClassificationMetrics(n_classes, **kwargs)
    one_pass.update(scores, target)
    expected = one_pass.compute()

    metrics = [BalancedClassificationMetrics(n_classes, **kwargs) for _ in range(4)]
    labels = torch.tensor(parts)
    for k, metric in enumerate(metrics):
        rows = torch.nonzero(labels == k).flatten()
        for chunk in rows.tensor_split(batches_per_part):
            metric.update(scores[chunk], target[chunk])
    others = metrics if receiver_in_list else metrics[1:]
    merged = metrics[0].merge_state(iter(others)).compute()  # a generator works too

    assert torch.equal(merged.confusion_matrix, expected.confusion_matrix)
    assert _nan_equal(merged.per_class_roc_auc, expected.per_class_roc_auc)
    assert math.isnan(merged.roc_auc) == math.isnan(expected.roc_auc)
    if not math.isnan(expected.roc_auc):
        assert merged.roc_auc == pytest.approx(expected.roc_auc, abs=1e-12)
    # The other metrics are left unchanged by the merge.
    assert int(metrics[1].confusion.sum()) == parts.count(1)


@SETTINGS
@given(modes=st.permutations(["exact", "binned", "none"]), n_classes=st.integers(2, 4))
def test_merging_metrics_of_different_modes_is_refused(modes: list[str], n_classes: int) -> None:
    receiver = BalancedClassificationMetrics(n_classes, auroc=modes[0])  # type: ignore[arg-type]
    receiver.update(torch.zeros(2, n_classes), torch.zeros(2, dtype=torch.long))
    other = BalancedClassificationMetrics(n_classes, auroc=modes[1])  # type: ignore[arg-type]
    before = receiver.confusion.clone()
    with pytest.raises(ValueError, match=f"auroc={modes[0]!r}"):
        receiver.merge_state([receiver, other])
    assert torch.equal(receiver.confusion, before)  # nothing merged half-way


# ----------------------------------------------------------------- crafted checkpoints


@pytest.fixture(scope="module")
def convnet_payload(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    model = ConvNet(ConvNetConfig(channels=4, n_blocks=2, mlp_hidden=3))
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "convnet.pt", model)
    payload: dict[str, Any] = torch.load(path, weights_only=True)
    return payload


_SHAPE_FIELDS = ("n_blocks", "channels", "in_channels", "n_classes", "mlp_hidden", "kernel_size")


@SETTINGS
@given(
    field=st.sampled_from(_SHAPE_FIELDS),
    value=st.one_of(st.integers(-3, 64), st.integers(65, 10**12)),
)
def test_crafted_config_fails_with_value_error_before_allocating(
    field: str, value: int, convnet_payload: dict[str, Any], tmp_path: Path
) -> None:
    config = dict(convnet_payload["config"])
    if config[field] == value:
        return
    config[field] = value
    path = tmp_path / "crafted.pt"
    torch.save({**convnet_payload, "config": config}, path)
    with pytest.raises(ValueError, match="crafted.pt"):
        load_checkpoint(path)


@SETTINGS
@given(key_index=st.integers(0, 100), new_shape=st.sampled_from([(1,), (2, 2), (0,), (7, 1, 1)]))
def test_crafted_tensor_shapes_are_refused(
    key_index: int, new_shape: tuple[int, ...], convnet_payload: dict[str, Any], tmp_path: Path
) -> None:
    state = dict(convnet_payload["state_dict"])
    keys = [k for k, v in state.items() if v.ndim > 0]
    key = keys[key_index % len(keys)]
    if tuple(state[key].shape) == new_shape:
        return
    state[key] = torch.zeros(new_shape)
    path = tmp_path / "crafted.pt"
    torch.save({**convnet_payload, "state_dict": state}, path)
    with pytest.raises(ValueError, match="do not fit"):
        load_checkpoint(path)


# ----------------------------------------------------------------- engine


@st.composite
def _batch_sizes(draw: st.DrawFn) -> list[int]:
    sizes = draw(st.lists(st.integers(0, 5), min_size=1, max_size=6))
    if not any(sizes):
        sizes.append(draw(st.integers(1, 5)))
    return sizes


def _loader(sizes: list[int], seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(n, 3, generator=gen), torch.randint(0, 2, (n,), generator=gen)) for n in sizes
    ]


@SETTINGS
@given(sizes=_batch_sizes(), seed=st.integers(0, 1000))
def test_empty_batches_are_skipped(sizes: list[int], seed: int) -> None:
    torch.manual_seed(seed)
    with_empty = nn.Linear(3, 2)
    without_empty = nn.Linear(3, 2)
    without_empty.load_state_dict(with_empty.state_dict())
    batches = _loader(sizes, seed)
    stats = train_one_epoch(with_empty, batches, torch.optim.SGD(with_empty.parameters(), lr=0.1))
    reference = train_one_epoch(
        without_empty,
        [b for b in batches if b[0].shape[0]],
        torch.optim.SGD(without_empty.parameters(), lr=0.1),
    )
    assert math.isfinite(stats.loss)
    assert stats.loss == reference.loss
    assert stats.n_samples == sum(sizes)
    for a, b in zip(with_empty.parameters(), without_empty.parameters(), strict=True):
        assert torch.equal(a, b)


@SETTINGS
@given(
    sizes=st.lists(st.integers(1, 4), min_size=2, max_size=5),
    bad=st.data(),
    value=st.sampled_from([math.nan, math.inf, -math.inf]),
    epoch=st.integers(0, 9),
)
def test_non_finite_loss_raises_or_is_skipped(
    sizes: list[int], bad: st.DataObject, value: float, epoch: int
) -> None:
    batches = _loader(sizes, 0)
    index = bad.draw(st.integers(0, len(sizes) - 1))
    x, y = batches[index]
    batches[index] = (torch.full_like(x, value), y)

    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FloatingPointError, match=f"epoch {epoch}, batch {index} "):
        train_one_epoch(model, batches, torch.optim.SGD(model.parameters(), lr=0.1), epoch=epoch)
    # Raised before the bad batch reached the weights: they are those after the good prefix.
    reference = nn.Linear(3, 2)
    reference.load_state_dict(start)
    if index:
        train_one_epoch(reference, batches[:index], torch.optim.SGD(reference.parameters(), lr=0.1))
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)

    skipping = nn.Linear(3, 2)
    skipping.load_state_dict(start)
    with pytest.warns(RuntimeWarning, match=f"batch {index}"):
        stats = train_one_epoch(
            skipping,
            batches,
            torch.optim.SGD(skipping.parameters(), lr=0.1),
            nonfinite_loss="skip",
        )
    clean = nn.Linear(3, 2)
    clean.load_state_dict(start)
    expected = train_one_epoch(
        clean,
        batches[:index] + batches[index + 1 :],
        torch.optim.SGD(clean.parameters(), lr=0.1),
    )
    assert stats.loss == expected.loss
    for a, b in zip(skipping.parameters(), clean.parameters(), strict=True):
        assert torch.equal(a, b)
