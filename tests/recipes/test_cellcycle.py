"""cellvision.recipes.cellcycle: recipe, train/predict/save/load, evaluate, CV, sweeps."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cellvision.checkpoint import save_checkpoint
from cellvision.data import CellImageDataset, make_synthetic_cells
from cellvision.models import create_model
from cellvision.recipes.cellcycle import (
    LOSSES,
    SWEEP_SPACE,
    CellCycleRecipe,
    TrainedClassifier,
    _augmentation,
    _DeferredSampler,
    build_model,
    channel_report,
    cross_validate,
    default_recipe,
    evaluate,
    load_data,
    load_unlabelled,
    run_study,
    subset,
    sweep_objective,
    train,
)
from cellvision.sampling import ClassBalancedSampler
from cellvision.tta import predict_tta

sk_metrics = pytest.importorskip("sklearn.metrics")

TINY = CellCycleRecipe(epochs=2, batch_size=16, width=8, depth=2, baseline_epochs=1)


@pytest.fixture(scope="module")
def data() -> Any:
    return make_synthetic_cells([40, 12, 8, 8, 8], size=24, seed=0)


@pytest.fixture(scope="module")
def trained(data: Any) -> TrainedClassifier:
    return train(
        TINY,
        subset(data, np.arange(0, 76, 2)),
        subset(data, np.arange(1, 76, 2)),
        device="cpu",
        progress=False,
    )


def test_recipe_validates_fields_and_round_trips() -> None:
    assert CellCycleRecipe.from_json(TINY.to_json()) == TINY
    flat = TINY.to_flat_dict() | {"lr": "0.001", "width": "24"}
    assert (
        CellCycleRecipe.from_flat_dict(flat).lr,
        CellCycleRecipe.from_flat_dict(flat).width,
    ) == (
        0.001,
        24,
    )
    for bad, match in [
        ({"alpha": 1.5}, "alpha must be in"),
        ({"select": "test"}, "select must"),
        ({"model": "resnet"}, "model must"),
        ({"schedule": "step"}, "schedule"),
    ]:
        with pytest.raises(ValueError, match=match):
            CellCycleRecipe(**bad)
    assert default_recipe("cellcycle_vit").baseline_epochs == 0


def test_train_keeps_training_normalisation_and_history(
    data: Any, trained: TrainedClassifier
) -> None:
    assert data.images.dtype == torch.uint8  # stored compactly, used as value / 255
    train_images = data.images[np.arange(0, 76, 2)].double() / 255
    torch.testing.assert_close(trained.mean, train_images.mean(dim=(0, 2, 3)))
    assert [r["epoch"] for r in trained.history] == [1, 2]
    assert trained.epoch == 2
    assert "val_balanced_accuracy" in set(trained.history.keys())
    assert trained.class_names == data.class_names


def test_predict_proba_is_softmax_of_the_normalised_forward(
    data: Any, trained: TrainedClassifier
) -> None:
    images = data.images[:9]
    proba = trained.predict_proba(images)
    x = (images.float() / 255 - trained.mean.float().view(1, -1, 1, 1)) / trained.std.float().view(
        1, -1, 1, 1
    )
    with torch.no_grad():
        expected = torch.softmax(trained.model.eval()(x), dim=-1)
    torch.testing.assert_close(proba, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(trained.predict(images), proba.argmax(1))
    # bf16 autocast + channels_last (the real-time path) stays close.
    fast = trained.predict_proba(images, amp_dtype=torch.bfloat16, channels_last=True)
    torch.testing.assert_close(fast, proba, atol=0.05, rtol=0.05)
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1, H, W\)"):
        trained.predict_proba(torch.zeros(2, 3, 24, 24))


def test_save_load_round_trip_and_rejects_other_checkpoints(
    tmp_path: Path, data: Any, trained: TrainedClassifier
) -> None:
    again = TrainedClassifier.load(trained.save(tmp_path / "cells.pt"))
    assert torch.equal(again.predict_proba(data.images), trained.predict_proba(data.images))
    assert again.recipe == trained.recipe
    assert again.history.records == trained.history.records
    other = save_checkpoint(tmp_path / "plain.pt", create_model("cellcycle_convnet", n_classes=5))
    with pytest.raises(ValueError, match="TrainedClassifier.save"):
        TrainedClassifier.load(other)


def test_evaluate_agrees_with_sklearn(data: Any, trained: TrainedClassifier) -> None:
    test = subset(data, np.arange(76))
    report = evaluate(trained, test)
    predicted = trained.predict(test.images).numpy()
    expected = sk_metrics.balanced_accuracy_score(test.targets.numpy(), predicted)
    assert report.balanced_accuracy == pytest.approx(expected)
    assert report.cohen_kappa == pytest.approx(
        sk_metrics.cohen_kappa_score(test.targets.numpy(), predicted)
    )


def test_same_seed_gives_the_same_history(data: Any, trained: TrainedClassifier) -> None:
    again = train(
        TINY,
        subset(data, np.arange(0, 76, 2)),
        subset(data, np.arange(1, 76, 2)),
        device="cpu",
        progress=False,
    )
    assert again.history.records == trained.history.records


def test_cross_validate_pools_out_of_fold_predictions(data: Any) -> None:
    recipe = TINY.replace(epochs=1)
    result = cross_validate(recipe, data, n_splits=3, seed=0, device="cpu")
    assert sorted(np.bincount(result.fold_of).tolist()) == [25, 25, 26]
    y = data.targets.numpy()
    pooled = sk_metrics.balanced_accuracy_score(y, result.oof_proba.argmax(1).numpy())
    assert result.pooled.balanced_accuracy == pytest.approx(pooled)
    folds = [r.balanced_accuracy for r in result.fold_reports]
    for k, report in enumerate(result.fold_reports):
        mask = result.fold_of == k
        fold_pred = result.oof_proba[mask].argmax(1).numpy()
        assert report.balanced_accuracy == pytest.approx(
            sk_metrics.balanced_accuracy_score(y[mask], fold_pred)
        )
    mean, sd = result.table["balanced_accuracy"]
    assert mean == pytest.approx(np.mean(folds))
    assert sd == pytest.approx(np.std(folds, ddof=1))
    assert "pooled" in result.format_table()


def test_run_study_tests_both_models_once(data: Any) -> None:
    lines: list[str] = []
    result = run_study(TINY, data, device="cpu", progress=False, log=lines.append)
    assert set(result.summary["models"]) == {"cellcycle_convnet", "linear (raw pixels)"}
    assert result.summary["models"]["cellcycle_convnet"]["tested_epoch"] == 2
    assert sum(result.summary["split_counts"]["test"]) == int(
        result.test["cellcycle_convnet"].confusion_matrix.sum()
    )
    assert any(line.startswith("Test split") for line in lines)


class FakeTrial:
    """Just enough of an Optuna trial: suggestions from the space's first options."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.reports: list[tuple[float, int]] = []
        self.params: dict[str, Any] = {}
        self.attrs: dict[str, Any] = {}
        self.prune_at = prune_at

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        self.params[name] = low
        return low

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        self.params[name] = choices[0]
        return choices[0]

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return self.prune_at is not None and len(self.reports) >= self.prune_at

    def set_user_attr(self, key: str, value: Any) -> None:
        self.attrs[key] = value


def test_sweep_objective_reports_every_epoch_and_prunes(data: Any) -> None:
    trial = FakeTrial()
    value = sweep_objective(trial, data=data, epochs=2)
    assert set(trial.params) == set(SWEEP_SPACE)
    assert [step for _, step in trial.reports] == [1, 2]
    assert value == trial.reports[-1][0]
    assert 0.0 <= value <= 1.0 or math.isnan(value)
    assert CellCycleRecipe.from_json(trial.attrs["recipe"]).width == 16
    optuna = pytest.importorskip("optuna")
    with pytest.raises(optuna.TrialPruned):
        sweep_objective(FakeTrial(prune_at=1), data=data, epochs=2)


