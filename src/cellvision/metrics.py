"""Balanced classification metrics and streaming regression metrics on ``torcheval``.

With one class holding almost every sample, plain accuracy says little: a model that always
predicts the majority class scores 97% on a 97:3 split. :class:`BalancedClassificationMetrics`
accumulates one confusion matrix (a single ``bincount`` per update) and derives from it the
class-balanced numbers that do reveal such a model: balanced accuracy, macro precision, recall
and F1, weighted F1 and Cohen's kappa, plus the macro one-vs-rest ROC AUC from the scores.
:class:`RegressionMetrics` streams MSE, RMSE and MAE for the time-series regressors.

Both are :class:`torcheval.metrics.Metric` subclasses: every piece of state is registered with
``_add_state``, so ``reset``, ``state_dict``/``load_state_dict``, ``to(device)``,
``merge_state`` and :func:`torcheval.metrics.toolkit.sync_and_compute` work as for any
``torcheval`` metric. ``compute()`` returns a typed report (:class:`ClassificationReport`,
:class:`RegressionReport`) with named scalar attributes and a JSON-ready ``to_dict()``.

The functional forms :func:`confusion_matrix`, :func:`balanced_accuracy`, :func:`cohen_kappa`
and :func:`macro_f1` compute single numbers from whole tensors.

Conventions (the same as scikit-learn's, with ``zero_division=0``):

* Rows of the confusion matrix are true classes, columns predicted classes.
* Per-class precision (recall, F1) is 0 when its denominator is 0.
* Macro averages run over the classes present in the targets *or* the predictions; a class
  that never occurs in either has nothing to average and is left out (scikit-learn's default
  ``labels``). Balanced accuracy averages recall over the classes present in the targets.
* Cohen's kappa is NaN when it is undefined (expected disagreement 0, e.g. targets and
  predictions all of one class), as scikit-learn returns.
* Per-class ROC AUC is NaN for a class with no positive or no negative sample; the macro
  ROC AUC averages the classes where it is defined (scikit-learn returns NaN for the macro
  value as soon as one class is undefined). When no class is defined, or AUROC cannot be
  computed at all, ``roc_auc`` is NaN and ``roc_auc_unavailable_reason`` says why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor
from torcheval.metrics import Metric
from typing_extensions import Self

from cellvision.config import as_builtin_number, check_choice, check_positive_int

__all__ = [
    "BalancedClassificationMetrics",
    "ClassificationReport",
    "RegressionMetrics",
    "RegressionReport",
    "balanced_accuracy",
    "cohen_kappa",
    "confusion_matrix",
    "macro_f1",
]

AurocMode = Literal["exact", "binned", "none"]
ScoreType = Literal["auto", "logits", "probabilities"]
NanPolicy = Literal["raise", "omit"]

_AUROC_MODES: tuple[str, ...] = ("exact", "binned", "none")
_SCORE_TYPES: tuple[str, ...] = ("auto", "logits", "probabilities")
_NAN_POLICIES: tuple[str, ...] = ("raise", "omit")
# Rows of probabilities may be off by float rounding (more so in half precision); a logit row
# summing to 1 within this tolerance while lying in [0, 1] is practically impossible.
_PROBABILITY_SUM_ATOL = 1e-4


# --------------------------------------------------------------------------- helpers


def _json_float(value: float) -> float | None:
    """Map NaN (an undefined metric) to ``None`` so ``json.dumps(allow_nan=False)`` works."""
    return None if math.isnan(value) else float(value)


def _json_list(values: Tensor) -> list[Any]:
    if values.is_floating_point():
        return [_json_float(v) for v in values.tolist()]
    return [int(v) for v in values.tolist()]


def _is_integer_dtype(dtype: torch.dtype) -> bool:
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


# Largest number of entries of a metric's state tensor (the (C, C) confusion matrix, the
# (C, C, T) AUROC histogram): 2**31 int64 entries are 16 GiB, beyond which allocation fails.
_MAX_STATE_ENTRIES = 1 << 31


def _check_n_classes(n_classes: object) -> int:
    count = check_positive_int("n_classes", n_classes)
    if count < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {count!r}")
    if count * count > _MAX_STATE_ENTRIES:
        raise ValueError(
            f"n_classes must be at most 46340 (its confusion matrix has n_classes**2 entries), "
            f"got {count!r}"
        )
    return count


def _check_tensor(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _check_target(target: object, batch_size: int) -> Tensor:
    target = _check_tensor("target", target)
    if target.ndim != 1:
        raise ValueError(
            f"target must be a 1-D tensor of class indices, got shape {tuple(target.shape)}"
        )
    if not _is_integer_dtype(target.dtype):
        raise TypeError(f"target must have an integer dtype, got {target.dtype}")
    if target.shape[0] != batch_size:
        raise ValueError(
            f"target must have the same length as input ({batch_size}), got {target.shape[0]}"
        )
    return target


def _split_input(input: object, n_classes: int | None) -> tuple[Tensor | None, Tensor]:
    """Return ``(scores or None, predicted labels)`` for (B, C) scores or (B,) labels."""
    input = _check_tensor("input", input)
    if input.ndim == 2:
        if not input.is_floating_point():
            raise TypeError(
                f"input of shape (B, C) must hold floating-point scores, got {input.dtype}"
            )
        if n_classes is not None and input.shape[1] != n_classes:
            raise ValueError(
                f"input must have shape (B, {n_classes}) or (B,), got {tuple(input.shape)}"
            )
        if input.shape[1] < 2:
            raise ValueError(f"input must have at least 2 score columns, got {input.shape[1]}")
        if input.numel():
            # aminmax is one fast pass and propagates NaN; much cheaper than isfinite().all().
            low, high = (float(v) for v in torch.aminmax(input))
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ValueError("input scores must be finite, got NaN or infinite values")
        return input, input.argmax(dim=1)
    if input.ndim == 1:
        if not _is_integer_dtype(input.dtype):
            raise TypeError(
                "input of shape (B,) must hold integer predicted labels, got "
                f"{input.dtype}; pass scores as shape (B, n_classes)"
            )
        return None, input
    shape = f"(B, {n_classes})" if n_classes is not None else "(B, C)"
    raise ValueError(f"input must have shape {shape} or (B,), got {tuple(input.shape)}")


def _check_label_range(n_classes: int, pred: Tensor, target: Tensor, pred_checked: bool) -> None:
    """One host sync for the min/max of the labels; raises on labels outside [0, C)."""
    if target.numel() == 0:
        return
    parts = [target.min(), target.max()]
    if not pred_checked:
        parts += [pred.min().to(target.device), pred.max().to(target.device)]
    bounds = torch.stack([p.to(torch.int64) for p in parts]).tolist()
    if bounds[0] < 0 or bounds[1] >= n_classes:
        bad = bounds[0] if bounds[0] < 0 else bounds[1]
        raise ValueError(f"target labels must be in [0, {n_classes}), got {bad}")
    if not pred_checked and (bounds[2] < 0 or bounds[3] >= n_classes):
        bad = bounds[2] if bounds[2] < 0 else bounds[3]
        raise ValueError(f"input labels must be in [0, {n_classes}), got {bad}")


def _bincount_confusion(pred: Tensor, target: Tensor, n_classes: int) -> Tensor:
    index = target.to(torch.int64) * n_classes + pred.to(torch.int64)
    return torch.bincount(index, minlength=n_classes * n_classes).view(n_classes, n_classes)


def _confusion_from_inputs(input: Tensor, target: Tensor, n_classes: int | None) -> Tensor:
    """Validated (C, C) int64 confusion matrix for the functional forms."""
    if n_classes is not None:
        n_classes = _check_n_classes(n_classes)
    scores, pred = _split_input(input, n_classes)
    target = _check_target(target, pred.shape[0])
    if n_classes is None:
        if scores is not None:
            n_classes = scores.shape[1]
        else:
            if target.numel() == 0:
                raise ValueError("n_classes must be given when input and target are empty")
            found = int(torch.maximum(pred.max(), target.max().to(pred.device)).item()) + 1
            n_classes = max(found, 2)
    _check_label_range(n_classes, pred, target.to(pred.device), pred_checked=scores is not None)
    return _bincount_confusion(pred, target.to(pred.device), n_classes)


@dataclasses.dataclass(frozen=True)
class _CountStats:
    accuracy: float
    balanced_accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_f1: float
    cohen_kappa: float
    precision: Tensor
    recall: Tensor
    f1: Tensor
    support: Tensor


def _safe_divide(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num))


def _count_stats(confusion: Tensor) -> _CountStats:
    """Every count-based metric from one (C, C) confusion matrix, in float64."""
    cm = confusion.detach().to(device="cpu", dtype=torch.float64)
    total = cm.sum()
    tp = cm.diagonal()
    support = cm.sum(dim=1)
    predicted = cm.sum(dim=0)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * tp, support + predicted)
    present = (support > 0) | (predicted > 0)
    in_targets = support > 0
    # Cohen's kappa with the scikit-learn formulation: 1 - observed / expected disagreement.
    expected = torch.outer(predicted, support) / total
    off_diagonal = 1.0 - torch.eye(cm.shape[0], dtype=torch.float64)
    expected_disagreement = float((off_diagonal * expected).sum())
    observed_disagreement = float((off_diagonal * cm).sum())
    kappa = (
        1.0 - observed_disagreement / expected_disagreement
        if expected_disagreement > 0
        else math.nan
    )
    return _CountStats(
        accuracy=float(tp.sum() / total),
        balanced_accuracy=float(recall[in_targets].mean()),
        macro_precision=float(precision[present].mean()),
        macro_recall=float(recall[present].mean()),
        macro_f1=float(f1[present].mean()),
        weighted_f1=float((f1 * support).sum() / support.sum()),
        cohen_kappa=kappa,
        precision=precision,
        recall=recall,
        f1=f1,
        support=support.to(torch.int64),
    )


def _exact_auroc_per_class(scores: Tensor, targets: Tensor, n_classes: int) -> Tensor:
    """One-vs-rest AUROC per class, exactly, with ties counted one half (Mann-Whitney U).

    ``scores`` is class-major, (C, N), on the CPU. For each class the positive and negative
    scores are sorted (values only: NumPy's SIMD sort) and the smaller group is located in the
    larger with two binary searches; the pair counts are exact integers.
    """
    result = torch.full((n_classes,), math.nan, dtype=torch.float64)
    all_scores, all_targets = scores.numpy(), targets.numpy()
    for c in range(n_classes):
        positive = all_targets == c
        pos, neg = all_scores[c][positive], all_scores[c][~positive]
        n_pos, n_neg = pos.size, neg.size
        if n_pos == 0 or n_neg == 0:
            continue
        # Count pairs (positive above negative) and ties, searching the smaller group.
        # Sorted queries make the binary searches cache-friendly (several times faster).
        if n_pos <= n_neg:
            reference, queries = np.sort(neg), np.sort(pos)
        else:
            reference, queries = np.sort(pos), np.sort(neg)
        below = np.searchsorted(reference, queries, side="left")
        at_or_below = np.searchsorted(reference, queries, side="right")
        ties = int((at_or_below - below).sum(dtype=np.int64))
        if n_pos <= n_neg:
            wins = int(below.sum(dtype=np.int64))  # negatives strictly below each positive
        else:
            wins = int((n_pos - at_or_below).sum(dtype=np.int64))  # positives strictly above
        result[c] = (2 * wins + ties) / (2 * n_pos * n_neg)
    return result


def _binned_auroc_per_class(histogram: Tensor) -> Tensor:
    """One-vs-rest AUROC per class from (true class, score column, bin) counts."""
    hist = histogram.detach().to(device="cpu", dtype=torch.float64)
    n_classes = hist.shape[0]
    result = torch.full((n_classes,), math.nan, dtype=torch.float64)
    for c in range(n_classes):
        pos = hist[c, c]
        neg = hist[:, c].sum(dim=0) - pos
        n_pos, n_neg = float(pos.sum()), float(neg.sum())
        if n_pos == 0 or n_neg == 0:
            continue
        neg_below = torch.cumsum(neg, 0) - neg
        result[c] = float((pos * (neg_below + 0.5 * neg)).sum()) / (n_pos * n_neg)
    return result


# --------------------------------------------------------------------------- reports


@dataclasses.dataclass(frozen=True, eq=False)
class ClassificationReport:
    """Result of :meth:`BalancedClassificationMetrics.compute`.

    Scalars are Python floats (NaN where a metric is undefined); per-class values are CPU
    tensors of length ``n_classes`` in class order; ``to_dict()`` gives JSON-ready values.

    Attributes
    ----------
    class_names : tuple of str
        Name of each class, in index order.
    num_samples : int
        Number of samples seen.
    accuracy : float
        Fraction of correct predictions.
    balanced_accuracy : float
        Mean recall over the classes present in the targets.
    macro_precision, macro_recall, macro_f1 : float
        Unweighted means over the classes present in targets or predictions.
    weighted_f1 : float
        F1 averaged with class support as weights.
    cohen_kappa : float
        Agreement beyond chance, ``(p_o - p_e) / (1 - p_e)``; 0 for a constant predictor,
        NaN when undefined.
    roc_auc : float
        Macro one-vs-rest ROC AUC over the classes where it is defined; NaN when unavailable.
    roc_auc_method : {"exact", "binned", "none"}
        How ``roc_auc`` was computed (``"none"``: disabled).
    roc_auc_unavailable_reason : str or None
        Why ``roc_auc`` is NaN; ``None`` when it was computed.
    per_class_precision, per_class_recall, per_class_f1 : torch.Tensor
        float64 tensors of shape ``(n_classes,)``.
    per_class_support : torch.Tensor
        int64 tensor: number of targets of each class.
    per_class_roc_auc : torch.Tensor
        float64 one-vs-rest AUROC per class (NaN where undefined or unavailable).
    confusion_matrix : torch.Tensor
        int64 tensor ``(n_classes, n_classes)``; rows are true classes.

    Examples
    --------
    >>> metric = BalancedClassificationMetrics(2, class_names=["healthy", "sick"])
    >>> report = metric.update(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1])).compute()
    >>> report.accuracy, report.balanced_accuracy
    (0.666..., 0.75)
    >>> report.to_dict()["roc_auc"] is None
    True
    """

    class_names: tuple[str, ...]
    num_samples: int
    accuracy: float
    balanced_accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_f1: float
    cohen_kappa: float
    roc_auc: float
    roc_auc_method: str
    roc_auc_unavailable_reason: str | None
    per_class_precision: Tensor
    per_class_recall: Tensor
    per_class_f1: Tensor
    per_class_support: Tensor
    per_class_roc_auc: Tensor
    confusion_matrix: Tensor

    #: Names of the scalar summary fields, in display order.
    SCALAR_FIELDS: ClassVar[tuple[str, ...]] = (
        "accuracy",
        "balanced_accuracy",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "weighted_f1",
        "cohen_kappa",
        "roc_auc",
    )

    def scalars(self) -> dict[str, float]:
        """Return the summary scalars (NaN kept as ``float('nan')``), e.g. for a history log.

        Returns
        -------
        dict of str to float
            Keys are :attr:`SCALAR_FIELDS`.

        Examples
        --------
        >>> metric = BalancedClassificationMetrics(2)
        >>> metric.update(torch.tensor([0, 1]), torch.tensor([0, 1])).compute().scalars()
        {'accuracy': 1.0, 'balanced_accuracy': 1.0, 'macro_precision': 1.0, 'macro_recall': 1.0,
         'macro_f1': 1.0, 'weighted_f1': 1.0, 'cohen_kappa': 1.0, 'roc_auc': nan}
        """
        return {name: float(getattr(self, name)) for name in self.SCALAR_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """Return every field as JSON-ready Python values.

        Tensors become (nested) lists; NaN becomes ``None`` so that
        ``json.dumps(report.to_dict(), allow_nan=False)`` succeeds. Keys equal the attribute
        names.

        Returns
        -------
        dict of str to Any
            The report as plain data.

        Examples
        --------
        >>> import json
        >>> metric = BalancedClassificationMetrics(2, auroc="exact")
        >>> scores = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7]])
        >>> d = metric.update(scores, torch.tensor([0, 0, 1])).compute().to_dict()
        >>> d["roc_auc"], d["confusion_matrix"]
        (1.0, [[1, 1], [0, 1]])
        >>> len(json.dumps(d, allow_nan=False)) > 0
        True
        """
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Tensor):
                out[field.name] = (
                    [_json_list(row) for row in value] if value.ndim == 2 else _json_list(value)
                )
            elif isinstance(value, float):
                out[field.name] = _json_float(value)
            elif isinstance(value, tuple):
                out[field.name] = list(value)
            else:
                out[field.name] = value
        return out

    def format(self, digits: int = 2) -> str:
        """Return a text table in the style of scikit-learn's ``classification_report``.

        Parameters
        ----------
        digits : int, default 2
            Decimal places for the floating-point values.

        Returns
        -------
        str
            One row per class (precision, recall, F1, support, ROC AUC), the averages, and
            balanced accuracy, Cohen's kappa and the macro ROC AUC.

        Raises
        ------
        ValueError
            If ``digits`` is negative.

        Examples
        --------
        >>> metric = BalancedClassificationMetrics(2, class_names=["G1", "M"])
        >>> report = metric.update(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 1, 1]))
        >>> print(report.compute().format())
                     precision    recall  f1-score   support   roc-auc
        <BLANKLINE>
                  G1      0.67      1.00      0.80         2       n/a
                   M      1.00      0.50      0.67         2       n/a
        <BLANKLINE>
            accuracy                          0.75         4
           macro avg      0.83      0.75      0.73         4       n/a
        weighted avg      0.83      0.75      0.73         4
        <BLANKLINE>
        balanced accuracy: 0.75
        cohen kappa:       0.50
        roc auc (macro):   n/a (AUROC unavailable: 4 samples came as labels, no scores)
        """
        digits = as_builtin_number(digits)  # type: ignore[assignment]
        if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
            raise ValueError(f"digits must be a non-negative integer, got {digits!r}")

        def num(value: float) -> str:
            return "n/a" if math.isnan(value) else f"{value:.{digits}f}"

        width = max([len("weighted avg"), *(len(n) for n in self.class_names)])
        col = max(9, digits + 3)
        header = " " * width + "".join(
            f" {h:>{col}}" for h in ("precision", "recall", "f1-score", "support", "roc-auc")
        )
        lines = [header, ""]
        auc_shown = self.roc_auc_method != "none"
        for i, name in enumerate(self.class_names):
            row = [
                num(float(self.per_class_precision[i])),
                num(float(self.per_class_recall[i])),
                num(float(self.per_class_f1[i])),
                str(int(self.per_class_support[i])),
                num(float(self.per_class_roc_auc[i])) if auc_shown else "n/a",
            ]
            lines.append(f"{name:>{width}}" + "".join(f" {v:>{col}}" for v in row))
        lines.append("")
        n = str(self.num_samples)
        blank = " " * col
        lines.append(
            f"{'accuracy':>{width}} {blank} {blank} {num(self.accuracy):>{col}} {n:>{col}}"
        )
        macro = [num(self.macro_precision), num(self.macro_recall), num(self.macro_f1), n]
        macro.append(num(self.roc_auc))
        lines.append(f"{'macro avg':>{width}}" + "".join(f" {v:>{col}}" for v in macro))
        weighted_precision = float(
            (self.per_class_precision * self.per_class_support).sum() / self.num_samples
        )
        weighted_recall = float(
            (self.per_class_recall * self.per_class_support).sum() / self.num_samples
        )
        weighted = [num(weighted_precision), num(weighted_recall), num(self.weighted_f1), n]
        lines.append(f"{'weighted avg':>{width}}" + "".join(f" {v:>{col}}" for v in weighted))
        lines.append("")
        lines.append(f"balanced accuracy: {num(self.balanced_accuracy)}")
        lines.append(f"cohen kappa:       {num(self.cohen_kappa)}")
        auc_text = num(self.roc_auc)
        if self.roc_auc_unavailable_reason is not None:
            auc_text += f" ({self.roc_auc_unavailable_reason})"
        lines.append(f"roc auc (macro):   {auc_text}")
        return "\n".join(line.rstrip() for line in lines)


@dataclasses.dataclass(frozen=True)
class RegressionReport:
    """Result of :meth:`RegressionMetrics.compute`.

    Attributes
    ----------
    mse : float
        Mean squared error over the counted elements.
    rmse : float
        Square root of ``mse``.
    mae : float
        Mean absolute error.
    num_samples : int
        Number of elements counted.
    num_ignored : int
        Number of elements skipped because their target was NaN (``nan_policy="omit"``).

    Examples
    --------
    >>> metric = RegressionMetrics()
    >>> metric.update(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0])).compute().to_dict()
    {'mse': 2.0, 'rmse': 1.414..., 'mae': 1.0, 'num_samples': 2, 'num_ignored': 0}
    """

    mse: float
    rmse: float
    mae: float
    num_samples: int
    num_ignored: int

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dictionary.

        Returns
        -------
        dict of str to Any
            Keys equal the attribute names.

        Examples
        --------
        >>> RegressionReport(mse=4.0, rmse=2.0, mae=2.0, num_samples=3, num_ignored=1).to_dict()
        {'mse': 4.0, 'rmse': 2.0, 'mae': 2.0, 'num_samples': 3, 'num_ignored': 1}
        """
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- metrics


