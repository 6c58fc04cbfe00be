"""Tests for cellvision.metrics; scikit-learn is the oracle."""

from __future__ import annotations

import itertools
import json
import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from cellvision.metrics import (
    BalancedClassificationMetrics,
    ClassificationReport,
    RegressionMetrics,
    balanced_accuracy,
    cohen_kappa,
    confusion_matrix,
    macro_f1,
)

TOL = 1e-6


# --------------------------------------------------------------------------- oracle helpers


def _sk(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a scikit-learn metric with its undefined-metric warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _close(ours: float, theirs: float, tol: float = TOL) -> bool:
    if math.isnan(theirs):
        return math.isnan(ours)
    return abs(ours - theirs) <= tol


def _sklearn_auroc_per_class(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    out = np.full(p.shape[1], np.nan)
    for c in range(p.shape[1]):
        positive = y == c
        if positive.any() and (~positive).any():
            out[c] = skm.roc_auc_score(positive, p[:, c])
    return out


def _check_against_sklearn(
    report: ClassificationReport, y: np.ndarray, y_pred: np.ndarray, p: np.ndarray | None
) -> None:
    c = report.confusion_matrix.shape[0]
    labels = list(range(c))
    np.testing.assert_array_equal(
        report.confusion_matrix.numpy(), skm.confusion_matrix(y, y_pred, labels=labels)
    )
    assert report.num_samples == len(y)
    assert _close(report.accuracy, skm.accuracy_score(y, y_pred))
    assert _close(report.balanced_accuracy, _sk(skm.balanced_accuracy_score, y, y_pred))
    macro = _sk(skm.precision_recall_fscore_support, y, y_pred, average="macro", zero_division=0)
    assert _close(report.macro_precision, macro[0])
    assert _close(report.macro_recall, macro[1])
    assert _close(report.macro_f1, macro[2])
    assert _close(report.macro_f1, _sk(skm.f1_score, y, y_pred, average="macro", zero_division=0))
    assert _close(
        report.weighted_f1, _sk(skm.f1_score, y, y_pred, average="weighted", zero_division=0)
    )
    assert _close(report.cohen_kappa, _sk(skm.cohen_kappa_score, y, y_pred))
    per = _sk(
        skm.precision_recall_fscore_support,
        y,
        y_pred,
        labels=labels,
        average=None,
        zero_division=0,
    )
    np.testing.assert_allclose(report.per_class_precision.numpy(), per[0], atol=TOL)
    np.testing.assert_allclose(report.per_class_recall.numpy(), per[1], atol=TOL)
    np.testing.assert_allclose(report.per_class_f1.numpy(), per[2], atol=TOL)
    np.testing.assert_array_equal(report.per_class_support.numpy(), per[3])
    if p is None:
        return
    auc = _sklearn_auroc_per_class(y, p)
    np.testing.assert_allclose(report.per_class_roc_auc.numpy(), auc, atol=TOL)
    if np.isnan(auc).all():
        assert math.isnan(report.roc_auc)
        assert report.roc_auc_unavailable_reason is not None
    else:
        assert _close(report.roc_auc, float(np.nanmean(auc)))
        assert report.roc_auc_unavailable_reason is None
    if len(np.unique(y)) == c and c >= 3:
        # Every class present: scikit-learn's multiclass OvR macro average is defined.
        expected = skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels)
        assert _close(report.roc_auc, expected)
    elif len(np.unique(y)) == 2 and c == 2:
        assert _close(report.roc_auc, skm.roc_auc_score(y, p[:, 1]))


@st.composite
def _labelled_scores(draw: st.DrawFn) -> tuple[int, np.ndarray, np.ndarray]:
    """Targets drawn from a random subset of classes (absent classes, single-class sets) and
    probability rows from small integer weights (so scores tie often)."""
    c = draw(st.integers(2, 5))
    n = draw(st.integers(1, 40))
    present = draw(st.lists(st.integers(0, c - 1), min_size=1, max_size=c, unique=True))
    y = np.array(draw(st.lists(st.sampled_from(present), min_size=n, max_size=n)))
    weights = np.array(
        draw(st.lists(st.integers(0, 4), min_size=n * c, max_size=n * c)), dtype=np.float64
    ).reshape(n, c)
    weights[weights.sum(axis=1) == 0] = 1.0
    p = torch.from_numpy(weights / weights.sum(axis=1, keepdims=True)).numpy()
    return c, y, p


# --------------------------------------------------------------------------- parity


@settings(max_examples=60)
@given(_labelled_scores())
def test_scores_match_sklearn(case: tuple[int, np.ndarray, np.ndarray]) -> None:
    c, y, p = case
    metric = BalancedClassificationMetrics(c, auroc="exact")
    report = metric.update(torch.from_numpy(p), torch.from_numpy(y)).compute()
    _check_against_sklearn(report, y, p.argmax(axis=1), p)


@settings(max_examples=40)
@given(_labelled_scores())
def test_binned_auroc_equals_exact_auroc_of_binned_scores(
    case: tuple[int, np.ndarray, np.ndarray],
) -> None:
    # Independent oracle: scikit-learn's AUROC of the bin indices (ties inside a bin).
    c, y, p = case
    nb = 7
    metric = BalancedClassificationMetrics(c, auroc="binned", num_thresholds=nb)
    report = metric.update(torch.from_numpy(p), torch.from_numpy(y)).compute()
    binned = np.minimum(np.floor(p * nb), nb - 1)
    expected = _sklearn_auroc_per_class(y, binned)
    np.testing.assert_allclose(report.per_class_roc_auc.numpy(), expected, atol=1e-12)


@settings(max_examples=40)
@given(
    c=st.integers(2, 6),
    pairs=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=50),
)
def test_labels_match_sklearn_and_functional_forms(c: int, pairs: list[tuple[int, int]]) -> None:
    y = np.array([t % c for t, _ in pairs])
    y_pred = np.array([q % c for _, q in pairs])
    yt, pt = torch.from_numpy(y), torch.from_numpy(y_pred)
    report = BalancedClassificationMetrics(c).update(pt, yt).compute()
    _check_against_sklearn(report, y, y_pred, None)
    assert math.isnan(report.roc_auc)
    assert "labels" in (report.roc_auc_unavailable_reason or "")
    np.testing.assert_array_equal(
        confusion_matrix(pt, yt, n_classes=c).numpy(),
        skm.confusion_matrix(y, y_pred, labels=list(range(c))),
    )
    assert _close(balanced_accuracy(pt, yt), _sk(skm.balanced_accuracy_score, y, y_pred))
    assert _close(cohen_kappa(pt, yt, n_classes=c), _sk(skm.cohen_kappa_score, y, y_pred))
    assert _close(macro_f1(pt, yt), _sk(skm.f1_score, y, y_pred, average="macro", zero_division=0))