def test_load_unlabelled_reads_a_flat_folder(tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    for cell, level in (("10", 5), ("2", 7), ("3", 9)):
        image.new("L", (8, 8), color=level).save(tmp_path / f"{cell}_Ch3.png")
    (tmp_path / "notes.txt").write_text("not an image")
    images, ids = load_unlabelled(tmp_path, channels=["Ch3"])
    assert ids == ["2", "3", "10"]  # natural order
    assert images.shape == (3, 1, 8, 8)
    assert images[:, 0, 0, 0].tolist() == [7, 9, 5]
    with pytest.raises(ValueError, match=r"without \['Ch6'\] \(channels found: \['Ch3'\]\)"):
        load_unlabelled(tmp_path, channels=("Ch3", "Ch6"))


# --------------------------------------------------------------------------- recipe options
def normalised(trained: TrainedClassifier, images: torch.Tensor) -> torch.Tensor:
    """The model input, written out: integer images / max, minus mean, over std."""
    scale = 255.0 if images.dtype == torch.uint8 else 65535.0
    mean = trained.mean.float().view(1, -1, 1, 1)
    std = trained.std.float().clamp(min=1e-6).view(1, -1, 1, 1)
    return (images.float() / scale - mean) / std


def raw_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x).float()


def test_new_fields_validate_and_round_trip() -> None:
    recipe = CellCycleRecipe(loss="focal", focal_gamma=np.float32(1.5), tta="d4", n_models=2)
    assert recipe.focal_gamma == 1.5
    assert type(recipe.focal_gamma) is float
    assert CellCycleRecipe.from_json(recipe.to_json()) == recipe
    for bad, match in [
        ({"loss": "hinge"}, "loss must"),
        ({"tta": "d8"}, "tta must"),
        ({"amp": "fp16"}, "amp must"),
        ({"n_models": 0}, "n_models must"),
        ({"mixup": -0.1}, "mixup must be a finite number >= 0"),
        ({"cutmix": float("nan")}, "cutmix must be a finite number >= 0"),
        ({"mixup": 0.2, "cutmix": 1.0}, "at most one of mixup and cutmix"),
        ({"epochs": 5, "defer_epochs": 5}, r"defer_epochs must be smaller than epochs \(5\)"),
        ({"defer_epochs": -1}, "defer_epochs must be"),
        ({"ema": 1.0}, r"ema must be a number in \[0, 1\)"),
        ({"max_rotation": -5}, r"max_rotation must be a number of degrees in \[0, 180\]"),
        ({"max_rotation": 270.0}, "got 270.0"),
        ({"rotation_interpolation": "cubic"}, r"rotation_interpolation must be one of .*'cubic'"),
        ({"intensity_jitter": 1.0}, r"intensity_jitter must be in \[0, 1\), got 1.0"),
        ({"channel_dropout": 1.0}, r"channel_dropout must be in \[0, 1\), got 1.0"),
        (
            {"channel_dropout_channels": ("Ch4",)},
            r"channel_dropout_channels must be distinct names among channels .*'Ch4'",
        ),
        ({"channel_dropout_channels": ("Ch6", "Ch6")}, "channel_dropout_channels must be distinct"),
        ({"channels": ("Ch3",), "channel_dropout": 0.5}, "channel_dropout must be 0 with a single"),
        ({"ema": 0.9, "select": "best"}, "ema must be 0 with select='best'"),
        (
            {"channels": ("Ch3", "Ch6"), "auxiliary_channel": "Ch6", "model": "cellcycle_resnet"},
            r"auxiliary_channel must be None or a channel name not among channels .*'Ch6'",
        ),
        ({"auxiliary_channel": "Ch4"}, "auxiliary_channel needs model='cellcycle_resnet'"),
        (
            {"model": "cellcycle_resnet", "auxiliary_channel": "Ch4", "auxiliary_weight": 0},
            "auxiliary_weight must be a finite number > 0",
        ),
        ({"early_alpha": 1.5}, r"early_alpha must be in \[0, 1\]"),
        ({"tau": math.inf}, "tau must be a finite number >= 0"),
        ({"loss": "balanced_softmax", "logit_adjust": 1.0}, "logit_adjust must be 0"),
        ({"loss": "logit_adjusted", "logit_adjust": 0.5}, "already removes the training prior"),
    ]:
        with pytest.raises(ValueError, match=match):
            CellCycleRecipe(**bad)
    with pytest.raises(TypeError, match="channels_last must be a bool"):
        CellCycleRecipe(channels_last=1)
    with pytest.raises(TypeError, match="auxiliary_channel must be None or a str, got 4"):
        CellCycleRecipe(model="cellcycle_resnet", auxiliary_channel=4)  # type: ignore[arg-type]
    aux = CellCycleRecipe(model="cellcycle_resnet", auxiliary_channel="Ch4", auxiliary_weight=3)
    assert CellCycleRecipe.from_json(aux.to_json()) == aux
    assert aux.data_channels == (*aux.channels, "Ch4")


def test_presets_and_model_defaults() -> None:
    legacy = default_recipe(preset="legacy")
    assert (legacy.model, legacy.channels, legacy.loss, legacy.tta) == (
        "cellcycle_convnet", ("Ch3",), "cross_entropy", "none",
    )  # fmt: skip
    assert legacy == CellCycleRecipe(channels=("Ch3",))  # the 0.1.0 dataclass defaults
    assert default_recipe() == default_recipe(preset="realtime")
    assert default_recipe().channels == ("Ch3", "Ch6")
    realtime = default_recipe()
    assert (realtime.train_labels, realtime.logit_adjust, realtime.tta) == ("release", 1.0, "none")
    assert (realtime.amp, realtime.channels_last) == ("auto", True)
    assert (legacy.intensity_jitter, realtime.intensity_jitter) == (0.1, 0.0)
    accurate = realtime.replace(n_models=2, tta="d4", member_channels=(("Ch3", "Ch6"), ("Ch3",)))
    assert default_recipe(preset="accurate") == accurate
    # Other channels give every member those channels, unless member_channels is given too;
    # the preset's own channels keep its channel sets.
    assert default_recipe(preset="accurate", channels=("Ch6",)).member_inputs == ((0,), (0,))
    assert default_recipe(preset="accurate", channels=("Ch3", "Ch6")) == accurate
    with pytest.raises(ValueError, match=r"n_models of preset 'accurate' is the number of its"):
        default_recipe(preset="accurate", n_models=3)
    assert default_recipe(preset="accurate", n_models=2) == accurate
    three = default_recipe(preset="accurate", member_channels=(("Ch3", "Ch6"),) * 2 + (("Ch6",),))
    assert three.n_models == 3  # their number
    # No channel sets: the preset's members all see both channels, and stay two.
    assert default_recipe(preset="accurate", member_channels=()).member_inputs == ((0, 1),) * 2
    mixed = default_recipe(preset="accurate", channels=("Ch3", "Ch6", "Ch7"),
                           member_channels=(("Ch3", "Ch6", "Ch7"), ("Ch7",)))  # fmt: skip
    assert mixed.member_inputs == ((0, 1, 2), (2,))
    assert default_recipe("cellcycle_resnet").model == "cellcycle_resnet"
    with pytest.raises(ValueError, match="not both"):
        default_recipe("cellcycle_convnet", preset="legacy")
    with pytest.raises(ValueError, match="preset must"):
        default_recipe(preset="fastest")