class BalancedClassificationMetrics(Metric["ClassificationReport"]):
    """The whole class-balanced report for multiclass classification, in one metric.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C``, from 2 to 46340 (the confusion matrix has ``C**2`` entries).
    class_names : sequence of str, optional
        Display names, one per class; defaults to ``"0"``, ``"1"``, ...
    auroc : {"exact", "binned", "none"}, default "exact"
        ``"exact"`` keeps every score (memory grows with the data, exact ties handled);
        ``"binned"`` keeps a ``(C, C, num_thresholds)`` histogram of probabilities (memory
        independent of the number of samples; treats scores in one bin as tied, so the error is
        at most half the fraction of positive/negative pairs sharing a bin: well below 1e-3
        for smooth score distributions at the default 200 bins); ``"none"`` skips AUROC.
    num_thresholds : int, default 200
        Number of equal-width probability bins on ``[0, 1]`` for ``auroc="binned"``.
    score_type : {"auto", "logits", "probabilities"}, default "auto"
        How to turn (B, C) scores into the probabilities AUROC ranks: ``"logits"`` applies a
        softmax, ``"probabilities"`` uses them as given (they must lie in ``[0, 1]``),
        ``"auto"`` uses a batch as given when it lies in ``[0, 1]`` with rows summing to 1 and
        applies a softmax otherwise. Predicted labels are the ``argmax`` either way.
    device : torch.device, optional
        Device of the state tensors (default CPU).

    Raises
    ------
    ValueError
        If ``n_classes`` is below 2 or above 46340, ``class_names`` has the wrong length, an
        option is unknown, or the binned AUROC histogram would exceed 2**31 entries.
    TypeError
        If ``n_classes`` or ``num_thresholds`` is not an integer.

    Notes
    -----
    ``update(input, target)`` accepts scores (logits or probabilities) of shape ``(B, C)`` or
    predicted labels of shape ``(B,)``; ``target`` holds class indices ``(B,)``. Labels carry
    no ranking, so once any update gave labels the ROC AUC is NaN and
    ``roc_auc_unavailable_reason`` says so. All count-based numbers come from one confusion
    matrix built with a single ``bincount`` per update. See the module notes for how undefined
    cases are reported. Under DDP call :func:`torcheval.metrics.toolkit.sync_and_compute`.

    Examples
    --------
    >>> metric = BalancedClassificationMetrics(3, class_names=["G1", "S", "M"])
    >>> logits = torch.tensor([[2.0, 0.1, 0.0], [0.2, 1.5, 0.1], [1.0, 0.0, 0.5],
    ...                        [0.0, 0.3, 2.2]])
    >>> report = metric.update(logits, torch.tensor([0, 1, 2, 2])).compute()
    >>> report.accuracy, report.balanced_accuracy, report.roc_auc
    (0.75, 0.833..., 1.0)
    >>> report.confusion_matrix
    tensor([[1, 0, 0],
            [0, 1, 0],
            [1, 0, 1]])
    """

    def __init__(
        self,
        n_classes: int,
        *,
        class_names: Sequence[str] | None = None,
        auroc: AurocMode = "exact",
        num_thresholds: int = 200,
        score_type: ScoreType = "auto",
        device: torch.device | str | None = None,
    ) -> None:
        self.n_classes = n_classes = _check_n_classes(n_classes)
        check_choice("auroc", auroc, _AUROC_MODES)
        check_choice("score_type", score_type, _SCORE_TYPES)
        num_thresholds = check_positive_int("num_thresholds", num_thresholds)
        if num_thresholds < 2:
            raise ValueError(f"num_thresholds must be an integer >= 2, got {num_thresholds!r}")
        if auroc == "binned" and n_classes * n_classes * num_thresholds > _MAX_STATE_ENTRIES:
            raise ValueError(
                "num_thresholds must keep the (n_classes, n_classes, num_thresholds) AUROC "
                f"histogram at most 2**31 entries, got num_thresholds={num_thresholds!r} with "
                f"n_classes={n_classes}"
            )
        if class_names is None:
            names = tuple(str(i) for i in range(n_classes))
        else:
            if isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names):
                raise TypeError(f"class_names must be a sequence of str, got {class_names!r}")
            names = tuple(class_names)
            if len(names) != n_classes:
                raise ValueError(
                    f"class_names must have n_classes={n_classes} entries, got {names!r}"
                )
        self.class_names: tuple[str, ...] = names
        self.auroc: AurocMode = auroc
        self.num_thresholds = num_thresholds
        self.score_type: ScoreType = score_type
        super().__init__(device=torch.device(device) if isinstance(device, str) else device)
        c = self.n_classes
        self._add_state("confusion", torch.zeros(c, c, dtype=torch.int64, device=self.device))
        # Samples that arrived as predicted labels: they make AUROC unavailable.
        self._add_state("num_label_inputs", 0)
        if auroc == "exact":
            self._add_state("auroc_scores", [])
            self._add_state("auroc_targets", [])
        elif auroc == "binned":
            self._add_state(
                "auroc_histogram",
                torch.zeros(c, c, num_thresholds, dtype=torch.int64, device=self.device),
            )

    # The states, declared for type checkers (set by _add_state).
    confusion: Tensor
    num_label_inputs: int
    auroc_scores: list[Tensor]
    auroc_targets: list[Tensor]
    auroc_histogram: Tensor

    def _class_major_probabilities(self, scores: Tensor) -> Tensor:
        """Probabilities as a (C, B) tensor.

        Class-major layout: a softmax, a row-sum check or a sort along a long contiguous dim
        is many times faster on CPU than along a dim of size C.
        """
        tolerance = max(_PROBABILITY_SUM_ATOL, scores.shape[1] * torch.finfo(scores.dtype).eps)
        if scores.dtype not in (torch.float32, torch.float64):
            scores = scores.float()
        by_class = scores.t().contiguous()
        if self.score_type == "logits":
            return torch.softmax(by_class, dim=0)
        low, high = (float(v) for v in torch.aminmax(by_class))
        in_range = low >= 0.0 and high <= 1.0
        if self.score_type == "probabilities":
            if not in_range:
                raise ValueError(
                    "input must hold probabilities in [0, 1] with score_type='probabilities', "
                    f"got values in [{low}, {high}]"
                )
            return by_class
        if in_range and bool(((by_class.sum(dim=0) - 1).abs() <= tolerance).all()):
            return by_class
        return torch.softmax(by_class, dim=0)

    @torch.inference_mode()
    def update(self, input: Tensor, target: Tensor) -> Self:
        """Add a batch of predictions.

        Parameters
        ----------
        input : torch.Tensor
            Scores ``(B, n_classes)`` (logits or probabilities, floating point) or predicted
            labels ``(B,)`` (integer).
        target : torch.Tensor
            True class indices ``(B,)`` (integer) in ``[0, n_classes)``.

        Returns
        -------
        BalancedClassificationMetrics
            ``self``, so calls can be chained.

        Raises
        ------
        TypeError
            If an argument is not a tensor or has the wrong dtype.
        ValueError
            If shapes disagree, labels are outside ``[0, n_classes)``, or scores are NaN or
            infinite (or outside ``[0, 1]`` with ``score_type="probabilities"``).

        Examples
        --------
        >>> metric = BalancedClassificationMetrics(2)
        >>> metric.update(torch.tensor([[0.3, 0.7]]), torch.tensor([1])).confusion
        tensor([[0, 0],
                [0, 1]])
        >>> metric.update(torch.tensor([2]), torch.tensor([0]))
        Traceback (most recent call last):
            ...
        ValueError: input labels must be in [0, 2), got 2
        """
        scores, pred = _split_input(input, self.n_classes)
        target = _check_target(target, pred.shape[0]).to(pred.device)
        _check_label_range(self.n_classes, pred, target, pred_checked=scores is not None)
        if pred.shape[0] == 0:
            return self
        self.confusion += _bincount_confusion(pred, target, self.n_classes).to(self.device)
        if scores is None:
            self.num_label_inputs += int(pred.shape[0])
            return self
        if self.auroc == "exact":
            self.auroc_scores.append(self._class_major_probabilities(scores).to(self.device))
            self.auroc_targets.append(target.to(device=self.device, dtype=torch.int64))
        elif self.auroc == "binned":
            probs = self._class_major_probabilities(scores)
            c, nb = self.n_classes, self.num_thresholds
            bins = (probs * nb).to(torch.int64).clamp_(0, nb - 1)
            column = (torch.arange(c, device=bins.device) * nb).unsqueeze(1)
            index = (target.to(torch.int64) * (c * nb)).unsqueeze(0) + column + bins
            counts = torch.bincount(index.flatten(), minlength=c * c * nb)
            self.auroc_histogram += counts.view(c, c, nb).to(self.device)
        return self

    def _auroc(self) -> tuple[float, Tensor, str | None]:
        nan_per_class = torch.full((self.n_classes,), math.nan, dtype=torch.float64)
        if self.auroc == "none":
            return math.nan, nan_per_class, "AUROC disabled (auroc='none')"
        if self.num_label_inputs > 0:
            return (
                math.nan,
                nan_per_class,
                f"AUROC unavailable: {self.num_label_inputs} samples came as labels, no scores",
            )
        if self.auroc == "exact":
            scores = torch.cat(self.auroc_scores, dim=1).cpu()
            targets = torch.cat(self.auroc_targets).cpu()
            per_class = _exact_auroc_per_class(scores, targets, self.n_classes)
        else:
            per_class = _binned_auroc_per_class(self.auroc_histogram)
        defined = ~torch.isnan(per_class)
        if not bool(defined.any()):
            return (
                math.nan,
                per_class,
                "AUROC undefined: no class has both positive and negative samples",
            )
        return float(per_class[defined].mean()), per_class, None

    @torch.inference_mode()
    def compute(self) -> ClassificationReport:
        """Return the report for every sample seen so far.

        Returns
        -------
        ClassificationReport
            The scalar metrics, per-class arrays and the confusion matrix.

        Raises
        ------
        RuntimeError
            If no sample has been seen.

        Examples
        --------
        >>> metric = BalancedClassificationMetrics(2)
        >>> metric.compute()
        Traceback (most recent call last):
            ...
        RuntimeError: compute() needs at least one sample; call update() first
        """
        num_samples = int(self.confusion.sum())
        if num_samples == 0:
            raise RuntimeError("compute() needs at least one sample; call update() first")
        stats = _count_stats(self.confusion)
        roc_auc, per_class_auc, reason = self._auroc()
        return ClassificationReport(
            class_names=self.class_names,
            num_samples=num_samples,
            accuracy=stats.accuracy,
            balanced_accuracy=stats.balanced_accuracy,
            macro_precision=stats.macro_precision,
            macro_recall=stats.macro_recall,
            macro_f1=stats.macro_f1,
            weighted_f1=stats.weighted_f1,
            cohen_kappa=stats.cohen_kappa,
            roc_auc=roc_auc,
            roc_auc_method=self.auroc,
            roc_auc_unavailable_reason=reason,
            per_class_precision=stats.precision,
            per_class_recall=stats.recall,
            per_class_f1=stats.f1,
            per_class_support=stats.support,
            per_class_roc_auc=per_class_auc,
            confusion_matrix=self.confusion.detach().cpu().clone(),
        )

    @torch.inference_mode()
    def merge_state(self, metrics: Iterable[BalancedClassificationMetrics]) -> Self:
        """Add the states of other metrics (e.g. from other processes) into this one.

        Only the registered states of ``metrics`` are read, so the light objects that
        ``torcheval``'s distributed sync builds from state dicts work as well. The other
        metrics are left unchanged. ``self`` may appear in ``metrics`` (for example
        ``parts[0].merge_state(parts)``): its own samples are already counted and are not
        added twice, so the result equals one pass over the samples of all the distinct
        metrics. Everything is checked before any state changes.

        Parameters
        ----------
        metrics : iterable of BalancedClassificationMetrics
            Metrics with the same ``n_classes`` and AUROC settings.

        Returns
        -------
        BalancedClassificationMetrics
            ``self``.

        Raises
        ------
        ValueError
            If a metric has another ``auroc`` mode or states of other shapes (other
            ``n_classes``/``num_thresholds``).

        Examples
        --------
        >>> a = BalancedClassificationMetrics(2).update(torch.tensor([0]), torch.tensor([0]))
        >>> b = BalancedClassificationMetrics(2).update(torch.tensor([1]), torch.tensor([0]))
        >>> a.merge_state([b]).confusion
        tensor([[1, 1],
                [0, 0]])
        """
        # Snapshot first: ``metrics`` may be a generator, or hold ``self``, whose lists the
        # loop below extends.
        others = [other for other in metrics if other is not self]
        state_of_mode = {"exact": "auroc_scores", "binned": "auroc_histogram"}
        for index, other in enumerate(others):
            confusion = getattr(other, "confusion", None)
            if not isinstance(confusion, Tensor):
                raise ValueError(
                    f"metrics[{index}] must be a BalancedClassificationMetrics, got "
                    f"{type(other).__name__}"
                )
            if tuple(confusion.shape) != tuple(self.confusion.shape):
                raise ValueError(
                    "metrics must have the same n_classes: confusion shape "
                    f"{tuple(self.confusion.shape)} vs {tuple(confusion.shape)}"
                )
            mode = getattr(other, "auroc", None)
            if mode is None:  # a light state-only object: infer the mode from its states
                mode = next((m for m, key in state_of_mode.items() if hasattr(other, key)), "none")
            if mode != self.auroc:
                raise ValueError(
                    f"metrics must all use auroc={self.auroc!r} to be merged, got "
                    f"auroc={mode!r} for metrics[{index}]"
                )
            if self.auroc == "binned":
                hist = other.auroc_histogram
                if tuple(hist.shape) != tuple(self.auroc_histogram.shape):
                    raise ValueError(
                        "metrics must have the same num_thresholds: histogram shape "
                        f"{tuple(self.auroc_histogram.shape)} vs {tuple(hist.shape)}"
                    )
        for other in others:
            self.confusion += other.confusion.to(self.device)
            self.num_label_inputs += int(other.num_label_inputs)
            if self.auroc == "exact":
                self.auroc_scores.extend([t.to(self.device) for t in other.auroc_scores])
                self.auroc_targets.extend([t.to(self.device) for t in other.auroc_targets])
            elif self.auroc == "binned":
                self.auroc_histogram += other.auroc_histogram.to(self.device)
        return self

    @torch.inference_mode()
    def _prepare_for_merge_state(self) -> None:
        # One tensor per rank instead of one per batch: far fewer collectives in the sync.
        if self.auroc == "exact" and len(self.auroc_scores) > 1:
            self.auroc_scores = [torch.cat(self.auroc_scores, dim=1)]
            self.auroc_targets = [torch.cat(self.auroc_targets)]


