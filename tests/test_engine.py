"""Tests for cellvision.engine: train_one_epoch, evaluate, fit and History."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, mean_squared_error
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torcheval.metrics import MeanSquaredError, Metric, MulticlassAccuracy

from cellvision.engine import EvalResult, History, TrainStats, evaluate, fit, train_one_epoch
from cellvision.models import create_model
from tests._distributed import free_port, gloo_group
from tests._engine_models import GRURegressor, MLPClassifier, MLPConfig, make_blobs, make_series


def blob_loaders(
    seed: int = 0, batch_size: int = 16, n: int = 96
) -> tuple[DataLoader[Any], DataLoader[Any]]:
    x, y = make_blobs(n, seed=seed)
    xv, yv = make_blobs(48, seed=seed)  # same centres (same seed), different noise draw order
    g = torch.Generator().manual_seed(seed)
    train = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=g)
    val = DataLoader(TensorDataset(xv, yv), batch_size=batch_size)
    return train, val


def run_fit(seed: int, epochs: int = 2, **kwargs: Any) -> tuple[History, nn.Module]:
    torch.manual_seed(seed)
    model = create_model("test_engine_mlp")
    train, val = blob_loaders(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = fit(
        model,
        train,
        optimizer,
        epochs=epochs,
        val_loader=val,
        metrics={"acc": MulticlassAccuracy(num_classes=3)},
        **kwargs,
    )
    return history, model


# --------------------------------------------------------------------------- fit
def test_two_epoch_fit_reduces_loss_and_records_history() -> None:
    history, _ = run_fit(seed=0)
    assert len(history) == 2
    assert history.keys() == ["epoch", "train_loss", "train_samples", "val_loss", "val_acc"]
    assert [r["epoch"] for r in history] == [1, 2]  # counted from 1
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert history[1]["val_loss"] < history[0]["val_loss"]
    assert all(r["train_samples"] == 96 for r in history)
    assert 0.0 <= history[1]["val_acc"] <= 1.0
    assert history.monitor == "val_loss"
    assert not history.stopped_early
    # Timings live apart from the records.
    assert len(history.timings) == 2
    for timing in history.timings:
        assert set(timing) == {"train_seconds", "train_samples_per_second", "val_seconds"}
        assert timing["train_seconds"] > 0
    # Everything is JSON-ready.
    json.loads(history.to_json())


def test_seeded_runs_give_identical_histories() -> None:
    first, model_a = run_fit(seed=3, epochs=3)
    second, model_b = run_fit(seed=3, epochs=3)
    assert first.records == second.records
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other, _ = run_fit(seed=4, epochs=3)
    assert other.records != first.records


def test_fit_without_validation_monitors_train_loss() -> None:
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    train, _ = blob_loaders()
    history = fit(model, train, torch.optim.SGD(model.parameters(), lr=0.1), epochs=2)
    assert history.keys() == ["epoch", "train_loss", "train_samples"]
    assert history.monitor == "train_loss"
    assert history.best_epoch() == 2


class ScriptedMetric(Metric[Tensor]):
    """Returns a predetermined value on each compute(); lets tests steer the monitor."""

    def __init__(self, values: Iterable[float]) -> None:
        super().__init__()
        self._values: Iterator[float] = iter(values)
        self._add_state("count", torch.tensor(0.0))

    def update(self, input: Tensor, target: Tensor) -> ScriptedMetric:
        self.count += input.shape[0]
        return self

    def compute(self) -> Tensor:
        return torch.tensor(next(self._values))

    def merge_state(self, metrics: Iterable[ScriptedMetric]) -> ScriptedMetric:
        return self


def fit_with_script(
    values: list[float], *, mode: str = "min", patience: int | None = None, **kwargs: Any
) -> tuple[History, nn.Module, list[dict[str, Tensor]]]:
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    train, val = blob_loaders()
    snapshots: list[dict[str, Tensor]] = []

    def snapshot(history: History) -> None:
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})

    history = fit(
        model,
        train,
        torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=len(values),
        val_loader=val,
        metrics={"scripted": ScriptedMetric(values)},
        monitor="val_scripted",
        mode=mode,  # type: ignore[arg-type]
        patience=patience,
        on_epoch_end=snapshot,
        **kwargs,
    )
    return history, model, snapshots


def test_early_stopping_after_patience_epochs_without_improvement() -> None:
    history, _, snapshots = fit_with_script([0.5, 0.3, 0.4, 0.45, 0.2, 0.1], patience=2)
    assert [r["val_scripted"] for r in history] == pytest.approx([0.5, 0.3, 0.4, 0.45])
    assert history.stopped_early
    assert history.best_epoch() == 2
    assert len(snapshots) == 4  # the callback ran once per completed epoch


def test_undefined_monitor_values_never_count_as_improvements() -> None:
    history, _, _ = fit_with_script([0.5, math.nan, 0.4, 0.6], mode="max", patience=2)
    assert history.stopped_early
    assert len(history) == 3
    assert history.best_epoch() == 1


class NoneReport:
    def __init__(self, value: float | None) -> None:
        self.value = value

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.value}


def test_none_from_a_report_is_treated_as_undefined() -> None:
    class NoneThenValue(ScriptedMetric):
        def compute(self) -> NoneReport:  # type: ignore[override]
            value = next(self._values)
            return NoneReport(None if math.isnan(value) else value)

    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    train, val = blob_loaders()
    history = fit(
        model,
        train,
        torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=3,
        val_loader=val,
        metrics=NoneThenValue([math.nan, 0.2, 0.1]),
        monitor="val_score",
    )
    assert history.values("val_score") == [None, 0.2, 0.1]
    assert history.best_epoch() == 3


def test_min_delta_requires_a_large_enough_improvement() -> None:
    history, _, _ = fit_with_script([0.5, 0.45, 0.44, 0.43], patience=2, min_delta=0.1)
    assert len(history) == 3
    assert history.stopped_early


def test_restore_best_loads_the_best_epoch_weights() -> None:
    history, model, snapshots = fit_with_script(
        [0.1, 0.9, 0.8, 0.95], mode="max", restore_best=True
    )
    assert history.best_epoch() == 4
    assert history.mode == "max"
    for key, value in model.state_dict().items():
        assert torch.equal(value, snapshots[3][key])
    history, model, snapshots = fit_with_script([0.5, 0.2, 0.3, 0.4], restore_best=True)
    assert history.best_epoch() == 2
    for key, value in model.state_dict().items():
        assert torch.equal(value, snapshots[1][key])
        assert not torch.equal(value, snapshots[3][key])


def test_fit_calls_set_epoch_on_the_sampler() -> None:
    class RecordingSampler(torch.utils.data.Sampler[int]):
        def __init__(self, n: int) -> None:
            self.n = n
            self.epochs: list[int] = []

        def set_epoch(self, epoch: int) -> None:
            self.epochs.append(epoch)

        def __iter__(self) -> Iterator[int]:
            return iter(range(self.n))

        def __len__(self) -> int:
            return self.n

    x, y = make_blobs(32)
    sampler = RecordingSampler(32)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, sampler=sampler)
    model = nn.Linear(6, 3)
    fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), epochs=3)
    assert sampler.epochs == [0, 1, 2]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs must be a positive integer, got 0"),
        ({"epochs": 2, "patience": 0}, ValueError, "patience must be a positive integer"),
        ({"epochs": 2, "mode": "avg"}, ValueError, "mode must be one of"),
        ({"epochs": 2, "min_delta": -1.0}, ValueError, "min_delta must be a non-negative"),
        ({"epochs": 1, "monitor": "val_acc"}, ValueError, r"monitor must name .*'train_loss'"),
    ],
)
def test_fit_rejects_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    model = nn.Linear(6, 3)
    train, _ = blob_loaders()
    with pytest.raises(error, match=match):
        fit(model, train, torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)


# --------------------------------------------------------------------------- evaluate
def test_evaluate_matches_full_batch_oracle_with_uneven_batches() -> None:
    torch.manual_seed(1)
    model = create_model("test_engine_mlp")
    x, y = make_blobs(50, seed=1)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)  # 16, 16, 16, 2
    model.train()
    result = evaluate(model, loader, metrics={"acc": MulticlassAccuracy()}, loss_fn=F.cross_entropy)
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert result.loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert result.values["acc"] == pytest.approx(accuracy_score(y, logits.argmax(1)))
    assert result.n_samples == 50
    assert isinstance(result.reports["acc"], Tensor)
    assert result.to_dict() == {"loss": result.loss, "acc": result.values["acc"]}
    evaluate(model, loader)
    assert not model.training  # eval mode restored too


def test_evaluate_resets_metrics_between_calls() -> None:
    model = nn.Linear(6, 3)
    x, y = make_blobs(30)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    metric = MulticlassAccuracy()
    first = evaluate(model, loader, metrics=metric)
    second = evaluate(model, loader, metrics=metric)
    assert first.values == second.values
    assert metric.num_total.item() == 30  # counted once, not twice


def test_evaluate_regressor_with_mse() -> None:
    torch.manual_seed(0)
    model = GRURegressor(GRURegressor.config_class())
    x, y = make_series(40)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    result = evaluate(model, loader, metrics=MeanSquaredError(), loss_fn=F.mse_loss)
    with torch.no_grad():
        pred = model(x)
    expected = mean_squared_error(y.numpy(), pred.numpy())
    assert result.values == {"mean_squared_error": pytest.approx(expected, rel=1e-5)}
    assert result.loss == pytest.approx(expected, rel=1e-5)


class ReportMetric(Metric["AccuracyReport"]):
    """A metric whose compute() returns a report object, like cellvision's metric suite."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.n_classes = n_classes
        self._add_state("correct", torch.zeros(n_classes))
        self._add_state("total", torch.zeros(n_classes))

    def update(self, input: Tensor, target: Tensor) -> ReportMetric:
        hit = (input.argmax(1) == target).float()
        self.correct += torch.bincount(target, weights=hit, minlength=self.n_classes)
        self.total += torch.bincount(target, minlength=self.n_classes).float()
        return self

    def compute(self) -> AccuracyReport:
        return AccuracyReport(self.correct / self.total)

    def merge_state(self, metrics: Iterable[ReportMetric]) -> ReportMetric:
        for m in metrics:
            self.correct += m.correct.to(self.device)
            self.total += m.total.to(self.device)
        return self


