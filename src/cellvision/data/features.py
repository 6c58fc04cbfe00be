"""Extra input columns for forecasting, each returned together with its names.

Calendar columns are known in advance for every hour, lagged copies only ever look back, and
missing-value indicators describe the inputs themselves: appending any of them to a series
keeps every forecasting window causal. Each ``*_columns`` function returns a
:class:`FeatureColumns` (a ``float32`` block and one name per column), and
:meth:`FeatureColumns.concat` joins blocks side by side, so a series and its column names are
built in one place and cannot drift apart::

    parts = FeatureColumns.concat([
        FeatureColumns(filled.values, filled.columns),
        calendar_columns(timestamps, hour_one_hot=True, weekend=True),
        lagged_columns(filled.select(["C6H6(GT)"]).values, ["C6H6(GT)"], [23]),
    ])

:func:`calendar_features` and :func:`lag_features` are the name-less building blocks (also
importable from their former homes :mod:`cellvision.data.airquality` and
:mod:`cellvision.data.windows`). The module needs numpy only and knows no data set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from cellvision.config import as_builtin_number

__all__ = [
    "CALENDAR_COLUMNS",
    "FeatureColumns",
    "calendar_columns",
    "calendar_features",
    "lag_features",
    "lagged_columns",
    "missing_indicator_columns",
]

#: Names of the four cyclic columns of :func:`calendar_features`, in order.
CALENDAR_COLUMNS: tuple[str, ...] = ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")


def _check_int(name: str, value: object, low: int) -> int:
    """``value`` as an ``int`` >= ``low`` (numpy integers accepted); shared with ``windows``."""
    number = as_builtin_number(value)
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"{name} must be an integer >= {low}, got {value!r}")
    if number < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return number


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _hours(timestamps: npt.ArrayLike) -> npt.NDArray[np.int64]:
    ts = np.asarray(timestamps)
    if ts.dtype.kind != "M" or ts.ndim != 1:
        raise ValueError(f"timestamps must be a 1-D datetime64 array, got {timestamps!r}")
    return ts.astype("datetime64[h]").astype(np.int64)


def calendar_features(
    timestamps: npt.ArrayLike, *, hour_one_hot: bool = False
) -> npt.NDArray[np.float32]:
    """Return cyclic hour-of-day and day-of-week features for hourly timestamps.

    The four columns are ``sin`` and ``cos`` of ``2 pi hour / 24`` and of
    ``2 pi weekday / 7`` (Monday = 0). They are known in advance for any hour, so adding
    them to the inputs leaks nothing about the target. :func:`calendar_columns` returns the
    same values with their names (and an optional weekend flag).

    Parameters
    ----------
    timestamps : array_like of datetime64
        Shape ``(T,)``.
    hour_one_hot : bool, default False
        Append 24 more columns, a one-hot code of the hour of day (column ``4 + h`` is 1 at
        hour ``h``). A recurrent model reads hour-specific behaviour (the jump at the morning
        rush hour, say) from these more easily than from the two cyclic columns.

    Returns
    -------
    numpy.ndarray
        ``float32`` array of shape ``(T, 4)``, or ``(T, 28)`` with ``hour_one_hot``.

    Raises
    ------
    ValueError
        If ``timestamps`` is not a 1-D datetime64 array.
    TypeError
        If ``hour_one_hot`` is not a bool.

    Examples
    --------
    >>> ts = np.array(["2004-03-10T18:00", "2004-03-11T00:00"], dtype="datetime64[s]")
    >>> calendar_features(ts).round(3)
    array([[-1.   , -0.   ,  0.975, -0.223],
           [ 0.   ,  1.   ,  0.434, -0.901]], dtype=float32)
    >>> one_hot = calendar_features(ts, hour_one_hot=True)
    >>> one_hot.shape, one_hot[0, 4 + 18], one_hot[1, 4 + 0], one_hot[:, 4:].sum(axis=1)
    ((2, 28), np.float32(1.0), np.float32(1.0), array([1., 1.], dtype=float32))
    """
    hours = _hours(timestamps)
    one_hot = _check_bool("hour_one_hot", hour_one_hot)
    hour = np.mod(hours, 24)
    weekday = np.mod(np.floor_divide(hours, 24) + 3, 7)  # 1970-01-01 was a Thursday
    a = 2 * np.pi * hour / 24
    b = 2 * np.pi * weekday / 7
    cyclic = np.stack([np.sin(a), np.cos(a), np.sin(b), np.cos(b)], axis=1).astype(np.float32)
    if not one_hot:
        return cyclic
    return np.concatenate([cyclic, np.eye(24, dtype=np.float32)[hour]], axis=1)


def lag_features(values: npt.ArrayLike, lags: int | Sequence[int]) -> npt.NDArray[np.float32]:
    """Return copies of the columns of ``values`` shifted back in time by each lag.

    Row ``t`` of the block for lag ``L`` holds ``values[t - L]``: the reading ``L`` steps
    *before* row ``t``, never after, so appending these columns to a series keeps every
    window causal. Rows with ``t < L`` have no earlier reading and hold NaN; a
    :class:`~cellvision.data.windows.SlidingWindowDataset` built with
    ``drop_incomplete_inputs=True`` skips the windows that contain them. A window of ``w``
    steps plus a lag of ``L`` lets a model see readings ``L + w - 1`` steps back, for
    instance the same hour yesterday (``L = 23`` for a next-hour target) at the window's last
    step. :func:`lagged_columns` returns the same block with column names.

    Parameters
    ----------
    values : array_like
        Shape ``(T,)`` or ``(T, C)``, numeric.
    lags : int or sequence of int
        Positive shifts, in rows.

    Returns
    -------
    numpy.ndarray
        ``float32`` array of shape ``(T, C * len(lags))``: the ``C`` columns shifted by the
        first lag, then by the second, and so on.

    Raises
    ------
    ValueError
        If ``values`` is not 1-D or 2-D numeric, ``lags`` is empty or a lag is below 1.
    TypeError
        If a lag is not an integer.

    Examples
    --------
    >>> lag_features(np.array([1.0, 2.0, 3.0, 4.0]), [1, 2])
    array([[nan, nan],
           [ 1., nan],
           [ 2.,  1.],
           [ 3.,  2.]], dtype=float32)
    >>> lag_features(np.arange(6.0).reshape(3, 2), 1)
    array([[nan, nan],
           [ 0.,  1.],
           [ 2.,  3.]], dtype=float32)
    """
    array = np.asarray(values)
    if array.dtype.kind not in "fiub" or array.ndim not in (1, 2):
        raise ValueError(
            "values must be a 1-D or 2-D numeric array, got "
            f"shape {array.shape} and dtype {array.dtype}"
        )
    columns = (array[:, None] if array.ndim == 1 else array).astype(np.float32)
    lag_list = [lags] if isinstance(lags, (int, np.integer)) else list(lags)
    if not lag_list:
        raise ValueError(f"lags must name at least one lag, got {lags!r}")
    blocks = []
    for lag in lag_list:
        lag = _check_int("lags", lag, 1)
        block = np.full_like(columns, np.nan)
        if lag < len(columns):
            block[lag:] = columns[:-lag]
        blocks.append(block)
    return np.concatenate(blocks, axis=1)


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureColumns:
    """A block of input columns and their names.

    Parameters
    ----------
    values : array_like
        Shape ``(T, k)`` (a 1-D array is one column); stored as ``float32``.
    names : sequence of str
        ``k`` distinct column names.

    Raises
    ------
    ValueError
        If ``values`` is not 1-D or 2-D numeric, or the names do not match its columns.

    Examples
    --------
    >>> block = FeatureColumns(np.zeros((3, 2)), ["a", "b"])
    >>> block.names, block.values.dtype, block.values.shape
    (('a', 'b'), dtype('float32'), (3, 2))
    >>> FeatureColumns(np.zeros((3, 2)), ["a"])
    Traceback (most recent call last):
        ...
    ValueError: names must be 2 distinct names, one per column, got ('a',)
    """

    values: npt.NDArray[np.float32]
    names: tuple[str, ...]

    def __init__(self, values: npt.ArrayLike, names: Iterable[str]) -> None:
        array = np.asarray(values)
        if array.dtype.kind not in "fiub" or array.ndim not in (1, 2):
            raise ValueError(
                "values must be a 1-D or 2-D numeric array, got "
                f"shape {array.shape} and dtype {array.dtype}"
            )
        if array.ndim == 1:
            array = array[:, None]
        array = array.astype(np.float32, copy=False)
        name_tuple = tuple(names)
        if (
            len(name_tuple) != array.shape[1]
            or len(set(name_tuple)) != len(name_tuple)
            or not all(isinstance(n, str) for n in name_tuple)
        ):
            raise ValueError(
                f"names must be {array.shape[1]} distinct names, one per column, got {name_tuple!r}"
            )
        object.__setattr__(self, "values", array)
        object.__setattr__(self, "names", name_tuple)

    def __repr__(self) -> str:
        return f"FeatureColumns(shape={self.values.shape}, names={self.names!r})"

    @classmethod
    def concat(cls, blocks: Iterable[FeatureColumns]) -> FeatureColumns:
        """Join blocks side by side (columns of the first block first).

        Parameters
        ----------
        blocks : iterable of FeatureColumns
            At least one block; all with the same number of rows and no shared name.

        Returns
        -------
        FeatureColumns
            The ``float32`` concatenation and the names in the same order.

        Raises
        ------
        ValueError
            If no block is given, the row counts differ or a name repeats.

        Examples
        --------
        >>> a = FeatureColumns(np.ones((2, 1)), ["a"])
        >>> b = FeatureColumns(np.zeros((2, 2)), ["b", "c"])
        >>> joined = FeatureColumns.concat([a, b])
        >>> joined.names, joined.values.tolist()
        (('a', 'b', 'c'), [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
        """
        parts = list(blocks)
        if not parts:
            raise ValueError("blocks must hold at least one FeatureColumns, got none")
        rows = {p.values.shape[0] for p in parts}
        if len(rows) != 1:
            raise ValueError(f"blocks must all have the same number of rows, got {sorted(rows)}")
        return cls(
            np.concatenate([p.values for p in parts], axis=1),
            [name for p in parts for name in p.names],
        )


def calendar_columns(
    timestamps: npt.ArrayLike, *, hour_one_hot: bool = False, weekend: bool = False
) -> FeatureColumns:
    """Return the calendar inputs of :func:`calendar_features` with their names.

    Parameters
    ----------
    timestamps : array_like of datetime64
        Shape ``(T,)``.
    hour_one_hot : bool, default False
        Add the 24 one-hot hour columns ``hour_00`` ... ``hour_23``.
    weekend : bool, default False
        Add a ``weekend`` column: 1 on Saturdays and Sundays, else 0.

    Returns
    -------
    FeatureColumns
        ``hour_sin``, ``hour_cos``, ``weekday_sin``, ``weekday_cos`` (Monday = 0), then the
        optional one-hot and weekend columns.

    Raises
    ------
    ValueError
        If ``timestamps`` is not a 1-D datetime64 array.
    TypeError
        If a flag is not a bool.

    Examples
    --------
    >>> ts = np.array(["2004-03-13T07:00", "2004-03-15T07:00"], dtype="datetime64[s]")
    >>> block = calendar_columns(ts, hour_one_hot=True, weekend=True)
    >>> block.names[:5], block.names[-1], len(block.names)
    (('hour_sin', 'hour_cos', 'weekday_sin', 'weekday_cos', 'hour_00'), 'weekend', 29)
    >>> block.values[:, block.names.index("weekend")]  # a Saturday and a Monday
    array([1., 0.], dtype=float32)
    """
    with_weekend = _check_bool("weekend", weekend)
    values = calendar_features(timestamps, hour_one_hot=hour_one_hot)
    names = list(CALENDAR_COLUMNS)
    if hour_one_hot:
        names += [f"hour_{h:02d}" for h in range(24)]
    parts = [FeatureColumns(values, names)]
    if with_weekend:
        weekday = np.mod(np.floor_divide(_hours(timestamps), 24) + 3, 7)
        parts.append(FeatureColumns((weekday >= 5).astype(np.float32), ["weekend"]))
    return FeatureColumns.concat(parts)


def lagged_columns(
    values: npt.ArrayLike, names: Sequence[str], lags: int | Sequence[int]
) -> FeatureColumns:
    """Return :func:`lag_features` of ``values`` named ``"<column>_lag<L>"``.

    Parameters
    ----------
    values : array_like
        Shape ``(T, C)`` (or ``(T,)`` for one column), numeric.
    names : sequence of str
        The ``C`` names of the columns of ``values``.
    lags : int or sequence of int
        Positive shifts, in rows.

    Returns
    -------
    FeatureColumns
        All columns shifted by the first lag, then by the second, and so on.

    Raises
    ------
    ValueError
        As :func:`lag_features`, or if ``names`` does not name every column.
    TypeError
        If a lag is not an integer.

    Examples
    --------
    >>> block = lagged_columns(np.arange(8.0).reshape(4, 2), ["a", "b"], [1, 2])
    >>> block.names
    ('a_lag1', 'b_lag1', 'a_lag2', 'b_lag2')
    >>> block.values[3].tolist()
    [4.0, 5.0, 2.0, 3.0]
    """
    shifted = lag_features(values, lags)
    columns = list(names)
    n_columns = np.asarray(values).reshape(shifted.shape[0], -1).shape[1]
    if len(columns) != n_columns:
        raise ValueError(f"names must name the {n_columns} columns of values, got {names!r}")
    lag_list = [lags] if isinstance(lags, (int, np.integer)) else list(lags)
    return FeatureColumns(shifted, [f"{c}_lag{int(lag)}" for lag in lag_list for c in columns])


def missing_indicator_columns(
    values: npt.ArrayLike, names: Sequence[str], *, only_with_gaps: bool = True
) -> FeatureColumns:
    """Return 0/1 columns ``"<column>_missing"`` marking the missing (NaN) readings.

    Computed on the readings *before* any filling, these tell a model which of its
    (filled) inputs are stale copies. Each row describes that row's own readings, so the
    columns are as causal as the readings.

    Parameters
    ----------
    values : array_like
        Shape ``(T, C)`` (or ``(T,)``), floating point; NaN marks a missing reading.
    names : sequence of str
        The ``C`` column names.
    only_with_gaps : bool, default True
        Leave out the columns without any missing reading (their indicator is all zero).

    Returns
    -------
    FeatureColumns
        One ``float32`` indicator per (kept) column, in column order; possibly no column.

    Raises
    ------
    ValueError
        If ``values`` is not 1-D or 2-D numeric or ``names`` does not name every column.
    TypeError
        If ``only_with_gaps`` is not a bool.

    Examples
    --------
    >>> x = np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, 4.0]])
    >>> block = missing_indicator_columns(x, ["a", "b"])
    >>> block.names, block.values.tolist()
    (('a_missing', 'b_missing'), [[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    >>> missing_indicator_columns(np.ones((2, 1)), ["c"]).names
    ()
    """
    array: Any = np.asarray(values)
    if array.dtype.kind not in "fiub" or array.ndim not in (1, 2):
        raise ValueError(
            "values must be a 1-D or 2-D numeric array, got "
            f"shape {array.shape} and dtype {array.dtype}"
        )
    keep_all = not _check_bool("only_with_gaps", only_with_gaps)
    gaps = np.isnan(array.reshape(array.shape[0], -1).astype(np.float64))
    columns = list(names)
    if len(columns) != gaps.shape[1]:
        raise ValueError(f"names must name the {gaps.shape[1]} columns of values, got {names!r}")
    kept = [j for j in range(gaps.shape[1]) if keep_all or gaps[:, j].any()]
    return FeatureColumns(
        gaps[:, kept].astype(np.float32).reshape(gaps.shape[0], len(kept)),
        [f"{columns[j]}_missing" for j in kept],
    )
