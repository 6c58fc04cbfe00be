"""Fold-safe z-score scaling of feature columns (statistics from chosen rows only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import torch

from cellvision.config import as_builtin_number

__all__ = ["ZScoreScaler"]

_A = TypeVar("_A", torch.Tensor, npt.NDArray[Any])


class ZScoreScaler:
    """Per-column z-score scaling, ``(x - mean) / std``, fitted on chosen rows ignoring NaN.

    Fit it on the training rows of a fold only, so that no statistic comes from the test
    months; transform the whole series with it; map predictions back to original units with
    :meth:`inverse_transform` (``columns`` selects the target's statistics). With
    ``enabled=False`` every method is the identity, so one pipeline runs with and without
    the z-transform.

    Parameters
    ----------
    enabled : bool, default True
        ``False`` makes :meth:`transform` and :meth:`inverse_transform` return their input
        unchanged (mean 0, scale 1).
    eps : float, default 1e-8
        Columns whose standard deviation is below ``eps`` get scale 1 (they are only
        centred), so constant columns do not blow up.

    Attributes
    ----------
    mean_ : numpy.ndarray
        ``float64`` column means, shape ``(F,)``; set by :meth:`fit`.
    scale_ : numpy.ndarray
        ``float64`` column standard deviations (population, ``ddof=0``), shape ``(F,)``.

    Examples
    --------
    >>> x = np.array([[1.0, 10.0], [3.0, np.nan], [5.0, 30.0], [100.0, 0.0]], np.float32)
    >>> scaler = ZScoreScaler().fit(x, rows=[0, 1, 2])  # row 3 is test data
    >>> scaler.mean_, scaler.scale_
    (array([ 3., 20.]), array([ 1.63299316, 10.        ]))
    >>> z = scaler.transform(x)
    >>> z[:, 1]
    array([-1., nan,  1., -2.], dtype=float32)
    >>> scaler.inverse_transform(z[:, 1:], columns=[1])[:, 0]
    array([10., nan, 30.,  0.], dtype=float32)
    >>> ZScoreScaler(enabled=False).fit(x).transform(x) is x
    True
    """

    def __init__(self, *, enabled: bool = True, eps: float = 1e-8) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be a bool, got {enabled!r}")
        eps = as_builtin_number(eps)  # type: ignore[assignment]
        if (
            isinstance(eps, bool)
            or not isinstance(eps, (int, float))
            or not 0 <= eps < float("inf")
        ):
            raise ValueError(f"eps must be a number >= 0, got {eps!r}")
        self.enabled = enabled
        self.eps = float(eps)
        self.mean_: npt.NDArray[np.float64] | None = None
        self.scale_: npt.NDArray[np.float64] | None = None

    def __repr__(self) -> str:
        fitted = "unfitted" if self.mean_ is None else f"n_features={self.mean_.shape[0]}"
        return f"ZScoreScaler(enabled={self.enabled}, {fitted})"

    @property
    def n_features(self) -> int:
        """Number of fitted columns.

        Returns
        -------
        int
            ``F``.

        Raises
        ------
        RuntimeError
            If the scaler is not fitted.

        Examples
        --------
        >>> ZScoreScaler().fit(np.ones((3, 2))).n_features
        2
        """
        return int(self._stats()[0].shape[0])

    def fit(
        self,
        x: torch.Tensor | npt.ArrayLike,
        rows: npt.ArrayLike | torch.Tensor | None = None,
    ) -> ZScoreScaler:
        """Compute per-column mean and standard deviation over ``rows`` of ``x``.

        Parameters
        ----------
        x : tensor or array_like
            Shape ``(T, F)``; ``NaN`` entries (missing values) are ignored, infinite ones are
            refused.
        rows : array_like of int or bool, optional
            Row indices (or a boolean mask of length ``T``) to use, e.g. the training rows
            of a fold. ``None`` uses every row.

        Returns
        -------
        ZScoreScaler
            ``self``, fitted.

        Raises
        ------
        ValueError
            If ``x`` is not 2-D, ``rows`` selects nothing, a selected row holds an infinite
            value, or a column has no finite value among the selected rows.

        Examples
        --------
        >>> ZScoreScaler().fit(np.array([[0.0], [2.0], [np.nan]])).mean_
        array([1.])
        """
        data = _as_float64_numpy(x)
        if data.ndim != 2:
            raise ValueError(f"x must be a 2-D (rows, features) array, got shape {data.shape}")
        if rows is not None:
            index = np.asarray(rows.cpu() if isinstance(rows, torch.Tensor) else rows)
            if index.size == 0:
                raise ValueError("rows must select at least one row, got none")
            if index.dtype == bool:
                if index.shape != (data.shape[0],):
                    raise ValueError(
                        f"rows must be a boolean mask of length {data.shape[0]}, "
                        f"got shape {index.shape}"
                    )
            elif index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
                raise ValueError(f"rows must be a 1-D array of row indices, got {rows!r}")
            elif index.size and (index.min() < -data.shape[0] or index.max() >= data.shape[0]):
                raise ValueError(
                    f"rows must be indices in [0, {data.shape[0]}), got values from "
                    f"{index.min()} to {index.max()}"
                )
            data = data[index]
        if data.shape[0] == 0:
            raise ValueError("rows must select at least one row, got none")
        n_features = data.shape[1]
        if not self.enabled:
            self.mean_ = np.zeros(n_features)
            self.scale_ = np.ones(n_features)
            return self
        infinite = np.flatnonzero(np.isinf(data).any(axis=0))
        if infinite.size:
            raise ValueError(
                "x must not hold infinite values among the fitted rows (NaN marks a missing "
                f"value), got inf in column(s) {infinite.tolist()}"
            )
        finite = np.isfinite(data)
        counts = finite.sum(axis=0)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            raise ValueError(
                f"x must have a finite value in every column among the fitted rows; "
                f"column(s) {empty.tolist()} have none"
            )
        filled = np.where(finite, data, 0.0)
        mean = filled.sum(axis=0) / counts
        var = (np.where(finite, data - mean, 0.0) ** 2).sum(axis=0) / counts
        std = np.sqrt(var)
        self.mean_ = mean
        self.scale_ = np.where(std < self.eps, 1.0, std)
        return self

    def transform(self, x: _A, columns: Sequence[int] | None = None) -> _A:
        """Return ``(x - mean) / std`` column-wise (``NaN`` stays ``NaN``).

        Parameters
        ----------
        x : torch.Tensor or numpy.ndarray
            Shape ``(..., F)`` (or ``(..., len(columns))``).
        columns : sequence of int, optional
            Which fitted columns the last axis of ``x`` holds, e.g. ``[target_index]``.

        Returns
        -------
        torch.Tensor or numpy.ndarray
            Same type, shape, dtype and device as ``x``; ``x`` itself when disabled.

        Raises
        ------
        RuntimeError
            If the scaler is not fitted.
        ValueError
            If the last axis of ``x`` does not match the (selected) columns.

        Examples
        --------
        >>> s = ZScoreScaler().fit(np.array([[0.0, 1.0], [2.0, 3.0]]))
        >>> s.transform(torch.tensor([[2.0, 2.0]]))
        tensor([[1., 0.]])
        """
        return self._apply(x, columns, inverse=False)

    def inverse_transform(self, x: _A, columns: Sequence[int] | None = None) -> _A:
        """Map scaled values back to original units: ``x * std + mean``.

        Parameters
        ----------
        x : torch.Tensor or numpy.ndarray
            Shape ``(..., F)`` (or ``(..., len(columns))``), e.g. model predictions.
        columns : sequence of int, optional
            Which fitted columns the last axis of ``x`` holds.

        Returns
        -------
        torch.Tensor or numpy.ndarray
            Same type, shape, dtype and device as ``x``.

        Raises
        ------
        RuntimeError
            If the scaler is not fitted.
        ValueError
            If the last axis of ``x`` does not match the (selected) columns.

        Examples
        --------
        >>> s = ZScoreScaler().fit(np.array([[0.0, 1.0], [2.0, 3.0]]))
        >>> s.inverse_transform(torch.tensor([[1.0]]), columns=[1])
        tensor([[3.]])
        """
        return self._apply(x, columns, inverse=True)

    def state_dict(self) -> dict[str, Any]:
        """Return the fitted state as plain data (JSON-ready lists).

        Returns
        -------
        dict
            ``enabled``, ``eps``, ``mean`` and ``scale``.

        Raises
        ------
        RuntimeError
            If the scaler is not fitted.

        Examples
        --------
        >>> state = ZScoreScaler().fit(np.array([[0.0], [2.0]])).state_dict()
        >>> state["mean"], state["scale"]
        ([1.0], [1.0])
        >>> ZScoreScaler.from_state_dict(state).mean_
        array([1.])
        """
        mean, scale = self._stats()
        return {
            "enabled": self.enabled,
            "eps": self.eps,
            "mean": mean.tolist(),
            "scale": scale.tolist(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ZScoreScaler:
        """Rebuild a fitted scaler from :meth:`state_dict` output.

        Parameters
        ----------
        state : dict
            As returned by :meth:`state_dict`.

        Returns
        -------
        ZScoreScaler
            A fitted scaler.

        Raises
        ------
        ValueError
            If the state is incomplete or inconsistent, or holds a non-finite mean or a
            scale that is not finite and positive.

        Examples
        --------
        >>> ZScoreScaler.from_state_dict({"enabled": True, "eps": 0.0, "mean": [1.0],
        ...                               "scale": [2.0]}).scale_
        array([2.])
        """
        try:
            scaler = cls(enabled=state["enabled"], eps=state["eps"])
            mean = np.asarray(state["mean"], dtype=np.float64)
            scale = np.asarray(state["scale"], dtype=np.float64)
        except (KeyError, TypeError) as exc:
            raise ValueError(
                f"state must come from ZScoreScaler.state_dict, got {state!r}"
            ) from exc
        if (
            mean.ndim != 1
            or mean.shape != scale.shape
            or not np.all(np.isfinite(mean))
            or not np.all(np.isfinite(scale) & (scale > 0))
        ):
            raise ValueError(
                "state must hold equal-length 1-D finite mean and finite positive scale, got "
                f"{state!r}"
            )
        scaler.mean_, scaler.scale_ = mean, scale
        return scaler

    # ------------------------------------------------------------------ helpers
    def _stats(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError("this ZScoreScaler is not fitted yet; call fit() first")
        return self.mean_, self.scale_

    def _apply(self, x: _A, columns: Sequence[int] | None, *, inverse: bool) -> _A:
        mean, scale = self._stats()
        if columns is not None:
            cols = list(columns)
            if not cols or any(
                isinstance(c, bool) or not isinstance(c, (int, np.integer)) for c in cols
            ):
                raise ValueError(f"columns must be a non-empty sequence of ints, got {columns!r}")
            if min(cols) < -mean.shape[0] or max(cols) >= mean.shape[0]:
                raise ValueError(
                    f"columns must be in [0, {mean.shape[0]}) for this scaler, got {columns!r}"
                )
            mean, scale = mean[cols], scale[cols]
        if not isinstance(x, (torch.Tensor, np.ndarray)):
            raise TypeError(f"x must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
        if x.ndim == 0 or x.shape[-1] != mean.shape[0]:
            raise ValueError(
                f"x must have {mean.shape[0]} features on its last axis, got shape {tuple(x.shape)}"
            )
        if not self.enabled:
            return x
        if isinstance(x, torch.Tensor):
            dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
            m = torch.as_tensor(mean, dtype=dtype, device=x.device)
            s = torch.as_tensor(scale, dtype=dtype, device=x.device)
            return x * s + m if inverse else (x - m) / s
        out_dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        y = x * scale + mean if inverse else (x - mean) / scale
        return y.astype(out_dtype, copy=False)


def _as_float64_numpy(x: torch.Tensor | npt.ArrayLike) -> npt.NDArray[np.float64]:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"x must be a numeric array or tensor, got {type(x).__name__}") from exc
