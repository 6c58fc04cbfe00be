"""Cross-validation splitters and hold-out splits.

:class:`MonthFoldSplitter` follows the scikit-learn splitter protocol: it withholds groups of
calendar months (ignoring the year) and purges samples whose time span straddles a fold
boundary. :func:`stratified_split` and :func:`stratified_kfold` keep every class present on
both sides of a split, which matters for data sets where a class has only a handful of samples
(15 anaphase cells among ~32,000 Jurkat images). Everything here needs numpy only.
"""

from __future__ import annotations

import calendar
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from cellvision.config import (
    as_builtin_number,
    check_non_negative_int,
    check_positive_int,
    check_seed,
)

__all__ = ["MonthFoldSplitter", "stratified_kfold", "stratified_split"]

_EMPTY_POLICIES = ("raise", "skip")


class MonthFoldSplitter:
    """Folds of consecutive calendar months, with purging of boundary-straddling samples.

    The twelve calendar months are grouped into ``12 // months_per_fold`` folds of
    consecutive months (default 2: Jan-Feb, Mar-Apr, ..., Nov-Dec); the year is ignored,
    so March 2004 and March 2005 fall in the same fold. Each fold withholds its months.

    Every sample has a time span: a single timestamp, or for windowed samples the span from
    the earliest to the latest of its timestamps (window start, window end, target). A
    sample is a *test* sample of a fold when its whole span lies in the fold's months, and a
    *training* sample when its span, widened by ``gap_hours`` on both sides, touches none
    of them. Samples in neither set (they straddle a boundary) are dropped from that fold.

    Follows scikit-learn's splitter protocol, so it can be passed as ``cv`` to
    :func:`sklearn.model_selection.cross_validate` with the timestamps as ``groups``.

    Parameters
    ----------
    months_per_fold : int, default 2
        Consecutive calendar months per fold; must divide 12 and be below 12.
    gap_hours : int, default 0
        Extra purge margin: training samples must be at least this many hours away from
        every held-out month.
    empty : {"raise", "skip"}, default "raise"
        What to do with a fold that has no test or no training samples: raise
        ``ValueError``, or skip it with a :class:`UserWarning`.

    Raises
    ------
    ValueError
        If a parameter is invalid.
    TypeError
        If an integer parameter has the wrong type.

    Examples
    --------
    >>> ts = np.arange("2004-01-01", "2005-01-01", dtype="datetime64[D]")
    >>> splitter = MonthFoldSplitter(months_per_fold=6)
    >>> splitter.get_n_splits(), splitter.fold_names
    (2, ('Jan-Jun', 'Jul-Dec'))
    >>> [(len(train), len(test)) for train, test in splitter.split(ts, groups=ts)]
    [(184, 182), (182, 184)]

    Windowed samples: pass ``(start, end, target)`` rows; straddling samples are purged.

    >>> spans = np.stack([ts[:-2], ts[1:-1], ts[2:]], axis=1)  # 3-day windows
    >>> [(len(train), len(test)) for train, test in splitter.split(spans, groups=spans)]
    [(182, 180), (180, 182)]
    """

    def __init__(
        self,
        months_per_fold: int = 2,
        *,
        gap_hours: int = 0,
        empty: Literal["raise", "skip"] = "raise",
    ) -> None:
        months_per_fold = as_builtin_number(months_per_fold)  # type: ignore[assignment]
        if isinstance(months_per_fold, bool) or not isinstance(months_per_fold, int):
            raise TypeError(
                f"months_per_fold must be an integer dividing 12, got {months_per_fold!r}"
            )
        if months_per_fold <= 0 or months_per_fold >= 12 or 12 % months_per_fold:
            raise ValueError(
                "months_per_fold must be one of (1, 2, 3, 4, 6) so that the folds tile the "
                f"year, got {months_per_fold!r}"
            )
        gap_hours = check_non_negative_int("gap_hours", gap_hours)
        if empty not in _EMPTY_POLICIES:
            raise ValueError(f"empty must be one of {_EMPTY_POLICIES!r}, got {empty!r}")
        self.months_per_fold = months_per_fold
        self.gap_hours = gap_hours
        self.empty = empty

    def __repr__(self) -> str:
        return (
            f"MonthFoldSplitter(months_per_fold={self.months_per_fold}, "
            f"gap_hours={self.gap_hours}, empty={self.empty!r})"
        )

    @property
    def fold_months(self) -> tuple[tuple[int, ...], ...]:
        """The calendar months (1-12) withheld by each fold.

        Returns
        -------
        tuple of tuple of int
            One tuple of months per fold.

        Examples
        --------
        >>> MonthFoldSplitter(4).fold_months
        ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12))
        """
        k = self.months_per_fold
        return tuple(tuple(range(f * k + 1, f * k + k + 1)) for f in range(12 // k))

    @property
    def fold_names(self) -> tuple[str, ...]:
        """Short names of the folds, e.g. ``"Mar-Apr"``.

        Returns
        -------
        tuple of str
            One name per fold.

        Examples
        --------
        >>> MonthFoldSplitter().fold_names[:2]
        ('Jan-Feb', 'Mar-Apr')
        """
        abbr = calendar.month_abbr
        return tuple(
            abbr[m[0]] if len(m) == 1 else f"{abbr[m[0]]}-{abbr[m[-1]]}" for m in self.fold_months
        )

    def get_n_splits(
        self,
        X: object = None,  # noqa: N803 (scikit-learn protocol name)
        y: object = None,
        groups: npt.ArrayLike | None = None,
    ) -> int:
        """Return the number of folds :meth:`split` yields.

        Parameters
        ----------
        X, y : object
            Ignored unless ``empty="skip"`` (then used like in :meth:`split`).
        groups : array_like of datetime64, optional
            With ``empty="skip"``, the timestamps used to count the non-empty folds.

        Returns
        -------
        int
            ``12 // months_per_fold``, or the number of non-empty folds when skipping.

        Examples
        --------
        >>> MonthFoldSplitter().get_n_splits()
        6
        """
        if self.empty == "skip" and (groups is not None or hasattr(X, "sample_timestamps")):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return sum(1 for _ in self.split(X, y, groups))
        return 12 // self.months_per_fold

    def split(
        self,
        X: object,  # noqa: N803 (scikit-learn protocol name)
        y: object = None,
        groups: npt.ArrayLike | None = None,
        *,
        timestamps: npt.ArrayLike | None = None,
    ) -> Iterator[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
        """Yield ``(train_indices, test_indices)`` for each fold.

        Parameters
        ----------
        X : object
            The samples; only its length is used (checked against the timestamps).
            An object with a ``sample_timestamps`` attribute (such as
            :class:`~cellvision.data.windows.SlidingWindowDataset`) supplies the timestamps
            when neither ``groups`` nor ``timestamps`` is given.
        y : object
            Ignored (protocol compatibility).
        groups : array_like of datetime64, optional
            Per-sample timestamps, shape ``(N,)`` or ``(N, k)`` (e.g. window start, window
            end and target).
        timestamps : array_like of datetime64, optional
            The same, by keyword; give one of ``groups`` and ``timestamps``.

        Yields
        ------
        train, test : numpy.ndarray
            Sorted ``intp`` sample indices.

        Raises
        ------
        ValueError
            If no timestamps are available, they are not datetime64, contain NaT, do not
            match the length of ``X``, or a fold is empty with ``empty="raise"``.

        Examples
        --------
        >>> ts = np.array(["2004-01-15", "2004-02-15", "2004-03-15", "2005-03-15"],
        ...               dtype="datetime64[D]")
        >>> folds = MonthFoldSplitter(months_per_fold=2, empty="skip")
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     [(tr.tolist(), te.tolist()) for tr, te in folds.split(ts, groups=ts)]
        [([2, 3], [0, 1]), ([0, 1], [2, 3])]
        """
        lo, hi = self._spans(X, groups, timestamps)
        gap = np.timedelta64(self.gap_hours, "h")
        m_lo, m_hi = _month_index(lo), _month_index(hi)
        g_lo, g_hi = _month_index(lo - gap), _month_index(hi + gap)
        first = int(g_lo.min()) if g_lo.size else 0
        last = int(g_hi.max()) if g_hi.size else 0
        months = np.arange(first, last + 1)
        for fold, names in enumerate(self.fold_names):
            held = (months % 12) // self.months_per_fold == fold
            before = np.concatenate([[0], np.cumsum(held)])
            n_test_months = before[m_hi - first + 1] - before[m_lo - first]
            test = np.flatnonzero(n_test_months == m_hi - m_lo + 1)
            train = np.flatnonzero(before[g_hi - first + 1] - before[g_lo - first] == 0)
            if test.size == 0 or train.size == 0:
                side = "test" if test.size == 0 else "training"
                message = (
                    f"fold {fold} ({names}) has no {side} samples: no sample's whole span lies "
                    f"{'inside' if side == 'test' else 'outside'} these months"
                    + (f" (gap_hours={self.gap_hours})" if self.gap_hours else "")
                )
                if self.empty == "raise":
                    raise ValueError(message + "; pass empty='skip' to skip such folds")
                warnings.warn(message + "; skipping it", UserWarning, stacklevel=2)
                continue
            yield train.astype(np.intp), test.astype(np.intp)

    def _spans(
        self, x: object, groups: npt.ArrayLike | None, timestamps: npt.ArrayLike | None
    ) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.datetime64]]:
        if groups is not None and timestamps is not None:
            raise ValueError("timestamps must be given once: pass groups or timestamps, not both")
        source: Any = groups if groups is not None else timestamps
        if source is None:
            source = getattr(x, "sample_timestamps", None)
        if source is None:
            raise ValueError(
                "groups must hold per-sample datetime64 timestamps (or pass timestamps=...), "
                "got None"
            )
        ts = np.asarray(source)
        if ts.dtype.kind != "M" or ts.ndim not in (1, 2) or (ts.ndim == 2 and ts.shape[1] == 0):
            raise ValueError(
                "groups must be datetime64 timestamps of shape (n_samples,) or "
                f"(n_samples, k), got {ts.dtype} array of shape {ts.shape}"
            )
        if np.isnat(ts).any():
            raise ValueError("groups must not contain NaT timestamps")
        n = _num_samples(x)
        if n is not None and n != ts.shape[0]:
            raise ValueError(
                f"groups must have one row per sample of X ({n}), got {ts.shape[0]} rows"
            )
        ts = ts.astype("datetime64[s]")
        if ts.ndim == 1:
            return ts, ts
        return ts.min(axis=1), ts.max(axis=1)


def _month_index(ts: npt.NDArray[np.datetime64]) -> npt.NDArray[np.int64]:
    return ts.astype("datetime64[M]").astype(np.int64)


def _num_samples(x: object) -> int | None:
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    if hasattr(x, "__len__"):
        return len(x)
    return None


def _labels_array(labels: object) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Return ``labels`` (array-like, tensor or object with ``targets``) as a 1-D int64 array."""
    source = getattr(labels, "targets", labels)
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    try:
        arr = np.asarray(source)
    except (TypeError, ValueError):
        raise TypeError(f"labels must be a 1-D sequence of integers, got {labels!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape!r}")
    if arr.size == 0:
        raise ValueError("labels must not be empty, got 0 labels")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {arr.dtype!s}")
    return arr.astype(np.int64)


def _check_seed(seed: object) -> int:
    # Kept for the splitters that call it: the shared check gives the same message everywhere.
    return check_seed("seed", seed)


def stratified_split(
    labels: Sequence[int] | np.ndarray[Any, Any] | torch.Tensor | object,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.int64]]]:
    """Split sample indices into train and validation sets class by class.

    Every class takes ``round(n_c * val_fraction)`` of its ``n_c`` samples into validation
    (halves round up), clipped so that a class with at least two samples always has at least
    one sample on each side; a class with a single sample stays in training. For example 15
    anaphase cells give 3 validation cells at ``val_fraction=0.2``.

    Parameters
    ----------
    labels : array-like of int, Tensor, or object with ``targets``
        Class label of every sample (a data set exposing ``targets`` works too).
    val_fraction : float, default 0.2
        Fraction of each class put into validation, in ``(0, 1)``.
    seed : int, default 0
        Seed of the shuffle, in ``[0, 2**64)``; the same seed gives the same split.

    Returns
    -------
    train_idx, val_idx : numpy.ndarray
        Sorted, disjoint int64 index arrays that together cover every sample.

    Raises
    ------
    TypeError
        If ``labels`` are not integers or ``seed``/``val_fraction`` are not numbers.
    ValueError
        If ``labels`` is empty or not 1-D, or ``val_fraction`` is not in ``(0, 1)``.

    Examples
    --------
    >>> labels = [0] * 10 + [1] * 5 + [2] * 2
    >>> train, val = stratified_split(labels, val_fraction=0.2, seed=0)
    >>> len(train), len(val)
    (13, 4)
    >>> sorted(labels[i] for i in val)
    [0, 0, 1, 2]
    """
    y = _labels_array(labels)
    fraction = as_builtin_number(val_fraction)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    val_fraction = float(fraction)
    rng = np.random.default_rng(_check_seed(seed))
    val_parts = []
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        n = members.size
        if n < 2:
            continue
        n_val = min(max(int(np.floor(n * val_fraction + 0.5)), 1), n - 1)
        val_parts.append(rng.permutation(members)[:n_val])
    val_idx = np.sort(np.concatenate(val_parts)) if val_parts else np.zeros(0, dtype=np.int64)
    mask = np.ones(y.size, dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask).astype(np.int64), val_idx.astype(np.int64)


def stratified_kfold(
    labels: Sequence[int] | np.ndarray[Any, Any] | torch.Tensor | object,
    n_splits: int = 5,
    seed: int = 0,
) -> list[tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.int64]]]]:
    """Stratified k-fold cross-validation indices.

    The samples of every class are shuffled and dealt round-robin to the ``n_splits`` folds,
    starting each class at the fold after the previous class stopped, so fold sizes differ by
    at most one overall and per class. Each fold is the validation set once. A class with at
    least ``n_splits`` samples is therefore on both sides of every split; a class with
    ``2 <= n < n_splits`` samples is in training for every split but in validation for only
    ``n`` of them (a ``UserWarning`` says so).

    Parameters
    ----------
    labels : array-like of int, Tensor, or object with ``targets``
        Class label of every sample.
    n_splits : int, default 5
        Number of folds, at least 2 and at most the number of samples.
    seed : int, default 0
        Seed of the shuffle, in ``[0, 2**64)``.

    Returns
    -------
    list of (train_idx, val_idx)
        ``n_splits`` pairs of sorted int64 index arrays; the validation sets partition the
        samples.

    Raises
    ------
    TypeError
        If ``labels`` are not integers or ``n_splits``/``seed`` are not ints.
    ValueError
        If ``n_splits < 2`` or larger than the number of samples.

    Warns
    -----
    UserWarning
        If a class has fewer than ``n_splits`` samples.

    Examples
    --------
    >>> labels = [0] * 6 + [1] * 3
    >>> folds = stratified_kfold(labels, n_splits=3, seed=0)
    >>> [sorted(labels[i] for i in val) for _, val in folds]
    [[0, 0, 1], [0, 0, 1], [0, 0, 1]]
    """
    y = _labels_array(labels)
    n_splits = check_positive_int("n_splits", n_splits)
    if n_splits < 2 or n_splits > y.size:
        raise ValueError(
            f"n_splits must be between 2 and the number of samples ({y.size}), got {n_splits!r}"
        )
    rng = np.random.default_rng(_check_seed(seed))
    fold_of = np.empty(y.size, dtype=np.int64)
    start = 0
    small = []
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        n = members.size
        if n < n_splits:
            small.append((int(cls), n))
        fold_of[members] = (start + np.arange(n)) % n_splits
        start = (start + n) % n_splits
    if small:
        warnings.warn(
            f"classes with fewer than n_splits={n_splits} samples (class, count): {small}; "
            "they are missing from some validation folds",
            UserWarning,
            stacklevel=2,
        )
    return [
        (
            np.flatnonzero(fold_of != k).astype(np.int64),
            np.flatnonzero(fold_of == k).astype(np.int64),
        )
        for k in range(n_splits)
    ]


# --------------------------------------------------------------------------- stratified API
__all__ += ["StratifiedKFoldSplitter", "train_val_test_split"]


def train_val_test_split(
    labels: Sequence[int] | np.ndarray[Any, Any] | torch.Tensor | object,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> tuple[
    np.ndarray[Any, np.dtype[np.int64]],
    np.ndarray[Any, np.dtype[np.int64]],
    np.ndarray[Any, np.dtype[np.int64]],
]:
    """Stratified train / validation / test indices.

    The test set is drawn first with :func:`stratified_split` (``test_fraction`` of every
    class, seed ``seed``); the validation set is then drawn from the rest with fraction
    ``val_fraction / (1 - test_fraction)`` (seed ``seed + 1``), so both are close to their
    fraction of every class and a class with at least three samples lands in all three parts.

    Parameters
    ----------
    labels : array-like of int, Tensor, or object with ``targets``
        Class label of every sample.
    val_fraction, test_fraction : float, default 0.15
        Fractions of every class held out for validation and test; each in ``(0, 1)`` and
        together below 1.
    seed : int, default 0
        Seed of the shuffles.

    Returns
    -------
    train_idx, val_idx, test_idx : numpy.ndarray
        Sorted, disjoint int64 index arrays that together cover every sample.

    Raises
    ------
    TypeError
        If ``labels`` are not integers or an argument has the wrong type.
    ValueError
        If a fraction is outside ``(0, 1)`` or ``val_fraction + test_fraction >= 1``.

    Examples
    --------
    >>> labels = [0] * 20 + [1] * 10
    >>> train, val, test = train_val_test_split(labels, 0.2, 0.2, seed=0)
    >>> len(train), len(val), len(test)
    (18, 6, 6)
    >>> sorted(labels[i] for i in test)
    [0, 0, 0, 0, 1, 1]
    """
    y = _labels_array(labels)
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number in (0, 1), got {value!r}")
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            "val_fraction + test_fraction must be below 1, got "
            f"{val_fraction!r} + {test_fraction!r}"
        )
    seed = _check_seed(seed)
    rest, test = stratified_split(y, float(test_fraction), seed=seed)
    train_local, val_local = stratified_split(
        y[rest], float(val_fraction) / (1.0 - float(test_fraction)), seed=seed + 1
    )
    return rest[train_local], rest[val_local], test


class StratifiedKFoldSplitter:
    """Stratified k-fold cross-validation with scikit-learn's splitter protocol.

    A class wrapper of :func:`stratified_kfold`: :meth:`split` yields ``(train_idx, test_idx)``
    pairs and :meth:`get_n_splits` returns ``n_splits``, so an instance works as ``cv=`` of
    :func:`sklearn.model_selection.cross_validate` (scikit-learn is not needed otherwise).
    The folds are the same as :func:`stratified_kfold` with the same seed.

    Parameters
    ----------
    n_splits : int, default 5
        Number of folds, at least 2.
    seed : int, default 0
        Seed of the shuffle.

    Raises
    ------
    TypeError
        If ``n_splits`` or ``seed`` is not an int.
    ValueError
        If ``n_splits < 2``.

    Examples
    --------
    >>> labels = np.array([0] * 6 + [1] * 3)
    >>> cv = StratifiedKFoldSplitter(n_splits=3, seed=0)
    >>> cv.get_n_splits()
    3
    >>> [np.bincount(labels[test]).tolist() for _, test in cv.split(labels, labels)]
    [[2, 1], [2, 1], [2, 1]]
    """

    def __init__(self, n_splits: int = 5, *, seed: int = 0) -> None:
        check_positive_int("n_splits", n_splits)
        if n_splits < 2:
            raise ValueError(f"n_splits must be at least 2, got {n_splits!r}")
        self.n_splits = int(n_splits)
        self.seed = _check_seed(seed)

    def __repr__(self) -> str:
        return f"StratifiedKFoldSplitter(n_splits={self.n_splits}, seed={self.seed})"

    def get_n_splits(
        self,
        X: object = None,  # noqa: N803 (scikit-learn protocol name)
        y: object = None,
        groups: object = None,
    ) -> int:
        """Return ``n_splits`` (the arguments are ignored, as in scikit-learn).

        Parameters
        ----------
        X, y, groups : object
            Ignored (protocol compatibility).

        Returns
        -------
        int
            The number of folds.

        Examples
        --------
        >>> StratifiedKFoldSplitter(4).get_n_splits()
        4
        """
        return self.n_splits

    def split(
        self,
        X: object,  # noqa: N803 (scikit-learn protocol name)
        y: object = None,
        groups: object = None,
    ) -> Iterator[tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.int64]]]]:
        """Yield ``(train_idx, test_idx)`` for each fold, stratified by ``y``.

        Parameters
        ----------
        X : array-like
            The samples; only their number is used (checked against ``y``).
        y : array-like of int, Tensor, or object with ``targets``
            Class labels (required: the folds are stratified by them).
        groups : object
            Ignored (protocol compatibility).

        Yields
        ------
        train_idx, test_idx : numpy.ndarray
            Sorted int64 index arrays; the test sets partition the samples.

        Raises
        ------
        ValueError
            If ``y`` is missing, its length differs from ``X``'s, or ``n_splits`` exceeds
            the number of samples.

        Examples
        --------
        >>> folds = list(StratifiedKFoldSplitter(2).split(np.zeros(4), [0, 0, 1, 1]))
        >>> [len(test) for _, test in folds]
        [2, 2]
        """
        if y is None:
            raise ValueError("y must be the class labels (the folds are stratified), got None")
        labels = _labels_array(y)
        n = _num_samples(X)
        if n is not None and n != labels.size:
            raise ValueError(f"X and y must have the same length, got {n} and {labels.size}")
        yield from stratified_kfold(labels, self.n_splits, seed=self.seed)


class TimeHoldoutSplitter:
    """Hold out the latest samples in time, with a purge gap before them.

    The samples are ordered by the end of their time span; the latest ``test_fraction`` of
    them are the *test* (or validation) samples. A *training* sample must end more than
    ``gap`` before the earliest start of any test span, so with windowed samples (spans from
    window start to target) and ``gap`` equal to the window length no training window shares
    a reading with a test window, nor sits directly before one. Samples between the two sets
    are left out. Use it to carve a validation slice out of a fold's training samples: the
    test months of the fold are never involved.

    Follows scikit-learn's splitter protocol (one split), like
    :class:`~sklearn.model_selection.TimeSeriesSplit` with ``n_splits=1``, but with spans:
    pass the per-sample times as ``groups``.

    Parameters
    ----------
    test_fraction : float, default 0.1
        Share of the samples held out, in ``(0, 1)``; at least one sample is held out.
    gap : int, float or numpy.timedelta64, default 0
        Purge margin in the units of the times (rows or steps for numbers, a
        :class:`numpy.timedelta64` for ``datetime64`` times; an integer there counts hours).
        A training span must end strictly before ``earliest test start - gap``; with
        ``gap=0``, before the earliest test start.

    Raises
    ------
    ValueError
        If ``test_fraction`` is not in ``(0, 1)`` or ``gap`` is negative.
    TypeError
        If ``gap`` is not a number or a timedelta.

    Examples
    --------
    >>> splitter = TimeHoldoutSplitter(test_fraction=0.25, gap=2)
    >>> train, test = next(splitter.split(np.zeros(12)))  # times: the positions 0 ... 11
    >>> train.tolist(), test.tolist()
    ([0, 1, 2, 3, 4, 5, 6], [9, 10, 11])

    Windowed samples: rows ``(window start, window end, target)`` with a gap of one window
    (4 rows) keep every training reading away from the held-out windows.

    >>> ends = np.arange(3, 20)
    >>> spans = np.stack([ends - 3, ends, ends + 1], axis=1)
    >>> train, test = next(TimeHoldoutSplitter(0.2, gap=4).split(spans, groups=spans))
    >>> int(spans[train, 2].max()), int(spans[test, 0].min())
    (9, 14)
    """

    def __init__(self, test_fraction: float = 0.1, *, gap: float | np.timedelta64 = 0) -> None:
        if isinstance(test_fraction, bool) or not isinstance(
            test_fraction, (int, float, np.integer, np.floating)
        ):
            raise TypeError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
        if not 0.0 < float(test_fraction) < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
        if isinstance(gap, np.timedelta64):
            if np.isnat(gap) or gap < np.timedelta64(0, "s"):
                raise ValueError(f"gap must be a non-negative timedelta, got {gap!r}")
        elif isinstance(gap, bool) or not isinstance(gap, (int, float, np.integer, np.floating)):
            raise TypeError(f"gap must be a non-negative number or timedelta64, got {gap!r}")
        elif not float(gap) >= 0.0 or not np.isfinite(gap):
            raise ValueError(f"gap must be a non-negative number or timedelta64, got {gap!r}")
        self.test_fraction = float(test_fraction)
        self.gap = gap

    def __repr__(self) -> str:
        return f"TimeHoldoutSplitter(test_fraction={self.test_fraction!r}, gap={self.gap!r})"

    def get_n_splits(
        self,
        X: object = None,  # noqa: N803 (scikit-learn protocol name)
        y: object = None,
        groups: object = None,
    ) -> int:
        """Return the number of splits, always 1.

        Parameters
        ----------
        X, y, groups : object
            Ignored (protocol compatibility).

        Returns
        -------
        int
            1.

        Examples
        --------
        >>> TimeHoldoutSplitter().get_n_splits()
        1
        """
        return 1

    def split(
        self,
        X: object,  # noqa: N803 (scikit-learn protocol name)
        y: object = None,
        groups: npt.ArrayLike | None = None,
    ) -> Iterator[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
        """Yield the one ``(train_indices, test_indices)`` pair.

        Parameters
        ----------
        X : object
            The samples; only their number is used.
        y : object
            Ignored (protocol compatibility).
        groups : array_like, optional
            Per-sample times, shape ``(N,)`` or ``(N, k)`` (a span: its minimum and maximum
            are the start and the end), numbers or ``datetime64``. Default: the sample
            positions ``0 ... N-1``, i.e. ``X`` is in time order.

        Yields
        ------
        train, test : numpy.ndarray
            Sorted ``intp`` sample indices.

        Raises
        ------
        ValueError
            If the times do not match ``X``, have the wrong shape or kind (a ``datetime64``
            gap needs ``datetime64`` times), or no training sample is left before the gap.

        Examples
        --------
        >>> t = np.array([5, 1, 4, 2, 3])  # unordered times
        >>> [(tr.tolist(), te.tolist()) for tr, te in TimeHoldoutSplitter(0.4).split(t, groups=t)]
        [([1, 3, 4], [0, 2])]
        """
        n = _num_samples(X)
        if groups is None:
            if n is None:
                raise ValueError(f"X must have a length when groups is None, got {X!r}")
            times: np.ndarray[Any, Any] = np.arange(n)
        else:
            times = np.asarray(groups)
        if times.ndim not in (1, 2) or (times.ndim == 2 and times.shape[1] == 0):
            raise ValueError(
                f"groups must have shape (n_samples,) or (n_samples, k), got {times.shape}"
            )
        if n is not None and n != times.shape[0]:
            raise ValueError(
                f"groups must have one row per sample of X ({n}), got {times.shape[0]} rows"
            )
        is_time = times.dtype.kind == "M"
        if not is_time and times.dtype.kind not in "iuf":
            raise ValueError(f"groups must be numbers or datetime64 times, got {times.dtype}")
        gap: Any = self.gap
        if isinstance(gap, np.timedelta64) and not is_time:
            raise ValueError(f"a timedelta64 gap needs datetime64 groups, got {times.dtype}")
        if is_time and not isinstance(gap, np.timedelta64):
            gap = np.timedelta64(int(gap), "h")
        if times.shape[0] < 2:
            raise ValueError(f"X must hold at least 2 samples to split, got {times.shape[0]}")
        start = times if times.ndim == 1 else times.min(axis=1)
        end = times if times.ndim == 1 else times.max(axis=1)
        order = np.argsort(end, kind="stable")
        n_test = max(1, round(self.test_fraction * order.size))
        test = order[-n_test:]
        train = order[end[order] < start[test].min() - gap]
        if train.size == 0:
            raise ValueError(
                f"X has too few samples to hold out {self.test_fraction!r} of them with "
                f"gap={self.gap!r}: no training sample is left"
            )
        yield np.sort(train).astype(np.intp), np.sort(test).astype(np.intp)


__all__ += ["TimeHoldoutSplitter"]
