"""One table of bad inputs across the public API.

Each row calls the public API the way a user might get it wrong and asserts the exception type
and that the message names the offending argument and shows the offending value, so the user can
fix the call without reading the library's source.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cellvision.checkpoint import load_checkpoint, save_checkpoint
from cellvision.data import (
    AirQuality,
    CellCycleFolder,
    CellImageDataset,
    CenterCropOrPad,
    RandomDihedral,
    RandomRotation,
    RandomTranslate,
    SlidingWindowDataset,
    ZScoreScaler,
    make_synthetic_cells,
    parse_air_quality,
)
from cellvision.engine import evaluate, fit, train_one_epoch
from cellvision.features import pca
from cellvision.metrics import BalancedClassificationMetrics, RegressionMetrics
from cellvision.models import (
    ConvNet,
    ConvNetConfig,
    RecurrentConfig,
    RecurrentRegressor,
    ViT,
    ViTConfig,
    create_model,
)
from cellvision.sampling import ClassBalancedSampler
from cellvision.splits import MonthFoldSplitter, stratified_kfold, stratified_split

AIR_QUALITY_HEADER = (
    "Date;Time;CO(GT);PT08.S1(CO);NMHC(GT);C6H6(GT);PT08.S2(NMHC);NOx(GT);PT08.S3(NOx);"
    "NO2(GT);PT08.S4(NO2);PT08.S5(O3);T;RH;AH;;"
)
AIR_QUALITY_ROWS = [
    "10/03/2004;18.00.00;2,6;1360;150;11,9;1046;166;1056;113;1692;1268;13,6;48,9;0,7578;;",
    "10/03/2004;19.00.00;2;1292;112;9,4;955;103;1174;92;1559;972;13,3;47,7;0,7255;;",
    "10/03/2004;20.00.00;2,2;1402;88;9,0;939;131;1140;114;1555;1074;11,9;54,0;0,7502;;",
]


def _csv(*rows: str, header: str = AIR_QUALITY_HEADER) -> bytes:
    return "\r\n".join([header, *rows]).encode()


def _linear() -> torch.nn.Linear:
    return torch.nn.Linear(2, 2)


def _sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1)


class _Foreign:
    """An arbitrary class: pickling it stores a reference to this module's code."""

    def __init__(self) -> None:
        self.payload = "not a tensor"


def _tiny_vit() -> ViT:
    return ViT(ViTConfig(img_size=32, n_blks=1, emb_size=8, n_heads=2, hidden_size=8))


def _tiny_convnet() -> ConvNet:
    return ConvNet(ConvNetConfig(channels=4, n_blocks=1, mlp_hidden=None))


def _saved_convnet(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "convnet.pt", _tiny_convnet())


def _crafted(tmp_path: Path, **changes: Any) -> Path:
    """A valid checkpoint with some payload entries replaced (config fields via ``config``)."""
    payload = torch.load(_saved_convnet(tmp_path), weights_only=True)
    config = {**payload["config"], **changes.pop("config", {})}
    payload.update(config=config, **changes)
    path = tmp_path / "crafted.pt"
    torch.save(payload, path)
    return path


def _reshaped_weight(tmp_path: Path) -> Path:
    state = dict(torch.load(_saved_convnet(tmp_path), weights_only=True)["state_dict"])
    state["stem.weight"] = state["stem.weight"].reshape(-1)  # same values, wrong shape
    return _crafted(tmp_path, state_dict=state)


def _self_containing() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


class _NeverIterated:
    """A loader that fails if training starts: proves a check ran before the first epoch."""

    def __iter__(self) -> Any:
        raise RuntimeError("the loader was iterated")


