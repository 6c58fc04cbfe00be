"""Sliding-window forecasting samples as zero-copy views on one series tensor.

A sample ending at row ``t`` has the input window ``series[t - window + 1 : t + 1]`` (the
``window`` steps ending at ``t``) and the target ``series[t + horizon, target_columns]``.
Inputs therefore end strictly before the target row: no reading from the target hour enters
the inputs. All windows are one strided view (:meth:`torch.Tensor.unfold`) of the series, so
the data set costs the series itself plus one ``int32`` row index per sample.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SubsetRandomSampler

# lag_features moved to the generic features module; re-exported from its former home.
from cellvision.data.features import _check_int
from cellvision.data.features import lag_features as lag_features
from cellvision.data.scaling import ZScoreScaler

__all__ = ["SlidingWindowDataset"]

IndexLike = int | slice | Sequence[int] | torch.Tensor | npt.NDArray[np.integer[Any]]


def _check_columns(
    name: str, value: object, n_features: int, names: Sequence[str] | None
) -> list[int]:
    if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim <= 1:
        value = value.tolist()  # an array of column indices (or a 0-d one)
    if isinstance(value, (int, str, np.integer)):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, (bytes, str)) or not value:
        raise ValueError(f"{name} must be a non-empty sequence of column indices, got {value!r}")
    out: list[int] = []
    for item in value:
        if isinstance(item, str):
            if names is None or item not in names:
                raise ValueError(
                    f"{name} must name columns among {tuple(names or ())!r}, got {item!r}"
                )
            out.append(list(names).index(item))
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not -n_features <= item < n_features:
                raise ValueError(
                    f"{name} must hold column indices in [0, {n_features}), got {value!r}"
                )
            out.append(int(item) % n_features)
        else:
            raise ValueError(f"{name} must hold column indices or names, got {value!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must not repeat a column, got {value!r}")
    return out


def _columns_view(series: torch.Tensor, cols: list[int]) -> torch.Tensor:
    # A run of consecutive columns is a view (narrow); anything else is one compact copy.
    if cols == list(range(cols[0], cols[0] + len(cols))):
        return series.narrow(1, cols[0], len(cols))
    return series[:, cols].contiguous()


class SlidingWindowDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(input window, target) pairs over one multivariate series, stored as views.

    Sample ``i`` ends at series row ``t = end_rows[i]``: its input is the ``(window, F_in)``
    block of rows ``t - window + 1 ... t`` of the input columns and its target is row
    ``t + horizon`` of the target columns, shape ``(n_targets,)``. Samples whose target has a
    missing (``NaN``) value are skipped; with ``drop_incomplete_inputs=True`` so are samples
    with any missing input value.

    Indexing with an ``int`` returns a view into the series (no copy); indexing with a
    sequence, slice, array or tensor of indices returns a batch ``(B, window, F_in)``,
    ``(B, n_targets)`` gathered in one operation. ``__getitems__`` lets a
    :class:`~torch.utils.data.DataLoader` with ``batch_size=B`` fetch a whole batch at once;
    passing a :class:`~torch.utils.data.BatchSampler` as ``sampler`` with ``batch_size=None``
    is the fastest path (no re-stacking).

    Parameters
    ----------
    series : torch.Tensor or array_like
        Shape ``(T, F)``. A floating-point tensor is used as it is and a float32 NumPy
        array is shared through :func:`torch.from_numpy` (no copy; single samples are views,
        so writing into them writes into the series); anything else is converted once to
        float32.
    window : int, default 48
        Number of input steps.
    horizon : int, default 1
        Steps from the window's last row to the target row (1 = the next step).
    target_columns : int, str, sequence or 1-D array, default 0
        Column indices (or names, with ``columns``) of the targets.
    targets : torch.Tensor or array_like, optional
        Shape ``(T, n_targets)`` (or ``(T,)`` for one target): the values to predict for
        ``target_columns`` when they differ from the inputs' copy, e.g. inputs
        forward-filled but targets as measured. Default ``series[:, target_columns]``.
    input_columns : sequence, optional
        Input column indices or names; default all columns (the targets' past included).
    timestamps : array_like of datetime64, optional
        Shape ``(T,)``, strictly increasing; enables :attr:`sample_timestamps` for purging
        splitters.
    columns : sequence of str, optional
        Column names, to select columns by name.
    drop_incomplete_inputs : bool, default False
        Also skip samples with a missing value anywhere in their input window.

    Raises
    ------
    ValueError
        If the series is not 2-D, ``window + horizon`` exceeds its length, a column is
        invalid, the timestamps do not match, or no sample remains.
    TypeError
        If ``window`` or ``horizon`` is not an integer.

    Examples
    --------
    >>> series = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    >>> ds = SlidingWindowDataset(series, window=3, horizon=1, target_columns=[1])
    >>> len(ds)
    3
    >>> x, y = ds[0]
    >>> x
    tensor([[0., 1.],
            [2., 3.],
            [4., 5.]])
    >>> y
    tensor([7.])
    >>> x.untyped_storage().data_ptr() == series.untyped_storage().data_ptr()
    True
    >>> xb, yb = ds[[0, 2]]
    >>> xb.shape, yb.shape
    (torch.Size([2, 3, 2]), torch.Size([2, 1]))
    """

    def __init__(
        self,
        series: torch.Tensor | npt.ArrayLike,
        *,
        window: int = 48,
        horizon: int = 1,
        target_columns: int | str | Sequence[int | str] = 0,
        input_columns: Sequence[int | str] | None = None,
        targets: torch.Tensor | npt.ArrayLike | None = None,
        timestamps: npt.ArrayLike | None = None,
        columns: Sequence[str] | None = None,
        drop_incomplete_inputs: bool = False,
    ) -> None:
        data = _as_float_tensor(series)
        if data.ndim != 2:
            raise ValueError(
                f"series must be a 2-D (time, features) array, got shape {tuple(data.shape)}"
            )
        n_rows, n_features = data.shape
        self.window = _check_int("window", window, 1)
        self.horizon = _check_int("horizon", horizon, 1)
        if self.window + self.horizon > n_rows:
            raise ValueError(
                f"window + horizon must be at most the series length {n_rows}, got "
                f"window={window!r}, horizon={horizon!r}"
            )
        if columns is not None:
            columns = tuple(columns)
            if len(columns) != n_features:
                raise ValueError(f"columns must have {n_features} names, got {columns!r}")
        self.columns = columns
        self.target_columns = tuple(
            _check_columns("target_columns", target_columns, n_features, columns)
        )
        in_cols = (
            list(range(n_features))
            if input_columns is None
            else _check_columns("input_columns", input_columns, n_features, columns)
        )
        self.input_columns = tuple(in_cols)
        self.series = data
        inputs = _columns_view(data, in_cols)
        if targets is None:
            self._targets = _columns_view(data, list(self.target_columns))
        else:
            target_data = _as_float_tensor(targets)
            if target_data.ndim == 1:
                target_data = target_data[:, None]
            if target_data.shape != (n_rows, len(self.target_columns)):
                raise ValueError(
                    f"targets must have shape ({n_rows}, {len(self.target_columns)}), got "
                    f"{tuple(target_data.shape)}"
                )
            self._targets = target_data
        self._separate_targets = targets is not None
        self._inputs = inputs
        # (T - window + 1, window, F_in): one strided view, window k starts at row k.
        self._windows = inputs.unfold(0, self.window, 1).transpose(1, 2)
        # Batches gather rows directly: advanced indexing of the overlapping unfold view is
        # far slower in torch than a row gather (index_select) from the series.
        self._offsets = torch.arange(-(self.window - 1), 1)

        self.timestamps: npt.NDArray[np.datetime64] | None = None
        if timestamps is not None:
            ts = np.asarray(timestamps)
            if ts.dtype.kind != "M" or ts.shape != (n_rows,):
                raise ValueError(
                    f"timestamps must be a datetime64 array of shape ({n_rows},), got "
                    f"{ts.dtype} array of shape {ts.shape}"
                )
            if n_rows > 1 and not bool(np.all(ts[1:] > ts[:-1])):
                raise ValueError("timestamps must be strictly increasing")
            self.timestamps = ts

        if not isinstance(drop_incomplete_inputs, bool):
            raise TypeError(
                f"drop_incomplete_inputs must be a bool, got {drop_incomplete_inputs!r}"
            )
        self.drop_incomplete_inputs = drop_incomplete_inputs
        end = torch.arange(self.window - 1, n_rows - self.horizon)
        keep = ~torch.isnan(self._targets[end + self.horizon]).any(dim=1).cpu()
        if drop_incomplete_inputs:
            bad_row = torch.isnan(inputs).any(dim=1).to("cpu", torch.int64)
            bad_before = torch.cat([torch.zeros(1, dtype=torch.int64), bad_row.cumsum(0)])
            keep &= (bad_before[end + 1] - bad_before[end + 1 - self.window]) == 0
        # int32 keeps the index at 4 bytes per sample (the series is 4 * F bytes per row).
        index_dtype = torch.int32 if n_rows < 2**31 else torch.int64
        self._end_rows = end[keep].to(index_dtype)
        if self._end_rows.numel() == 0:
            raise ValueError(
                "series must yield at least one sample with a non-missing target"
                + (" and complete inputs" if drop_incomplete_inputs else "")
                + f", got none for window={self.window}, horizon={self.horizon}"
            )

    @classmethod
    def from_air_quality(
        cls,
        data: TimeSeriesTable,
        *,
        target: str | Sequence[str] = "C6H6(GT)",
        window: int = 48,
        horizon: int = 1,
        input_columns: Sequence[str] | None = None,
        fill_inputs: str = "none",
        drop_incomplete_inputs: bool = False,
    ) -> SlidingWindowDataset:
        """Build windows over an :class:`~cellvision.data.airquality.AirQuality` object.

        The values are used without copying; timestamps and column names come along.

        Parameters
        ----------
        data : AirQuality or TimeSeriesTable
            Loaded (and optionally filled) data.
        target : str or sequence of str, default "C6H6(GT)"
            Target column name(s).
        window, horizon : int
            As for the constructor (defaults 48 and 1: the next hour from two days).
        input_columns : sequence of str, optional
            Input column names; default all columns.
        fill_inputs : {"none", "ffill", "linear"}, default "none"
            Fill missing *input* readings (the targets' own history included) with
            :meth:`~cellvision.data.airquality.AirQuality.fill_missing`; the targets stay
            as measured, so samples with a missing target are still skipped. ``"ffill"`` is
            causal; ``"linear"`` can carry later readings into a window.
        drop_incomplete_inputs : bool, default False
            Skip samples with a missing input value.

        Returns
        -------
        SlidingWindowDataset
            With :attr:`sample_timestamps` available.

        Raises
        ------
        ValueError
            As for the constructor.

        Examples
        --------
        >>> from cellvision.data.airquality import load_air_quality
        >>> ds = SlidingWindowDataset.from_air_quality(load_air_quality())
        >>> len(ds), ds[0][0].shape
        (8943, torch.Size([48, 13]))
        >>> filled = SlidingWindowDataset.from_air_quality(load_air_quality(), fill_inputs="ffill")
        >>> len(filled), bool(torch.isnan(filled.targets).any())  # targets not filled
        (8943, True)
        """
        names = [target] if isinstance(target, str) else list(target)
        target_idx = [data.column_index(n) for n in names]
        filled = data.fill_missing(fill_inputs)
        return cls(
            torch.from_numpy(filled.values),
            window=window,
            horizon=horizon,
            target_columns=names,
            input_columns=input_columns,
            targets=None if filled is data else data.values[:, target_idx],
            timestamps=data.timestamps,
            columns=data.columns,
            drop_incomplete_inputs=drop_incomplete_inputs,
        )

    # ------------------------------------------------------------------ protocol
    def __len__(self) -> int:
        """Return the number of samples.

        Returns
        -------
        int
            Windows with a non-missing target (and complete inputs if requested).

        Examples
        --------
        >>> len(SlidingWindowDataset(torch.zeros(10, 1), window=4, horizon=2))
        5
        """
        return int(self._end_rows.numel())

    def __getitem__(self, index: IndexLike) -> tuple[torch.Tensor, torch.Tensor]:
        """Return one sample (views) or a batch (one gather) of samples.

        Parameters
        ----------
        index : int, slice, sequence of int, numpy array or tensor
            Sample position(s); negative ints count from the end. A 0-d integer tensor or
            array counts as an ``int``.

        Returns
        -------
        tuple of torch.Tensor
            ``(window, F_in)`` and ``(n_targets,)`` for an ``int``; ``(B, window, F_in)``
            and ``(B, n_targets)`` otherwise (``B`` may be 0, e.g. for ``ds[len(ds):]``).

        Raises
        ------
        IndexError
            If an index is out of range.
        TypeError
            If ``index`` has an unsupported type.

        Examples
        --------
        >>> ds = SlidingWindowDataset(torch.arange(5.0)[:, None], window=2)
        >>> ds[-1]
        (tensor([[2.],
                [3.]]), tensor([4.]))
        """
        if (
            isinstance(index, (torch.Tensor, np.ndarray))
            and index.ndim == 0
            and not (index.dtype == torch.bool or index.dtype == np.bool_)
            and not (isinstance(index, torch.Tensor) and index.is_floating_point())
            and not (isinstance(index, np.ndarray) and index.dtype.kind not in "iu")
        ):
            index = int(index.item())  # a 0-d integer index is one sample, not a batch
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            n = len(self)
            if not -n <= index < n:
                raise IndexError(f"index must be in [-{n}, {n}), got {index!r}")
            end = int(self._end_rows[index])
            return self._windows[end - self.window + 1], self._targets[end + self.horizon]
        ends = self._end_rows[self._batch_positions(index)].to(torch.int64)
        rows = (ends[:, None] + self._offsets).reshape(-1)
        # index_select: a plain row gather, much cheaper than advanced indexing on CPU.
        x = torch.index_select(self._inputs, 0, rows.to(self._inputs.device))
        y = torch.index_select(self._targets, 0, (ends + self.horizon).to(self._targets.device))
        return x.view(ends.numel(), self.window, self._inputs.shape[1]), y

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Fetch many samples with one gather (used by ``DataLoader`` automatic batching).

        Parameters
        ----------
        indices : sequence of int
            Sample positions.

        Returns
        -------
        list of tuple
            One ``(input, target)`` pair per index, ready for the default ``collate_fn``.

        Examples
        --------
        >>> ds = SlidingWindowDataset(torch.arange(6.0)[:, None], window=2)
        >>> [y.item() for _, y in ds.__getitems__([0, 3])]
        [2.0, 5.0]
        """
        x, y = self[list(indices)]
        return list(zip(x.unbind(0), y.unbind(0), strict=True))

    def _batch_positions(self, index: object, name: str = "index") -> torch.Tensor:
        n = len(self)
        if isinstance(index, slice):
            return torch.arange(n)[index]
        if isinstance(index, torch.Tensor):
            pos = index.detach().cpu()
        else:
            try:
                pos = torch.as_tensor(np.asarray(index))
            except (TypeError, ValueError, RuntimeError) as exc:
                raise TypeError(
                    f"{name} must be an int, slice, or a sequence of ints, got {index!r}"
                ) from exc
        if pos.dtype == torch.bool or (pos.numel() and pos.is_floating_point()):
            raise TypeError(f"{name} must hold integers, got dtype {pos.dtype}")
        pos = pos.reshape(-1).to(torch.int64)
        if pos.numel() and (int(pos.min()) < -n or int(pos.max()) >= n):
            raise IndexError(
                f"{name} must be in [-{n}, {n}), got values from {int(pos.min())} "
                f"to {int(pos.max())}"
            )
        return pos % n if n else pos

    # ------------------------------------------------------------------ introspection
    @property
    def end_rows(self) -> npt.NDArray[np.int64]:
        """Series row of each sample's last input step, shape ``(N,)``.

        Returns
        -------
        numpy.ndarray
            ``int64`` row indices ``t``; the target row is ``t + horizon``.

        Examples
        --------
        >>> SlidingWindowDataset(torch.zeros(5, 1), window=3).end_rows
        array([2, 3])
        """
        return self._end_rows.numpy().astype(np.int64)

    @property
    def windows(self) -> torch.Tensor:
        """All ``T - window + 1`` input windows as one strided view ``(n, window, F_in)``.

        Returns
        -------
        torch.Tensor
            A view of the series (no copy); window ``k`` starts at row ``k``. It includes
            windows that are not samples (missing target, or too close to the end).

        Examples
        --------
        >>> SlidingWindowDataset(torch.zeros(5, 2), window=3).windows.shape
        torch.Size([3, 3, 2])
        """
        return self._windows

    @property
    def sample_timestamps(self) -> npt.NDArray[np.datetime64]:
        """Per-sample ``(window start, window end, target)`` timestamps, shape ``(N, 3)``.

        Pass this as ``groups`` to :class:`cellvision.splits.MonthFoldSplitter`, which
        keeps a sample in a fold only when its whole span lies on one side.

        Returns
        -------
        numpy.ndarray
            ``datetime64`` array (computed on access).

        Raises
        ------
        ValueError
            If the data set was built without ``timestamps``.

        Examples
        --------
        >>> ts = np.arange(4).astype("datetime64[h]")
        >>> SlidingWindowDataset(torch.zeros(4, 1), window=2, timestamps=ts).sample_timestamps
        array([['1970-01-01T00', '1970-01-01T01', '1970-01-01T02'],
               ['1970-01-01T01', '1970-01-01T02', '1970-01-01T03']],
              dtype='datetime64[h]')
        """
        if self.timestamps is None:
            raise ValueError(
                "timestamps must be given to SlidingWindowDataset to get sample timestamps"
            )
        end = self.end_rows
        rows = np.stack([end - (self.window - 1), end, end + self.horizon], axis=1)
        return self.timestamps[rows]

    def covered_rows(self, indices: npt.ArrayLike | None = None) -> npt.NDArray[np.int64]:
        """Return the sorted series rows read by the given samples (inputs and targets).

        Fit a :class:`~cellvision.data.scaling.ZScoreScaler` on the rows covered by a fold's
        training samples so that no statistic comes from its test samples.

        Parameters
        ----------
        indices : array_like of int, optional
            Sample positions; default all samples.

        Returns
        -------
        numpy.ndarray
            ``int64`` row indices, sorted and unique.

        Raises
        ------
        IndexError
            If an index is out of range.
        TypeError
            If an index is not an integer (``0.5`` is refused, not truncated).

        Examples
        --------
        >>> ds = SlidingWindowDataset(torch.zeros(10, 1), window=2, horizon=2)
        >>> ds.covered_rows([0, 5])
        array([0, 1, 2, 3, 5, 6, 7, 8])
        """
        n_rows = self.series.shape[0]
        pos = (
            torch.arange(len(self))
            if indices is None
            else self._batch_positions(indices, "indices")
        )
        end = self._end_rows[pos].to(torch.int64)
        # Mark every row from window start to target with a difference array: O(T + B).
        delta = torch.zeros(n_rows + 1, dtype=torch.int64)
        delta.index_add_(0, end - (self.window - 1), torch.ones_like(end))
        delta.index_add_(0, end + self.horizon + 1, -torch.ones_like(end))
        covered = delta.cumsum(0)[:n_rows] > 0
        return torch.nonzero(covered).reshape(-1).numpy().astype(np.int64)

    @property
    def targets(self) -> torch.Tensor:
        """Target values for every series row, shape ``(T, n_targets)`` (``NaN`` = missing).

        Returns
        -------
        torch.Tensor
            A view of the series' target columns, or the separate ``targets`` given.

        Examples
        --------
        >>> SlidingWindowDataset(torch.arange(6.0).reshape(3, 2), window=1,
        ...                      target_columns=[1]).targets[:, 0]
        tensor([1., 3., 5.])
        """
        return self._targets

    def with_series(
        self,
        series: torch.Tensor | npt.ArrayLike,
        targets: torch.Tensor | npt.ArrayLike | None = None,
    ) -> SlidingWindowDataset:
        """Return a data set with the same samples over new values of the same shape.

        Used to swap in a transformed (e.g. z-scored) series without re-deriving which
        samples exist, so the sample indices of a split stay valid.

        Parameters
        ----------
        series : torch.Tensor or array_like
            Shape ``(T, F)`` like :attr:`series`.
        targets : torch.Tensor or array_like, optional
            New separate targets ``(T, n_targets)``; required when this data set was built
            with separate ``targets``, not allowed otherwise.

        Returns
        -------
        SlidingWindowDataset
            Same windows, horizon, columns, timestamps and samples.

        Raises
        ------
        ValueError
            If a shape differs or ``targets`` is missing or unexpected.

        Examples
        --------
        >>> ds = SlidingWindowDataset(torch.arange(8.0).reshape(4, 2), window=2)
        >>> ds.with_series(ds.series * 10)[0][1]
        tensor([40.])
        """
        data = _as_float_tensor(series)
        if data.shape != self.series.shape:
            raise ValueError(
                f"series must have shape {tuple(self.series.shape)}, got {tuple(data.shape)}"
            )
        if self._separate_targets != (targets is not None):
            need = "must" if self._separate_targets else "must not"
            raise ValueError(
                f"targets {need} be given: this data set was built "
                f"{'with' if self._separate_targets else 'without'} separate targets"
            )
        clone = copy.copy(self)
        clone.series = data
        inputs = _columns_view(data, list(self.input_columns))
        clone._inputs = inputs
        clone._windows = inputs.unfold(0, self.window, 1).transpose(1, 2)
        if targets is None:
            clone._targets = _columns_view(data, list(self.target_columns))
        else:
            target_data = _as_float_tensor(targets)
            if target_data.ndim == 1:
                target_data = target_data[:, None]
            if target_data.shape != self._targets.shape:
                raise ValueError(
                    f"targets must have shape {tuple(self._targets.shape)}, got "
                    f"{tuple(target_data.shape)}"
                )
            clone._targets = target_data
        return clone

    def scaled(self, scaler: ZScoreScaler) -> SlidingWindowDataset:
        """Return the same samples over the series (and targets) transformed by ``scaler``.

        Parameters
        ----------
        scaler : ZScoreScaler
            Fitted on the series columns, typically on :meth:`covered_rows` of a fold's
            training samples.

        Returns
        -------
        SlidingWindowDataset
            Inputs and targets in scaled units; map predictions back with
            ``scaler.inverse_transform(pred, columns=ds.target_columns)``.

        Raises
        ------
        ValueError
            If the scaler was fitted on a different number of columns.

        Examples
        --------
        >>> ds = SlidingWindowDataset(torch.tensor([[0.0], [2.0], [4.0]]), window=1)
        >>> scaler = ZScoreScaler().fit(ds.series, rows=ds.covered_rows([0]))
        >>> ds.scaled(scaler)[0]
        (tensor([[-1.]]), tensor([1.]))
        """
        new_series = scaler.transform(self.series)
        if not self._separate_targets:
            return self.with_series(new_series)
        new_targets = scaler.transform(self._targets, columns=list(self.target_columns))
        return self.with_series(new_series, new_targets)

    def nbytes(self) -> int:
        """Return the bytes held by the data set's own tensors (shared storage counted once).

        Returns
        -------
        int
            Series storage plus any compact column copies plus the sample index.

        Examples
        --------
        >>> ds = SlidingWindowDataset(torch.zeros(100, 12), window=10)
        >>> ds.nbytes(), ds.series.untyped_storage().nbytes()  # + index + offsets
        (5240, 4800)
        """
        storages: dict[int, int] = {}
        for t in (self.series, self._inputs, self._targets, self._end_rows, self._offsets):
            s = t.untyped_storage()
            storages[s.data_ptr()] = s.nbytes()
        return sum(storages.values())


def _as_float_tensor(series: torch.Tensor | npt.ArrayLike) -> torch.Tensor:
    if isinstance(series, torch.Tensor):
        t = series.detach()
        if t.is_complex():
            raise ValueError(f"series must be numeric (real-valued), got dtype {t.dtype}")
        return t if t.is_floating_point() else t.to(torch.get_default_dtype())
    array = np.asarray(series)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"series must be numeric (real-valued), got dtype {array.dtype}")
    if array.dtype != np.float32:
        with np.errstate(over="ignore", invalid="ignore"):
            converted = array.astype(np.float32)
        if array.dtype.kind == "f" and bool((np.isinf(converted) & np.isfinite(array)).any()):
            raise ValueError(
                "series must lie within the float32 range (|x| <= 3.4e38) to be stored as "
                f"float32, got values up to {float(np.nanmax(np.abs(array[np.isfinite(array)])))!r}"
                "; pass a float64 tensor to keep float64"
            )
        array = converted
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(np.ascontiguousarray(array))


class TimeSeriesTable(Protocol):
    """What :meth:`SlidingWindowDataset.from_air_quality` reads from its data (structural).

    :class:`~cellvision.data.airquality.AirQuality` has this shape; so may any hourly table
    of another data set, without this generic module importing it.
    """

    @property
    def timestamps(self) -> npt.NDArray[np.datetime64]:
        """``datetime64`` array of shape ``(T,)``, strictly increasing."""
        ...

    @property
    def values(self) -> npt.NDArray[np.float32]:
        """``float32`` array of shape ``(T, F)``; ``NaN`` marks a missing reading."""
        ...

    @property
    def columns(self) -> tuple[str, ...]:
        """The ``F`` column names."""
        ...

    def column_index(self, name: str) -> int:
        """Return the position of column ``name``."""
        ...

    def fill_missing(self, method: Any) -> TimeSeriesTable:
        """Return a copy with missing readings filled along time by ``method``."""
        ...


def window_loader(
    dataset: SlidingWindowDataset,
    indices: npt.ArrayLike | None = None,
    *,
    batch_size: int = 128,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> DataLoader[Any]:
    """Return a loader that gathers each batch of windows in one operation.

    The fast path for :class:`SlidingWindowDataset`: a
    :class:`~torch.utils.data.BatchSampler` passed as ``sampler`` with ``batch_size=None``
    hands each list of sample positions to ``dataset[positions]``, which gathers the whole
    ``(B, window, F_in)`` batch with one row gather, with no per-sample collate and no
    re-stacking. Batches come in the order of ``indices``, or reshuffled on every pass with
    ``shuffle=True`` (reproducibly with a ``generator``).

    Parameters
    ----------
    dataset : SlidingWindowDataset
        The windows (typically :meth:`SlidingWindowDataset.scaled` for a fold).
    indices : array_like of int, optional
        Sample positions to load, e.g. a fold's training samples; default all samples.
    batch_size : int, default 128
        Samples per batch (the last one may be smaller unless ``drop_last``).
    shuffle : bool, default False
        Draw a new random order of ``indices`` on every pass.
    generator : torch.Generator, optional
        Source of the shuffling order (only with ``shuffle=True``); without it the global
        torch generator is used.
    drop_last : bool, default False
        Drop the last, incomplete batch.

    Returns
    -------
    torch.utils.data.DataLoader
        Yields ``(inputs, targets)`` batches of shapes ``(B, window, F_in)`` and
        ``(B, n_targets)``.

    Raises
    ------
    ValueError
        If ``batch_size`` is not positive, an index is out of range or not 1-D, or a
        ``generator`` is given without ``shuffle``.
    TypeError
        If ``batch_size`` is not an integer, an index is not an integer or a flag is not a
        bool.

    Examples
    --------
    >>> ds = SlidingWindowDataset(torch.arange(20.0)[:, None], window=3)
    >>> loader = window_loader(ds, [0, 1, 2, 3, 4], batch_size=2)
    >>> [tuple(x.shape) for x, _ in loader]
    [(2, 3, 1), (2, 3, 1), (1, 3, 1)]
    >>> [y[:, 0].tolist() for _, y in loader]
    [[3.0, 4.0], [5.0, 6.0], [7.0]]
    >>> g = torch.Generator().manual_seed(0)
    >>> shuffled = window_loader(ds, batch_size=4, shuffle=True, generator=g)
    >>> sorted(int(v) for _, y in shuffled for v in y[:, 0]) == list(range(3, 20))
    True
    """
    size = _check_int("batch_size", batch_size, 1)
    for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    if generator is not None and not shuffle:
        raise ValueError(
            f"generator must be None unless shuffle=True (it draws the order), got {generator!r}"
        )
    if indices is None:
        positions = list(range(len(dataset)))
    else:
        array = np.asarray(indices)
        if array.size and array.dtype.kind not in "iu":
            raise TypeError(f"indices must hold integers, got dtype {array.dtype}")
        if array.ndim != 1:
            raise ValueError(f"indices must be 1-D, got shape {array.shape}")
        n = len(dataset)
        if array.size and (int(array.min()) < 0 or int(array.max()) >= n):
            raise ValueError(
                f"indices must be sample positions in [0, {n}), got values from "
                f"{int(array.min())} to {int(array.max())}"
            )
        positions = array.astype(np.int64).tolist()
    order: Sampler[int] | list[int] = (
        SubsetRandomSampler(positions, generator=generator) if shuffle else positions
    )
    return DataLoader(
        dataset, batch_size=None, sampler=BatchSampler(order, size, drop_last=bool(drop_last))
    )


__all__ += ["TimeSeriesTable", "window_loader"]