class AccuracyReport:
    def __init__(self, recall: Tensor) -> None:
        self.recall = recall
        self.balanced_accuracy = float(recall.mean())

    def to_dict(self) -> dict[str, Any]:
        return {"balanced_accuracy": self.balanced_accuracy, "recall": self.recall}


def test_report_metrics_are_flattened_to_json_ready_values() -> None:
    model = nn.Linear(6, 3)
    x, y = make_blobs(30)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    with torch.no_grad():
        pred = model(x).argmax(1)
    recall = [float(((pred == c) & (y == c)).sum() / (y == c).sum()) for c in range(3)]

    single = evaluate(model, loader, metrics=ReportMetric(3))
    assert set(single.values) == {"balanced_accuracy", "recall"}
    assert single.values["recall"] == pytest.approx(recall)
    assert single.values["balanced_accuracy"] == pytest.approx(sum(recall) / 3)
    assert isinstance(single.reports["report_metric"], AccuracyReport)

    named = evaluate(model, loader, metrics={"cls": ReportMetric(3), "acc": MulticlassAccuracy()})
    assert set(named.values) == {"cls.balanced_accuracy", "cls.recall", "acc"}
    json.dumps(named.to_dict())


def test_evaluate_rejects_bad_arguments() -> None:
    model = nn.Linear(6, 3)
    x, y = make_blobs(8)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    with pytest.raises(TypeError, match="metrics must be None, a torcheval"):
        evaluate(model, loader, metrics=[MulticlassAccuracy()])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"metrics\['acc'\] must be a torcheval"):
        evaluate(model, loader, metrics={"acc": accuracy_score})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="must not produce a value named 'loss'"):
        evaluate(model, loader, metrics={"loss": MulticlassAccuracy()})
    with pytest.raises(ValueError, match="empty loader"):
        evaluate(model, [])
    with pytest.raises(TypeError, match=r"loader must yield \(inputs, targets\) pairs"):
        evaluate(model, [x])
    with pytest.raises(TypeError, match=r"pairs, got a tuple of 3 items"):
        evaluate(model, [(x, y, y)])
    with pytest.raises(ValueError, match="device must be a torch device"):
        evaluate(model, loader, device="gpu:zero")


