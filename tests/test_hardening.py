"""Focused tests for issue 17: inputs that were refused wrongly or gave silently wrong results.

Each test states the behaviour the issue asked for and checks it against an independent
oracle (a hand computation, a closed form, or the same call written the plain way).
"""

from __future__ import annotations

import enum
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cellvision.checkpoint import load_checkpoint, save_checkpoint
from cellvision.config import as_builtin_number, check_probability
from cellvision.data import CenterCropOrPad, SlidingWindowDataset, parse_air_quality
from cellvision.data.windows import lag_features
from cellvision.engine import fit, train_one_epoch
from cellvision.layers.heads import class_prior_log_probs
from cellvision.metrics import BalancedClassificationMetrics, confusion_matrix
from cellvision.models import (
    ConvNet,
    ConvNetConfig,
    RecurrentConfig,
    RecurrentRegressor,
    ViT,
    ViTConfig,
)
from cellvision.sampling import ClassBalancedSampler, expected_class_distribution
from cellvision.splits import stratified_kfold, stratified_split

# ----------------------------------------------------------------- numpy numbers (item 8)


def test_numpy_numbers_are_accepted_where_python_numbers_are() -> None:
    labels = [0, 0, 1, 1, 2, 2]
    assert len(ClassBalancedSampler(labels, num_samples=np.int64(4))) == 4
    assert BalancedClassificationMetrics(np.int64(3)).n_classes == 3
    assert len(stratified_kfold(labels, n_splits=np.int64(2))) == 2
    plain = stratified_split(labels, val_fraction=0.5, seed=0)
    numpy = stratified_split(labels, val_fraction=np.float32(0.5), seed=np.int64(0))
    assert all(np.array_equal(a, b) for a, b in zip(plain, numpy, strict=True))


def test_configs_store_numpy_numbers_as_python_numbers() -> None:
    config = RecurrentConfig(input_size=np.int64(13), dropout=np.float32(0.25))
    assert type(config.input_size) is int
    assert type(config.dropout) is float
    assert RecurrentConfig.from_json(config.to_json()) == config  # JSON would fail on numpy
    vit = ViTConfig(n_classes=np.int64(3), dropout=np.float64(0.1))
    assert type(vit.n_classes) is int
    json.loads(vit.to_json())


def test_one_shared_coercion() -> None:
    assert as_builtin_number(np.bool_(True)) is True
    assert check_probability("p", np.float16(0.5)) == 0.5
    with pytest.raises(TypeError, match="must be a number"):
        check_probability("p", np.bool_(False))


# ----------------------------------------------------------------- metrics (item 1)


def test_merge_state_with_itself_in_the_list_counts_it_once() -> None:
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    target = torch.tensor([0, 1, 1, 0])
    parts = [BalancedClassificationMetrics(2).update(scores[i::2], target[i::2]) for i in (0, 1)]
    merged = parts[0].merge_state(parts).compute()  # returns: it used to hang
    assert torch.equal(merged.confusion_matrix, confusion_matrix(scores, target))
    # Mann-Whitney by hand for class 1: positives 0.8, 0.4; negatives 0.1, 0.7 -> 3 of 4 pairs.
    assert merged.per_class_roc_auc[1].item() == pytest.approx(0.75)


# ----------------------------------------------------------------- sampler (items 9, 10)


def test_large_alpha_gives_the_closed_form_class_mix() -> None:
    labels = [0] * 3 + [1] * 2 + [2] * 1
    sampler = ClassBalancedSampler(labels, alpha=400)
    counts = np.array([3.0, 2.0, 1.0])
    logits = (1 - 400) * np.log(counts)  # p_c is proportional to n_c ** (1 - alpha)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(sampler.class_probabilities.numpy(), expected, rtol=1e-12)
    assert set(sampler) == {5}  # only the single sample of class 2 has noticeable mass


def test_huge_class_weights_do_not_overflow() -> None:
    p = expected_class_distribution([0, 1, 1], class_weights=[1e308, 1e308])
    np.testing.assert_allclose(p.numpy(), [1 / 3, 2 / 3])


def test_zero_weight_class_is_never_drawn_without_replacement() -> None:
    labels = [0, 0, 1, 1, 1]
    for seed in range(20):
        sampler = ClassBalancedSampler(
            labels, class_weights=[0.0, 1e-309], replacement=False, num_samples=3, seed=seed
        )
        assert sorted(sampler) == [2, 3, 4]


def test_class_weights_keep_their_ratios() -> None:
    from cellvision.sampling import class_weights

    weights = class_weights([0] * 8 + [1] * 2, alpha=1.0)
    assert weights[0] / weights[1] == pytest.approx(2 / 8)


# ----------------------------------------------------------------- models (items 9, 10)


def test_class_freqs_at_the_float_limit_give_the_uniform_prior() -> None:
    np.testing.assert_allclose(class_prior_log_probs([1e308, 1e308]).numpy(), np.log([0.5, 0.5]))
    model = ConvNet(ConvNetConfig(channels=4, n_blocks=1, class_freqs=[1e308, 1e308]))
    assert torch.isfinite(model.classifier.bias).all()