def test_build_model_sizes_the_resnet_and_counts_its_parameters() -> None:
    recipe = CellCycleRecipe(model="cellcycle_resnet", width=8, depth=3)
    model = build_model(recipe, n_classes=5, in_channels=2, img_size=40, class_freqs=[1] * 5)
    assert model.config.widths == (8, 16, 32)
    assert model.config.stem_channels == 8
    expected = sum(p.numel() for p in model.parameters())
    assert model.config.parameter_count() == expected
    for widths, depths, stride in [((4, 4), (2, 1), 1), ((6, 12, 6), (1, 3, 2), 2)]:
        config = model.config.replace(widths=widths, depths=depths, stem_stride=stride)
        built = type(model)(config)
        assert config.parameter_count() == sum(p.numel() for p in built.parameters())


def test_channel_report_warns_about_the_dna_stain() -> None:
    assert channel_report(["Ch3"]) == ["channels: Ch3 = brightfield; label-free"]
    lines = channel_report(["Ch3", "Ch4"])
    assert "Ch4 = DNA stain" in lines[0]
    assert lines[-1].startswith("WARNING: this run is NOT label-free: Ch4")


def test_load_data_defaults_to_the_real_sample() -> None:
    data, text = load_data()
    assert len(data) == 1026
    assert data.images.shape[1:] == (2, 40, 40)
    assert data.class_names == ("Interphase", "Prophase", "Metaphase", "Anaphase", "Telophase")
    assert data.ids is not None
    assert "real" in text
    brightfield, _ = load_data(channels=["Ch3"])
    assert torch.equal(brightfield.images[:, 0], data.images[:, 0])
    synthetic, text = load_data(synthetic=True, quick=True, channels=["Ch3", "Ch6"])
    assert synthetic.images.shape[1:] == (2, 48, 48)
    assert text.startswith("synthetic")
    with pytest.raises(ValueError, match="data_dir must be None"):
        load_data(".", synthetic=True)


@pytest.fixture(scope="module")
def small() -> Any:
    return make_synthetic_cells([24, 10, 8, 8, 8], size=16, seed=3)


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_trains_one_epoch_and_predicts(small: Any, loss: str) -> None:
    recipe = CellCycleRecipe(epochs=1, batch_size=16, width=4, depth=1, loss=loss, tau=0.5)
    trained = train(recipe, small, device="cpu", progress=False)
    assert np.isfinite(trained.history[-1]["train_loss"])
    proba = trained.predict_proba(small.images)
    torch.testing.assert_close(proba.sum(1), torch.ones(len(small)))
    z = raw_logits(trained.model, normalised(trained, small.images))
    if loss == "one_vs_all":
        sig = torch.sigmoid(z)
        torch.testing.assert_close(proba, sig / sig.sum(1, keepdim=True), atol=1e-5, rtol=1e-4)
    else:
        torch.testing.assert_close(proba, z.softmax(1), atol=1e-5, rtol=1e-4)
    assert torch.equal(trained.predict(small.images), proba.argmax(1))


def test_logit_adjust_subtracts_tau_log_prior_from_the_plain_logits(small: Any) -> None:
    recipe = CellCycleRecipe(epochs=1, batch_size=16, width=4, depth=1, logit_adjust=0.7)
    trained = train(recipe, small, device="cpu", progress=False)
    plain = raw_logits(trained.model, normalised(trained, small.images))
    prior = torch.tensor(trained.class_prior) / sum(trained.class_prior)
    torch.testing.assert_close(
        trained.logits(small.images), plain - 0.7 * prior.log(), atol=1e-5, rtol=1e-5
    )
    off = trained.with_options(logit_adjust=0.0)
    torch.testing.assert_close(off.logits(small.images), plain, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="inference fields"):
        trained.with_options(epochs=3)


def test_tta_averages_the_eight_dihedral_views(small: Any) -> None:
    recipe = CellCycleRecipe(epochs=1, batch_size=16, width=4, depth=1, tta="d4")
    trained = train(recipe, small, device="cpu", progress=False)
    x = normalised(trained, small.images)
    views = []
    for flip in (False, True):
        for k in range(4):
            view = torch.rot90(x.flip(-1) if flip else x, k, dims=(-2, -1))
            views.append(raw_logits(trained.model, view).softmax(1))
    expected = torch.stack(views).mean(0)
    torch.testing.assert_close(trained.predict_proba(small.images), expected, atol=1e-5, rtol=1e-4)
    plain = trained.with_options(tta="none").predict_proba(small.images)
    assert not torch.allclose(plain, expected, atol=1e-4)


def test_the_tta_gate_views_only_the_unsure_cells(small: Any, tmp_path: Path) -> None:
    recipe = CellCycleRecipe(epochs=1, batch_size=16, width=4, depth=1, tta="d4", logit_adjust=1.0)
    trained = train(recipe, small, device="cpu", progress=False)
    full = trained.predict_proba(small.images)
    single = trained.with_options(tta="none").predict_proba(small.images)
    top = single.amax(dim=1)
    gate = float(top.median())
    unsure = top <= gate
    assert 0 < int(unsure.sum()) < len(small)
    gated = trained.with_options(tta_confidence=gate)
    # Oracle: the full 8-view probabilities for the unsure cells, one view for the rest.
    expected = torch.where(unsure[:, None], full, single)
    torch.testing.assert_close(gated.predict_proba(small.images), expected, atol=1e-5, rtol=1e-4)
    # The forward passes see every cell once, and the unsure ones 8 more times.
    seen: list[int] = []
    hook = trained.model.register_forward_pre_hook(lambda _m, args: seen.append(len(args[0])))
    try:
        gated.predict_proba(small.images)
    finally:
        hook.remove()
    assert sum(seen) == len(small) + 8 * int(unsure.sum())
    # 0 views no cell 8 ways, 1 every cell; the gate travels with a checkpoint.
    nothing = trained.with_options(tta_confidence=0.0).predict_proba(small.images)
    torch.testing.assert_close(nothing, single, atol=1e-6, rtol=0)
    again = TrainedClassifier.load(gated.save(tmp_path / "gated.pt"))
    assert again.recipe.tta_confidence == gate
    with pytest.raises(ValueError, match=r"tta_confidence must be .*got 1\.5"):
        trained.with_options(tta_confidence=1.5)


def test_an_ensemble_averages_its_members_and_survives_save_load(
    small: Any, tmp_path: Path
) -> None:
    recipe = CellCycleRecipe(epochs=1, batch_size=16, width=4, depth=1, n_models=3)
    trained = train(recipe, small, device="cpu", progress=False)
    assert len(trained.members) == 3
    x = normalised(trained, small.images)
    each = [raw_logits(m, x).softmax(1) for m in trained.members]
    assert not torch.allclose(each[0], each[1])  # different seeds, different members
    expected = torch.stack(each).mean(0)
    proba = trained.predict_proba(small.images)
    torch.testing.assert_close(proba, expected, atol=1e-5, rtol=1e-4)
    single = train(recipe.replace(n_models=1), small, device="cpu", progress=False)
    torch.testing.assert_close(single.predict_proba(small.images), each[0], atol=1e-5, rtol=1e-4)
    again = TrainedClassifier.load(trained.save(tmp_path / "ensemble.pt"))
    assert len(again.members) == 3
    assert torch.equal(again.predict_proba(small.images), proba)