class RegressionMetrics(Metric["RegressionReport"]):
    """Streaming MSE, RMSE and MAE over every element of the predictions.

    Sums are kept in float64, so millions of small updates do not drift.

    Parameters
    ----------
    nan_policy : {"raise", "omit"}, default "raise"
        What to do with NaN *targets* (missing sensor readings): ``"raise"`` raises
        ``ValueError``; ``"omit"`` skips those elements and counts them in
        ``num_ignored``. NaN or infinite *predictions* always raise.
    device : torch.device, optional
        Device of the state tensors (default CPU).

    Raises
    ------
    ValueError
        If ``nan_policy`` is unknown.

    Examples
    --------
    >>> metric = RegressionMetrics(nan_policy="omit")
    >>> target = torch.tensor([1.0, float("nan"), 3.0])
    >>> report = metric.update(torch.tensor([2.0, 0.0, 3.0]), target).compute()
    >>> report.mse, report.mae, report.num_samples, report.num_ignored
    (0.5, 0.5, 2, 1)
    """

    def __init__(
        self, *, nan_policy: NanPolicy = "raise", device: torch.device | str | None = None
    ) -> None:
        check_choice("nan_policy", nan_policy, _NAN_POLICIES)
        self.nan_policy: NanPolicy = nan_policy
        super().__init__(device=torch.device(device) if isinstance(device, str) else device)
        zero = torch.zeros((), dtype=torch.float64, device=self.device)
        self._add_state("sum_squared_error", zero)
        self._add_state("sum_absolute_error", zero)
        self._add_state("num_samples", torch.zeros((), dtype=torch.int64, device=self.device))
        self._add_state("num_ignored", torch.zeros((), dtype=torch.int64, device=self.device))

    sum_squared_error: Tensor
    sum_absolute_error: Tensor
    num_samples: Tensor
    num_ignored: Tensor

    @torch.inference_mode()
    def update(self, input: Tensor, target: Tensor) -> Self:
        """Add a batch of predictions and targets of the same shape (any shape).

        Parameters
        ----------
        input : torch.Tensor
            Floating-point predictions.
        target : torch.Tensor
            Floating-point targets of the same shape; NaN handled by ``nan_policy``.

        Returns
        -------
        RegressionMetrics
            ``self``.

        Raises
        ------
        TypeError
            If an argument is not a floating-point tensor.
        ValueError
            If the shapes differ, a prediction is not finite, a target is infinite, or a
            target is NaN under ``nan_policy="raise"``.

        Examples
        --------
        >>> RegressionMetrics().update(torch.ones(2, 3), torch.ones(2))
        Traceback (most recent call last):
            ...
        ValueError: target must have the same shape as input (2, 3), got (2,)
        """
        input = _check_tensor("input", input)
        target = _check_tensor("target", target)
        for name, value in (("input", input), ("target", target)):
            if not value.is_floating_point():
                raise TypeError(f"{name} must have a floating-point dtype, got {value.dtype}")
        if input.shape != target.shape:
            raise ValueError(
                f"target must have the same shape as input {tuple(input.shape)}, "
                f"got {tuple(target.shape)}"
            )
        prediction = input.detach().reshape(-1).to(torch.float64)
        truth = target.detach().reshape(-1).to(device=prediction.device, dtype=torch.float64)
        if not bool(torch.isfinite(prediction).all()):
            raise ValueError("input must be finite, got NaN or infinite predictions")
        missing = torch.isnan(truth)
        num_missing = int(missing.sum())
        if num_missing:
            if self.nan_policy == "raise":
                raise ValueError(
                    f"target contains {num_missing} NaN values; pass nan_policy='omit' to skip them"
                )
            keep = ~missing
            prediction, truth = prediction[keep], truth[keep]
        if bool(torch.isinf(truth).any()):
            raise ValueError("target must not contain infinite values")
        error = prediction - truth
        self.sum_squared_error += (error * error).sum().to(self.device)
        self.sum_absolute_error += error.abs().sum().to(self.device)
        self.num_samples += int(error.numel())
        self.num_ignored += num_missing
        return self

    @torch.inference_mode()
    def compute(self) -> RegressionReport:
        """Return MSE, RMSE and MAE over every counted element.

        Returns
        -------
        RegressionReport
            The errors and the element counts.

        Raises
        ------
        RuntimeError
            If no element has been counted.

        Examples
        --------
        >>> RegressionMetrics().update(torch.zeros(4), torch.full((4,), 2.0)).compute().rmse
        2.0
        """
        n = int(self.num_samples)
        if n == 0:
            raise RuntimeError("compute() needs at least one counted element; call update() first")
        mse = float(self.sum_squared_error) / n
        return RegressionReport(
            mse=mse,
            rmse=math.sqrt(mse),
            mae=float(self.sum_absolute_error) / n,
            num_samples=n,
            num_ignored=int(self.num_ignored),
        )

    @torch.inference_mode()
    def merge_state(self, metrics: Iterable[RegressionMetrics]) -> Self:
        """Add the sums and counts of other metrics into this one.

        Parameters
        ----------
        metrics : iterable of RegressionMetrics
            Metrics to merge; left unchanged.

        Returns
        -------
        RegressionMetrics
            ``self``.

        Raises
        ------
        ValueError
            If an entry is not a regression metric (nothing is merged then).

        Examples
        --------
        >>> a = RegressionMetrics().update(torch.tensor([1.0]), torch.tensor([0.0]))
        >>> b = RegressionMetrics().update(torch.tensor([3.0]), torch.tensor([0.0]))
        >>> a.merge_state([b]).compute().mse
        5.0
        """
        # ``self`` in ``metrics`` is already counted (see BalancedClassificationMetrics).
        others = [m for m in metrics if m is not self]
        for index, other in enumerate(others):
            if not isinstance(getattr(other, "sum_squared_error", None), Tensor):
                raise ValueError(
                    f"metrics[{index}] must be a RegressionMetrics, got {type(other).__name__}"
                )
        for other in others:
            self.sum_squared_error += other.sum_squared_error.to(self.device)
            self.sum_absolute_error += other.sum_absolute_error.to(self.device)
            self.num_samples += other.num_samples.to(self.device)
            self.num_ignored += other.num_ignored.to(self.device)
        return self