# --------------------------------------------------------------------------- train_one_epoch
def test_train_one_epoch_reports_sample_weighted_mean_loss() -> None:
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    x, y = make_blobs(50)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)  # 16, 16, 16, 2
    # lr=0: parameters do not move, so the oracle can recompute every batch loss.
    stats = train_one_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.0))
    with torch.no_grad():
        batch_losses = [(F.cross_entropy(model(bx), by).item(), len(by)) for bx, by in loader]
    expected = sum(loss * n for loss, n in batch_losses) / 50
    assert isinstance(stats, TrainStats)
    assert stats.loss == pytest.approx(expected, rel=1e-6)
    assert stats.n_samples == 50
    assert stats.samples_per_second == pytest.approx(50 / stats.seconds)


def test_train_one_epoch_restores_eval_mode() -> None:
    model = create_model("test_engine_mlp")
    model.eval()
    train, _ = blob_loaders()
    seen: list[bool] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    train_one_epoch(model, train, torch.optim.SGD(model.parameters(), lr=0.1))
    assert all(seen)
    assert len(seen) == len(train)
    assert not model.training


def test_bf16_autocast_on_cpu() -> None:
    torch.manual_seed(0)
    model = create_model("test_engine_mlp")
    dtypes: list[torch.dtype] = []
    model.head.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    train, val = blob_loaders()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = train_one_epoch(model, train, optimizer, amp_dtype=torch.bfloat16)
    after = train_one_epoch(model, train, optimizer, amp_dtype=torch.bfloat16)
    assert dtypes
    assert all(d == torch.bfloat16 for d in dtypes)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert math.isfinite(before.loss)
    assert after.loss < before.loss
    dtypes.clear()
    result = evaluate(
        model,
        val,
        metrics=MulticlassAccuracy(),
        loss_fn=F.cross_entropy,
        amp_dtype=torch.bfloat16,
    )
    assert dtypes
    assert all(d == torch.bfloat16 for d in dtypes)
    assert result.loss is not None
    assert math.isfinite(result.loss)


