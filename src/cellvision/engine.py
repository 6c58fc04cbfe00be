"""Small training helpers: one epoch of training, one pass of evaluation, and a fit loop.

These functions replace the epoch loop every experiment would otherwise rewrite; they are not a
framework. Each one takes the model, a loader yielding ``(inputs, targets)`` pairs and plain
PyTorch objects (optimizer, scheduler, loss function), and returns a small typed result:

* :func:`train_one_epoch` -> :class:`TrainStats` (mean loss, sample count, seconds, samples/s);
* :func:`evaluate` -> :class:`EvalResult` (mean loss and the metric reports);
* :func:`fit` -> :class:`History` (one JSON-ready dictionary per epoch, best-epoch lookup,
  optional early stopping and best-state restore).

They work for classifiers (``loss_fn=F.cross_entropy``) and regressors (``loss_fn=F.mse_loss``),
for plain and :class:`~torch.nn.parallel.DistributedDataParallel`-wrapped models, on CPU or CUDA.
Metrics are :class:`torcheval.metrics.Metric` objects; under an initialised process group they are
synchronised with :func:`torcheval.metrics.toolkit.sync_and_compute` and the mean losses are
all-reduced, so every rank sees the global values.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812 (PyTorch's own convention)
from torch import Tensor, nn
from torcheval.metrics import Metric

from cellvision.config import as_builtin_number, check_choice, check_device, check_positive_int
from cellvision.models import unwrap_model

__all__ = [
    "EvalResult",
    "History",
    "LossFn",
    "NonFiniteLoss",
    "ProgressArg",
    "TrainStats",
    "evaluate",
    "fit",
    "train_one_epoch",
]

#: A loss function ``loss_fn(outputs, targets) -> scalar tensor`` (mean over the batch).
LossFn = Callable[[Tensor, Tensor], Tensor]
#: ``None``/``False`` (no bar), ``True`` (a tqdm bar) or a callable wrapping the loader.
ProgressArg = bool | Callable[[Iterable[Any]], Iterable[Any]] | None

#: What to do with a batch whose loss is NaN or infinite: ``"raise"`` a ``FloatingPointError``
#: naming the epoch and the batch, or ``"skip"`` it (no update) with a ``RuntimeWarning``.
NonFiniteLoss = Literal["raise", "skip"]

_MODES = ("min", "max")
_NONFINITE_POLICIES = ("raise", "skip")


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class TrainStats:
    """What one training epoch measured.

    Parameters
    ----------
    loss : float
        Mean training loss per sample (each batch's mean loss weighted by its size; summed over
        all ranks under an initialised process group).
    n_samples : int
        Number of samples seen (all ranks together under a process group).
    seconds : float
        Wall-clock duration of the epoch.
    samples_per_second : float
        ``n_samples / seconds``.

    Examples
    --------
    >>> stats = TrainStats(loss=0.5, n_samples=100, seconds=2.0, samples_per_second=50.0)
    >>> stats.to_dict()["loss"]
    0.5
    """

    loss: float
    n_samples: int
    seconds: float
    samples_per_second: float

    def to_dict(self) -> dict[str, float | int]:
        """Return the fields as a JSON-ready dictionary.

        Returns
        -------
        dict
            ``{"loss", "n_samples", "seconds", "samples_per_second"}``.

        Examples
        --------
        >>> TrainStats(loss=1.0, n_samples=4, seconds=1.0, samples_per_second=4.0).to_dict()
        {'loss': 1.0, 'n_samples': 4, 'seconds': 1.0, 'samples_per_second': 4.0}
        """
        return {
            "loss": self.loss,
            "n_samples": self.n_samples,
            "seconds": self.seconds,
            "samples_per_second": self.samples_per_second,
        }


@dataclass(frozen=True)
class EvalResult:
    """What one evaluation pass measured.

    Parameters
    ----------
    loss : float or None
        Mean loss per sample, or ``None`` when no ``loss_fn`` was given.
    n_samples : int
        Number of samples evaluated (all ranks together under a process group).
    seconds : float
        Wall-clock duration.
    reports : dict
        Metric name to the raw ``compute()`` result: a tensor or a report object.
    values : dict
        The same results flattened into JSON-ready scalars and lists (see :func:`evaluate`
        for the key names).

    Examples
    --------
    >>> result = EvalResult(loss=0.25, n_samples=8, seconds=0.1, reports={}, values={"acc": 0.75})
    >>> result.to_dict()
    {'loss': 0.25, 'acc': 0.75}
    """

    loss: float | None
    n_samples: int
    seconds: float
    reports: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the loss (if any) and the flattened metric values, JSON-ready.

        Returns
        -------
        dict
            ``{"loss": ..., **values}``; ``"loss"`` is absent when no loss was computed.

        Examples
        --------
        >>> EvalResult(loss=None, n_samples=2, seconds=0.0, values={"mse": 0.5}).to_dict()
        {'mse': 0.5}
        """
        out: dict[str, Any] = {} if self.loss is None else {"loss": self.loss}
        out.update(self.values)
        return out


# --------------------------------------------------------------------------- helpers
def _resolve_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is None:
        first: Tensor | None = next(iter(model.parameters()), None)
        if first is None:
            first = next(iter(model.buffers()), None)
        return first.device if first is not None else torch.device("cpu")
    if isinstance(device, (str, torch.device)):
        dev: torch.device = check_device("device", device)
        return dev
    raise TypeError(f"device must be a torch.device, a string or None, got {device!r}")


