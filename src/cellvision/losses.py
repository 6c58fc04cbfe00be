"""Imbalance-aware classification losses on logits, and post-hoc logit adjustment.

Every loss takes raw logits ``(B, C)`` and integer class targets ``(B,)``, exists as a
function and as an :class:`torch.nn.Module` (usable as ``loss_fn`` of
:func:`cellvision.engine.fit`, which calls ``loss_fn(logits, target)``), and supports
``reduction="mean" | "sum" | "none"`` like the torch losses. Half-precision logits (for
example under ``torch.autocast(dtype=torch.bfloat16)``) are computed in float32, through
log-sum-exp and log-sigmoid, so values and gradients stay finite.

* :func:`one_vs_all_loss` / :class:`OneVsAllLoss`: one sigmoid binary cross-entropy per class
  (the original study's One-vs-All); :func:`init_prior_log_odds_` starts a head at the prior
  log-odds and :func:`one_vs_all_probabilities` turns its logits into probabilities.
* :func:`logit_adjusted_cross_entropy` / :class:`LogitAdjustedCrossEntropy` and
  :func:`balanced_softmax_loss` / :class:`BalancedSoftmaxLoss`: cross-entropy on logits
  shifted by the log class prior, so the network learns the balanced (prior-free) scores.
* :func:`focal_loss` / :class:`FocalLoss`: cross-entropy down-weighting easy samples.
* :func:`class_balanced_weights`: per-class weights from the effective number of samples.
* :func:`adjust_logits`: the post-hoc counterpart, applied to a trained model's logits.

Class priors and counts are validated once where they are received (in the module's
constructor for the module forms). A prior need not sum to one: it is divided by its sum
(only ratios matter), so class counts can be passed as a prior.
"""

from __future__ import annotations