def test_bf16_channels_last_path_agrees_with_float32() -> None:
    data = make_synthetic_cells([60, 20, 20, 20, 20], size=40, channels=2, seed=5)
    recipe = CellCycleRecipe(
        model="cellcycle_resnet", epochs=2, batch_size=32, width=8, depth=2,
        amp="bf16", channels_last=True,
    )  # fmt: skip
    trained = train(recipe, data, device="cpu", progress=False)
    fast = trained.predict(data.images)
    exact = trained.with_options(amp="none", channels_last=False).predict(data.images)
    assert (fast == exact).float().mean() >= 0.95


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it_natively(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    import cellvision.recipes.cellcycle as cellcycle

    data = make_synthetic_cells([30, 10, 10, 10, 10], size=24, channels=1, seed=2)
    trained = train(
        CellCycleRecipe(epochs=1, batch_size=16, width=4, depth=1), data, device="cpu",
        progress=False,
    )  # fmt: skip
    monkeypatch.setattr(cellcycle, "_cpu_has_native_bf16", lambda: native)
    auto = trained.with_options(amp="auto").logits(data.images)
    expected = trained.with_options(amp="bf16" if native else "none").logits(data.images)
    other = trained.with_options(amp="none" if native else "bf16").logits(data.images)
    torch.testing.assert_close(auto, expected, rtol=0, atol=0)
    assert not torch.equal(auto, other)  # the two precisions do differ on these cells
    assert cellcycle.resolve_amp("auto", torch.device("meta")) is None
    with pytest.raises(ValueError, match="mode must be one of"):
        cellcycle.resolve_amp("fp8")


def test_mixup_mixes_images_and_targets_with_one_lambda() -> None:
    from cellvision.recipes.cellcycle import _Mixup

    ce = torch.nn.functional.cross_entropy
    mixup = _Mixup(0.4, ce, None, seed=0)
    x = torch.randn(6, 1, 4, 4)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    mixed = mixup.transform(x)
    assert mixup.pending is not None
    perm, lam = mixup.pending
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[perm])
    logits = torch.randn(6, 3)
    expected = lam * ce(logits, y) + (1 - lam) * ce(logits, y[perm])
    torch.testing.assert_close(mixup.loss(logits, y), expected)
    torch.testing.assert_close(mixup.loss(logits, y), ce(logits, y))  # validation: plain loss


def test_cutmix_pastes_one_box_and_mixes_targets_by_its_area() -> None:
    from cellvision.recipes.cellcycle import _Mixup

    ce = torch.nn.functional.cross_entropy
    cutmix = _Mixup(1.0, ce, None, seed=3, cut=True)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    logits = torch.randn(6, 3)
    for _ in range(20):
        x = torch.randn(6, 2, 10, 12)
        mixed = cutmix.transform(x)
        assert cutmix.pending is not None
        perm, lam = cutmix.pending
        # Reference: the pixels that changed (random images differ wherever the partner is
        # another image) must fill their bounding box, in every image and channel alike.
        changed = (mixed != x).any(dim=0).any(dim=0)
        box = torch.zeros(10, 12, dtype=torch.bool)
        if bool(changed.any()):
            rows, cols = changed.any(dim=1).nonzero(), changed.any(dim=0).nonzero()
            box[int(rows.min()) : int(rows.max()) + 1, int(cols.min()) : int(cols.max()) + 1] = True
        assert bool((changed == box).all())
        torch.testing.assert_close(mixed, torch.where(box, x[perm], x))  # one rectangle
        assert lam == pytest.approx(1.0 - box.float().mean().item())
        expected = lam * ce(logits, y) + (1 - lam) * ce(logits, y[perm])
        torch.testing.assert_close(cutmix.loss(logits, y), expected)


def test_cross_validation_variants_reuse_the_trained_folds(small: Any) -> None:
    recipe = CellCycleRecipe(epochs=1, batch_size=16, width=4, depth=1)
    result = cross_validate(recipe, small, n_splits=3, device="cpu", keep_classifiers=True)
    same = result.with_options(small)
    torch.testing.assert_close(same.oof_proba, result.oof_proba)
    tta = result.with_options(small, tta="d4")
    for k, trained in enumerate(result.classifiers):
        mask = torch.from_numpy(result.fold_of == k)
        expected = trained.with_options(tta="d4").predict_proba(small.images[mask])
        torch.testing.assert_close(tta.oof_proba[mask], expected)
    with pytest.raises(ValueError, match="keep_classifiers=True"):
        cross_validate(recipe, small, n_splits=3, device="cpu").with_options(small)


# The developer data: ../shared/data/jurkat next to the repository, or
# $CELLVISION_SHARED/data/jurkat (a worktree); absent in a user's fresh clone.
_SHARED = Path(
    os.environ.get("CELLVISION_SHARED", Path(__file__).resolve().parents[2].parent / "shared")
)
_CANDIDATES = [_SHARED / "data" / "jurkat"]
JURKAT = next((p for p in _CANDIDATES if (p / "Experiment_1").is_dir()), None)


@pytest.mark.skipif(JURKAT is None, reason="../shared/data/jurkat is not available")
def test_load_unlabelled_reads_a_real_montage_folder() -> None:
    assert JURKAT is not None
    images, ids = load_unlabelled(JURKAT / "Experiment_1" / "Anaphase")
    assert images.shape[1:] == (2, 40, 40)
    assert len(ids) == 9  # the 9 anaphase cells, padding and the repeated tile dropped
    assert ids[0] == "CP0001#0"


def test_load_data_reads_a_labelled_montage_folder(tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(1)
    tiles = {"G1": 4, "S_phase": 2, "Prophase": 3, "Metaphase": 2, "Anaphase": 2, "Telophase": 2}
    for phase, n in tiles.items():
        (tmp_path / phase).mkdir()
        for channel in ("Ch3", "Ch6"):
            # One row of n tiles of 40 x 40 noise (column-major order: tile k is column k).
            pixels = rng.integers(1000, 60000, size=(40, 40 * n)).astype(np.uint16)
            image.fromarray(pixels).save(tmp_path / phase / f"{channel}_CP0001.tif")
    data, text = load_data(tmp_path)
    assert data.images.shape[1:] == (2, 40, 40)
    assert dict(data.counts) == {
        "Interphase": 6, "Prophase": 3, "Metaphase": 2, "Anaphase": 2, "Telophase": 2,
    }  # fmt: skip
    assert data.ids is not None
    assert "Prophase/CP0001#2" in data.ids
    assert "Ch3, Ch6" in text
    images, ids = load_unlabelled(tmp_path)  # the labels are ignored, the ids kept
    assert ids == list(data.ids)
    assert torch.equal(images, data.images)


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        ("cross_entropy", lambda p: np.log(p)),
        ("focal", lambda p: np.log(p)),
        ("logit_adjusted", lambda p: 0.25 * np.log(p)),  # (1 - tau) log prior, tau = 0.75
        ("balanced_softmax", lambda p: np.zeros_like(p)),
        ("one_vs_all", lambda p: np.log(p / (1 - p))),
    ],
)
def test_the_head_starts_where_the_loss_wants_it(loss: str, expected: Any) -> None:
    prior = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    recipe = CellCycleRecipe(width=4, depth=1, loss=loss, tau=0.75)
    model = build_model(recipe, n_classes=5, in_channels=1, img_size=16, class_freqs=prior)
    bias = model.classifier.bias.detach().double().numpy()
    want = expected(prior)
    if loss == "one_vs_all":
        np.testing.assert_allclose(bias, want, rtol=1e-5)
    else:  # a softmax head is defined up to a constant
        np.testing.assert_allclose(bias - bias.mean(), want - want.mean(), atol=1e-5)


# --------------------------------------------------------------------------- train_labels
RELEASE = ("G1", "S", "G2", "Prophase", "Metaphase", "Anaphase", "Telophase")