def _autocast(
    device: torch.device, amp_dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[Any]:
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def _check_amp_dtype(device: torch.device, amp_dtype: object) -> None:
    if amp_dtype is None:
        return
    if amp_dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(
            f"amp_dtype must be None, torch.bfloat16 or torch.float16, got {amp_dtype!r}"
        )
    if amp_dtype is torch.float16 and device.type != "cuda":
        raise ValueError(
            f"amp_dtype must be torch.bfloat16 on {device.type} (float16 autocast needs CUDA), "
            f"got {amp_dtype!r}"
        )


def _make_grad_scaler(device: torch.device, amp_dtype: torch.dtype | None) -> Any:
    # Loss scaling is only needed for float16, whose exponent range underflows small gradients;
    # bfloat16 has float32's range.
    if amp_dtype is not torch.float16 or device.type != "cuda":
        return None
    scaler_cls = getattr(torch.amp, "GradScaler", None)
    if scaler_cls is not None:
        return scaler_cls("cuda")
    return torch.cuda.amp.GradScaler()  # torch < 2.3


def _progress(iterable: Iterable[Any], progress: object, desc: str) -> Iterable[Any]:
    if progress is None or progress is False:
        return iterable
    if progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError as exc:
            raise ImportError(
                'progress=True needs tqdm; install it with: pip install "cellvision[progress]"'
            ) from exc
        total = len(iterable) if isinstance(iterable, Sized) else None
        bar: Iterable[Any] = tqdm(iterable, desc=desc, total=total, leave=False)
        return bar
    if callable(progress):
        return progress(iterable)  # type: ignore[no-any-return]
    raise TypeError(f"progress must be None, a bool or a callable, got {progress!r}")


def _move_batch(batch: object, device: torch.device, non_blocking: bool) -> tuple[Tensor, Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        what = (
            f"a {type(batch).__name__} of {len(batch)} items"
            if isinstance(batch, (tuple, list))
            else type(batch).__name__
        )
        raise TypeError(f"loader must yield (inputs, targets) pairs, got {what}")
    x, y = batch
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(
            "loader must yield (inputs, targets) tensor pairs, got "
            f"({type(x).__name__}, {type(y).__name__})"
        )
    return x.to(device, non_blocking=non_blocking), y.to(device, non_blocking=non_blocking)


def _check_scalar_loss(loss: object) -> Tensor:
    if not isinstance(loss, Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(
            f"loss_fn must return a scalar tensor (use reduction='mean'), got {shape!r}"
        )
    return loss


def _batch_size(x: Tensor) -> int:
    return int(x.shape[0]) if x.ndim else 1


def _finite_loss(loss: Tensor, policy: str, epoch: int | None, batch: int, stage: str) -> bool:
    """``True`` when ``loss`` is finite; otherwise raise or warn according to ``policy``.

    One host synchronisation per batch: the decision has to be taken before the update.
    """
    value = loss.item()  # the one host sync: cheaper than isfinite() and then bool()
    if math.isfinite(value):
        return True
    where = f"epoch {epoch}, batch {batch}" if epoch is not None else f"batch {batch}"
    if policy == "raise":
        raise FloatingPointError(
            f"loss must be finite, got {value} in {stage} at {where} (0-based); the model "
            "diverged or the batch holds NaN/inf values: lower the learning rate, clip the "
            "gradients (grad_clip_norm), check the data, or pass nonfinite_loss='skip' to "
            "skip such batches with a warning"
        )
    warnings.warn(f"skipping {stage} {where}: its loss is {value}", RuntimeWarning, stacklevel=3)
    return False


def _check_nonfinite_policy(policy: object) -> None:
    check_choice("nonfinite_loss", policy, _NONFINITE_POLICIES)


def _backward(loss: Any) -> None:
    # Typed as Any: some torch releases ship Tensor.backward without annotations.
    loss.backward()


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _global_mean(loss_sum: Tensor, count: int) -> tuple[float, int]:
    """Return (sum / count, count) summed over ranks when a process group is initialised."""
    totals = torch.stack([loss_sum.double(), loss_sum.new_tensor(count, dtype=torch.float64)])
    if _distributed():
        dist.all_reduce(totals, op=dist.ReduceOp.SUM)
    total_loss, total_count = totals.tolist()
    n = round(total_count)
    return (total_loss / n if n else math.nan), n


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _named_metrics(metrics: object) -> tuple[dict[str, Metric[Any]], bool]:
    """Return ``(name -> metric, single)``; a lone metric is named after its class."""
    if metrics is None:
        return {}, False
    if isinstance(metrics, Metric):
        return {_snake_case(type(metrics).__name__): metrics}, True
    if isinstance(metrics, Mapping):
        named: dict[str, Metric[Any]] = {}
        for key, metric in metrics.items():
            if not isinstance(key, str) or not key:
                raise TypeError(f"metrics keys must be non-empty strings, got {key!r}")
            if not isinstance(metric, Metric):
                raise TypeError(
                    f"metrics[{key!r}] must be a torcheval.metrics.Metric, got {metric!r}"
                )
            named[key] = metric
        return named, False
    raise TypeError(
        "metrics must be None, a torcheval.metrics.Metric or a mapping of names to metrics, "
        f"got {metrics!r}"
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Tensor):
        value = value.detach().cpu()
        return value.item() if value.ndim == 0 else value.tolist()
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _flatten_reports(reports: Mapping[str, Any], single: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, report in reports.items():
        to_dict = getattr(report, "to_dict", None)
        if callable(to_dict):
            for key, value in to_dict().items():
                values[key if single else f"{name}.{key}"] = _jsonable(value)
        else:
            values[name] = _jsonable(report)
    if "loss" in values:
        raise ValueError("metrics must not produce a value named 'loss'; rename the metric")
    return values


# --------------------------------------------------------------------------- train / evaluate
def train_one_epoch(
    model: nn.Module,
    loader: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    *,
    loss_fn: LossFn = F.cross_entropy,
    device: torch.device | str | None = None,
    batch_transform: Callable[[Tensor], Tensor] | None = None,
    scheduler: Any = None,
    grad_clip_norm: float | None = None,
    amp_dtype: torch.dtype | None = None,
    grad_scaler: Any = None,
    progress: ProgressArg = None,
    nonfinite_loss: NonFiniteLoss = "raise",
    epoch: int | None = None,
) -> TrainStats:
    """Train ``model`` for one pass over ``loader``.

    For each ``(inputs, targets)`` batch: move it to ``device`` (``non_blocking`` on CUDA),
    apply ``batch_transform`` to the inputs on the device, run the forward pass and ``loss_fn``
    under :func:`torch.autocast` when ``amp_dtype`` is set, back-propagate, clip the gradient
    norm, step the optimizer and then the scheduler. The model's previous train/eval mode is
    restored afterwards. Empty batches (zero samples, e.g. from a filtering collate function)
    are skipped. A batch whose loss is NaN or infinite stops training with a
    ``FloatingPointError`` naming the epoch and the batch before it can reach the weights, or
    is skipped with a warning under ``nonfinite_loss="skip"``.

    Parameters
    ----------
    model : torch.nn.Module
        The model, plain or wrapped in ``DistributedDataParallel``; it must already be on
        ``device``.
    loader : iterable
        Yields ``(inputs, targets)`` tensor pairs, e.g. a :class:`torch.utils.data.DataLoader`.
    optimizer : torch.optim.Optimizer
        Optimizer over the model's parameters.
    loss_fn : callable, default torch.nn.functional.cross_entropy
        ``loss_fn(outputs, targets)`` returning the batch-mean loss; use
        :func:`torch.nn.functional.mse_loss` for regressors.
    device : torch.device or str, optional
        Where batches go; defaults to the device of the model's first parameter.
    batch_transform : callable, optional
        ``batch_transform(inputs) -> inputs`` applied on the device after the move, e.g. a
        batched augmentation (bind its generator with :func:`functools.partial`).
    scheduler : optional
        A learning-rate scheduler stepped after every optimizer step (per batch). Step
        epoch-level schedulers yourself, e.g. from :func:`fit`'s ``on_epoch_end``.
    grad_clip_norm : float, optional
        Clip the total L2 norm of the gradients to this value before each step.
    amp_dtype : torch.dtype, optional
        ``torch.bfloat16`` (CPU or CUDA) or ``torch.float16`` (CUDA only) to run the forward
        pass under :func:`torch.autocast`. With float16 a gradient scaler is used.
    grad_scaler : torch.amp.GradScaler, optional
        The scaler to use with float16; one is created per call when omitted (pass your own to
        keep its scale across epochs, as :func:`fit` does).
    progress : bool or callable, optional
        ``True`` shows a tqdm bar (the ``progress`` extra); a callable receives the loader and
        returns the iterable to loop over.
    nonfinite_loss : {"raise", "skip"}, default "raise"
        What to do with a batch whose loss is NaN or infinite: raise, or skip the batch (no
        backward pass, no optimizer or scheduler step) with a ``RuntimeWarning``. Under DDP
        keep ``"raise"``: a rank that skips a batch its peers train on stalls them.
    epoch : int, optional
        The epoch number, only used in the messages (:func:`fit` passes it).

    Returns
    -------
    TrainStats
        Mean loss per sample, sample count, seconds and samples per second (skipped batches
        are not counted).

    Raises
    ------
    ValueError
        If the loader yields no non-empty batch with a finite loss, ``loss_fn`` does not return
        a scalar, ``grad_clip_norm`` is not positive, ``nonfinite_loss`` is unknown or
        ``amp_dtype`` is unsupported on the device.
    FloatingPointError
        If a batch's loss is not finite and ``nonfinite_loss="raise"``.
    TypeError
        If the loader does not yield ``(inputs, targets)`` tensor pairs.
    ImportError
        If ``progress=True`` and tqdm is not installed.

    Examples
    --------
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> _ = torch.manual_seed(0)
    >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=16)
    >>> model = nn.Linear(4, 3)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> stats = train_one_epoch(model, loader, optimizer, grad_clip_norm=1.0)
    >>> stats.n_samples
    64
    >>> stats.loss > 0
    True
    """
    dev = _resolve_device(model, device)
    _check_amp_dtype(dev, amp_dtype)
    _check_nonfinite_policy(nonfinite_loss)
    grad_clip_norm = as_builtin_number(grad_clip_norm)  # type: ignore[assignment]
    if grad_clip_norm is not None and (
        isinstance(grad_clip_norm, bool)
        or not isinstance(grad_clip_norm, (int, float))
        or not grad_clip_norm > 0
    ):
        raise ValueError(
            f"grad_clip_norm must be a positive number or None, got {grad_clip_norm!r}"
        )
    scaler = grad_scaler if grad_scaler is not None else _make_grad_scaler(dev, amp_dtype)
    non_blocking = dev.type == "cuda"
    params = [p for p in model.parameters() if p.requires_grad]

    was_training = model.training
    model.train()
    # Accumulate on the device so that no batch forces a host synchronisation.
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    count = 0
    start = time.perf_counter()
    try:
        for index, batch in enumerate(_progress(loader, progress, "train")):
            x, y = _move_batch(batch, dev, non_blocking)
            if _batch_size(x) == 0:
                continue  # an empty batch's mean loss is NaN and it carries no gradient
            if batch_transform is not None:
                x = batch_transform(x)
            optimizer.zero_grad(set_to_none=True)
            with _autocast(dev, amp_dtype):
                outputs = model(x)
                loss = _check_scalar_loss(loss_fn(outputs, y))
            if not _finite_loss(loss, nonfinite_loss, epoch, index, "training"):
                continue
            if scaler is not None:
                scaler.scale(loss).backward()
                if grad_clip_norm is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(params, grad_clip_norm)
                scaler.step(optimizer)
                scaler.update()
            else:
                _backward(loss)
                if grad_clip_norm is not None:
                    nn.utils.clip_grad_norm_(params, grad_clip_norm)
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            batch_size = _batch_size(x)
            loss_sum += loss.detach().double() * batch_size
            count += batch_size
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError(
            "loader must yield at least one non-empty batch with a finite loss, got an empty "
            "loader or only empty or skipped batches"
        )
    mean_loss, n = _global_mean(loss_sum, count)
    seconds = time.perf_counter() - start
    return TrainStats(
        loss=mean_loss,
        n_samples=n,
        seconds=seconds,
        samples_per_second=n / seconds if seconds > 0 else math.inf,
    )


def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    metrics: Metric[Any] | Mapping[str, Metric[Any]] | None = None,
    loss_fn: LossFn | None = None,
    device: torch.device | str | None = None,
    amp_dtype: torch.dtype | None = None,
    progress: ProgressArg = None,
    nonfinite_loss: NonFiniteLoss = "raise",
    epoch: int | None = None,
) -> EvalResult:
    """Evaluate ``model`` on ``loader`` without gradients, in eval mode.

    The metrics are reset and moved to ``device`` first, updated with ``(outputs, targets)``
    for every batch (outputs in float32 even under autocast) and computed at the end; under an
    initialised :mod:`torch.distributed` process group they are synchronised across ranks with
    :func:`torcheval.metrics.toolkit.sync_and_compute` and the loss is all-reduced. The model's
    previous train/eval mode is restored afterwards. Empty batches are skipped; a batch whose
    loss is not finite raises (or, with ``nonfinite_loss="skip"``, is left out of the loss
    and the metrics with a warning).

    Parameters
    ----------
    model : torch.nn.Module
        The model, plain or DDP-wrapped, already on ``device``.
    loader : iterable
        Yields ``(inputs, targets)`` tensor pairs.
    metrics : Metric or mapping of str to Metric, optional
        torcheval metrics. A single metric's results are named after its report fields (if
        ``compute()`` returns an object with ``to_dict()``), or after its class in snake case
        (``MulticlassAccuracy`` -> ``"multiclass_accuracy"``) if it returns a tensor. With a
        mapping, a tensor result is named by its key and report fields become ``"key.field"``.
    loss_fn : callable, optional
        ``loss_fn(outputs, targets)`` returning the batch-mean loss; omitted, no loss is
        computed.
    device : torch.device or str, optional
        Defaults to the device of the model's first parameter.
    amp_dtype : torch.dtype, optional
        Run the forward pass under :func:`torch.autocast` with this dtype.
    progress : bool or callable, optional
        As in :func:`train_one_epoch`.
    nonfinite_loss : {"raise", "skip"}, default "raise"
        As in :func:`train_one_epoch` (only used with a ``loss_fn``).
    epoch : int, optional
        The epoch number, only used in the messages.

    Returns
    -------
    EvalResult
        ``loss`` (mean per sample or ``None``), ``reports`` (raw ``compute()`` results) and
        ``values`` (JSON-ready flattened results).

    Raises
    ------
    ValueError
        If the loader yields no non-empty batch (with a finite loss), ``nonfinite_loss`` is
        unknown or a metric would produce a value named ``"loss"``.
    FloatingPointError
        If a batch's loss is not finite and ``nonfinite_loss="raise"``.
    TypeError
        If ``metrics`` is not a metric or a mapping of metrics, or the loader does not yield
        ``(inputs, targets)`` pairs.

    Examples
    --------
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from torcheval.metrics import MulticlassAccuracy
    >>> x, y = torch.eye(3), torch.tensor([0, 1, 1])
    >>> model = nn.Identity()  # logits = one-hot inputs: predicts 0, 1, 2
    >>> result = evaluate(model, DataLoader(TensorDataset(x, y), batch_size=2),
    ...                   metrics={"acc": MulticlassAccuracy()}, device="cpu")
    >>> result.values
    {'acc': 0.666...}
    """
    dev = _resolve_device(model, device)
    _check_amp_dtype(dev, amp_dtype)
    _check_nonfinite_policy(nonfinite_loss)
    named, single = _named_metrics(metrics)
    for metric in named.values():
        metric.reset()
        metric.to(dev)
    non_blocking = dev.type == "cuda"

    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    count = 0
    start = time.perf_counter()
    try:
        with torch.no_grad():
            for index, batch in enumerate(_progress(loader, progress, "eval")):
                x, y = _move_batch(batch, dev, non_blocking)
                if _batch_size(x) == 0:
                    continue
                with _autocast(dev, amp_dtype):
                    outputs = model(x)
                if outputs.is_floating_point():
                    outputs = outputs.float()
                if loss_fn is not None:
                    loss = _check_scalar_loss(loss_fn(outputs, y))
                    if not _finite_loss(loss, nonfinite_loss, epoch, index, "evaluation"):
                        continue
                    loss_sum += loss.double() * _batch_size(x)
                for metric in named.values():
                    metric.update(outputs, y)
                count += _batch_size(x)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError(
            "loader must yield at least one non-empty batch (with a finite loss), got an empty "
            "loader or only empty or skipped batches"
        )
    mean_loss, n = _global_mean(loss_sum, count)
    if _distributed():
        from torcheval.metrics.toolkit import sync_and_compute

        reports = {name: sync_and_compute(metric) for name, metric in named.items()}
    else:
        reports = {name: metric.compute() for name, metric in named.items()}
    return EvalResult(
        loss=mean_loss if loss_fn is not None else None,
        n_samples=n,
        seconds=time.perf_counter() - start,
        reports=reports,
        values=_flatten_reports(reports, single),
    )


# --------------------------------------------------------------------------- history / fit
def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class History:
    """Per-epoch records of a :func:`fit` run.

    Each record is a JSON-ready dictionary with ``"epoch"`` (counted from 1: the number of
    epochs completed, as in logs, figures and checkpoints), ``"train_loss"``,
    ``"train_samples"`` and, with validation, ``"val_loss"`` and ``"val_<metric>"`` values.
    Timings are kept apart in :attr:`timings` (``train_seconds``,
    ``train_samples_per_second``, ``val_seconds``) so that two seeded runs have equal
    :attr:`records`.

    Parameters
    ----------
    records : sequence of dict, optional
        Initial per-epoch records.
    timings : sequence of dict, optional
        Initial per-epoch timings.
    monitor : str, optional
        Default key for :meth:`best_epoch`.
    mode : {"min", "max"}, default "min"
        Whether smaller or larger values of ``monitor`` are better.

    Attributes
    ----------
    records : list of dict
        One dictionary per epoch.
    timings : list of dict
        One dictionary of timing fields per epoch.
    stopped_early : bool
        Whether :func:`fit` stopped before its last epoch.

    Raises
    ------
    ValueError
        If ``mode`` is not ``"min"`` or ``"max"``.

    Examples
    --------
    >>> history = History(monitor="val_loss")
    >>> history.append({"epoch": 0, "val_loss": 0.9})
    >>> history.append({"epoch": 1, "val_loss": 0.4})
    >>> history.append({"epoch": 2, "val_loss": 0.6})
    >>> history.best_epoch()
    1
    >>> history.values("val_loss")
    [0.9, 0.4, 0.6]
    >>> History.from_json(history.to_json()).records == history.records
    True
    """

    def __init__(
        self,
        records: Sequence[Mapping[str, Any]] | None = None,
        timings: Sequence[Mapping[str, float]] | None = None,
        *,
        monitor: str | None = None,
        mode: Literal["min", "max"] = "min",
    ) -> None:
        check_choice("mode", mode, _MODES)
        self.records: list[dict[str, Any]] = [dict(r) for r in records or ()]
        self.timings: list[dict[str, float]] = [dict(t) for t in timings or ()]
        self.monitor = monitor
        self.mode: Literal["min", "max"] = mode
        self.stopped_early = False

    def append(self, record: Mapping[str, Any], timing: Mapping[str, float] | None = None) -> None:
        """Add one epoch's record (and optionally its timings).

        Parameters
        ----------
        record : mapping
            JSON-ready values of the epoch.
        timing : mapping, optional
            Timing fields of the epoch.

        Examples
        --------
        >>> history = History()
        >>> history.append({"epoch": 0, "train_loss": 1.0}, {"train_seconds": 0.5})
        >>> len(history), history.timings
        (1, [{'train_seconds': 0.5}])
        """
        self.records.append(dict(record))
        if timing is not None:
            self.timings.append(dict(timing))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.records[index]

    def __repr__(self) -> str:
        return f"History(epochs={len(self)}, monitor={self.monitor!r}, mode={self.mode!r})"

    def keys(self) -> list[str]:
        """Return every key that appears in a record, in first-seen order.

        Returns
        -------
        list of str
            The keys.

        Examples
        --------
        >>> History([{"epoch": 0, "train_loss": 1.0}]).keys()
        ['epoch', 'train_loss']
        """
        seen: dict[str, None] = {}
        for record in self.records:
            seen.update(dict.fromkeys(record))
        return list(seen)

    def values(self, key: str) -> list[Any]:
        """Return the value of ``key`` in every record (``None`` where it is missing).

        Parameters
        ----------
        key : str
            A record key such as ``"val_loss"``.

        Returns
        -------
        list
            One value per epoch.

        Raises
        ------
        KeyError
            If no record has ``key`` (the message lists the available keys).

        Examples
        --------
        >>> History([{"train_loss": 1.0}, {"train_loss": 0.5}]).values("train_loss")
        [1.0, 0.5]
        """
        if self.records and not any(key in r for r in self.records):
            raise KeyError(f"key must be one of {self.keys()!r}, got {key!r}")
        return [r.get(key) for r in self.records]

    def best_epoch(self, key: str | None = None, mode: Literal["min", "max"] | None = None) -> int:
        """Return the ``"epoch"`` of the best record by ``key``; ties go to the earliest.

        Non-finite values (NaN, inf from a diverged epoch) never count as best.

        Parameters
        ----------
        key : str, optional
            Record key to rank by; defaults to :attr:`monitor`.
        mode : {"min", "max"}, optional
            Defaults to :attr:`mode`.

        Returns
        -------
        int
            The ``"epoch"`` value of the best record (its index when records have no
            ``"epoch"``).

        Raises
        ------
        ValueError
            If no key is given or set, ``mode`` is invalid, or no record has a finite number
            under ``key``.
        KeyError
            If no record has ``key``.

        Examples
        --------
        >>> h = History([{"epoch": 0, "acc": 0.5}, {"epoch": 1, "acc": 0.7}])
        >>> h.best_epoch("acc", mode="max")
        1
        """
        key = key if key is not None else self.monitor
        if key is None:
            raise ValueError("key must be given when the history has no monitor, got None")
        mode = mode if mode is not None else self.mode
        check_choice("mode", mode, _MODES)
        best_index: int | None = None
        best_value = math.nan
        for index, value in enumerate(self.values(key)):
            if not _is_number(value) or not math.isfinite(value):
                continue
            if best_index is None or (value < best_value if mode == "min" else value > best_value):
                best_index, best_value = index, value
        if best_index is None:
            raise ValueError(f"key {key!r} has no finite numeric value in any record")
        return int(self.records[best_index].get("epoch", best_index))

    def best_record(
        self, key: str | None = None, mode: Literal["min", "max"] | None = None
    ) -> dict[str, Any]:
        """Return the record of :meth:`best_epoch`.

        Parameters
        ----------
        key : str, optional
            Record key to rank by; defaults to :attr:`monitor`.
        mode : {"min", "max"}, optional
            Defaults to :attr:`mode`.

        Returns
        -------
        dict
            The best epoch's record.

        Raises
        ------
        ValueError
            As :meth:`best_epoch`.

        Examples
        --------
        >>> h = History([{"epoch": 0, "loss": 0.5}, {"epoch": 1, "loss": 0.7}])
        >>> h.best_record("loss")
        {'epoch': 0, 'loss': 0.5}
        """
        epoch = self.best_epoch(key, mode)
        for index, record in enumerate(self.records):
            if record.get("epoch", index) == epoch:
                return record
        raise AssertionError(
            "unreachable: best_epoch returned an unknown epoch"
        )  # pragma: no cover

    def to_dict(self) -> dict[str, Any]:
        """Return the history as JSON-ready data (records, timings and settings).

        Returns
        -------
        dict
            ``{"records", "timings", "monitor", "mode", "stopped_early"}``.

        Examples
        --------
        >>> History([{"epoch": 0}]).to_dict()["records"]
        [{'epoch': 0}]
        """
        return {
            "records": [dict(r) for r in self.records],
            "timings": [dict(t) for t in self.timings],
            "monitor": self.monitor,
            "mode": self.mode,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Rebuild a history from :meth:`to_dict` output.

        Parameters
        ----------
        data : mapping
            As returned by :meth:`to_dict`.

        Returns
        -------
        History
            The rebuilt history.

        Raises
        ------
        TypeError
            If ``data`` is not a mapping or its ``records`` is not a list.

        Examples
        --------
        >>> History.from_dict({"records": [{"epoch": 0, "train_loss": 1.0}]}).values("train_loss")
        [1.0]
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a mapping, got {type(data).__name__}")
        records = data.get("records", [])
        if not isinstance(records, list):
            raise TypeError(f"data['records'] must be a list, got {records!r}")
        history = cls(
            records,
            data.get("timings") or [],
            monitor=data.get("monitor"),
            mode=data.get("mode", "min"),
        )
        history.stopped_early = bool(data.get("stopped_early", False))
        return history

    def to_json(self, *, indent: int | None = 2) -> str:
        """Serialise to JSON text (:meth:`from_json` restores it).

        Parameters
        ----------
        indent : int or None, default 2
            Passed to :func:`json.dumps`.

        Returns
        -------
        str
            The JSON text.

        Examples
        --------
        >>> History([{"epoch": 0, "train_loss": 0.5}]).to_json(indent=None)[:40]
        '{"records": [{"epoch": 0, "train_loss": '
        """
        return json.dumps(self.to_dict(), indent=indent, allow_nan=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> History:
        """Rebuild a history from :meth:`to_json` text.

        Parameters
        ----------
        text : str or bytes
            JSON text.

        Returns
        -------
        History
            The rebuilt history.

        Raises
        ------
        ValueError
            If the text is not valid JSON.

        Examples
        --------
        >>> History.from_json('{"records": [{"epoch": 3}]}').records
        [{'epoch': 3}]
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"text must be JSON produced by History.to_json: {exc}") from exc
        return cls.from_dict(data)


def _set_sampler_epoch(loader: object, epoch: int) -> None:
    # DistributedSampler-like samplers reshuffle per epoch only when told the epoch.
    for owner in (loader, getattr(loader, "batch_sampler", None)):
        sampler = getattr(owner, "sampler", None)
        set_epoch = getattr(sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
            return


def fit(
    model: nn.Module,
    train_loader: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    val_loader: Iterable[Any] | None = None,
    loss_fn: LossFn = F.cross_entropy,
    metrics: Metric[Any] | Mapping[str, Metric[Any]] | None = None,
    device: torch.device | str | None = None,
    batch_transform: Callable[[Tensor], Tensor] | None = None,
    scheduler: Any = None,
    grad_clip_norm: float | None = None,
    amp_dtype: torch.dtype | None = None,
    monitor: str | None = None,
    mode: Literal["min", "max"] = "min",
    patience: int | None = None,
    min_delta: float = 0.0,
    restore_best: bool = False,
    progress: ProgressArg = None,
    on_epoch_end: Callable[[History], object] | None = None,
    nonfinite_loss: NonFiniteLoss = "raise",
) -> History:
    """Train for up to ``epochs`` epochs, evaluating after each, and return the history.

    Each epoch calls ``set_epoch(epoch)`` on the train loader's sampler when it has one (as
    :class:`~torch.utils.data.DistributedSampler` needs), then :func:`train_one_epoch`, then
    :func:`evaluate` on ``val_loader`` with ``loss_fn`` and ``metrics``. Its record holds
    ``"epoch"`` (counted from 1), ``"train_loss"``, ``"train_samples"`` and ``"val_"``-prefixed
    evaluation values (``"val_loss"``, ``"val_<metric>"``); timings go to
    :attr:`History.timings`.

    Parameters
    ----------
    model : torch.nn.Module
        The model, plain or DDP-wrapped, already on ``device``.
    train_loader : iterable
        Training ``(inputs, targets)`` batches.
    optimizer : torch.optim.Optimizer
        Optimizer over the model's parameters.
    epochs : int
        Maximum number of epochs.
    val_loader : iterable, optional
        Validation batches; without it only training values are recorded.
    loss_fn : callable, default torch.nn.functional.cross_entropy
        Training and validation loss.
    metrics : Metric or mapping of str to Metric, optional
        Validation metrics (see :func:`evaluate` for their names).
    device : torch.device or str, optional
        Defaults to the device of the model's first parameter.
    batch_transform, scheduler, grad_clip_norm, amp_dtype, progress
        Passed to :func:`train_one_epoch` (``amp_dtype`` and ``progress`` also to
        :func:`evaluate`). One gradient scaler is shared by all epochs.
    monitor : str, optional
        Record key that defines the best epoch; defaults to ``"val_loss"`` with a validation
        loader and ``"train_loss"`` without.
    mode : {"min", "max"}, default "min"
        Whether smaller or larger ``monitor`` values are better.
    patience : int, optional
        Stop after this many consecutive epochs without improvement.
    min_delta : float, default 0.0
        Smallest change of ``monitor`` that counts as an improvement.
    restore_best : bool, default False
        Keep a CPU copy of the weights of the best epoch and load it into the model at the end.
        Weights holding NaN or inf are never kept; when no epoch had a finite ``monitor`` value
        and finite weights, the final weights stay and a ``RuntimeWarning`` says so.
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(history)`` after each epoch's record is appended (for logging,
        checkpoints or epoch-level schedulers).
    nonfinite_loss : {"raise", "skip"}, default "raise"
        A NaN or infinite batch loss stops training with a ``FloatingPointError`` naming the
        epoch and the batch, or (``"skip"``) that batch is skipped with a warning; see
        :func:`train_one_epoch`.

    Returns
    -------
    History
        The per-epoch records; ``history.monitor`` and ``history.mode`` are set, and
        ``history.stopped_early`` tells whether patience ran out.

    Raises
    ------
    ValueError
        If ``epochs`` or ``patience`` is not a positive integer, ``mode`` is invalid,
        ``min_delta`` is negative, or ``monitor`` is not a numeric key of the records (the
        message lists the keys; checked before the first epoch wherever the keys are known
        in advance). A ``None`` or NaN value (an undefined metric) is accepted and never
        counts as an improvement.
    FloatingPointError
        If a batch loss is not finite and ``nonfinite_loss="raise"``.

    Examples
    --------
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(96, 2)
    >>> y = (x[:, 0] > 0).long()
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=32)
    >>> model = nn.Linear(2, 2)
    >>> history = fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.5), epochs=3,
    ...               val_loader=loader)
    >>> history.keys()
    ['epoch', 'train_loss', 'train_samples', 'val_loss']
    >>> history[-1]["val_loss"] < history[0]["val_loss"]
    True
    """
    epochs = check_positive_int("epochs", epochs)
    check_choice("mode", mode, _MODES)
    if patience is not None:
        patience = check_positive_int("patience", patience)
    min_delta = as_builtin_number(min_delta)  # type: ignore[assignment]
    if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or not min_delta >= 0:
        raise ValueError(f"min_delta must be a non-negative number, got {min_delta!r}")
    if monitor is None:
        monitor = "val_loss" if val_loader is not None else "train_loss"
    _check_nonfinite_policy(nonfinite_loss)
    _check_monitor_early(monitor, val_loader is not None, metrics)
    dev = _resolve_device(model, device)
    _check_amp_dtype(dev, amp_dtype)
    scaler = _make_grad_scaler(dev, amp_dtype)

    history = History(monitor=monitor, mode=mode)
    best_value: float | None = None
    best_state: dict[str, Tensor] | None = None
    stale = 0
    for epoch in range(epochs):
        _set_sampler_epoch(train_loader, epoch)
        stats = train_one_epoch(
            model,
            train_loader,
            optimizer,
            loss_fn=loss_fn,
            device=dev,
            batch_transform=batch_transform,
            scheduler=scheduler,
            grad_clip_norm=grad_clip_norm,
            amp_dtype=amp_dtype,
            grad_scaler=scaler,
            progress=progress,
            nonfinite_loss=nonfinite_loss,
            epoch=epoch,
        )
        record: dict[str, Any] = {
            # Epochs are counted from 1 in records, logs, figures and checkpoints.
            "epoch": epoch + 1,
            "train_loss": stats.loss,
            "train_samples": stats.n_samples,
        }
        timing = {
            "train_seconds": stats.seconds,
            "train_samples_per_second": stats.samples_per_second,
        }
        if val_loader is not None:
            result = evaluate(
                model,
                val_loader,
                metrics=metrics,
                loss_fn=loss_fn,
                device=dev,
                amp_dtype=amp_dtype,
                progress=progress,
                nonfinite_loss=nonfinite_loss,
                epoch=epoch,
            )
            record.update({f"val_{key}": value for key, value in result.to_dict().items()})
            timing["val_seconds"] = result.seconds
        history.append(record, timing)

        raw = record.get(monitor)
        if monitor not in record or not (raw is None or _is_number(raw)):
            raise ValueError(
                f"monitor must name a numeric record key, one of "
                f"{[k for k, v in record.items() if _is_number(v)]!r}, got {monitor!r}"
            )
        # Reports write undefined values (e.g. a metric over an absent class) as None.
        value = math.nan if raw is None else float(raw)
        improved = math.isfinite(value) and (
            best_value is None
            or (value < best_value - min_delta if mode == "min" else value > best_value + min_delta)
        )
        if improved:
            best_value, stale = value, 0
            if restore_best:
                state = unwrap_model(model).state_dict()
                if all(_finite_tensor(v) for v in state.values()):
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
        else:
            stale += 1
        if on_epoch_end is not None:
            on_epoch_end(history)
        if patience is not None and stale >= patience and epoch < epochs - 1:
            history.stopped_early = True
            break

    if restore_best:
        if best_state is None:
            warnings.warn(
                f"restore_best=True but no epoch had a finite {monitor!r} value and finite "
                "weights; keeping the weights of the last epoch",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            unwrap_model(model).load_state_dict(best_state)
    return history


# --------------------------------------------------------------------------- prediction
__all__ += ["predict", "predict_ensemble"]


def _batch_inputs(batch: object) -> Tensor:
    # A loader may yield bare input tensors or (inputs, targets, ...) tuples.
    x = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    if not isinstance(x, Tensor):
        raise TypeError(
            f"loader must yield input tensors or (inputs, ...) tuples, got {type(x).__name__}"
        )
    return x


def predict(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    device: torch.device | str | None = None,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    progress: ProgressArg = None,
) -> Tensor:
    """Run ``model`` over every batch of ``loader`` and return the concatenated outputs.

    The model runs in eval mode without gradients (its previous mode is restored); outputs
    are returned in float32 on the CPU in loader order, so for a classifier they are the
    logits (apply :func:`torch.softmax` for probabilities). Targets, if the loader yields
    them, are ignored.

    Parameters
    ----------
    model : torch.nn.Module
        The model, already on ``device``.
    loader : iterable
        Yields input tensors or ``(inputs, targets)`` pairs.
    device : torch.device or str, optional
        Defaults to the device of the model's first parameter.
    amp_dtype : torch.dtype, optional
        Run the forward pass under :func:`torch.autocast` with this dtype (``torch.bfloat16``
        on CPU or CUDA, ``torch.float16`` on CUDA).
    channels_last : bool, default False
        Convert 4-D input batches to :data:`torch.channels_last` memory format (faster
        convolutions on GPUs and recent CPUs; the values are unchanged). The model's own
        parameters are not converted: call ``model.to(memory_format=torch.channels_last)``
        once for that.
    progress : bool or callable, optional
        As in :func:`train_one_epoch`.

    Returns
    -------
    Tensor
        ``(N, ...)`` float32 outputs on the CPU.

    Raises
    ------
    ValueError
        If the loader is empty or ``amp_dtype`` is not supported on the device.
    TypeError
        If the loader yields something other than tensors.

    Examples
    --------
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> model = nn.Linear(3, 2)
    >>> x = torch.randn(5, 3)
    >>> logits = predict(model, DataLoader(TensorDataset(x), batch_size=2))
    >>> logits.shape, torch.allclose(logits, model(x).detach())
    (torch.Size([5, 2]), True)
    """
    dev = _resolve_device(model, device)
    _check_amp_dtype(dev, amp_dtype)
    non_blocking = dev.type == "cuda"
    outputs: list[Tensor] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in _progress(loader, progress, "predict"):
                x = _batch_inputs(batch).to(dev, non_blocking=non_blocking)
                if channels_last and x.ndim == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(dev, amp_dtype):
                    out = model(x)
                if out.is_floating_point():
                    out = out.float()
                outputs.append(out.detach().cpu())
    finally:
        model.train(was_training)
    if not outputs:
        raise ValueError("loader must yield at least one batch, got an empty loader")
    return torch.cat(outputs)


def predict_ensemble(
    models: Sequence[nn.Module],
    loader: Iterable[Any],
    *,
    activation: Literal["softmax"] | None = None,
    device: torch.device | str | None = None,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> Tensor:
    """Average the predictions of several models over the same loader.

    Each model's outputs come from :func:`predict`; with ``activation="softmax"`` they are
    turned into class probabilities first (the usual ensemble of classifiers: mean
    probability), without it the raw outputs are averaged (regressors).

    Parameters
    ----------
    models : sequence of torch.nn.Module
        At least one model; all must give outputs of the same shape.
    loader : iterable
        Yields input tensors or ``(inputs, targets)`` pairs; iterated once per model, so it
        must yield the same samples in the same order each time (no shuffling).
    activation : {"softmax", None}, default None
        Applied to each model's outputs (over the last dimension) before averaging.
    device, amp_dtype, channels_last
        As in :func:`predict`.

    Returns
    -------
    Tensor
        The mean prediction, float32 on the CPU.

    Raises
    ------
    ValueError
        If ``models`` is empty, ``activation`` is unknown or the outputs' shapes differ.
    TypeError
        If an entry of ``models`` is not a module.

    Examples
    --------
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> a, b = nn.Linear(3, 1), nn.Linear(3, 1)
    >>> loader = DataLoader(TensorDataset(torch.randn(4, 3)), batch_size=4)
    >>> mean = predict_ensemble([a, b], loader)
    >>> torch.allclose(mean, (predict(a, loader) + predict(b, loader)) / 2)
    True
    """
    model_list = list(models)
    if not model_list:
        raise ValueError("models must hold at least one model, got an empty sequence")
    for index, model in enumerate(model_list):
        if not isinstance(model, nn.Module):
            raise TypeError(f"models[{index}] must be a torch.nn.Module, got {model!r}")
    check_choice("activation", activation, ("softmax", None))
    outputs: list[Tensor] = []
    for model in model_list:
        out = predict(
            model, loader, device=device, amp_dtype=amp_dtype, channels_last=channels_last
        )
        if activation == "softmax":
            out = torch.softmax(out, dim=-1)
        if outputs and out.shape != outputs[0].shape:
            raise ValueError(
                f"models must give outputs of one shape, got {tuple(outputs[0].shape)} and "
                f"{tuple(out.shape)}"
            )
        outputs.append(out)
    return torch.stack(outputs).mean(dim=0)


def _finite_tensor(value: object) -> bool:
    if not isinstance(value, Tensor) or not (value.is_floating_point() or value.is_complex()):
        return True
    return bool(torch.isfinite(value).all())


def _report_keys(metric: Metric[Any]) -> list[str] | None:
    """The value names a metric of this library flattens to, or ``None`` when unknown."""
    from cellvision.metrics import (
        BalancedClassificationMetrics,
        ClassificationReport,
        RegressionMetrics,
        RegressionReport,
    )

    if isinstance(metric, BalancedClassificationMetrics):
        return [f.name for f in dataclasses.fields(ClassificationReport)]
    if isinstance(metric, RegressionMetrics):
        return [f.name for f in dataclasses.fields(RegressionReport)]
    return None


def _check_monitor_early(monitor: object, has_val: bool, metrics: object) -> None:
    """Reject a ``monitor`` that cannot appear in any record, before training starts.

    Keys that depend on what an unknown metric's ``compute()`` returns are checked after the
    first epoch instead.
    """
    if not isinstance(monitor, str):
        raise TypeError(f"monitor must be a record key (str), got {monitor!r}")
    known = ["epoch", "train_loss", "train_samples"] + (["val_loss"] if has_val else [])
    if monitor in known:
        return
    named, single = _named_metrics(metrics)
    if has_val and monitor.startswith("val_"):
        name = monitor[len("val_") :]
        if single:
            (metric,) = named.values()
            keys = _report_keys(metric)
            if keys is None:
                return  # a report's fields or the class name: known after computing
            known += [f"val_{key}" for key in keys]
        else:
            for key, metric in named.items():
                keys = _report_keys(metric)
                if keys is None:
                    if name == key or name.startswith(f"{key}."):
                        return
                    known.append(f"val_{key}")
                else:
                    known += [f"val_{key}.{field}" for field in keys]
        if monitor in known:
            return
    raise ValueError(f"monitor must name a numeric record key, one of {known!r}, got {monitor!r}")