def test_training_convnet_accepts_one_4x4_image() -> None:
    model = ConvNet(ConvNetConfig(channels=4, n_blocks=2)).train()
    assert model(torch.randn(1, 1, 4, 4)).shape == (1, 2)
    assert model.eval()(torch.randn(1, 1, 2, 2)).shape == (1, 2)  # eval mode: any size >= 2


def test_models_accept_any_float_under_autocast() -> None:
    vit = ViT(ViTConfig(img_size=32, n_blks=1, emb_size=8, n_heads=2, hidden_size=8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert vit(torch.zeros(1, 1, 32, 32, dtype=torch.bfloat16)).shape == (1, 2)


def test_models_of_another_dtype_take_inputs_of_that_dtype() -> None:
    model = RecurrentRegressor(RecurrentConfig(input_size=2, hidden_size=3)).double()
    assert model(torch.zeros(1, 4, 2, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize(
    "config",
    [
        ConvNetConfig(channels=5, n_blocks=3, kernel_size=5, mlp_hidden=7, in_channels=2),
        ConvNetConfig(channels=3, n_blocks=1, mlp_hidden=None, pool_every=1),
        ViTConfig(img_size=40, patch_size=8, n_blks=2, emb_size=12, n_heads=3, hidden_size=5),
        ViTConfig(img_size=20, n_blks=1, emb_size=4, n_heads=2, hidden_size=4, qkv_bias=False),
        RecurrentConfig(cell="lstm", input_size=3, hidden_size=4, num_layers=3, output_size=2),
        RecurrentConfig(cell="rnn", input_size=1, hidden_size=2, num_layers=1),
    ],
)
def test_parameter_count_equals_the_built_model(config: object) -> None:
    model_class = {ConvNetConfig: ConvNet, ViTConfig: ViT, RecurrentConfig: RecurrentRegressor}
    model = model_class[type(config)](config)  # type: ignore[index]
    assert config.parameter_count() == sum(p.numel() for p in model.parameters())  # type: ignore[attr-defined]


# ----------------------------------------------------------------- configs (item 10)


def test_flat_dict_none_for_an_optional_field() -> None:
    assert ConvNetConfig.from_flat_dict({"mlp_hidden": "none"}).mlp_hidden is None
    assert ConvNetConfig.from_flat_dict({"pool_every": "null"}).pool_every is None
    assert ConvNetConfig.from_flat_dict({"mlp_hidden": "32"}).mlp_hidden == 32


# ----------------------------------------------------------------- data (items 6, 9, 10)


def test_empty_window_batches_have_the_batch_shape() -> None:
    ds = SlidingWindowDataset(torch.zeros(10, 2), window=3, target_columns=[0, 1])
    for empty in (ds[len(ds) :], ds[[]], ds[np.array([], dtype=np.int64)]):
        assert empty[0].shape == (0, 3, 2)
        assert empty[1].shape == (0, 2)


def test_zero_dimensional_index_is_one_sample() -> None:
    ds = SlidingWindowDataset(torch.arange(20.0).reshape(10, 2), window=3)
    for index in (torch.tensor(2), np.array(2), np.int64(2)):
        x, y = ds[index]  # type: ignore[index]
        assert torch.equal(x, ds[2][0])
        assert torch.equal(y, ds[2][1])
        assert x.shape == (3, 2)


def test_target_columns_as_array() -> None:
    series = torch.arange(30.0).reshape(10, 3)
    by_list = SlidingWindowDataset(series, window=2, target_columns=[0, 2])
    by_array = SlidingWindowDataset(series, window=2, target_columns=np.array([0, 2]))
    assert by_array.target_columns == by_list.target_columns == (0, 2)


def test_lag_features_on_zero_rows() -> None:
    assert lag_features(np.zeros((0, 2)), [1, 3]).shape == (0, 4)
    assert lag_features(np.zeros(0), 1).shape == (0, 1)


def test_float64_series_within_float32_range_still_converts() -> None:
    ds = SlidingWindowDataset(np.array([[1e30], [2.0], [3.0]]), window=1)
    assert ds.series.dtype == torch.float32
    assert float(ds.series[0, 0]) == pytest.approx(1e30)


def test_center_crop_pad_fills_integer_images_exactly() -> None:
    out = CenterCropOrPad(4, fill=np.int64(255))(torch.zeros(1, 1, 2, 2, dtype=torch.uint8))
    expected = torch.full((1, 1, 4, 4), 255, dtype=torch.uint8)
    expected[..., 1:3, 1:3] = 0
    assert torch.equal(out, expected)


def test_csv_value_that_rounds_to_the_marker_is_missing() -> None:
    header = (
        "Date;Time;CO(GT);PT08.S1(CO);NMHC(GT);C6H6(GT);PT08.S2(NMHC);NOx(GT);PT08.S3(NOx);"
        "NO2(GT);PT08.S4(NO2);PT08.S5(O3);T;RH;AH;;"
    )
    row = "10/03/2004;18.00.00;-199,9999999;1360;150;11,9;1046;166;1056;113;1692;1268;13,6;48,9;1;;"
    aq = parse_air_quality(f"{header}\n{row}\n")
    assert math.isnan(float(aq["CO(GT)"][0]))
    assert float(np.float32(-199.9999999)) == -200.0  # the reason: float32 cannot tell them apart


# ----------------------------------------------------------------- checkpoints (items 2, 10)


class Phase(enum.IntEnum):
    G1 = 0
    S = 1


class Label(str):
    """A str subclass (as some libraries return for names)."""


def _model() -> ConvNet:
    return ConvNet(ConvNetConfig(channels=4, n_blocks=1))


def test_checkpoint_round_trips_numpy_and_subclassed_values(tmp_path: Path) -> None:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=np.float64(0.01), momentum=0.5)
    extra = {
        "val_auc": np.float64(0.91),
        "phase": Phase.S,
        "name": Label("G1"),
        "counts": defaultdict(int, {"G1": np.int64(3)}),
        "scores": [np.float32(0.5), (np.int32(1), Phase.G1)],
    }
    path = save_checkpoint(
        tmp_path / "m.pt", model, optimizer=optimizer, epoch=np.int64(7), extra=extra
    )
    loaded = load_checkpoint(path)
    assert loaded.extra == extra
    assert loaded.epoch == 7
    assert type(loaded.extra["phase"]) is int
    assert type(loaded.extra["name"]) is str
    assert type(loaded.extra["counts"]) is dict
    assert loaded.optimizer_state_dict is not None
    assert loaded.optimizer_state_dict["param_groups"][0]["lr"] == 0.01
    torch.optim.SGD(loaded.model.parameters(), lr=0.1).load_state_dict(loaded.optimizer_state_dict)


# ----------------------------------------------------------------- engine (items 4, 5)


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, generator=gen)
    y = torch.randint(0, 2, (12,), generator=gen)
    return [(x[:5], y[:5]), (x[5:5], y[5:5]), (x[5:], y[5:])]


def test_empty_batch_does_not_make_the_epoch_loss_nan() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the loss is a pure function
    stats = train_one_epoch(model, _batches(), optimizer)
    x = torch.cat([b[0] for b in _batches()])
    y = torch.cat([b[1] for b in _batches()])
    assert stats.n_samples == 12
    expected = nn.functional.cross_entropy(model(x), y, reduction="sum").item() / 12
    assert stats.loss == pytest.approx(expected, rel=1e-6)


class _Buffered(nn.Module):
    """A linear model whose buffer turns NaN in a given epoch while its outputs stay finite."""

    def __init__(self, nan_from_call: int) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("calls", torch.zeros(()))
        self.register_buffer("junk", torch.zeros(1))
        self.nan_from_call = nan_from_call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if int(self.calls) >= self.nan_from_call:
                self.junk.fill_(math.nan)
        out: torch.Tensor = self.linear(x)
        return out


def test_restore_best_never_restores_non_finite_weights() -> None:
    torch.manual_seed(0)
    batches = [b for b in _batches() if b[0].shape[0]]
    model = _Buffered(nan_from_call=3)  # two batches per epoch: NaN from epoch 1 on
    history = fit(
        model, batches, torch.optim.SGD(model.parameters(), lr=0.5), epochs=3, restore_best=True
    )
    assert history.values("train_loss")[2] < history.values("train_loss")[0]  # later was better
    assert all(bool(torch.isfinite(t).all()) for t in model.state_dict().values())
    assert int(model.calls) == 2  # the weights of epoch 0, the last finite one


def test_restore_best_without_a_finite_epoch_warns() -> None:
    model = _Buffered(nan_from_call=1)
    batches = [b for b in _batches() if b[0].shape[0]]
    with pytest.warns(RuntimeWarning, match="restore_best=True but no epoch"):
        fit(
            model, batches, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, restore_best=True
        )


def test_skip_policy_warns_and_leaves_the_weights_alone() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = [(torch.full((2, 3), math.nan), torch.zeros(2, dtype=torch.long))]
    with (
        pytest.warns(RuntimeWarning, match="skipping training epoch 4, batch 0"),
        pytest.raises(ValueError, match="only empty or skipped"),
    ):
        train_one_epoch(
            model,
            bad,
            torch.optim.SGD(model.parameters(), lr=0.1),
            nonfinite_loss="skip",
            epoch=4,
        )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_checkpoint_of_a_model_that_cannot_be_built_on_meta_still_loads(tmp_path: Path) -> None:
    import dataclasses

    from cellvision.config import Config
    from cellvision.models import register_model

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class DataReadingConfig(Config):
        width: int = 2

    @register_model("test_data_reading_linear")
    class DataReading(nn.Module):
        config_class = DataReadingConfig

        def __init__(self, config: DataReadingConfig) -> None:
            super().__init__()
            self.config = config
            self.linear = nn.Linear(config.width, 1)
            self.scale = float(self.linear.weight.detach().abs().sum())  # fails on meta

    model = DataReading(DataReadingConfig())
    loaded = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model)).model
    assert torch.equal(loaded.linear.weight, model.linear.weight)  # type: ignore[union-attr]