# --------------------------------------------------------------------------- functional


def confusion_matrix(input: Tensor, target: Tensor, *, n_classes: int | None = None) -> Tensor:
    """Confusion matrix with true classes as rows and predicted classes as columns.

    Parameters
    ----------
    input : torch.Tensor
        Scores ``(N, C)`` (the ``argmax`` is the prediction) or predicted labels ``(N,)``.
    target : torch.Tensor
        True class indices ``(N,)``.
    n_classes : int, optional
        Number of classes; by default the number of score columns, or the largest label + 1.

    Returns
    -------
    torch.Tensor
        int64 tensor ``(n_classes, n_classes)`` on ``input``'s device.

    Raises
    ------
    TypeError
        If dtypes are wrong.
    ValueError
        If shapes disagree, labels are outside ``[0, n_classes)`` or scores are not finite.

    Examples
    --------
    >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]))
    tensor([[1, 1],
            [0, 1]])
    """
    return _confusion_from_inputs(input, target, n_classes)


def balanced_accuracy(input: Tensor, target: Tensor, *, n_classes: int | None = None) -> float:
    """Mean per-class recall over the classes present in ``target``.

    Parameters
    ----------
    input : torch.Tensor
        Scores ``(N, C)`` or predicted labels ``(N,)``.
    target : torch.Tensor
        True class indices ``(N,)``, at least one.
    n_classes : int, optional
        Number of classes (see :func:`confusion_matrix`).

    Returns
    -------
    float
        Balanced accuracy in ``[0, 1]``; 1/C for a constant predictor.

    Raises
    ------
    TypeError, ValueError
        As :func:`confusion_matrix`; also ``ValueError`` for empty inputs.

    Examples
    --------
    >>> balanced_accuracy(torch.zeros(100, dtype=torch.long), (torch.arange(100) >= 97).long())
    0.5
    """
    return _count_stats(_nonempty_confusion(input, target, n_classes)).balanced_accuracy


