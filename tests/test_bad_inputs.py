"""One table of bad inputs across the public API.

Each row calls the public API the way a user might get it wrong and asserts the exception type
and that the message names the offending argument and shows the offending value, so the user can
fix the call without reading the library's source.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cellvision.checkpoint import load_checkpoint
from cellvision.data import (
    CellCycleFolder,
    CellImageDataset,
    RandomDihedral,
    RandomTranslate,
    SlidingWindowDataset,
    ZScoreScaler,
    make_synthetic_cells,
    parse_air_quality,
)
from cellvision.engine import fit, train_one_epoch
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
]


def test_table_is_large_and_names_are_unique() -> None:
    names = [case.name for case in CASES]
    assert len(names) >= 30
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_raises_clear_error(case: BadInput, tmp_path: Path) -> None:
    with pytest.raises(case.error) as info:
        case.call(tmp_path)
    message = str(info.value)
    missing = [fragment for fragment in case.fragments if fragment not in message]
    assert not missing, f"message {message!r} lacks {missing!r}"