@pytest.mark.parametrize(
    ("amp_dtype", "match"),
    [
        (torch.float16, "amp_dtype must be torch.bfloat16 on cpu"),
        (torch.float32, "amp_dtype must be None, torch.bfloat16 or torch.float16"),
        ("bf16", "amp_dtype must be None"),
    ],
)
def test_unsupported_amp_dtype_is_rejected(amp_dtype: Any, match: str) -> None:
    model = nn.Linear(6, 3)
    train, _ = blob_loaders()
    with pytest.raises(ValueError, match=match):
        train_one_epoch(
            model, train, torch.optim.SGD(model.parameters(), lr=0.1), amp_dtype=amp_dtype
        )


class RecordingSGD(torch.optim.SGD):
    """SGD that records the gradients it is asked to apply."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float) -> None:
        super().__init__(params, lr=lr)
        self.grads: list[Tensor] = []

    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        self.grads.append(
            torch.cat([p.grad.flatten() for g in self.param_groups for p in g["params"]])
        )
        super().step(closure)


def test_grad_clip_norm_clips_the_total_norm() -> None:
    x, y = make_blobs(32)
    loader = DataLoader(TensorDataset(100.0 * x, y), batch_size=16)

    def run(clip: float | None) -> RecordingSGD:
        torch.manual_seed(0)
        model = nn.Linear(6, 3)
        optimizer = RecordingSGD(model.parameters(), lr=1e-4)
        train_one_epoch(model, loader, optimizer, grad_clip_norm=clip)
        return optimizer

    free = run(None)
    clipped = run(0.5)
    assert all(g.norm() > 0.5 for g in free.grads)  # the clip is active for this data
    for grad in clipped.grads:
        assert grad.norm().item() == pytest.approx(0.5, rel=1e-5)
    # Same direction: the first batch's gradient is the unclipped one rescaled.
    first = free.grads[0]
    torch.testing.assert_close(clipped.grads[0], first * (0.5 / first.norm()))


def test_grad_clip_leaves_small_gradients_alone() -> None:
    x, y = make_blobs(32)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    optimizer = RecordingSGD(model.parameters(), lr=0.0)
    train_one_epoch(model, loader, optimizer, grad_clip_norm=1e6)
    model.zero_grad()
    bx, by = next(iter(loader))
    F.cross_entropy(model(bx), by).backward()
    expected = torch.cat([model.weight.grad.flatten(), model.bias.grad.flatten()])
    torch.testing.assert_close(optimizer.grads[0], expected)


@pytest.mark.parametrize("clip", [0.0, -1.0, float("nan"), True, "1"])
def test_bad_grad_clip_norm(clip: Any) -> None:
    model = nn.Linear(6, 3)
    train, _ = blob_loaders()
    with pytest.raises(ValueError, match="grad_clip_norm must be a positive number"):
        train_one_epoch(
            model, train, torch.optim.SGD(model.parameters(), lr=0.1), grad_clip_norm=clip
        )


def test_scheduler_steps_once_per_batch() -> None:
    model = nn.Linear(6, 3)
    train, _ = blob_loaders(batch_size=24)  # 96 samples -> 4 batches
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    train_one_epoch(model, train, optimizer, scheduler=scheduler)
    assert scheduler.last_epoch == 4
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5**4)


def test_batch_transform_runs_on_the_device_after_the_move() -> None:
    model = nn.Linear(6, 3)
    train, val = blob_loaders()
    calls: list[torch.device] = []
    inputs_seen: list[Tensor] = []

    def shift(x: Tensor) -> Tensor:
        calls.append(x.device)
        return x + 1000.0

    model.register_forward_pre_hook(lambda m, args: inputs_seen.append(args[0]))
    train_one_epoch(
        model, train, torch.optim.SGD(model.parameters(), lr=0.0), batch_transform=shift
    )
    assert calls == [torch.device("cpu")] * len(train)
    assert all(x.min() > 900 for x in inputs_seen)
    inputs_seen.clear()
    evaluate(model, val)  # evaluation never augments
    assert all(x.max() < 900 for x in inputs_seen)
    assert len(calls) == len(train)


def test_loss_fn_must_return_a_scalar() -> None:
    model = nn.Linear(6, 3)
    train, _ = blob_loaders()

    def per_sample(out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out, y, reduction="none")

    with pytest.raises(ValueError, match=r"loss_fn must return a scalar tensor .*\(16,\)"):
        train_one_epoch(
            model, train, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=per_sample
        )


def test_train_one_epoch_rejects_bad_loaders() -> None:
    model = nn.Linear(6, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="empty loader"):
        train_one_epoch(model, [], optimizer)
    with pytest.raises(TypeError, match=r"\(inputs, targets\) tensor pairs, got \(list, Tensor\)"):
        train_one_epoch(model, [([1.0], torch.tensor([0]))], optimizer)


def test_progress_callable_wraps_the_loader() -> None:
    model = nn.Linear(6, 3)
    train, val = blob_loaders()
    wrapped: list[int] = []

    def progress(iterable: Iterable[Any]) -> Iterable[Any]:
        for batch in iterable:
            wrapped.append(len(batch[1]))
            yield batch

    train_one_epoch(model, train, torch.optim.SGD(model.parameters(), lr=0.1), progress=progress)
    assert sum(wrapped) == 96
    evaluate(model, val, progress=progress)
    assert sum(wrapped) == 96 + 48
    with pytest.raises(TypeError, match="progress must be None, a bool or a callable"):
        evaluate(model, val, progress="yes")  # type: ignore[arg-type]


def test_progress_true_uses_tqdm(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    model = nn.Linear(6, 3)
    train, _ = blob_loaders()
    stats = train_one_epoch(
        model, train, torch.optim.SGD(model.parameters(), lr=0.1), progress=True
    )
    assert stats.n_samples == 96
    assert "train" in capsys.readouterr().err


def test_progress_true_without_tqdm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    model = nn.Linear(6, 3)
    train, _ = blob_loaders()
    with pytest.raises(ImportError, match=r'pip install "cellvision\[progress\]"'):
        train_one_epoch(model, train, torch.optim.SGD(model.parameters(), lr=0.1), progress=True)


# --------------------------------------------------------------------------- History
def test_history_best_epoch_skips_non_finite_and_prefers_the_earliest_tie() -> None:
    history = History(
        [
            {"epoch": 0, "val_loss": math.nan, "acc": 0.5},
            {"epoch": 1, "val_loss": 0.4, "acc": 0.7},
            {"epoch": 2, "val_loss": 0.4, "acc": 0.7},
            {"epoch": 3, "val_loss": -math.inf, "acc": 0.6},
        ],
        monitor="val_loss",
    )
    assert history.best_epoch() == 1
    assert history.best_epoch("acc", mode="max") == 1
    assert history.best_record("acc", "max")["epoch"] == 1
    with pytest.raises(KeyError, match="key must be one of"):
        history.best_epoch("val_acc")
    with pytest.raises(ValueError, match="mode must be one of"):
        history.best_epoch("acc", mode="best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no finite numeric value"):
        History([{"loss": math.nan}]).best_epoch("loss")
    with pytest.raises(ValueError, match="key must be given"):
        History([{"loss": 1.0}]).best_epoch()


def test_history_json_round_trip_keeps_records_timings_and_settings() -> None:
    history, _ = run_fit(seed=0)
    history.stopped_early = True
    restored = History.from_json(history.to_json())
    assert restored.records == history.records
    assert restored.timings == history.timings
    assert (restored.monitor, restored.mode, restored.stopped_early) == ("val_loss", "min", True)
    assert restored.best_epoch() == history.best_epoch()
    with pytest.raises(ValueError, match="text must be JSON"):
        History.from_json("{not json")
    with pytest.raises(TypeError, match="data must be a mapping"):
        History.from_dict([])  # type: ignore[arg-type]


def test_eval_result_to_dict_omits_missing_loss() -> None:
    result = EvalResult(loss=None, n_samples=3, seconds=0.0, values={"acc": 1.0})
    assert result.to_dict() == {"acc": 1.0}


# --------------------------------------------------------------------------- distributed
@pytest.fixture
def single_process_group() -> Iterator[None]:
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    with gloo_group(0, 1, free_port()):
        yield


def test_ddp_wrapped_model_trains_like_the_plain_model(
    single_process_group: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torcheval.metrics.toolkit as toolkit

    synced: list[str] = []
    original = toolkit.sync_and_compute

    def counting(metric: Metric[Any], process_group: Any = None) -> Any:
        synced.append(type(metric).__name__)
        return original(metric, process_group)

    monkeypatch.setattr(toolkit, "sync_and_compute", counting)
    torch.manual_seed(5)
    ddp_model = nn.parallel.DistributedDataParallel(create_model("test_engine_mlp"))
    train, val = blob_loaders(seed=5)
    optimizer = torch.optim.SGD(ddp_model.parameters(), lr=0.1, momentum=0.9)
    ddp_history = fit(
        ddp_model,
        train,
        optimizer,
        epochs=2,
        val_loader=val,
        metrics={"acc": MulticlassAccuracy(num_classes=3)},
        restore_best=True,
    )
    assert synced == ["MulticlassAccuracy"] * 2
    plain_history, _ = run_fit(seed=5, restore_best=True)
    assert ddp_history.records == plain_history.records


def _two_rank_worker(rank: int, port: int, out_dir: str) -> None:
    with gloo_group(rank, 2, port):
        torch.manual_seed(0)
        model = MLPClassifier(MLPConfig())
        x, y = make_blobs(40, seed=7)
        shard = TensorDataset(x[rank::2], y[rank::2])
        result = evaluate(
            model,
            DataLoader(shard, batch_size=8),
            metrics={"acc": MulticlassAccuracy()},
            loss_fn=F.cross_entropy,
        )
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump({"n": result.n_samples, **result.to_dict()}, fh)


@pytest.mark.slow
def test_evaluate_syncs_metrics_and_loss_across_two_ranks(tmp_path: Any) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_two_rank_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    model = MLPClassifier(MLPConfig()).eval()
    x, y = make_blobs(40, seed=7)
    with torch.no_grad():
        logits = model(x)
    for rank in range(2):
        with open(tmp_path / f"rank{rank}.json") as fh:
            got = json.load(fh)
        assert got["n"] == 40
        assert got["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
        assert got["acc"] == pytest.approx(accuracy_score(y, logits.argmax(1)))


def test_grad_scaler_path_unscales_before_clipping() -> None:
    # The float16 path needs CUDA; a CPU GradScaler exercises the same scale -> unscale_ ->
    # clip -> step -> update sequence. Clipping scaled gradients would leave norm 0.5 / scale.
    if not hasattr(torch.amp, "GradScaler"):
        pytest.skip("torch.amp.GradScaler (CPU-capable) needs torch >= 2.3")
    x, y = make_blobs(32)
    loader = DataLoader(TensorDataset(100.0 * x, y), batch_size=16)
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    optimizer = RecordingSGD(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    train_one_epoch(model, loader, optimizer, grad_clip_norm=0.5, grad_scaler=scaler)
    assert len(optimizer.grads) == 2
    for grad in optimizer.grads:
        assert grad.norm().item() == pytest.approx(0.5, rel=1e-5)
    assert scaler.get_scale() == 1024.0  # finite gradients: scale kept, steps taken


@settings(max_examples=15)
@given(
    n=st.integers(min_value=1, max_value=40),
    batch_size=st.integers(min_value=1, max_value=16),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_epoch_loss_is_the_sample_weighted_mean_for_any_batching(
    n: int, batch_size: int, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
    model = nn.Linear(4, 3)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size)
    stats = train_one_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.0))
    result = evaluate(model, loader, loss_fn=F.cross_entropy)
    with torch.no_grad():
        full = F.cross_entropy(model(x), y).item()
    assert stats.n_samples == result.n_samples == n
    assert stats.loss == pytest.approx(full, rel=1e-5)
    assert result.loss == pytest.approx(full, rel=1e-5)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