def test_functional_forms_accept_scores() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 4, generator=g)
    target = torch.randint(0, 4, (50,), generator=g)
    y, y_pred = target.numpy(), logits.argmax(1).numpy()
    cm = confusion_matrix(logits, target)
    assert cm.shape == (4, 4)
    np.testing.assert_array_equal(cm.numpy(), skm.confusion_matrix(y, y_pred, labels=range(4)))
    assert _close(macro_f1(logits, target), skm.f1_score(y, y_pred, average="macro"))


# --------------------------------------------------------------------------- documented edge cases


def test_majority_predictor_has_accuracy_97_and_kappa_0() -> None:
    target = torch.cat([torch.zeros(97, dtype=torch.long), torch.ones(3, dtype=torch.long)])
    report = (
        BalancedClassificationMetrics(2)
        .update(torch.zeros(100, dtype=torch.long), target)
        .compute()
    )
    assert report.accuracy == pytest.approx(0.97)
    assert report.balanced_accuracy == pytest.approx(0.5)
    assert report.cohen_kappa == pytest.approx(0.0)
    # Class 1 is never predicted: precision 0 (zero_division=0), so macro precision is 0.97 / 2.
    assert report.macro_precision == pytest.approx(0.485)


def test_kappa_undefined_for_a_single_class_is_nan_like_sklearn() -> None:
    # Targets and predictions all class 0: expected disagreement is 0.
    y = torch.zeros(5, dtype=torch.long)
    report = BalancedClassificationMetrics(3).update(y, y).compute()
    assert math.isnan(report.cohen_kappa)
    assert math.isnan(_sk(skm.cohen_kappa_score, y.numpy(), y.numpy()))
    assert report.accuracy == 1.0
    assert report.balanced_accuracy == 1.0
    # Classes 1 and 2 never occur: left out of the macro averages (sklearn's default labels).
    assert report.macro_f1 == 1.0
    assert report.per_class_f1.tolist() == [1.0, 0.0, 0.0]
    assert report.to_dict()["cohen_kappa"] is None