def cohen_kappa(input: Tensor, target: Tensor, *, n_classes: int | None = None) -> float:
    """Cohen's kappa: agreement between predictions and targets beyond chance.

    Parameters
    ----------
    input : torch.Tensor
        Scores ``(N, C)`` or predicted labels ``(N,)``.
    target : torch.Tensor
        True class indices ``(N,)``, at least one.
    n_classes : int, optional
        Number of classes (see :func:`confusion_matrix`).

    Returns
    -------
    float
        Kappa in ``[-1, 1]``; 0 for a constant predictor; NaN when undefined (predictions and
        targets all of one class).

    Raises
    ------
    TypeError, ValueError
        As :func:`confusion_matrix`; also ``ValueError`` for empty inputs.

    References
    ----------
    J. Cohen, "A coefficient of agreement for nominal scales", Educational and Psychological
    Measurement 20(1), 1960.

    Examples
    --------
    >>> cohen_kappa(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]))
    0.5
    """
    return _count_stats(_nonempty_confusion(input, target, n_classes)).cohen_kappa


def macro_f1(input: Tensor, target: Tensor, *, n_classes: int | None = None) -> float:
    """Unweighted mean F1 over the classes present in ``target`` or the predictions.

    Parameters
    ----------
    input : torch.Tensor
        Scores ``(N, C)`` or predicted labels ``(N,)``.
    target : torch.Tensor
        True class indices ``(N,)``, at least one.
    n_classes : int, optional
        Number of classes (see :func:`confusion_matrix`).

    Returns
    -------
    float
        Macro F1 in ``[0, 1]`` (``zero_division=0`` per class).

    Raises
    ------
    TypeError, ValueError
        As :func:`confusion_matrix`; also ``ValueError`` for empty inputs.

    Examples
    --------
    >>> macro_f1(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 1, 1]))
    0.733...
    """
    return _count_stats(_nonempty_confusion(input, target, n_classes)).macro_f1