def with_release_labels(merged: Any) -> Any:
    """The same cells with Interphase split cyclically into G1, S, G2 (written out by hand)."""
    from cellvision.data import CellImageDataset

    fine = []
    seen = 0
    for label in merged.targets.tolist():
        if label == 0:
            fine.append(seen % 3)
            seen += 1
        else:
            fine.append(label + 2)
    return CellImageDataset(merged.images, fine, RELEASE)


@pytest.fixture(scope="module")
def release_cells() -> tuple[Any, Any]:
    merged = make_synthetic_cells([30, 10, 8, 8, 8], size=16, seed=7)
    return merged, with_release_labels(merged)


def test_train_labels_validates_and_defaults_to_merged() -> None:
    assert CellCycleRecipe().train_labels == "merged"
    recipe = CellCycleRecipe(train_labels="release")
    assert CellCycleRecipe.from_json(recipe.to_json()) == recipe
    with pytest.raises(ValueError, match="train_labels"):
        CellCycleRecipe(train_labels="fine")


def test_merged_training_is_unchanged_whatever_labels_the_cells_carry(
    release_cells: tuple[Any, Any],
) -> None:
    merged, fine = release_cells
    recipe = CellCycleRecipe(epochs=1, batch_size=16, width=4, depth=1, logit_adjust=0.5)
    reference = train(recipe, merged, device="cpu", progress=False)
    # Release-labelled cells are merged first: the very same training, bit for bit.
    from_fine = train(recipe, fine, device="cpu", progress=False)
    # Cells without finer classes: "release" trains exactly as "merged".
    no_finer = train(recipe.replace(train_labels="release"), merged, device="cpu", progress=False)
    for other in (from_fine, no_finer):
        assert other.fine_class_names is None
        assert other.class_names == merged.class_names
        assert other.class_prior == reference.class_prior
        states = reference.model.state_dict(), other.model.state_dict()
        assert list(states[0]) == list(states[1])
        assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
        assert torch.equal(other.logits(merged.images), reference.logits(merged.images))


def naive_merged_proba(trained: TrainedClassifier, images: torch.Tensor) -> torch.Tensor:
    """Mean over members and D4 views of the fine softmax, adjusted, then G1+S+G2 summed."""
    x = normalised(trained, images)
    views = []
    for member in trained.members:
        for flip in (False, True):
            for k in range(4):
                view = torch.rot90(x.flip(-1) if flip else x, k, dims=(-2, -1))
                views.append(raw_logits(member, view).softmax(1))
    mean = torch.stack(views).mean(0)
    prior = torch.tensor(trained.class_prior)
    fine = (mean.log() - trained.recipe.logit_adjust * prior.log()).softmax(1)
    return torch.cat([fine[:, :3].sum(1, keepdim=True), fine[:, 3:]], dim=1)