def test_auroc_skips_classes_without_positives_where_sklearn_returns_nan() -> None:
    p = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    y = torch.tensor([0, 1, 0, 1])  # class 2 absent
    report = BalancedClassificationMetrics(3).update(p, y).compute()
    sk_macro = _sk(skm.roc_auc_score, y.numpy(), p.numpy(), multi_class="ovr", labels=[0, 1, 2])
    assert math.isnan(sk_macro)
    assert math.isnan(float(report.per_class_roc_auc[2]))
    assert report.roc_auc == pytest.approx(1.0)
    assert report.roc_auc_unavailable_reason is None


def test_single_class_targets_make_auroc_undefined_with_reason() -> None:
    p = torch.tensor([[0.7, 0.3], [0.4, 0.6]])
    report = BalancedClassificationMetrics(2).update(p, torch.tensor([1, 1])).compute()
    assert math.isnan(report.roc_auc)
    assert "no class has both" in (report.roc_auc_unavailable_reason or "")
    assert report.to_dict()["roc_auc"] is None


def test_label_input_makes_auroc_unavailable_even_when_mixed_with_scores() -> None:
    metric = BalancedClassificationMetrics(2, auroc="binned")
    metric.update(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 1]))
    metric.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    report = metric.compute()
    assert report.num_samples == 5
    assert math.isnan(report.roc_auc)
    assert torch.isnan(report.per_class_roc_auc).all()
    assert report.roc_auc_unavailable_reason is not None
    assert "3 samples" in report.roc_auc_unavailable_reason


def test_auroc_none_reports_disabled() -> None:
    metric = BalancedClassificationMetrics(2, auroc="none")
    report = metric.update(torch.tensor([[0.9, 0.1]]), torch.tensor([0])).compute()
    assert report.roc_auc_method == "none"
    assert math.isnan(report.roc_auc)
    assert "disabled" in (report.roc_auc_unavailable_reason or "")
    assert set(metric.state_dict()) == {"confusion", "num_label_inputs"}


def test_logits_are_softmaxed_for_auroc() -> None:
    # Column 0 ranks rows differently as raw logits and as probabilities.
    logits = torch.tensor([[2.0, 3.0, -5.0], [1.0, -4.0, -4.0], [0.0, 0.5, 5.0]])
    y = torch.tensor([0, 1, 2])
    probs = torch.softmax(logits, dim=1)
    for score_type in ("auto", "logits"):
        report = BalancedClassificationMetrics(3, score_type=score_type).update(logits, y)
        expected = _sklearn_auroc_per_class(y.numpy(), probs.numpy())
        np.testing.assert_allclose(report.compute().per_class_roc_auc.numpy(), expected)
    as_given = BalancedClassificationMetrics(3, score_type="probabilities")
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
        as_given.update(logits, y)


def test_binned_auroc_within_1e3_of_exact_on_smooth_scores() -> None:
    g = torch.Generator().manual_seed(7)
    n, c = 20_000, 5
    target = torch.randint(0, c, (n,), generator=g)
    logits = torch.randn(n, c, generator=g) + 1.5 * torch.nn.functional.one_hot(target, c)
    exact = BalancedClassificationMetrics(c, auroc="exact")
    binned = BalancedClassificationMetrics(c, auroc="binned")
    for chunk in range(0, n, 1000):
        exact.update(logits[chunk : chunk + 1000], target[chunk : chunk + 1000])
        binned.update(logits[chunk : chunk + 1000], target[chunk : chunk + 1000])
    e, b = exact.compute(), binned.compute()
    assert abs(e.roc_auc - b.roc_auc) < 1e-3
    np.testing.assert_allclose(b.per_class_roc_auc.numpy(), e.per_class_roc_auc.numpy(), atol=1e-3)
    expected = skm.roc_auc_score(
        target.numpy(), torch.softmax(logits.double(), 1).numpy(), multi_class="ovr"
    )
    assert e.roc_auc == pytest.approx(expected, abs=1e-6)
    # The binned state does not grow with the data.
    assert binned.auroc_histogram.shape == (c, c, 200)