def _nonempty_confusion(input: Tensor, target: Tensor, n_classes: int | None) -> Tensor:
    cm = _confusion_from_inputs(input, target, n_classes)
    if int(cm.sum()) == 0:
        raise ValueError("input and target must hold at least one sample, got 0")
    return cm


# --------------------------------------------------------------------------- baselines
def _as_series(name: str, value: object) -> np.ndarray[Any, np.dtype[np.float64]]:
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "fiub" or array.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D numeric series, got shape {array.shape} and dtype {array.dtype}"
        )
    return array.astype(np.float64)


def _as_rows(name: str, value: object, n_rows: int, horizon: int) -> np.ndarray[Any, Any]:
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    rows = np.asarray(value)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be a 1-D array of row indices, got {value!r}")
    rows = rows.astype(np.int64)
    if rows.size and (int(rows.min()) < 0 or int(rows.max()) + horizon >= n_rows):
        raise ValueError(
            f"{name} must be rows in [0, {n_rows - horizon}) so that row + horizon "
            f"({horizon}) exists, got values from {int(rows.min())} to {int(rows.max())}"
        )
    return rows


def persistence_forecast(observed: object, end_rows: object) -> np.ndarray[Any, Any]:
    """Return the persistence forecast: the last observed value at or before each row.

    The naive forecaster every time-series model must beat ("tomorrow's weather is
    today's"): the prediction for any hour after ``t`` is the latest reading up to and
    including row ``t``, skipping missing (NaN) readings.

    Parameters
    ----------
    observed : array_like or torch.Tensor
        The measured series, shape ``(T,)``; NaN marks a missing reading.
    end_rows : array_like of int
        Rows ``t`` at which each forecast is made (a window's last input row).

    Returns
    -------
    numpy.ndarray
        ``float64`` forecasts, one per row of ``end_rows``.

    Raises
    ------
    ValueError
        If ``observed`` is not a 1-D numeric series, a row is out of range, or no reading
        exists at or before a row.

    Examples
    --------
    >>> persistence_forecast([1.0, float("nan"), 3.0, float("nan")], [0, 1, 3])
    array([1., 1., 3.])
    """
    values = _as_series("observed", observed)
    rows = _as_rows("end_rows", end_rows, values.shape[0], 0)
    # Index of the latest reading at or before each row (-1 before the first reading).
    latest = np.maximum.accumulate(np.where(np.isnan(values), -1, np.arange(values.shape[0])))
    source = latest[rows]
    if source.size and int(source.min()) < 0:
        first = int(rows[source < 0][0])
        raise ValueError(f"observed must hold a reading at or before every row, none by {first}")
    forecast: np.ndarray[Any, Any] = values[source]
    return forecast