def test_release_training_sums_the_fine_probabilities(
    release_cells: tuple[Any, Any], tmp_path: Path
) -> None:
    merged, fine = release_cells
    recipe = CellCycleRecipe(
        epochs=1, batch_size=16, width=4, depth=1, train_labels="release", tta="d4",
        n_models=2, logit_adjust=0.5,
    )  # fmt: skip
    trained = train(recipe, fine, device="cpu", progress=False)
    assert trained.fine_class_names == RELEASE
    assert trained.network_class_names == RELEASE
    assert trained.class_names == merged.class_names
    assert len(trained.class_prior) == 7
    assert raw_logits(trained.model, normalised(trained, fine.images[:2])).shape == (2, 7)
    # The sampler's batch mix over the seven classes (alpha=0.9 reweights the counts).
    counts = torch.bincount(fine.targets, minlength=7).double()
    mix = counts ** (1 - recipe.alpha)
    torch.testing.assert_close(torch.tensor(trained.class_prior).double(), mix / mix.sum())
    proba = trained.predict_proba(fine.images)
    expected = naive_merged_proba(trained, fine.images)
    assert proba.shape == (len(fine), 5)
    torch.testing.assert_close(proba, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(trained.logits(fine.images), expected.log(), atol=1e-4, rtol=1e-4)
    assert torch.equal(trained.predict(fine.images), proba.argmax(1))
    # One checkpoint holds the fine classes, their prior and every member.
    again = TrainedClassifier.load(trained.save(tmp_path / "release.pt"))
    assert again.fine_class_names == RELEASE
    assert again.class_names == trained.class_names
    assert again.class_prior == trained.class_prior
    assert torch.equal(again.predict_proba(fine.images), proba)
    # The fast path (bf16 autocast, channels_last) stays close and merged.
    fast = trained.with_options(amp="bf16", channels_last=True).predict_proba(fine.images)
    torch.testing.assert_close(fast, proba, atol=0.05, rtol=0.05)
    # Evaluation reports the merged classes, from release or merged labels alike.
    report = evaluate(trained, fine)
    assert report.class_names == merged.class_names
    assert torch.equal(report.confusion_matrix, evaluate(trained, merged).confusion_matrix)


def test_fine_class_names_must_merge_into_the_class_names(trained: TrainedClassifier) -> None:
    import dataclasses

    with pytest.raises(ValueError, match="fine_class_names must merge into class_names"):
        dataclasses.replace(trained, fine_class_names=("G1", "S", "Prophase"))


def test_release_cross_validation_keeps_the_merged_folds(release_cells: tuple[Any, Any]) -> None:
    merged, fine = release_cells
    recipe = CellCycleRecipe(epochs=1, batch_size=16, width=4, depth=1, select="best")
    plain = cross_validate(recipe, merged, n_splits=3, seed=2, device="cpu")
    finer = cross_validate(
        recipe.replace(train_labels="release"), fine, n_splits=3, seed=2, device="cpu",
        keep_classifiers=True,
    )  # fmt: skip
    assert finer.fold_of.tolist() == plain.fold_of.tolist()
    assert finer.oof_proba.shape == (len(fine), 5)
    torch.testing.assert_close(finer.oof_proba.sum(1), torch.ones(len(fine)))
    assert finer.pooled.class_names == merged.class_names
    assert all(c.fine_class_names == RELEASE for c in finer.classifiers)
    again = finer.with_options(fine, tta="d4")
    assert again.fold_of.tolist() == plain.fold_of.tolist()


def test_release_study_splits_and_reports_on_the_merged_classes(
    release_cells: tuple[Any, Any],
) -> None:
    merged, fine = release_cells
    recipe = CellCycleRecipe(epochs=1, batch_size=16, width=4, depth=1, baseline_epochs=1)
    plain = run_study(recipe, merged, device="cpu", progress=False, log=None)
    finer = run_study(
        recipe.replace(train_labels="release"), fine, device="cpu", progress=False, log=None
    )
    assert finer.summary["split_counts"] == plain.summary["split_counts"]
    assert finer.summary["class_names"] == list(merged.class_names)
    assert finer.summary["trained_class_names"] == list(RELEASE)
    assert finer.trained.fine_class_names == RELEASE
    assert finer.baseline is not None
    assert finer.baseline.fine_class_names is None


def test_load_data_keeps_the_release_classes_on_request() -> None:
    from cellvision.data import INTERPHASE_MERGE

    merged, _ = load_data()
    fine, _ = load_data(release_labels=True)
    assert fine.class_names == RELEASE
    assert torch.equal(fine.images, merged.images)
    to_merged = [merged.class_names.index(INTERPHASE_MERGE.get(n, n)) for n in RELEASE]
    assert [to_merged[t] for t in fine.targets.tolist()] == merged.targets.tolist()
    synthetic, _ = load_data(counts=[4, 2, 2, 2, 2], size=16, release_labels=True)
    assert synthetic.class_names == merged.class_names


def test_release_validation_metrics_are_on_the_merged_classes(
    release_cells: tuple[Any, Any],
) -> None:
    _, fine = release_cells
    recipe = CellCycleRecipe(epochs=2, batch_size=16, width=4, depth=1, train_labels="release")
    train_part, val_part = subset(fine, np.arange(0, 64, 2)), subset(fine, np.arange(1, 64, 2))
    trained = train(recipe, train_part, val_part, device="cpu", progress=False)
    # The last epoch's validation report is the merged-class report of the kept weights.
    report = evaluate(trained, val_part)
    last = trained.history[-1]
    assert math.isclose(last["val_balanced_accuracy"], report.balanced_accuracy, abs_tol=1e-9)
    assert math.isclose(last["val_macro_f1"], report.macro_f1, abs_tol=1e-9)
    with pytest.raises(ValueError, match="val_data.class_names must be"):
        train(recipe, train_part, _merged_cells(val_part), device="cpu", progress=False)


def _merged_cells(fine: Any) -> Any:
    from cellvision.data import CellImageDataset

    labels = [max(t - 2, 0) for t in fine.targets.tolist()]
    names = ("Interphase", "Prophase", "Metaphase", "Anaphase", "Telophase")
    return CellImageDataset(fine.images, labels, names)


def test_deferred_sampler_draws_the_early_mix_then_the_late_one() -> None:
    labels = torch.tensor([0] * 900 + [1] * 100)
    early = ClassBalancedSampler(labels, alpha=0.0, seed=5)
    late = ClassBalancedSampler(labels, alpha=1.0, seed=5)
    sampler = _DeferredSampler(
        ClassBalancedSampler(labels, alpha=0.0, seed=5),
        ClassBalancedSampler(labels, alpha=1.0, seed=5),
        switch=2,
    )
    assert len(sampler) == len(late) == 1000
    for epoch in range(4):
        sampler.set_epoch(epoch)
        reference = early if epoch < 2 else late
        reference.set_epoch(epoch)
        drawn = list(sampler)
        assert drawn == list(reference)
        # Natural mix (90 % class 0) while deferred, balanced (50 %) afterwards.
        share = float((labels[drawn] == 0).float().mean())
        assert abs(share - (0.9 if epoch < 2 else 0.5)) < 0.05


def test_deferred_rebalancing_is_deterministic_and_keeps_the_late_prior(small: Any) -> None:
    base = CellCycleRecipe(epochs=2, batch_size=16, width=4, depth=1, alpha=1.0)
    deferred = base.replace(defer_epochs=1, early_alpha=0.0)
    runs = [train(r, small, device="cpu", progress=False) for r in (base, deferred, deferred)]
    losses = [[row["train_loss"] for row in run.history] for run in runs]
    assert losses[1] == losses[2]  # deterministic for a seed
    assert losses[0][0] != losses[1][0]  # another draw in the deferred epoch
    # The head prior and the post-hoc prior are the late (alpha=1: uniform) mix.
    assert runs[1].class_prior == runs[0].class_prior
    assert CellCycleRecipe.from_json(deferred.to_json()) == deferred


def test_weight_average_leaves_training_alone_and_predicts_with_the_average(small: Any) -> None:
    base = CellCycleRecipe(epochs=2, batch_size=16, width=4, depth=1)
    runs = [
        train(base.replace(ema=ema), small, device="cpu", progress=False)
        for ema in (0.0, 1e-12, 0.9, 0.9)
    ]
    losses = [[row["train_loss"] for row in run.history] for run in runs]
    assert losses[0] == losses[1] == losses[2] == losses[3]  # the average is not trained on

    def state(run: Any) -> list[torch.Tensor]:
        return list(run.model.state_dict().values())

    # A (numerically) zero decay averages nothing: the last weights and BatchNorm statistics.
    assert all(torch.equal(a, b) for a, b in zip(state(runs[0]), state(runs[1]), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(state(runs[0]), state(runs[2]), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(state(runs[2]), state(runs[3]), strict=True))
    assert all(p.requires_grad for p in runs[2].model.parameters())
    torch.testing.assert_close(
        runs[2].predict_proba(small.images), runs[3].predict_proba(small.images)
    )


def test_rotation_augmentation_trains_deterministically_and_changes_the_draws(
    small: Any,
) -> None:
    base = CellCycleRecipe(epochs=1, batch_size=16, width=4, depth=1)
    rotated = base.replace(max_rotation=45.0)
    runs = [train(r, small, device="cpu", progress=False) for r in (base, rotated, rotated)]
    losses = [[row["train_loss"] for row in run.history] for run in runs]
    assert losses[1] == losses[2]  # deterministic for a seed
    assert losses[0] != losses[1]  # the rotation changed what the network saw
    assert CellCycleRecipe.from_json(rotated.to_json()) == rotated


def test_channel_dropout_blanks_the_named_channel_of_training_cells(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cellvision.recipes.cellcycle as cellcycle

    # The augmentation alone: channel 1 is blanked in (nearly) every cell, channel 0 only
    # moves by the dihedral symmetries.
    x = torch.randn(256, 2, 8, 8, generator=torch.Generator().manual_seed(0)) + 5.0
    out = _augmentation(
        0, seed=1, max_rotation=0.0, intensity_jitter=0.0, rotation_interpolation="nearest",
        channel_dropout=0.9, dropout_channels=(1,),
    )(x)  # fmt: skip
    blank = (out[:, 1] == 0).flatten(1).all(1)
    assert 0.8 < blank.float().mean().item() < 0.97
    assert not (out[:, 0] == 0).flatten(1).all(1).any()
    torch.testing.assert_close(
        out[:, 0].flatten(1).sort(1).values, x[:, 0].flatten(1).sort(1).values, rtol=0, atol=0
    )
    # Wired through training: the network sees Ch6 blanked in its training batches (named by
    # channel), never in prediction.
    seen: list[torch.Tensor] = []
    build = cellcycle.create_model

    def recording_model(*args: Any, **kwargs: Any) -> torch.nn.Module:
        model = build(*args, **kwargs)
        model.register_forward_pre_hook(
            lambda m, inputs: seen.append(inputs[0].detach().clone()) if m.training else None
        )
        return model

    monkeypatch.setattr(cellcycle, "create_model", recording_model)
    data = make_synthetic_cells([24, 10, 8, 8, 8], size=16, channels=2, seed=3)
    recipe = CellCycleRecipe(
        epochs=1, batch_size=16, width=4, depth=1, channels=("Ch3", "Ch6"),
        channel_dropout=0.9, channel_dropout_channels=("Ch6",),
    )  # fmt: skip
    trained = train(recipe, data, device="cpu", progress=False)
    batches = torch.cat(seen)
    blanked = (batches == 0).flatten(2).all(2)  # (cells, channels)
    assert blanked[:, 0].sum() == 0
    assert blanked[:, 1].float().mean() > 0.75
    seen.clear()
    trained.predict_proba(data.images)
    assert not seen  # eval mode: the hook records nothing, prediction is not augmented


AUX = CellCycleRecipe(
    model="cellcycle_resnet", epochs=2, batch_size=16, width=4, depth=2, channels=("Ch3", "Ch6"),
    auxiliary_channel="Ch4", auxiliary_weight=2.0, baseline_epochs=1,
)  # fmt: skip


def test_auxiliary_loss_is_the_mse_of_the_decoded_channel_against_its_pooled_copy() -> None:
    from cellvision.recipes.cellcycle import _add_auxiliary_loss, _AuxiliaryChannelNet

    torch.manual_seed(0)
    network = build_model(AUX, n_classes=5, in_channels=2, img_size=16, class_freqs=[0.2] * 5)
    wrapped = _AuxiliaryChannelNet(network).train()
    x = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    logits = wrapped(x)
    # Naive reference: the network on the first two channels; the decoder on its 4x4 map
    # predicts 8x8, so the target is the mean of each 2x2 block of the third channel.
    feature_map = network.forward_feature_map(x[:, :2])
    torch.testing.assert_close(feature_map.mean(dim=(2, 3)), network.forward_features(x[:, :2]))
    torch.testing.assert_close(feature_map, network.stages(network.stem(x[:, :2])))
    torch.testing.assert_close(logits, network.forward_head(feature_map.mean(dim=(2, 3))))
    target = x[:, 2:].reshape(6, 1, 8, 2, 8, 2).mean(dim=(3, 5))
    expected = ((wrapped.decoder(feature_map) - target) ** 2).mean()
    torch.testing.assert_close(wrapped.loss, expected)
    wrapped.loss.backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in wrapped.decoder.parameters())
    # The training loss adds it at the recipe's weight.
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    base = torch.nn.functional.cross_entropy
    combined = _add_auxiliary_loss(base, wrapped, 2.0)
    torch.testing.assert_close(combined(logits, y), base(logits, y) + 2.0 * wrapped.loss)
    # Evaluation mode: logits only, the loss is left alone.
    before = wrapped.loss
    wrapped.eval()(torch.zeros(2, 3, 16, 16))
    assert wrapped.loss is before
    with pytest.raises(TypeError, match="network must be a ResNet"):
        _AuxiliaryChannelNet(torch.nn.Linear(2, 2))


def test_auxiliary_channel_is_a_training_target_never_an_input() -> None:
    from cellvision.recipes.cellcycle import train_pixel_baseline

    data = make_synthetic_cells([24, 10, 8, 8, 8], size=16, channels=3, seed=4)
    trained = train(AUX, data, device="cpu", progress=False)
    # The classifier is the plain network on Ch3 + Ch6, normalised by their own statistics.
    assert type(trained.model).__name__ == "ResNet"
    assert trained.model.config.in_channels == 2
    assert trained.channels == ("Ch3", "Ch6")
    scaled = data.images[:, :2].double() / 255  # uint8 cells are scaled to [0, 1]
    assert data.images.dtype == torch.uint8
    torch.testing.assert_close(trained.mean, scaled.mean(dim=(0, 2, 3)))
    # Predictions ignore the auxiliary channel where it is given, whatever it holds.
    two_channels = data.images[:, :2]
    two = trained.predict_proba(two_channels)
    noisy = data.images.clone()
    noisy[:, 2] = torch.rand(noisy[:, 2].shape, generator=torch.Generator().manual_seed(0)) * 9
    torch.testing.assert_close(trained.predict_proba(data), two)
    torch.testing.assert_close(trained.predict_proba(noisy), two)
    # The target matters to training (another target, other weights), and it is deterministic.
    again = train(AUX, data, device="cpu", progress=False)
    torch.testing.assert_close(again.predict_proba(data), two)
    other = train(AUX, CellImageDataset(noisy, data.targets, data.class_names), device="cpu",
                  progress=False)  # fmt: skip
    assert not torch.allclose(other.predict_proba(data), two)
    # The raw-pixel baseline of the study never sees it either, and both are tested on
    # cells that still hold it.
    baseline = train_pixel_baseline(AUX, data, device="cpu", progress=False)
    assert baseline.mean.numel() == 2
    assert baseline.model.linear.in_features == 2 * 16 * 16
    torch.testing.assert_close(baseline.predict_proba(data), baseline.predict_proba(two_channels))
    study = run_study(AUX, data, device="cpu", progress=False, log=None)
    assert set(study.test) == {"cellcycle_resnet", "linear (raw pixels)"}
    assert study.summary["label_free"] is True
    # Cells without it are refused with the channels the recipe needs.
    with pytest.raises(ValueError, match=r"must hold its data_channels \('Ch3', 'Ch6', 'Ch4'\)"):
        train(AUX, CellImageDataset(two_channels, data.targets, data.class_names), device="cpu",
              progress=False)  # fmt: skip
    assert channel_report(AUX.channels, auxiliary="Ch4") == [
        "channels: Ch3 = brightfield, Ch6 = darkfield (side scatter); label-free",
        "auxiliary training target: Ch4 = DNA stain (the label source, not label-free), "
        "predicted by the network while it trains; the classifier never sees it",
    ]


MEMBERS = CellCycleRecipe(
    model="cellcycle_resnet", epochs=2, batch_size=16, width=4, depth=2, channels=("Ch3", "Ch6"),
    n_models=3, member_channels=(("Ch3", "Ch6"), ("Ch3",), ("Ch6",)), baseline_epochs=1,
)  # fmt: skip


def test_member_channels_are_validated_and_round_trip() -> None:
    two = {"channels": ("Ch3", "Ch6"), "n_models": 2}
    for changes, match in [
        ({"member_channels": (("Ch3", "Ch6"),)}, r"one entry per ensemble member \(n_models=2\)"),
        ({"member_channels": (("Ch3", "Ch6"), ())}, "non-empty selections of distinct channels"),
        ({"member_channels": (("Ch3", "Ch6"), ("Ch4",))}, r"among \('Ch3', 'Ch6'\), got \('Ch4'"),
        ({"member_channels": (("Ch3", "Ch6"), ("Ch3", "Ch3"))}, "distinct channels"),
        ({"member_channels": (("Ch3",), ("Ch3", "Ch6"))}, r"must start with channels"),
        ({"member_channels": (("Ch6", "Ch3"), ("Ch3",))}, r"must start with channels"),
    ]:
        with pytest.raises(ValueError, match=match):
            CellCycleRecipe(**(two | changes))
    for bad in ("Ch3", ("Ch3", "Ch6")):
        with pytest.raises(TypeError, match="member_channels must be a tuple of tuples"):
            CellCycleRecipe(**two, member_channels=bad)  # type: ignore[arg-type]
    # Lists (JSON) become tuples; the recipe round-trips; member_inputs index channels.
    listed = CellCycleRecipe(**two, member_channels=[["Ch3", "Ch6"], ["Ch6"]])  # type: ignore[arg-type]
    assert listed.member_channels == (("Ch3", "Ch6"), ("Ch6",))
    assert listed.member_inputs == ((0, 1), (1,))
    assert CellCycleRecipe.from_json(MEMBERS.to_json()) == MEMBERS
    assert CellCycleRecipe(**two).member_inputs == ((0, 1), (0, 1))


def test_ensemble_members_see_their_own_channels() -> None:
    import pathlib
    import tempfile

    data = make_synthetic_cells([24, 10, 8, 8, 8], size=16, channels=2, seed=5)
    trained = train(MEMBERS, data, device="cpu", progress=False)
    assert [m.config.in_channels for m in trained.members] == [2, 1, 1]
    # Naive reference: each member on its channels of the normalised cells, probabilities
    # averaged, then the recipe's (here no) adjustment.
    x = (data.images.double() / 255 - trained.mean.view(1, -1, 1, 1)) / trained.std.view(
        1, -1, 1, 1
    )
    x = x.float()
    pairs = list(zip(trained.members, [[0, 1], [0], [1]], strict=True))
    with torch.no_grad():
        mean = sum(member(x[:, inputs]).softmax(dim=1) for member, inputs in pairs) / 3
    torch.testing.assert_close(trained.predict_proba(data), mean, rtol=1e-4, atol=1e-5)
    # Test-time views: each member's own 8-view mean on its channels, averaged.
    views = sum(predict_tta(member, x[:, inputs], "d4") for member, inputs in pairs) / 3
    torch.testing.assert_close(
        trained.with_options(tta="d4").predict_proba(data), views, rtol=1e-4, atol=1e-5
    )
    # save/load keeps the members' channels.
    with tempfile.TemporaryDirectory() as tmp:
        again = TrainedClassifier.load(trained.save(pathlib.Path(tmp) / "members.pt"))
    assert [m.config.in_channels for m in again.members] == [2, 1, 1]
    torch.testing.assert_close(again.predict_proba(data), trained.predict_proba(data))
    # Each member is fed its channels; training is deterministic.
    seen: list[int] = []
    hooks = [
        m.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape[1]))
        for m in trained.members
    ]
    trained.predict_proba(data)
    assert seen == [2, 1, 1]
    assert not any(m.training for m in trained.members)  # prediction leaves them in eval mode
    for hook in hooks:
        hook.remove()
    repeat = train(MEMBERS, data, device="cpu", progress=False)
    torch.testing.assert_close(repeat.predict_proba(data), trained.predict_proba(data))
    # Members that disagree with the recipe, and cells without its channels, are refused.
    with pytest.raises(
        ValueError, match=r"members must be the 3 of .* got 3 members taking \[2, 1, 2\]"
    ):
        dataclasses.replace(trained, extra_members=(trained.extra_members[0], trained.model))
    one = CellImageDataset(data.images[:, :1], data.targets, data.class_names)
    with pytest.raises(ValueError, match=r"train_data must hold the recipe's channels"):
        train(MEMBERS, one, device="cpu", progress=False)


def test_members_train_on_their_own_channels_only() -> None:
    # Noise in a channel that a member does not see leaves its trained weights unchanged:
    # normalisation, augmentation draws and sampler do not depend on that channel.
    data = make_synthetic_cells([24, 10, 8, 8, 8], size=16, channels=2, seed=5)
    trained = train(MEMBERS, data, device="cpu", progress=False)
    for noisy_channel, untouched in [(0, 2), (1, 1)]:  # Ch3 noise: the Ch6 member; and back
        images = data.images.clone()
        images[:, noisy_channel] = torch.randint(
            0, 255, images[:, 0].shape, generator=torch.Generator().manual_seed(3),
            dtype=torch.uint8,
        )  # fmt: skip
        other = train(MEMBERS, CellImageDataset(images, data.targets, data.class_names),
                      device="cpu", progress=False)  # fmt: skip
        for k, (mine, theirs) in enumerate(zip(trained.members, other.members, strict=True)):
            same = all(
                torch.equal(a, b)
                for a, b in zip(mine.state_dict().values(), theirs.state_dict().values(),
                                strict=True)
            )  # fmt: skip
            assert same == (k == untouched), (noisy_channel, k)


def test_channel_dropout_blanks_only_a_members_own_channels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cellvision.recipes.cellcycle import _droppable_channels

    both = (0, 1)
    plain = MEMBERS.replace(channel_dropout=0.5)
    assert _droppable_channels(plain, both, both, auxiliary=False) is None  # any channel
    assert _droppable_channels(plain, (0,), both, auxiliary=False) == ()  # never its only one
    named = MEMBERS.replace(channel_dropout=0.5, channel_dropout_channels=("Ch6",))
    assert _droppable_channels(named, both, both, auxiliary=False) == (1,)
    assert _droppable_channels(named, (0,), both, auxiliary=False) == ()  # Ch6 is not its input
    assert _droppable_channels(named, (1,), both, auxiliary=False) == (1,)  # asked for by name
    three = CellCycleRecipe(channels=("Ch3", "Ch6", "Ch7"), n_models=2, channel_dropout=0.5,
                            member_channels=(("Ch3", "Ch6", "Ch7"), ("Ch3", "Ch7")))  # fmt: skip
    assert _droppable_channels(three, (0, 2), (0, 1, 2), auxiliary=False) == (0, 2)
    assert _droppable_channels(plain, both, both, auxiliary=True) == both  # never the target
    # On the training path the one-channel members never see a blanked cell.
    data = make_synthetic_cells([24, 10, 8, 8, 8], size=16, channels=2, seed=5)
    seen: list[torch.Tensor] = []
    from cellvision.recipes.cellcycle import _SelectChannels

    forward = _SelectChannels.forward

    def spy(self: Any, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            seen.append(x[:, self.inputs].detach().clone())
        return forward(self, x)

    monkeypatch.setattr(_SelectChannels, "forward", spy)
    train(plain.replace(epochs=1), data, device="cpu", progress=False)
    batches = torch.cat([b for b in seen if b.shape[1] == 1])
    assert batches.numel()
    assert not (batches == 0).flatten(1).all(1).any()


def test_member_channels_with_an_auxiliary_target() -> None:
    # Each member predicts the stain from its own channels; the stain is never an input.
    recipe = AUX.replace(n_models=2, member_channels=(("Ch3", "Ch6"), ("Ch6",)))
    data = make_synthetic_cells([24, 10, 8, 8, 8], size=16, channels=3, seed=4)
    trained = train(recipe, data, device="cpu", progress=False)
    assert [m.config.in_channels for m in trained.members] == [2, 1]
    noisy = data.images.clone()
    noisy[:, 2] = torch.randint(0, 255, noisy[:, 2].shape, generator=torch.Generator()
                                .manual_seed(0), dtype=torch.uint8)  # fmt: skip
    torch.testing.assert_close(trained.predict_proba(noisy), trained.predict_proba(data))
    # The classifier is the two members on their channels (the one-channel member on Ch6).
    lone = trained.extra_members[0]
    x = trained.normalize(data.images[:, :2].float() / 255)
    with torch.no_grad():
        expected = (trained.model(x).softmax(1) + lone(x[:, 1:]).softmax(1)) / 2
    torch.testing.assert_close(trained.predict_proba(data), expected, rtol=1e-4, atol=1e-5)


def test_augmentation_strengths_switch_their_steps_on_and_off() -> None:
    x = torch.randn(64, 2, 12, 12, generator=torch.Generator().manual_seed(0))

    def per_cell_values(batch: torch.Tensor) -> torch.Tensor:
        return batch.flatten(1).sort(dim=1).values

    # No shift, rotation or jitter: only the dihedral symmetries, which permute pixels.
    plain = _augmentation(
        0, seed=1, max_rotation=0.0, intensity_jitter=0.0, rotation_interpolation="nearest"
    )(x)
    torch.testing.assert_close(per_cell_values(plain), per_cell_values(x), rtol=0, atol=0)
    # The jitter rescales each cell: its sorted values change, but as x * scale + offset.
    jittered = _augmentation(
        0, seed=1, max_rotation=0.0, intensity_jitter=0.2, rotation_interpolation="nearest"
    )(x)
    a, b = per_cell_values(x), per_cell_values(jittered)
    assert not torch.equal(a, b)
    scale = (b[:, -1] - b[:, 0]) / (a[:, -1] - a[:, 0])
    assert bool(((scale > 0.8 - 1e-5) & (scale < 1.2 + 1e-5)).all())
    torch.testing.assert_close(b, a * scale[:, None] + (b[:, :1] - a[:, :1] * scale[:, None]))
    # A bilinear rotation resamples: values are no longer a permutation of the input's.
    smooth = _augmentation(
        0, seed=1, max_rotation=45.0, intensity_jitter=0.0, rotation_interpolation="bilinear"
    )(x)
    assert not torch.allclose(per_cell_values(smooth), per_cell_values(x))
    # The nearest-pixel rotation (the recipe's default) only copies the cell's own values.
    rotated = _augmentation(
        0, seed=1, max_rotation=45.0, intensity_jitter=0.0, rotation_interpolation="nearest"
    )(x)
    assert not torch.equal(rotated, plain)
    for cell, source in zip(rotated, x, strict=True):
        assert bool(torch.isin(cell, source).all())