# --------------------------------------------------------------------------- streaming protocol


def _random_batch(seed: int, n: int, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g, dtype=torch.float64), torch.randint(
        0, c, (n,), generator=g
    )


def _same_report(a: ClassificationReport, b: ClassificationReport, tol: float = 1e-12) -> None:
    da, db = a.to_dict(), b.to_dict()
    assert da.keys() == db.keys()
    for key in da:
        x, y = da[key], db[key]
        if isinstance(x, float) and isinstance(y, float):
            assert x == pytest.approx(y, abs=tol), key
        elif key == "per_class_roc_auc":
            np.testing.assert_allclose(np.array(x, dtype=float), np.array(y, dtype=float), atol=tol)
        else:
            assert x == y, key


@pytest.mark.parametrize("auroc", ["exact", "binned", "none"])
@settings(max_examples=15)
@given(cuts=st.lists(st.integers(0, 120), max_size=8))
def test_many_small_updates_equal_one_big(auroc: str, cuts: list[int]) -> None:
    logits, target = _random_batch(1, 120, 4)
    whole = BalancedClassificationMetrics(4, auroc=auroc).update(logits, target).compute()  # type: ignore[arg-type]
    pieces = BalancedClassificationMetrics(4, auroc=auroc)  # type: ignore[arg-type]
    bounds = [0, *sorted(cuts), 120]
    for lo, hi in itertools.pairwise(bounds):
        pieces.update(logits[lo:hi], target[lo:hi])  # empty pieces are no-ops
    _same_report(pieces.compute(), whole)


@pytest.mark.parametrize("auroc", ["exact", "binned", "none"])
def test_merge_state_of_halves_equals_whole(auroc: Any) -> None:
    logits, target = _random_batch(2, 300, 5)
    whole = BalancedClassificationMetrics(5, auroc=auroc).update(logits, target).compute()
    first = BalancedClassificationMetrics(5, auroc=auroc).update(logits[:110], target[:110])
    second = BalancedClassificationMetrics(5, auroc=auroc).update(logits[110:], target[110:])
    second_before = second.state_dict()
    merged = first.merge_state([second]).compute()
    _same_report(merged, whole)
    after = second.state_dict()
    for key, value in second_before.items():  # the merged-in metric is unchanged
        if isinstance(value, list):
            assert all(torch.equal(u, v) for u, v in zip(value, after[key], strict=True))
        elif isinstance(value, torch.Tensor):
            assert torch.equal(value, after[key])


def test_merge_state_rejects_other_n_classes() -> None:
    a = BalancedClassificationMetrics(3)
    with pytest.raises(ValueError, match="same n_classes"):
        a.merge_state([BalancedClassificationMetrics(4)])
    b = BalancedClassificationMetrics(3, auroc="binned", num_thresholds=10)
    with pytest.raises(ValueError, match="same num_thresholds"):
        b.merge_state([BalancedClassificationMetrics(3, auroc="binned", num_thresholds=20)])


def test_state_dict_round_trip_and_reset() -> None:
    logits, target = _random_batch(3, 64, 3)
    metric = BalancedClassificationMetrics(3).update(logits, target)
    restored = BalancedClassificationMetrics(3)
    restored.load_state_dict(metric.state_dict())
    _same_report(restored.compute(), metric.compute())
    restored.update(logits[:4], target[:4])  # still updatable after loading
    assert restored.compute().num_samples == 68
    metric.reset()
    assert int(metric.confusion.sum()) == 0
    assert metric.auroc_scores == []
    with pytest.raises(RuntimeError, match="at least one sample"):
        metric.compute()


def test_prepare_for_merge_state_concatenates_scores() -> None:
    logits, target = _random_batch(4, 40, 3)
    metric = BalancedClassificationMetrics(3)
    before = metric.update(logits[:20], target[:20]).update(logits[20:], target[20:]).compute()
    metric._prepare_for_merge_state()
    assert len(metric.auroc_scores) == 1
    _same_report(metric.compute(), before)