def _loss_nan_at_batch_1(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    loss = torch.nn.functional.cross_entropy(outputs, targets)
    return loss * math.nan if bool((targets == 1).all()) else loss


def _two_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [
        (torch.zeros(2, 2), torch.zeros(2, dtype=torch.long)),
        (torch.zeros(2, 2), torch.ones(2, dtype=torch.long)),
    ]


def _windows() -> SlidingWindowDataset:
    return SlidingWindowDataset(torch.zeros(10, 2), window=3)


def _decreasing_air_quality() -> AirQuality:
    ts = np.array(["2004-03-10T19", "2004-03-10T18"], dtype="datetime64[s]")
    return AirQuality(ts, np.zeros((2, 1), dtype=np.float32), ("a",))


def _foreign_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "foreign.pt"
    with path.open("wb") as fh:
        pickle.dump({"model_state_dict": _Foreign()}, fh, protocol=2)
    return path


@dataclass(frozen=True)
class BadInput:
    """A named call that must fail with ``error`` and a message containing ``fragments``."""

    name: str
    call: Callable[[Path], Any]
    error: type[Exception]
    fragments: tuple[str, ...]


CASES = [
    # ------------------------------------------------------------------ models and configs
    BadInput(
        "vit_input_rank",
        lambda _: ViT(ViTConfig())(torch.zeros(1, 64, 64)),
        ValueError,
        ("x must be a 4-D", "(1, 64, 64)"),
    ),
    BadInput(
        "vit_input_channels",
        lambda _: ViT(ViTConfig())(torch.zeros(1, 3, 64, 64)),
        ValueError,
        ("x must have 1 channel", "(1, 3, 64, 64)"),
    ),
    BadInput(
        "vit_input_size_without_dynamic_size",
        lambda _: ViT(ViTConfig())(torch.zeros(1, 1, 48, 48)),
        ValueError,
        ("img_size", "(1, 1, 48, 48)", "dynamic_img_size"),
    ),
    BadInput(
        "vit_heads_do_not_divide_width",
        lambda _: ViTConfig(emb_size=30, n_heads=8),
        ValueError,
        ("emb_size", "n_heads", "30", "8"),
    ),
    BadInput(
        "vit_odd_image_size_with_raise_policy",
        lambda _: ViTConfig(img_size=66, patch_size=16, patch_remainder="raise"),
        ValueError,
        ("img_size", "patch_size=16", "66"),
    ),
    BadInput(
        "vit_one_class",
        lambda _: ViTConfig(n_classes=1),
        ValueError,
        ("n_classes", "got 1"),
    ),
    BadInput(
        "vit_dropout_one",
        lambda _: ViTConfig(dropout=1.0),
        ValueError,
        ("dropout", "1.0"),
    ),
    BadInput(
        "class_freqs_with_zero",
        lambda _: ViTConfig(n_classes=3, class_freqs=(1.0, 0.0, 2.0)),
        ValueError,
        ("class_freqs", "(1.0, 0.0, 2.0)"),
    ),
    BadInput(
        "class_freqs_wrong_length",
        lambda _: ViTConfig(n_classes=3, class_freqs=(1.0, 2.0)),
        ValueError,
        ("class_freqs", "n_classes=3", "(1.0, 2.0)"),
    ),
    BadInput(
        "convnet_zero_blocks",
        lambda _: ConvNetConfig(n_blocks=0),
        ValueError,
        ("n_blocks", "got 0"),
    ),
    BadInput(
        "convnet_input_channels",
        lambda _: ConvNet(ConvNetConfig())(torch.zeros(2, 3, 64, 64)),
        ValueError,
        ("x must have 1 channel", "(2, 3, 64, 64)"),
    ),
    BadInput(
        "recurrent_unknown_cell",
        lambda _: RecurrentConfig(cell="transformer"),  # type: ignore[arg-type]
        ValueError,
        ("cell", "'transformer'"),
    ),
    BadInput(
        "recurrent_feature_count",
        lambda _: RecurrentRegressor(RecurrentConfig(input_size=13))(torch.zeros(2, 48, 5)),
        ValueError,
        ("input_size=13", "(2, 48, 5)"),
    ),
    BadInput(
        "recurrent_input_rank",
        lambda _: RecurrentRegressor(RecurrentConfig(input_size=13))(torch.zeros(48, 13)),
        ValueError,
        ("x must be a 3-D", "(48, 13)"),
    ),
    BadInput(
        "unknown_model_name",
        lambda _: create_model("vitt"),
        ValueError,
        ("unknown model name", "'vitt'", "'vit'"),
    ),
    BadInput(
        "config_unknown_key",
        lambda _: ViTConfig.from_dict({"emb_sise": 3}),
        ValueError,
        ("'emb_sise'", "valid fields", "'emb_size'"),
    ),
    BadInput(
        "create_model_unknown_override",
        lambda _: create_model("convnet", n_block=3),
        ValueError,
        ("'n_block'", "'n_blocks'"),
    ),
    BadInput(
        "flat_dict_unparseable_int",
        lambda _: ViTConfig.from_flat_dict({"n_blks": "three"}),
        TypeError,
        ("n_blks", "'three'"),
    ),
    # ------------------------------------------------------------------ air quality data
    BadInput(
        "csv_malformed_number_names_line",
        lambda _: parse_air_quality(
            _csv(AIR_QUALITY_ROWS[0], AIR_QUALITY_ROWS[1].replace("955", "9x5"))
        ),
        ValueError,
        ("line 3", "9x5"),
    ),
    BadInput(
        "csv_missing_column",
        lambda _: parse_air_quality(
            _csv(*AIR_QUALITY_ROWS, header=AIR_QUALITY_HEADER.replace("C6H6(GT);", ""))
        ),
        ValueError,
        ("line 1", "C6H6(GT)"),
    ),
    BadInput(
        "csv_duplicated_timestamp",
        lambda _: parse_air_quality(
            _csv(AIR_QUALITY_ROWS[0], AIR_QUALITY_ROWS[1], AIR_QUALITY_ROWS[1])
        ),
        ValueError,
        ("line 4", "10/03/2004 19.00.00"),
    ),
    BadInput(
        "window_longer_than_series",
        lambda _: SlidingWindowDataset(torch.zeros(10, 2), window=12),
        ValueError,
        ("window", "window=12", "10"),
    ),
    BadInput(
        "scaler_used_before_fit",
        lambda _: ZScoreScaler().transform(torch.zeros(3, 2)),
        RuntimeError,
        ("ZScoreScaler", "fit"),
    ),
    # ------------------------------------------------------------------ splitters
    BadInput(
        "month_fold_without_data",
        lambda _: list(
            MonthFoldSplitter().split(
                np.zeros(2), groups=np.array(["2004-03-01", "2004-04-01"], dtype="datetime64[h]")
            )
        ),
        ValueError,
        ("fold 0", "Jan-Feb", "empty='skip'"),
    ),
    BadInput(
        "months_per_fold_not_tiling_year",
        lambda _: MonthFoldSplitter(months_per_fold=5),
        ValueError,
        ("months_per_fold", "got 5"),
    ),
    BadInput(
        "stratified_fraction_above_one",
        lambda _: stratified_split([0, 0, 1, 1], val_fraction=1.5),
        ValueError,
        ("val_fraction", "1.5"),
    ),
    BadInput(
        "kfold_one_split",
        lambda _: stratified_kfold([0, 0, 1, 1], n_splits=1),
        ValueError,
        ("n_splits", "got 1"),
    ),
    # ------------------------------------------------------------------ sampler
    BadInput(
        "sampler_empty_labels",
        lambda _: ClassBalancedSampler([]),
        ValueError,
        ("labels", "[]"),
    ),
    BadInput(
        "sampler_alpha_nan",
        lambda _: ClassBalancedSampler([0, 1, 1], alpha=float("nan")),
        ValueError,
        ("alpha", "nan"),
    ),
    BadInput(
        "sampler_alpha_negative",
        lambda _: ClassBalancedSampler([0, 1, 1], alpha=-0.5),
        ValueError,
        ("alpha", "-0.5"),
    ),
    BadInput(
        "sampler_rank_out_of_range",
        lambda _: ClassBalancedSampler([0, 1, 1], num_replicas=2, rank=2),
        ValueError,
        ("rank", "num_replicas=2", "got 2"),
    ),
    BadInput(
        "sampler_negative_label",
        lambda _: ClassBalancedSampler([0, -1, 1]),
        ValueError,
        ("labels", "-1"),
    ),
    BadInput(
        "sampler_2d_labels",
        lambda _: ClassBalancedSampler([[0, 1], [1, 0]]),
        ValueError,
        ("labels", "1-D", "[[0, 1], [1, 0]]"),
    ),
    BadInput(
        "sampler_zero_samples",
        lambda _: ClassBalancedSampler([0, 1, 1], num_samples=0),
        ValueError,
        ("num_samples", "got 0"),
    ),
    BadInput(
        "sampler_too_many_without_replacement",
        lambda _: ClassBalancedSampler([0, 1, 1], num_samples=4, replacement=False),
        ValueError,
        ("num_samples", "at most 3", "got 4"),
    ),
    BadInput(
        "sampler_all_class_weights_zero",
        lambda _: ClassBalancedSampler([0, 1, 1], class_weights=[0.0, 0.0]),
        ValueError,
        ("class_weights", "[0.0, 0.0]"),
    ),
    # ------------------------------------------------------------------ metrics
    BadInput(
        "metrics_one_class",
        lambda _: BalancedClassificationMetrics(1),
        ValueError,
        ("n_classes", "got 1"),
    ),
    BadInput(
        "metrics_label_out_of_range",
        lambda _: BalancedClassificationMetrics(3).update(torch.rand(2, 3), torch.tensor([0, 3])),
        ValueError,
        ("target", "[0, 3)", "got 3"),
    ),
    BadInput(
        "metrics_nan_scores",
        lambda _: BalancedClassificationMetrics(3).update(
            torch.tensor([[0.1, float("nan"), 0.2]]), torch.tensor([0])
        ),
        ValueError,
        ("input", "NaN"),
    ),
    BadInput(
        "metrics_mismatched_lengths",
        lambda _: BalancedClassificationMetrics(3).update(
            torch.rand(2, 3), torch.tensor([0, 1, 2])
        ),
        ValueError,
        ("target", "(2)", "got 3"),
    ),
    BadInput(
        "metrics_wrong_score_width",
        lambda _: BalancedClassificationMetrics(3).update(torch.rand(2, 4), torch.tensor([0, 1])),
        ValueError,
        ("input", "(B, 3)", "(2, 4)"),
    ),
    BadInput(
        "regression_nan_target_rejected",
        lambda _: RegressionMetrics().update(torch.zeros(2), torch.tensor([1.0, float("nan")])),
        ValueError,
        ("target", "NaN", "nan_policy"),
    ),
    # ------------------------------------------------------------------ cell images
    BadInput(
        "dataset_label_out_of_range",
        lambda _: CellImageDataset(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), [0, 5], ["a", "b"]),
        ValueError,
        ("labels", "[0, 2)", "5"),
    ),
    BadInput(
        "empty_class_in_synthetic_counts",
        lambda _: make_synthetic_cells([10, -1, 0, 0, 0]),
        ValueError,
        ("counts['Prophase']", "-1"),
    ),
    BadInput(
        "synthetic_image_too_small",
        lambda _: make_synthetic_cells(size=8),
        ValueError,
        ("size", "got 8"),
    ),
    BadInput(
        "translate_negative_shift",
        lambda _: RandomTranslate(-1),
        ValueError,
        ("max_shift", "-1"),
    ),
    BadInput(
        "rotation_nonpositive_zoom",
        lambda _: RandomRotation(30, scale=(-1.0, 1.0)),
        ValueError,
        ("scale", "(-1.0, 1.0)", "positive"),
    ),
    BadInput(
        "rotation_unknown_interpolation",
        lambda _: RandomRotation(30, interpolation="bicubic"),
        ValueError,
        ("interpolation", "'bicubic'", "nearest", "bilinear"),
    ),
    BadInput(
        "transform_wrong_rank",
        lambda _: RandomDihedral()(torch.zeros(8, 8)),
        ValueError,
        ("x must have shape", "(8, 8)"),
    ),
    BadInput(
        "folder_missing_root",
        lambda _: CellCycleFolder("/nonexistent/cells"),
        FileNotFoundError,
        ("root", "/nonexistent/cells"),
    ),
    # ------------------------------------------------- engine, features, checkpoints
    BadInput(
        "fit_zero_epochs",
        lambda _: fit(_linear(), [], _sgd(_linear()), epochs=0),
        ValueError,
        ("epochs", "got 0"),
    ),
    BadInput(
        "negative_grad_clip_norm",
        lambda _: train_one_epoch(
            _linear(),
            [(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long))],
            _sgd(_linear()),
            grad_clip_norm=-1.0,
        ),
        ValueError,
        ("grad_clip_norm", "-1.0"),
    ),
    BadInput(
        "pca_too_many_components",
        lambda _: pca(torch.zeros(10, 3), n_components=5),
        ValueError,
        ("n_components", "got 5"),
    ),
    BadInput(
        "checkpoint_with_foreign_pickle",
        lambda tmp: load_checkpoint(_foreign_checkpoint(tmp)),
        ValueError,
        ("refusing", "foreign.pt"),
    ),
    # ------------------------------------------------- round 2 (issue 17): models and configs
    BadInput(
        "vit_float64_input",
        lambda _: _tiny_vit()(torch.zeros(1, 1, 32, 32, dtype=torch.float64)),
        TypeError,
        ("x must have the model's dtype torch.float32", "torch.float64"),
    ),
    BadInput(
        "vit_float16_input",
        lambda _: _tiny_vit()(torch.zeros(1, 1, 32, 32, dtype=torch.float16)),
        TypeError,
        ("x must have the model's dtype", "torch.float16"),
    ),
    BadInput(
        "vit_bfloat16_features_to_head",
        lambda _: _tiny_vit().forward_head(torch.zeros(2, 8, dtype=torch.bfloat16)),
        TypeError,
        ("features must have the model's dtype", "torch.bfloat16"),
    ),
    BadInput(
        "convnet_float64_input",
        lambda _: _tiny_convnet()(torch.zeros(2, 1, 8, 8, dtype=torch.float64)),
        TypeError,
        ("x must have the model's dtype torch.float32", "torch.float64"),
    ),
    BadInput(
        "convnet_float64_features_to_head",
        lambda _: _tiny_convnet().forward_head(torch.zeros(2, 4, dtype=torch.float64)),
        TypeError,
        ("features must have the model's dtype", "torch.float64"),
    ),
    BadInput(
        "recurrent_float64_input",
        lambda _: RecurrentRegressor(RecurrentConfig(input_size=2))(
            torch.zeros(1, 3, 2, dtype=torch.float64)
        ),
        TypeError,
        ("x must have the model's dtype torch.float32", "torch.float64"),
    ),
    BadInput(
        "convnet_training_batch_of_one_2x2",
        lambda _: _tiny_convnet().train()(torch.zeros(1, 1, 2, 2)),
        ValueError,
        ("x must give BatchNorm more than one value", "(1, 1, 2, 2)", "model.eval()"),
    ),
    BadInput(
        "vit_absurd_patch_size",
        lambda _: ViT(ViTConfig(patch_size=10**5)),
        ValueError,
        ("max_parameters=1,000,000,000", "ViTConfig", "patch_size=100000"),
    ),
    BadInput(
        "convnet_absurd_channels",
        lambda _: ConvNet(ConvNetConfig(channels=200_000)),
        ValueError,
        ("max_parameters", "ConvNetConfig", "channels=200000"),
    ),
    BadInput(
        "recurrent_bool_lengths",
        lambda _: RecurrentRegressor(RecurrentConfig(input_size=2))(
            torch.zeros(2, 3, 2), lengths=torch.ones(2, dtype=torch.bool)
        ),
        ValueError,
        ("lengths must be a 1-D integer tensor", "True"),
    ),
    BadInput(
        "config_from_dict_number_beyond_float",
        lambda _: ViTConfig.from_dict({"dropout": 10**400}),
        ValueError,
        ("ViTConfig.dropout", "float range"),
    ),
    BadInput(
        "config_from_json_400_digits",
        lambda _: ViTConfig.from_json('{"dropout": ' + "9" * 400 + "}"),
        ValueError,
        ("ViTConfig.dropout", "float range"),
    ),
    BadInput(
        "config_from_dict_non_string_key",
        lambda _: ViTConfig.from_dict({1: 2, "x": 3}),  # type: ignore[dict-item]
        TypeError,
        ("data keys must be field names", "got 1"),
    ),
    BadInput(
        "config_flat_dict_empty_separator",
        lambda _: ViTConfig.from_flat_dict({"n_blks": "2"}, sep=""),
        ValueError,
        ("sep must be a non-empty string", "''"),
    ),
    BadInput(
        "config_from_json_undecodable_bytes",
        lambda _: ViTConfig.from_json(b'{"n_blks": "\xff"}'),
        ValueError,
        ("text must be UTF-8 encoded JSON", "\\xff", "byte 12"),
    ),
    BadInput(
        "flat_dict_int_with_underscore",
        lambda _: ViTConfig.from_flat_dict({"n_blks": "1_0"}),
        TypeError,
        ("ViTConfig.n_blks must be an int", "'1_0'"),
    ),
    BadInput(
        "flat_dict_non_ascii_digit",
        lambda _: ViTConfig.from_flat_dict({"n_blks": "\u0663"}),
        TypeError,
        ("ViTConfig.n_blks must be an int", "'\u0663'"),
    ),
    BadInput(
        "flat_dict_float_with_underscore",
        lambda _: ViTConfig.from_flat_dict({"dropout": "0.1_0"}),
        TypeError,
        ("ViTConfig.dropout must be a float", "'0.1_0'"),
    ),
    # ------------------------------------------------- round 2: sampler and splits
    BadInput(
        "sampler_seed_beyond_64_bits",
        lambda _: ClassBalancedSampler([0, 1, 1], seed=2**64),
        ValueError,
        ("seed must be an integer in [0, 2**64)", "18446744073709551616"),
    ),
    BadInput(
        "sampler_absurd_num_samples",
        lambda _: ClassBalancedSampler([0, 1, 1], num_samples=10**13),
        ValueError,
        ("num_samples must be at most 2**32", "10000000000000"),
    ),
    BadInput(
        "stratified_split_negative_seed",
        lambda _: stratified_split([0, 0, 1, 1], seed=-1),
        ValueError,
        ("seed must be an integer in [0, 2**64)", "-1"),
    ),
    BadInput(
        "kfold_float_seed",
        lambda _: stratified_kfold([0, 0, 1, 1], n_splits=2, seed=0.5),  # type: ignore[arg-type]
        TypeError,
        ("seed must be an integer", "0.5"),
    ),
    # ------------------------------------------------- round 2: metrics
    BadInput(
        "metrics_merge_across_auroc_modes",
        lambda _: BalancedClassificationMetrics(2, auroc="exact").merge_state(
            [BalancedClassificationMetrics(2, auroc="binned")]
        ),
        ValueError,
        ("auroc='exact'", "auroc='binned'", "metrics[0]"),
    ),
    BadInput(
        "metrics_merge_a_regression_metric",
        lambda _: BalancedClassificationMetrics(2).merge_state(
            [RegressionMetrics()]  # type: ignore[list-item]
        ),
        ValueError,
        ("metrics[0] must be a BalancedClassificationMetrics", "RegressionMetrics"),
    ),
    BadInput(
        "regression_merge_a_classification_metric",
        lambda _: RegressionMetrics().merge_state(
            [BalancedClassificationMetrics(2)]  # type: ignore[list-item]
        ),
        ValueError,
        ("metrics[0] must be a RegressionMetrics", "BalancedClassificationMetrics"),
    ),
    BadInput(
        "metrics_absurd_class_count",
        lambda _: BalancedClassificationMetrics(10**6),
        ValueError,
        ("n_classes must be at most 46340", "1000000"),
    ),
    BadInput(
        "metrics_absurd_histogram",
        lambda _: BalancedClassificationMetrics(100, auroc="binned", num_thresholds=10**6),
        ValueError,
        ("num_thresholds", "2**31 entries", "1000000"),
    ),
    BadInput(
        "model_absurd_example_batch",
        lambda _: _tiny_vit().example_input(10**9),
        ValueError,
        ("batch_size", "2**32 values", "1000000000"),
    ),
    BadInput(
        "sampler_numpy_float_num_samples",
        lambda _: ClassBalancedSampler([0, 1, 1], num_samples=np.float64(4.0)),
        TypeError,
        ("num_samples must be a positive integer", "4.0"),
    ),
    # ------------------------------------------------- round 2: checkpoints
    BadInput(
        "checkpoint_extra_unsupported_object_names_path",
        lambda tmp: save_checkpoint(
            tmp / "x.pt", _tiny_convnet(), extra={"scores": [1, {"fold": object()}]}
        ),
        TypeError,
        ("extra['scores'][1]['fold']", "object"),
    ),
    BadInput(
        "checkpoint_extra_numpy_array",
        lambda tmp: save_checkpoint(tmp / "x.pt", _tiny_convnet(), extra={"p": np.zeros(3)}),
        TypeError,
        ("extra['p']", "numpy array", "torch.from_numpy"),
    ),
    BadInput(
        "checkpoint_extra_set",
        lambda tmp: save_checkpoint(tmp / "x.pt", _tiny_convnet(), extra=[{1, 2}]),
        TypeError,
        ("extra[0]", "set"),
    ),
    BadInput(
        "checkpoint_extra_contains_itself",
        lambda tmp: save_checkpoint(tmp / "x.pt", _tiny_convnet(), extra=_self_containing()),
        TypeError,
        ("extra[1]", "must not contain itself"),
    ),
    BadInput(
        "checkpoint_map_location_missing_gpu",
        lambda tmp: load_checkpoint(_saved_convnet(tmp), map_location="cuda:99"),
        ValueError,
        ("map_location must be a device available on this machine", "'cuda:99'"),
    ),
    BadInput(
        "checkpoint_map_location_meta",
        lambda tmp: load_checkpoint(_saved_convnet(tmp), map_location="meta"),
        ValueError,
        ("map_location must be a device that holds data", "'meta'"),
    ),
    BadInput(
        "checkpoint_map_location_tpu",
        lambda tmp: load_checkpoint(_saved_convnet(tmp), map_location="tpu"),
        ValueError,
        ("map_location must be a torch device", "'tpu'"),
    ),
    BadInput(
        "checkpoint_epoch_as_string",
        lambda tmp: load_checkpoint(_crafted(tmp, epoch="7")),
        ValueError,
        ("epoch must be an int or None", "'7'"),
    ),
    BadInput(
        "checkpoint_crafted_deep_config",
        lambda tmp: load_checkpoint(_crafted(tmp, config={"n_blocks": 200_000})),
        ValueError,
        # by hand: stem 1*4*9 + 4, blocks 200000 * (4*4*9 + 2*4), head 4*2 + 2
        ("crafted.pt", "needs 30,400,050 parameters", "holds only"),
    ),
    BadInput(
        "checkpoint_crafted_wide_config",
        lambda tmp: load_checkpoint(_crafted(tmp, config={"channels": 200_000})),
        ValueError,
        ("crafted.pt", "max_parameters=1,000,000,000", "channels=200000"),
    ),
    BadInput(
        "checkpoint_crafted_tensor_shape",
        lambda tmp: load_checkpoint(_reshaped_weight(tmp)),
        ValueError,
        ("do not fit 'convnet'", "stem.weight: file (36,), model (4, 1, 3, 3)"),
    ),
    BadInput(
        "checkpoint_max_parameters_lowered",
        lambda tmp: load_checkpoint(_saved_convnet(tmp), max_parameters=10),
        ValueError,
        ("max_parameters=10", "ConvNetConfig"),
    ),
    # ------------------------------------------------- round 2: engine
    BadInput(
        "fit_monitor_typo_caught_before_training",
        lambda _: fit(
            _linear(),
            _NeverIterated(),
            _sgd(_linear()),
            epochs=1,
            val_loader=_NeverIterated(),
            monitor="val_los",
        ),
        ValueError,
        ("monitor must name a numeric record key", "'val_loss'", "'val_los'"),
    ),
    BadInput(
        "fit_monitor_typo_in_metric_field",
        lambda _: fit(
            _linear(),
            _NeverIterated(),
            _sgd(_linear()),
            epochs=1,
            val_loader=_NeverIterated(),
            metrics=BalancedClassificationMetrics(2),
            monitor="val_balanced_acuracy",
        ),
        ValueError,
        ("monitor", "'val_balanced_accuracy'", "'val_balanced_acuracy'"),
    ),
    BadInput(
        "train_nan_loss_names_epoch_and_batch",
        lambda _: fit(
            _linear(), _two_batches(), _sgd(_linear()), epochs=1, loss_fn=_loss_nan_at_batch_1
        ),
        FloatingPointError,
        ("loss must be finite", "epoch 0, batch 1", "nonfinite_loss='skip'"),
    ),
    BadInput(
        "evaluate_nan_loss_names_batch",
        lambda _: evaluate(_linear(), _two_batches(), loss_fn=_loss_nan_at_batch_1),
        FloatingPointError,
        ("loss must be finite", "evaluation at batch 1"),
    ),
    BadInput(
        "engine_unknown_nonfinite_policy",
        lambda _: train_one_epoch(
            _linear(),
            _two_batches(),
            _sgd(_linear()),
            nonfinite_loss="ignore",  # type: ignore[arg-type]
        ),
        ValueError,
        ("nonfinite_loss must be one of", "'ignore'"),
    ),
    BadInput(
        "engine_device_missing_gpu",
        lambda _: evaluate(_linear(), _two_batches(), device="cuda:99"),
        ValueError,
        ("device must be a device available on this machine", "'cuda:99'"),
    ),
    BadInput(
        "engine_device_unknown_type",
        lambda _: evaluate(_linear(), _two_batches(), device="tpu"),
        ValueError,
        ("device must be a torch device", "'tpu'"),
    ),
    BadInput(
        "train_only_empty_batches",
        lambda _: train_one_epoch(
            _linear(),
            [(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))],
            _sgd(_linear()),
        ),
        ValueError,
        ("loader must yield at least one non-empty batch", "only empty or skipped"),
    ),
    # ------------------------------------------------- round 2: data
    BadInput(
        "covered_rows_float_index",
        lambda _: _windows().covered_rows([0.5]),
        TypeError,
        ("indices must hold integers", "float64"),
    ),
    BadInput(
        "window_series_beyond_float32",
        lambda _: SlidingWindowDataset(np.array([[1e39], [1.0], [2.0]]), window=1),
        ValueError,
        ("series must lie within the float32 range", "1e+39"),
    ),
    BadInput(
        "window_complex_tensor_series",
        lambda _: SlidingWindowDataset(torch.ones(4, 1, dtype=torch.complex64), window=1),
        ValueError,
        ("series must be numeric (real-valued)", "complex64"),
    ),
    BadInput(
        "window_complex_array_series",
        lambda _: SlidingWindowDataset(np.ones((4, 1), dtype=np.complex128), window=1),
        ValueError,
        ("series must be numeric (real-valued)", "complex128"),
    ),
    BadInput(
        "center_crop_fill_above_uint8",
        lambda _: CenterCropOrPad(8, fill=300)(torch.zeros(1, 1, 4, 4, dtype=torch.uint8)),
        ValueError,
        ("fill must be a whole number in [0, 255]", "torch.uint8", "300"),
    ),
    BadInput(
        "center_crop_fill_below_uint8",
        lambda _: CenterCropOrPad(8, fill=-1)(torch.zeros(1, 1, 4, 4, dtype=torch.uint8)),
        ValueError,
        ("fill must be a whole number in [0, 255]", "-1"),
    ),
    BadInput(
        "center_crop_fractional_fill_uint8",
        lambda _: CenterCropOrPad(8, fill=0.5)(torch.zeros(1, 1, 4, 4, dtype=torch.uint8)),
        ValueError,
        ("fill must be a whole number", "0.5"),
    ),
    BadInput(
        "center_crop_infinite_fill",
        lambda _: CenterCropOrPad(8, fill=float("inf")),
        ValueError,
        ("fill must be a finite number", "inf"),
    ),
    BadInput(
        "scaler_state_nan_mean",
        lambda _: ZScoreScaler.from_state_dict(
            {"enabled": True, "eps": 0.0, "mean": [float("nan")], "scale": [1.0]}
        ),
        ValueError,
        ("finite mean", "nan"),
    ),
    BadInput(
        "scaler_state_infinite_scale",
        lambda _: ZScoreScaler.from_state_dict(
            {"enabled": True, "eps": 0.0, "mean": [0.0], "scale": [float("inf")]}
        ),
        ValueError,
        ("finite positive scale", "inf"),
    ),
    BadInput(
        "scaler_fit_with_infinite_value",
        lambda _: ZScoreScaler().fit(np.array([[1.0, 2.0], [3.0, np.inf]])),
        ValueError,
        ("x must not hold infinite values", "column(s) [1]"),
    ),
    BadInput(
        "air_quality_decreasing_timestamps",
        lambda _: _decreasing_air_quality(),
        ValueError,
        ("timestamps must be strictly increasing", "2004-03-10T18", "position 1"),
    ),
]


def test_table_is_large_and_names_are_unique() -> None:
    names = [case.name for case in CASES]
    assert len(names) >= 100
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_raises_clear_error(case: BadInput, tmp_path: Path) -> None:
    with pytest.raises(case.error) as info:
        case.call(tmp_path)
    message = str(info.value)
    missing = [fragment for fragment in case.fragments if fragment not in message]
    assert not missing, f"message {message!r} lacks {missing!r}"