def persistence_mse(
    observed: object, end_rows: object, *, horizon: int = 1, target: object = None
) -> float:
    """Return the mean squared error of the persistence forecast ``horizon`` steps ahead.

    Each row ``t`` of ``end_rows`` is forecast as :func:`persistence_forecast` (the last
    reading at or before ``t``) and compared with ``target[t + horizon]``; the MSE is in the
    squared units of the series and computed in float64. This is the baseline against which
    the benzene study reports its models (:mod:`cellvision.recipes.forecasting`).

    Parameters
    ----------
    observed : array_like or torch.Tensor
        The measured series, shape ``(T,)``; NaN marks a missing reading.
    end_rows : array_like of int
        Rows ``t`` at which the forecasts are made; at least one.
    horizon : int, default 1
        Steps ahead (1 = the next step).
    target : array_like or torch.Tensor, optional
        The values to forecast, shape ``(T,)``; default ``observed`` itself.

    Returns
    -------
    float
        ``mean((forecast - target[t + horizon]) ** 2)``.

    Raises
    ------
    ValueError
        If a series is not 1-D numeric or of a different length, ``end_rows`` is empty or out
        of range, no reading precedes a row, or a target value is missing (NaN).
    TypeError
        If ``horizon`` is not an integer.

    Examples
    --------
    >>> persistence_mse([1.0, 2.0, 4.0, 7.0], [0, 1, 2])  # errors 1, 2 and 3
    4.666666666666667
    >>> persistence_mse([1.0, float("nan"), 4.0], [1], target=[0.0, 0.0, 3.0])  # 1 vs 3
    4.0
    """
    if not isinstance(horizon, bool) and isinstance(horizon, (int, np.integer)):
        horizon = int(horizon)  # numpy scalars count as integers
    check_positive_int("horizon", horizon)
    values = _as_series("observed", observed)
    goal = values if target is None else _as_series("target", target)
    if goal.shape != values.shape:
        raise ValueError(f"target must have the shape {values.shape} of observed, got {goal.shape}")
    rows = _as_rows("end_rows", end_rows, values.shape[0], int(horizon))
    if rows.size == 0:
        raise ValueError("end_rows must hold at least one row, got none")
    truth = goal[rows + int(horizon)]
    if np.isnan(truth).any():
        raise ValueError(
            "target must have a value at every row + horizon, got NaN at row "
            f"{int(rows[np.isnan(truth)][0]) + int(horizon)}"
        )
    return float(np.mean((persistence_forecast(values, rows) - truth) ** 2))


__all__ += ["persistence_forecast", "persistence_mse"]