def test_report_to_dict_is_json_ready_and_format_lists_classes() -> None:
    logits, target = _random_batch(5, 50, 3)
    metric = BalancedClassificationMetrics(3, class_names=["G1", "S", "G2/M"])
    report = metric.update(logits, target).compute()
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["class_names"] == ["G1", "S", "G2/M"]
    assert d["confusion_matrix"] == report.confusion_matrix.tolist()
    assert d["accuracy"] == report.accuracy
    assert set(report.scalars()) == set(ClassificationReport.SCALAR_FIELDS)
    text = report.format(digits=3)
    for name in ("G1", "S", "G2/M", "macro avg", "weighted avg", "cohen kappa"):
        assert name in text
    assert f"{report.macro_f1:.3f}" in text
    with pytest.raises(ValueError, match="digits must be"):
        report.format(digits=-1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_probabilities_are_recognised(dtype: torch.dtype) -> None:
    logits, target = _random_batch(6, 200, 5)
    probs = torch.softmax(logits, dim=1).to(dtype)
    ours = BalancedClassificationMetrics(5, device="cpu").update(probs, target).compute()
    # "auto" must take them as probabilities (no second softmax), as scikit-learn does.
    expected = _sklearn_auroc_per_class(target.numpy(), probs.float().numpy())
    np.testing.assert_allclose(ours.per_class_roc_auc.numpy(), expected, atol=TOL)


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_classes": 1}, ValueError, "n_classes must be an integer >= 2, got 1"),
        ({"n_classes": 0}, ValueError, "n_classes must be a positive integer, got 0"),
        ({"n_classes": 2.0}, TypeError, "n_classes must be a positive integer"),
        ({"n_classes": 3, "auroc": "fast"}, ValueError, "auroc must be one of"),
        ({"n_classes": 3, "score_type": "x"}, ValueError, "score_type must be one of"),
        ({"n_classes": 3, "num_thresholds": 1}, ValueError, "num_thresholds must be"),
        ({"n_classes": 2, "class_names": ["a"]}, ValueError, "class_names must have"),
        ({"n_classes": 2, "class_names": "ab"}, TypeError, "class_names must be a sequence"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        BalancedClassificationMetrics(**kwargs)


@pytest.mark.parametrize(
    ("input", "target", "error", "match"),
    [
        (torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), ValueError, r"shape \(B, 3\)"),
        (torch.zeros(4, 3, 1), torch.zeros(4, dtype=torch.long), ValueError, r"shape \(B, 3\)"),
        (torch.zeros(4, 3), torch.zeros(5, dtype=torch.long), ValueError, "same length"),
        (torch.zeros(4, 3), torch.zeros(4, 1, dtype=torch.long), ValueError, "1-D tensor"),
        (torch.zeros(4, 3), torch.zeros(4), TypeError, "target must have an integer dtype"),
        (torch.zeros(4, 3), torch.full((4,), 3), ValueError, r"target labels must be in \[0, 3\)"),
        (torch.zeros(4, 3), torch.full((4,), -1), ValueError, "got -1"),
        (torch.tensor([0, 5]), torch.tensor([0, 1]), ValueError, r"input labels must be in"),
        (torch.zeros(2), torch.tensor([0, 1]), TypeError, "integer predicted labels"),
        (torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]), TypeError, "floating-point"),
        (
            torch.tensor([[0.1, float("nan"), 0.2]]),
            torch.tensor([0]),
            ValueError,
            "must be finite",
        ),
        ([[0.1, 0.2, 0.7]], torch.tensor([0]), TypeError, "input must be a torch.Tensor"),
        (torch.zeros(1, 3), [0], TypeError, "target must be a torch.Tensor"),
    ],
)
def test_update_rejects_bad_inputs(input: Any, target: Any, error: type, match: str) -> None:
    metric = BalancedClassificationMetrics(3)
    with pytest.raises(error, match=match):
        metric.update(input, target)
    assert int(metric.confusion.sum()) == 0  # a rejected batch leaves no trace