import math
from typing import Literal, TypeAlias

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (PyTorch's own convention)
from torch import Tensor, nn

from cellvision.config import check_choice, check_positive_int
from cellvision.layers.heads import ClassFreqsLike, as_class_freqs

__all__ = [
    "BalancedSoftmaxLoss",
    "FocalLoss",
    "LogitAdjustedCrossEntropy",
    "OneVsAllLoss",
    "Reduction",
    "adjust_logits",
    "balanced_softmax_loss",
    "class_balanced_weights",
    "focal_loss",
    "init_prior_log_odds_",
    "logit_adjusted_cross_entropy",
    "one_vs_all_loss",
    "one_vs_all_probabilities",
]

#: How a per-sample loss is reduced: ``"mean"`` over the batch, ``"sum"`` or ``"none"``.
Reduction: TypeAlias = Literal["mean", "sum", "none"]
_REDUCTIONS: tuple[Reduction, ...] = ("mean", "sum", "none")

# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _real(name: str, value: object, *, low: float, low_inclusive: bool, high: float) -> float:
    """Return ``value`` as a float after checking it is a real number in the given range."""
    if isinstance(value, np.generic) and not isinstance(value, np.bool_):
        value = value.item()
    low_bracket = "[" if low_inclusive else "("
    interval = f"{low_bracket}{low}, {'inf' if math.isinf(high) else high})"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number in {interval}, got {value!r}")
    number = float(value)
    above = number >= low if low_inclusive else number > low
    if not (math.isfinite(number) and above and number < high):
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return number


def _check_logits(logits: object, name: str = "logits") -> Tensor:
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        got = f"dtype {logits.dtype}" if isinstance(logits, Tensor) else type(logits).__name__
        raise TypeError(f"{name} must be a floating-point tensor, got {got}")
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(
            f"{name} must have shape (batch, n_classes) with n_classes >= 2, "
            f"got {tuple(logits.shape)}"
        )
    return logits


def _check_logits_target(logits: object, target: object) -> tuple[Tensor, Tensor]:
    checked = _check_logits(logits)
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be an integer tensor of class indices, got {target!r}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(
            f"target must be an integer tensor of class indices, got dtype {target.dtype}"
        )
    if target.shape != checked.shape[:1]:
        raise ValueError(
            f"target must have shape ({checked.shape[0]},) to match logits "
            f"{tuple(checked.shape)}, got {tuple(target.shape)}"
        )
    return checked, target.long()


def _compute_dtype(logits: Tensor) -> torch.dtype:
    # Half-precision log-sum-exp loses the small differences the losses are made of.
    return torch.float32 if logits.dtype in (torch.float16, torch.bfloat16) else logits.dtype


def _check_reduction(reduction: object) -> Reduction:
    check_choice("reduction", reduction, _REDUCTIONS)
    return reduction  # type: ignore[return-value]


def _reduce(loss: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _positive_vector(name: str, value: object, n_classes: int | None) -> Tensor:
    """Validate one finite, strictly positive entry per class; return it as float64 on CPU."""
    freqs = as_class_freqs(value, n_classes=n_classes, name=name)  # type: ignore[arg-type]
    if freqs is None:
        raise TypeError(f"{name} must be a tensor, ndarray or sequence of floats, got None")
    return torch.tensor(freqs, dtype=torch.float64)


def _log_prior(name: str, value: object, n_classes: int | None) -> Tensor:
    """Return ``log(value / value.sum())`` (float64, CPU) after validation."""
    prior = _positive_vector(name, value, n_classes)
    return (prior / prior.sum()).log()


def _non_negative_vector(name: str, value: object, n_classes: int | None) -> Tensor:
    """Validate one finite, non-negative entry per class, not all zero (float64, CPU)."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be a tensor, ndarray or sequence of floats, got {value!r}")
    try:
        if isinstance(value, Tensor):
            array = value.detach().to("cpu", torch.float64).numpy()
        else:
            array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a tensor, ndarray or sequence of floats, got {value!r}"
        ) from exc
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {array.shape}")
    if not (np.isfinite(array).all() and (array >= 0).all() and (array > 0).any()):
        raise ValueError(
            f"{name} must be finite and >= 0 with at least one entry > 0, got {tuple(array)!r}"
        )
    if n_classes is not None and array.size != n_classes:
        raise ValueError(f"{name} must have n_classes={n_classes} entries, got {array.size}")
    return torch.from_numpy(array.copy())


def _shifted_cross_entropy(
    logits: Tensor, target: Tensor, shift: Tensor, reduction: Reduction
) -> Tensor:
    dtype = _compute_dtype(logits)
    shifted = logits.to(dtype) + shift.to(device=logits.device, dtype=dtype)
    return F.cross_entropy(shifted, target, reduction=reduction)


# --------------------------------------------------------------------------------------------
# One-vs-All
# --------------------------------------------------------------------------------------------


def one_vs_all_loss(
    logits: Tensor,
    target: Tensor,
    pos_weight: Tensor | ClassFreqsLike | float | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""One-vs-All loss: a sigmoid binary cross-entropy per class, summed over the classes.

    Class ``c`` gets its own binary problem "is it class ``c``?" with target
    :math:`y_c = [t = c]`; the loss of one sample is

    .. math::

        \ell = -\sum_c \big( w_c\, y_c \log \sigma(z_c) + (1 - y_c) \log \sigma(-z_c) \big).

    Unlike the softmax, the classes do not compete for one unit of probability, so a rare class
    has its own decision boundary. Predict with ``logits.argmax(1)``; probabilities come from
    :func:`one_vs_all_probabilities`; start the head at the prior log-odds with
    :func:`init_prior_log_odds_`.

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, C)`` floating logits, one per class.
    target : torch.Tensor
        ``(B,)`` integer class indices in ``[0, C)``.
    pos_weight : float or sequence of float or torch.Tensor, optional
        Weight :math:`w_c > 0` of the positive term, one per class or one for all (as
        :class:`torch.nn.BCEWithLogitsLoss`); ``(N - n_c) / n_c`` balances class ``c``'s
        positives against its negatives.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns the per-sample losses ``(B,)``; ``"mean"`` averages them over the
        batch; ``"sum"`` adds them.

    Returns
    -------
    torch.Tensor
        Scalar (or ``(B,)``) loss, float32 for half-precision logits.

    Raises
    ------
    TypeError
        If ``logits`` is not floating, ``target`` not integer, or ``pos_weight`` not real.
    ValueError
        If the shapes disagree, ``pos_weight`` has an entry that is not finite and positive or
        the wrong length, or ``reduction`` is unknown.

    References
    ----------
    R. Rifkin and A. Klautau, "In Defense of One-Vs-All Classification", JMLR 5, 2004.

    Examples
    --------
    >>> logits = torch.tensor([[2.0, -1.0, -3.0], [0.0, 1.0, -1.0]])
    >>> target = torch.tensor([0, 1])
    >>> one_vs_all_loss(logits, target)
    tensor(0.9042)
    >>> one_vs_all_loss(logits, target, reduction="none")
    tensor([0.4888, 1.3197])
    """
    logits, target = _check_logits_target(logits, target)
    weight = None if pos_weight is None else _pos_weight(pos_weight, logits.shape[1])
    return _one_vs_all(logits, target, weight, _check_reduction(reduction))


def _is_scalar(value: object) -> bool:
    return isinstance(value, (int, float, np.generic)) and not isinstance(value, (bool, np.bool_))


def _pos_weight(pos_weight: object, n_classes: int) -> Tensor:
    if _is_scalar(pos_weight):
        value = _real("pos_weight", pos_weight, low=0.0, low_inclusive=False, high=math.inf)
        return torch.full((n_classes,), value, dtype=torch.float64)
    return _positive_vector("pos_weight", pos_weight, n_classes)


def _one_vs_all(
    logits: Tensor, target: Tensor, pos_weight: Tensor | None, reduction: Reduction
) -> Tensor:
    dtype = _compute_dtype(logits)
    z = logits.to(dtype)
    onehot = torch.zeros_like(z).scatter_(1, target.unsqueeze(1), 1.0)
    weight = None if pos_weight is None else pos_weight.to(device=z.device, dtype=dtype)
    per_class = F.binary_cross_entropy_with_logits(z, onehot, pos_weight=weight, reduction="none")
    return _reduce(per_class.sum(dim=1), reduction)


def one_vs_all_probabilities(logits: Tensor) -> Tensor:
    r"""Class probabilities from One-vs-All logits: the sigmoids, normalised to sum to one.

    :math:`p_c = \sigma(z_c) / \sum_k \sigma(z_k)`, computed as a softmax of
    :math:`\log \sigma(z)` so it is stable for any logit magnitude. The argmax is the argmax of
    the logits (the sigmoid is increasing).

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, C)`` floating logits from a model trained with :func:`one_vs_all_loss`.

    Returns
    -------
    torch.Tensor
        ``(B, C)`` probabilities (rows sum to one), float32 for half-precision logits.

    Raises
    ------
    TypeError, ValueError
        If ``logits`` is not a floating ``(B, C)`` tensor with ``C >= 2``.

    Examples
    --------
    >>> one_vs_all_probabilities(torch.tensor([[0.0, 0.0], [100.0, -100.0]]))
    tensor([[0.5000, 0.5000],
            [1.0000, 0.0000]])
    """
    logits = _check_logits(logits)
    return F.logsigmoid(logits.to(_compute_dtype(logits))).softmax(dim=1)


@torch.no_grad()
def init_prior_log_odds_(
    linear: nn.Linear, class_freqs: ClassFreqsLike, *, zero_weight: bool = False
) -> nn.Linear:
    r"""Initialise a One-vs-All head's bias to the prior log-odds, in place.

    With :math:`b_c = \log(p_c / (1 - p_c))`, :math:`p_c = n_c / \sum_k n_k`, each sigmoid of
    an untrained head starts at its class frequency, the One-vs-All counterpart of
    :func:`cellvision.layers.init_class_prior_` for the softmax.

    Parameters
    ----------
    linear : torch.nn.Linear
        The final layer; it needs a bias and ``out_features == len(class_freqs)``.
    class_freqs : sequence of float or tensor
        Positive class counts or proportions.
    zero_weight : bool, default False
        Also zero the weight, so every input gets exactly the prior.

    Returns
    -------
    torch.nn.Linear
        ``linear``, modified in place.

    Raises
    ------
    TypeError
        If ``linear`` is not an ``nn.Linear``.
    ValueError
        If it has no bias, the lengths disagree or a frequency is not positive.

    References
    ----------
    T.-Y. Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017 (section 3.3, prior
    initialisation of sigmoid classifiers).

    Examples
    --------
    >>> head = init_prior_log_odds_(nn.Linear(4, 3), [6.0, 3.0, 1.0], zero_weight=True)
    >>> torch.sigmoid(head(torch.randn(1, 4))).detach()
    tensor([[0.6000, 0.3000, 0.1000]])
    """
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
    if linear.bias is None:
        raise ValueError("linear must have a bias to hold the prior log-odds, got bias=None")
    freqs = _positive_vector("class_freqs", class_freqs, linear.out_features)
    prior = freqs / freqs.sum()
    linear.bias.copy_(prior.log() - torch.log1p(-prior))
    if zero_weight:
        linear.weight.zero_()
    return linear


class OneVsAllLoss(nn.Module):
    """Module form of :func:`one_vs_all_loss` (``pos_weight`` validated once, kept as a buffer).

    Parameters
    ----------
    pos_weight : float or sequence of float or torch.Tensor, optional
        Positive-term weight per class (or one for all).
    n_classes : int, optional
        Needed with a scalar ``pos_weight``; otherwise taken from ``pos_weight``.
    reduction : {"mean", "sum", "none"}, default "mean"
        As :func:`one_vs_all_loss`.

    Raises
    ------
    TypeError, ValueError
        As :func:`one_vs_all_loss`; also if a scalar ``pos_weight`` comes without ``n_classes``.

    Examples
    --------
    >>> loss_fn = OneVsAllLoss(pos_weight=[1.0, 4.0])
    >>> loss_fn(torch.zeros(2, 2), torch.tensor([0, 1]))
    tensor(2.4260)
    """

    pos_weight: Tensor | None

    def __init__(
        self,
        pos_weight: Tensor | ClassFreqsLike | float | None = None,
        *,
        n_classes: int | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)
        if n_classes is not None:
            check_positive_int("n_classes", n_classes)
        weight: Tensor | None = None
        if _is_scalar(pos_weight):
            if n_classes is None:
                raise ValueError("n_classes must be given with a scalar pos_weight, got None")
            weight = _pos_weight(pos_weight, n_classes)
        elif pos_weight is not None:
            weight = _positive_vector("pos_weight", pos_weight, n_classes)
        self.register_buffer("pos_weight", None if weight is None else weight.float())

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return the One-vs-All loss of ``logits`` against ``target``.

        Parameters
        ----------
        logits : torch.Tensor
            ``(B, C)`` logits.
        target : torch.Tensor
            ``(B,)`` class indices.

        Returns
        -------
        torch.Tensor
            The reduced loss.

        Raises
        ------
        TypeError, ValueError
            As :func:`one_vs_all_loss`, or if ``C`` differs from ``pos_weight``'s length.

        Examples
        --------
        >>> OneVsAllLoss(reduction="sum")(torch.zeros(2, 2), torch.tensor([0, 1]))
        tensor(2.7726)
        """
        logits, target = _check_logits_target(logits, target)
        _check_width(logits, self.pos_weight, "pos_weight")
        return _one_vs_all(logits, target, self.pos_weight, self.reduction)

    def extra_repr(self) -> str:
        """Return ``reduction=...`` for ``print(module)``.

        Returns
        -------
        str
            The reduction.

        Examples
        --------
        >>> OneVsAllLoss()
        OneVsAllLoss(reduction='mean')
        """
        return f"reduction={self.reduction!r}"


def _check_width(logits: Tensor, vector: Tensor | None, name: str) -> None:
    if vector is not None and logits.shape[1] != vector.shape[0]:
        raise ValueError(
            f"logits must have {vector.shape[0]} classes to match {name}, "
            f"got shape {tuple(logits.shape)}"
        )


# --------------------------------------------------------------------------------------------
# Logit adjustment and balanced softmax
# --------------------------------------------------------------------------------------------


def logit_adjusted_cross_entropy(
    logits: Tensor,
    target: Tensor,
    prior: Tensor | ClassFreqsLike,
    tau: float = 1.0,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Logit-adjusted cross-entropy: cross-entropy of ``logits + tau * log(prior)``.

    Adding the log prior during training makes the network's own logits estimate
    :math:`\log p(x \mid y)` up to a constant, so their argmax minimises the *balanced* error
    (every class counts equally) instead of the plain error, with no change at prediction time.
    ``tau = 0`` is plain cross-entropy; ``tau = 1`` is Bayes-consistent for the balanced error
    (and equals :func:`balanced_softmax_loss` with counts proportional to ``prior``).

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, C)`` floating logits.
    target : torch.Tensor
        ``(B,)`` integer class indices in ``[0, C)``.
    prior : sequence of float or torch.Tensor
        The class mix of the training batches, ``C`` finite entries > 0; divided by its sum, so
        counts work too. With :class:`~cellvision.sampling.ClassBalancedSampler` pass
        :func:`~cellvision.sampling.expected_class_distribution`, not the data set's counts.
    tau : float, default 1.0
        Adjustment strength, ``>= 0``.
    reduction : {"mean", "sum", "none"}, default "mean"
        As :func:`torch.nn.functional.cross_entropy`.

    Returns
    -------
    torch.Tensor
        Scalar (or ``(B,)``) loss, float32 for half-precision logits.

    Raises
    ------
    TypeError, ValueError
        If the inputs have the wrong types or shapes, ``prior`` has a non-positive or
        non-finite entry or the wrong length, ``tau`` is negative or not finite, or
        ``reduction`` is unknown.

    References
    ----------
    A. K. Menon et al., "Long-tail learning via logit adjustment", ICLR 2021.

    Examples
    --------
    >>> logits = torch.zeros(1, 2)
    >>> logit_adjusted_cross_entropy(logits, torch.tensor([1]), prior=[0.9, 0.1])
    tensor(2.3026)
    >>> logit_adjusted_cross_entropy(logits, torch.tensor([1]), prior=[0.9, 0.1], tau=0)
    tensor(0.6931)
    """
    logits, target = _check_logits_target(logits, target)
    log_prior = _log_prior("prior", prior, logits.shape[1])
    t = _real("tau", tau, low=0.0, low_inclusive=True, high=math.inf)
    return _shifted_cross_entropy(logits, target, t * log_prior, _check_reduction(reduction))


def balanced_softmax_loss(
    logits: Tensor,
    target: Tensor,
    counts: Tensor | ClassFreqsLike,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Balanced softmax: cross-entropy of ``logits + log(counts)``.

    The softmax of the shifted logits models the label distribution of the (imbalanced)
    training set while the logits themselves model the balanced one, so a model trained this
    way predicts balanced at test time. It is :func:`logit_adjusted_cross_entropy` with
    ``tau = 1`` and ``prior = counts``.

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, C)`` floating logits.
    target : torch.Tensor
        ``(B,)`` integer class indices in ``[0, C)``.
    counts : sequence of float or torch.Tensor
        Training samples per class (``C`` finite entries > 0), as seen by the loss: under a
        rebalancing sampler, the sampler's class mix.
    reduction : {"mean", "sum", "none"}, default "mean"
        As :func:`torch.nn.functional.cross_entropy`.

    Returns
    -------
    torch.Tensor
        Scalar (or ``(B,)``) loss, float32 for half-precision logits.

    Raises
    ------
    TypeError, ValueError
        If the inputs have the wrong types or shapes, ``counts`` has a non-positive or
        non-finite entry or the wrong length, or ``reduction`` is unknown.

    References
    ----------
    J. Ren et al., "Balanced Meta-Softmax for Long-Tailed Visual Recognition", NeurIPS 2020.

    Examples
    --------
    >>> balanced_softmax_loss(torch.zeros(1, 2), torch.tensor([1]), counts=[90, 10])
    tensor(2.3026)
    """
    logits, target = _check_logits_target(logits, target)
    log_prior = _log_prior("counts", counts, logits.shape[1])
    return _shifted_cross_entropy(logits, target, log_prior, _check_reduction(reduction))


class LogitAdjustedCrossEntropy(nn.Module):
    """Module form of :func:`logit_adjusted_cross_entropy` (prior validated once).

    Parameters
    ----------
    prior : sequence of float or torch.Tensor
        Class mix of the training batches (or counts), ``C`` entries > 0.
    tau : float, default 1.0
        Adjustment strength, ``>= 0``.
    reduction : {"mean", "sum", "none"}, default "mean"
        As :func:`torch.nn.functional.cross_entropy`.

    Raises
    ------
    TypeError, ValueError
        As :func:`logit_adjusted_cross_entropy`.

    Examples
    --------
    >>> loss_fn = LogitAdjustedCrossEntropy([0.9, 0.1])
    >>> loss_fn(torch.zeros(1, 2), torch.tensor([1]))
    tensor(2.3026)
    """

    shift: Tensor

    def __init__(
        self, prior: Tensor | ClassFreqsLike, tau: float = 1.0, reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        self.tau = _real("tau", tau, low=0.0, low_inclusive=True, high=math.inf)
        self.reduction = _check_reduction(reduction)
        self.register_buffer("shift", (self.tau * _log_prior("prior", prior, None)).float())

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return the logit-adjusted cross-entropy of ``logits`` against ``target``.

        Parameters
        ----------
        logits : torch.Tensor
            ``(B, C)`` logits.
        target : torch.Tensor
            ``(B,)`` class indices.

        Returns
        -------
        torch.Tensor
            The reduced loss.

        Raises
        ------
        TypeError, ValueError
            As :func:`logit_adjusted_cross_entropy`, or if ``C`` differs from the prior's.

        Examples
        --------
        >>> LogitAdjustedCrossEntropy([1, 1], tau=0.5)(torch.zeros(2, 2), torch.tensor([0, 1]))
        tensor(0.6931)
        """
        logits, target = _check_logits_target(logits, target)
        _check_width(logits, self.shift, "prior")
        return _shifted_cross_entropy(logits, target, self.shift, self.reduction)

    def extra_repr(self) -> str:
        """Return ``tau=..., reduction=...`` for ``print(module)``.

        Returns
        -------
        str
            The settings.

        Examples
        --------
        >>> LogitAdjustedCrossEntropy([3, 1])
        LogitAdjustedCrossEntropy(tau=1.0, reduction='mean')
        """
        return f"tau={self.tau}, reduction={self.reduction!r}"


class BalancedSoftmaxLoss(nn.Module):
    """Module form of :func:`balanced_softmax_loss` (counts validated once).

    Parameters
    ----------
    counts : sequence of float or torch.Tensor
        Training samples per class, ``C`` entries > 0.
    reduction : {"mean", "sum", "none"}, default "mean"
        As :func:`torch.nn.functional.cross_entropy`.

    Raises
    ------
    TypeError, ValueError
        As :func:`balanced_softmax_loss`.

    Examples
    --------
    >>> BalancedSoftmaxLoss([90, 10])(torch.zeros(1, 2), torch.tensor([1]))
    tensor(2.3026)
    """

    shift: Tensor

    def __init__(self, counts: Tensor | ClassFreqsLike, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)
        self.register_buffer("shift", _log_prior("counts", counts, None).float())

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return the balanced-softmax loss of ``logits`` against ``target``.

        Parameters
        ----------
        logits : torch.Tensor
            ``(B, C)`` logits.
        target : torch.Tensor
            ``(B,)`` class indices.

        Returns
        -------
        torch.Tensor
            The reduced loss.

        Raises
        ------
        TypeError, ValueError
            As :func:`balanced_softmax_loss`, or if ``C`` differs from the counts'.

        Examples
        --------
        >>> BalancedSoftmaxLoss([5, 5], reduction="none")(torch.zeros(2, 2), torch.tensor([0, 1]))
        tensor([0.6931, 0.6931])
        """
        logits, target = _check_logits_target(logits, target)
        _check_width(logits, self.shift, "counts")
        return _shifted_cross_entropy(logits, target, self.shift, self.reduction)

    def extra_repr(self) -> str:
        """Return ``reduction=...`` for ``print(module)``.

        Returns
        -------
        str
            The reduction.

        Examples
        --------
        >>> BalancedSoftmaxLoss([3, 1])
        BalancedSoftmaxLoss(reduction='mean')
        """
        return f"reduction={self.reduction!r}"


# --------------------------------------------------------------------------------------------
# Focal loss and class-balanced weights
# --------------------------------------------------------------------------------------------


def focal_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: Tensor | ClassFreqsLike | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Softmax focal loss: cross-entropy scaled by :math:`(1 - p_t)^\gamma`.

    With :math:`p_t` the softmax probability of the true class, the per-sample loss is
    :math:`-\alpha_t (1 - p_t)^\gamma \log p_t`: well-classified samples (:math:`p_t` near one)
    contribute little, so training concentrates on the hard ones. ``gamma = 0`` is
    cross-entropy; with ``alpha`` it is class-weighted cross-entropy, and the ``"mean"``
    reduction then divides by the sum of the targets' weights, exactly like
    ``F.cross_entropy(..., weight=alpha)``.

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, C)`` floating logits.
    target : torch.Tensor
        ``(B,)`` integer class indices in ``[0, C)``.
    gamma : float, default 2.0
        Focusing parameter, ``>= 0``.
    alpha : sequence of float or torch.Tensor, optional
        Per-class weights (``C`` finite entries >= 0, not all zero), e.g.
        :func:`class_balanced_weights`.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` is the (``alpha``-weighted) average over the batch.

    Returns
    -------
    torch.Tensor
        Scalar (or ``(B,)``) loss, float32 for half-precision logits.

    Raises
    ------
    TypeError, ValueError
        If the inputs have the wrong types or shapes, ``gamma`` is negative or not finite,
        ``alpha`` is invalid, or ``reduction`` is unknown.

    References
    ----------
    T.-Y. Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

    Examples
    --------
    >>> logits = torch.tensor([[3.0, 0.0], [0.0, 0.0]])
    >>> target = torch.tensor([0, 1])
    >>> focal_loss(logits, target, gamma=2.0, reduction="none")  # the easy sample ~vanishes
    tensor([1.0928e-04, 1.7329e-01])
    >>> focal_loss(logits, target, gamma=0.0)  # cross-entropy
    tensor(0.3709)
    """
    logits, target = _check_logits_target(logits, target)
    g = _real("gamma", gamma, low=0.0, low_inclusive=True, high=math.inf)
    weight = None if alpha is None else _non_negative_vector("alpha", alpha, logits.shape[1])
    return _focal(logits, target, g, weight, _check_reduction(reduction))


def _focal(
    logits: Tensor, target: Tensor, gamma: float, alpha: Tensor | None, reduction: Reduction
) -> Tensor:
    dtype = _compute_dtype(logits)
    log_pt = F.log_softmax(logits.to(dtype), dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
    # 1 - p_t via expm1 keeps precision for confident samples; the clamp keeps the gradient of
    # x ** gamma finite (0 instead of inf * 0) for 0 < gamma < 1 when p_t rounds to one.
    one_minus_pt = (-torch.expm1(log_pt)).clamp_min(torch.finfo(dtype).tiny)
    loss = -one_minus_pt.pow(gamma) * log_pt
    if alpha is None:
        return _reduce(loss, reduction)
    weight = alpha.to(device=logits.device, dtype=dtype)[target]
    loss = weight * loss
    if reduction == "mean":
        return loss.sum() / weight.sum()
    return _reduce(loss, reduction)


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss` (``gamma`` and ``alpha`` validated once).

    Parameters
    ----------
    gamma : float, default 2.0
        Focusing parameter, ``>= 0``.
    alpha : sequence of float or torch.Tensor, optional
        Per-class weights, ``>= 0`` and not all zero.
    reduction : {"mean", "sum", "none"}, default "mean"
        As :func:`focal_loss`.

    Raises
    ------
    TypeError, ValueError
        As :func:`focal_loss`.

    Examples
    --------
    >>> FocalLoss(gamma=0.0)(torch.zeros(2, 2), torch.tensor([0, 1]))
    tensor(0.6931)
    """

    alpha: Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: Tensor | ClassFreqsLike | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        self.gamma = _real("gamma", gamma, low=0.0, low_inclusive=True, high=math.inf)
        self.reduction = _check_reduction(reduction)
        weight = None if alpha is None else _non_negative_vector("alpha", alpha, None).float()
        self.register_buffer("alpha", weight)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return the focal loss of ``logits`` against ``target``.

        Parameters
        ----------
        logits : torch.Tensor
            ``(B, C)`` logits.
        target : torch.Tensor
            ``(B,)`` class indices.

        Returns
        -------
        torch.Tensor
            The reduced loss.

        Raises
        ------
        TypeError, ValueError
            As :func:`focal_loss`, or if ``C`` differs from ``alpha``'s length.

        Examples
        --------
        >>> FocalLoss(gamma=1.0, reduction="sum")(torch.zeros(2, 2), torch.tensor([0, 1]))
        tensor(0.6931)
        """
        logits, target = _check_logits_target(logits, target)
        _check_width(logits, self.alpha, "alpha")
        return _focal(logits, target, self.gamma, self.alpha, self.reduction)

    def extra_repr(self) -> str:
        """Return ``gamma=..., reduction=...`` for ``print(module)``.

        Returns
        -------
        str
            The settings.

        Examples
        --------
        >>> FocalLoss()
        FocalLoss(gamma=2.0, reduction='mean')
        """
        return f"gamma={self.gamma}, reduction={self.reduction!r}"


def class_balanced_weights(
    counts: Tensor | ClassFreqsLike, beta: float = 0.999, *, dtype: torch.dtype = torch.float32
) -> Tensor:
    r"""Per-class weights from the effective number of samples, normalised to sum to ``C``.

    A class with :math:`n` samples has the effective number
    :math:`E_n = (1 - \beta^n) / (1 - \beta)`, which grows like :math:`n` for small
    :math:`n` and saturates at :math:`1 / (1 - \beta)`; its weight is
    :math:`w \propto 1 / E_n`. ``beta = 0`` gives equal weights, ``beta -> 1`` inverse
    frequencies. Use the result as ``weight=`` of :func:`torch.nn.functional.cross_entropy` or
    ``alpha=`` of :func:`focal_loss`.

    Parameters
    ----------
    counts : sequence of float or torch.Tensor
        Samples per class, finite and > 0.
    beta : float, default 0.999
        In ``[0, 1)``.
    dtype : torch.dtype, default torch.float32
        Dtype of the result (that of the logits the weights go with).

    Returns
    -------
    torch.Tensor
        ``(C,)`` positive weights summing to ``C``, on the CPU.

    Raises
    ------
    TypeError, ValueError
        If ``counts`` has a non-positive or non-finite entry or ``beta`` is outside ``[0, 1)``.

    References
    ----------
    Y. Cui et al., "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019.

    Examples
    --------
    >>> class_balanced_weights([900, 90, 10], beta=0.0)
    tensor([1., 1., 1.])
    >>> class_balanced_weights([900, 90, 10], beta=0.99)
    tensor([0.2284, 0.3836, 2.3880])
    """
    n = _positive_vector("counts", counts, None)
    b = _real("beta", beta, low=0.0, low_inclusive=True, high=1.0)
    # 1 - beta**n = -expm1(n * log(beta)): exact for beta near one, and 1 for beta = 0.
    log_beta = math.log(b) if b > 0 else -math.inf
    effective = -torch.expm1(n * log_beta)
    weights = (1.0 - b) / effective
    return (weights * (n.numel() / weights.sum())).to(dtype)


# --------------------------------------------------------------------------------------------
# Post-hoc adjustment
# --------------------------------------------------------------------------------------------


def adjust_logits(
    logits: Tensor,
    train_prior: Tensor | ClassFreqsLike,
    tau: float = 1.0,
    *,
    target_prior: Tensor | ClassFreqsLike | None = None,
) -> Tensor:
    r"""Post-hoc logit adjustment: ``logits - tau * log(train_prior)``.

    A classifier trained with plain cross-entropy under a class mix :math:`\pi` learns scores
    :math:`\log p(x \mid y) + \log \pi_y` (up to a constant); subtracting :math:`\log \pi`
    leaves the prior-free scores, whose argmax minimises the balanced error. Give the mix the
    model was *trained* under: with :class:`~cellvision.sampling.ClassBalancedSampler` that is
    :func:`~cellvision.sampling.expected_class_distribution`, not the data set's counts. With
    ``target_prior`` the scores are moved to that deployment mix instead of the balanced one.
    Also works on the log of averaged probabilities (e.g. ``predict_tta(...).log()``).

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, C)`` floating logits (or log-probabilities).
    train_prior : sequence of float or torch.Tensor
        Class mix during training, ``C`` finite entries > 0, divided by its sum.
    tau : float, default 1.0
        Adjustment strength, ``>= 0`` (``0`` returns the logits unchanged).
    target_prior : sequence of float or torch.Tensor, optional
        Class mix to adjust to (``+ tau * log(target_prior)``); default: balanced.

    Returns
    -------
    torch.Tensor
        Adjusted ``(B, C)`` logits in the dtype of ``logits``; a softmax of them gives the
        adjusted probabilities.

    Raises
    ------
    TypeError, ValueError
        If ``logits`` is not a floating ``(B, C)`` tensor, a prior is invalid or has the wrong
        length, or ``tau`` is negative or not finite.

    References
    ----------
    A. K. Menon et al., "Long-tail learning via logit adjustment", ICLR 2021 (post-hoc logit
    adjustment).

    Examples
    --------
    A model trained on a 90:10 mix that is unsure (equal scores after the prior) flips to the
    rare class once the prior is removed:

    >>> logits = torch.log(torch.tensor([[0.8, 0.2]]))
    >>> adjust_logits(logits, train_prior=[0.9, 0.1]).softmax(1)
    tensor([[0.3077, 0.6923]])
    """
    logits = _check_logits(logits)
    t = _real("tau", tau, low=0.0, low_inclusive=True, high=math.inf)
    shift = -_log_prior("train_prior", train_prior, logits.shape[1])
    if target_prior is not None:
        shift = shift + _log_prior("target_prior", target_prior, logits.shape[1])
    return logits + (t * shift).to(device=logits.device, dtype=logits.dtype)