def test_functional_forms_reject_bad_inputs() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        balanced_accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="n_classes must be given"):
        confusion_matrix(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        cohen_kappa(torch.tensor([0]), torch.tensor([0]), n_classes=1)
    with pytest.raises(TypeError, match="n_classes must be a positive integer, got '3'"):
        confusion_matrix(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), n_classes="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"target labels must be in \[0, 2\)"):
        macro_f1(torch.tensor([0]), torch.tensor([2]), n_classes=2)


# --------------------------------------------------------------------------- regression


@settings(max_examples=40)
@given(
    values=st.lists(
        st.tuples(
            st.floats(-1e3, 1e3, allow_nan=False),
            st.one_of(st.floats(-1e3, 1e3, allow_nan=False), st.just(float("nan"))),
        ),
        min_size=1,
        max_size=60,
    ),
    cut=st.integers(0, 60),
)
def test_regression_matches_sklearn_with_nan_targets_omitted(
    values: list[tuple[float, float]], cut: int
) -> None:
    pred = np.array([v[0] for v in values])
    true = np.array([v[1] for v in values])
    keep = ~np.isnan(true)
    metric = RegressionMetrics(nan_policy="omit")
    metric.update(torch.from_numpy(pred[:cut]), torch.from_numpy(true[:cut]))
    metric.update(torch.from_numpy(pred[cut:]), torch.from_numpy(true[cut:]))
    if not keep.any():
        with pytest.raises(RuntimeError, match="at least one counted element"):
            metric.compute()
        return
    report = metric.compute()
    mse = skm.mean_squared_error(true[keep], pred[keep])
    assert report.mse == pytest.approx(mse, rel=1e-9, abs=1e-9)
    assert report.rmse == pytest.approx(math.sqrt(mse), rel=1e-9, abs=1e-9)
    assert report.mae == pytest.approx(
        skm.mean_absolute_error(true[keep], pred[keep]), rel=1e-9, abs=1e-9
    )
    assert report.num_samples == int(keep.sum())
    assert report.num_ignored == int((~keep).sum())


def test_regression_pools_all_elements_and_merges() -> None:
    g = torch.Generator().manual_seed(0)
    pred, true = torch.randn(10, 3, generator=g), torch.randn(10, 3, generator=g)
    whole = RegressionMetrics().update(pred, true).compute()
    a = RegressionMetrics().update(pred[:4], true[:4])
    b = RegressionMetrics().update(pred[4:], true[4:])
    merged = a.merge_state([b]).compute()
    assert merged.to_dict() == pytest.approx(whole.to_dict())
    expected = skm.mean_squared_error(true.flatten().numpy(), pred.flatten().numpy())
    assert whole.mse == pytest.approx(expected, rel=1e-6)
    restored = RegressionMetrics()
    restored.load_state_dict(a.state_dict())
    assert restored.compute() == a.compute()
    a.reset()
    assert int(a.num_samples) == 0


@pytest.mark.parametrize(
    ("input", "target", "error", "match"),
    [
        (torch.zeros(3), torch.tensor([0.0, float("nan"), 1.0]), ValueError, "nan_policy='omit'"),
        (torch.tensor([float("nan")]), torch.zeros(1), ValueError, "input must be finite"),
        (torch.zeros(1), torch.tensor([float("inf")]), ValueError, "infinite"),
        (torch.zeros(3), torch.zeros(4), ValueError, "same shape"),
        (torch.zeros(3, dtype=torch.long), torch.zeros(3), TypeError, "floating-point"),
        (torch.zeros(3), torch.zeros(3, dtype=torch.long), TypeError, "target must have"),
        (np.zeros(3), torch.zeros(3), TypeError, "input must be a torch.Tensor"),
    ],
)
def test_regression_rejects_bad_inputs(input: Any, target: Any, error: type, match: str) -> None:
    metric = RegressionMetrics()
    with pytest.raises(error, match=match):
        metric.update(input, target)
    assert int(metric.num_samples) == 0


def test_regression_rejects_unknown_nan_policy() -> None:
    with pytest.raises(ValueError, match="nan_policy must be one of"):
        RegressionMetrics(nan_policy="ignore")  # type: ignore[arg-type]
