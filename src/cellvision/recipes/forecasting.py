"""The benzene study: next-hour forecasts on month folds, as code that reads top to bottom.

Predict the benzene concentration ``C6H6(GT)`` of the UCI Air Quality data one hour ahead
from the previous 48 hours with RNN, GRU and LSTM regressors, on six folds that each
withhold two calendar months, and compare every model with the persistence baseline. The
steps, each a library building block:

1. :func:`build_windows`: load the data (the bundled copy by default), forward-fill the
   inputs (causal), add calendar, lagged and (optionally) missing-indicator columns
   (:mod:`cellvision.data.features`) and cut 48-hour windows whose target, as measured, is
   the next hour (:class:`~cellvision.data.windows.SlidingWindowDataset`);
2. :func:`month_folds`: :class:`~cellvision.splits.MonthFoldSplitter` folds that purge
   windows straddling a fold boundary, and optionally a validation slice carved from each
   fold's training windows with :class:`~cellvision.splits.TimeHoldoutSplitter` (a gap of
   one window; the test months are never used to choose anything);
3. :func:`train`: one model on one fold: a z-score scaler fitted on the rows of the fit
   windows only, AdamW with a one-cycle schedule through :func:`~cellvision.engine.fit`,
   batches gathered by :func:`~cellvision.data.windows.window_loader`;
4. :func:`predict`: predictions in original units (µg/m³);
5. :func:`run_month_folds`: every seed x cell x fold x ensemble member, the members'
   predictions averaged, test MSEs next to :func:`~cellvision.metrics.persistence_mse`.

>>> recipe = ForecastRecipe.quick(cells=("gru",), folds=(2,), epochs=1)
>>> result = run_month_folds(recipe)
>>> result.fold_names, sorted(result.persistence)
({2: 'May-Jun'}, [2])
>>> result.mean_test_mse("gru") < result.persistence[2]
True

The command ``cellvision benzene`` runs :func:`run_month_folds` and writes its table,
``results.json`` and figures; :func:`sweep_objective` is the objective of
``cellvision sweep benzene``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 (PyTorch's own convention)

from cellvision.checkpoint import save_checkpoint
from cellvision.config import (
    Config,
    check_choice,
    check_non_negative_int,
    check_positive_float,
    check_positive_int,
    check_probability,
)
from cellvision.data.airquality import AirQuality, load_air_quality
from cellvision.data.features import (
    FeatureColumns,
    calendar_columns,
    lagged_columns,
    missing_indicator_columns,
)
from cellvision.data.scaling import ZScoreScaler
from cellvision.data.windows import SlidingWindowDataset, window_loader
from cellvision.engine import History, fit
from cellvision.metrics import persistence_mse
from cellvision.models import create_model
from cellvision.splits import MonthFoldSplitter, TimeHoldoutSplitter

__all__ = [
    "CELLS",
    "SWEEP_FOLDS",
    "CellFoldResult",
    "Fold",
    "ForecastRecipe",
    "MemberResult",
    "MonthFoldResult",
    "TrainedForecaster",
    "build_windows",
    "model_seed",
    "month_folds",
    "predict",
    "run_month_folds",
    "save_learning_curves",
    "sweep_objective",
    "targets_of",
    "train",
]

#: The recurrent cells the study compares, in the order of the table.
CELLS: tuple[str, ...] = ("rnn", "gru", "lstm")

#: Called after every epoch with a running step and the epoch's MSE in original units.
EpochCallback = Callable[[int, float], object]

_EVAL_BATCH_SIZE = 1024


# --------------------------------------------------------------------------- the recipe
@dataclasses.dataclass(frozen=True, kw_only=True)
class ForecastRecipe(Config):
    """Every choice of the benzene study; the defaults are the recipe of the tutorial.

    Parameters
    ----------
    target : str, default "C6H6(GT)"
        Column to forecast (benzene, µg/m³).
    drop_columns : tuple of str, default ("NMHC(GT)",)
        Input columns to leave out (``NMHC(GT)`` is about 90% missing); columns absent from
        the data are ignored. Must not hold ``target``.
    fill : {"ffill", "none"}, default "ffill"
        Missing inputs: carried forward from the last reading (causal), or left missing (the
        windows that contain them are skipped). Targets are never filled: windows whose
        target is missing are skipped.
    missing_indicators : bool, default False
        Add a 0/1 input per column with gaps, marking the readings that were missing.
    hour_one_hot : bool, default True
        Add a one-hot code of the hour of day to the cyclic hour and weekday inputs (a
        weekend flag is always added).
    lags : tuple of int, default (23,)
        Also give ``lagged_columns`` shifted back by each lag, in hours (23: at the
        window's last step, the target's hour one day earlier); ``()`` for none.
    lagged_columns : tuple of str, default benzene, its sensor ``PT08.S2(NMHC)``, CO, NOx
        Columns given as lagged copies; those absent from the data are ignored.
    window : int, default 48
        Input hours per sample.
    horizon : int, default 1
        Hours from the window's last step to the target (1 = the next hour).
    scale : bool, default True
        Z-score inputs and target with statistics of each fold's fit windows (``False``:
        train on raw units).
    months_per_fold : int, default 2
        Consecutive calendar months withheld per fold (2: six folds, Jan-Feb ... Nov-Dec).
    folds : tuple of int, optional
        Run only these fold indices (0 = Jan-Feb ... 5 = Nov-Dec); default all.
    val_fraction : float, default 0.0
        Share of each fold's training windows (the latest in time, after a gap of one window)
        held out to choose each model's epoch; 0: no validation slice, every training window
        trains and the last epoch of the fixed schedule is kept. In ``[0, 0.5)``.
    cells : tuple of {"rnn", "gru", "lstm"}, default all three
        Recurrent cells to compare.
    hidden_size : int, default 64
        Width of the recurrent state.
    num_layers : int, default 2
        Stacked recurrent layers.
    dropout : float, default 0.1
        Dropout between layers and before the output layer.
    epochs : int, default 12
        Training epochs (a fixed schedule).
    batch_size : int, default 128
        Training windows per batch.
    lr : float, default 2e-3
        Peak learning rate.
    weight_decay : float, default 1e-2
        AdamW weight decay (on every parameter).
    schedule : {"one_cycle", "constant"}, default "one_cycle"
        Learning rate per batch: :class:`torch.optim.lr_scheduler.OneCycleLR` (warm-up to
        ``lr``, then cosine annealing to almost zero), or ``lr`` throughout.
    warmup_fraction : float, default 0.2
        Share of the one-cycle schedule spent warming up, in ``(0, 1)``.
    grad_clip_norm : float, optional, default 1.0
        Gradient-norm clip; ``None`` for none.
    ensemble_size : int, default 4
        Models per cell and fold (different initialisation and batch order); their
        predictions are averaged.
    seeds : tuple of int, default (0,)
        Seeds to run; the table reports the mean (and spread) over them.

    Raises
    ------
    ValueError
        If a field is out of range or repeats an entry (the message names the field).
    TypeError
        If a field has the wrong type.

    Examples
    --------
    >>> ForecastRecipe().window, ForecastRecipe.quick().window
    (48, 24)
    >>> ForecastRecipe(cells=("lstm", "transformer"))
    Traceback (most recent call last):
        ...
    ValueError: cells must be one of ('rnn', 'gru', 'lstm'), got 'transformer'
    """

    target: str = "C6H6(GT)"
    drop_columns: tuple[str, ...] = ("NMHC(GT)",)
    fill: Literal["ffill", "none"] = "ffill"
    missing_indicators: bool = False
    hour_one_hot: bool = True
    lags: tuple[int, ...] = (23,)
    lagged_columns: tuple[str, ...] = ("C6H6(GT)", "PT08.S2(NMHC)", "CO(GT)", "NOx(GT)")
    window: int = 48
    horizon: int = 1
    scale: bool = True
    months_per_fold: int = 2
    folds: tuple[int, ...] | None = None
    val_fraction: float = 0.0
    cells: tuple[str, ...] = CELLS
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.1
    epochs: int = 12
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-2
    schedule: Literal["one_cycle", "constant"] = "one_cycle"
    warmup_fraction: float = 0.2
    grad_clip_norm: float | None = 1.0
    ensemble_size: int = 4
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or not self.target:
            raise TypeError(f"target must be a column name, got {self.target!r}")
        _check_names("drop_columns", self.drop_columns)
        if self.target in self.drop_columns:
            raise ValueError(f"drop_columns must not hold the target, got {self.drop_columns!r}")
        check_choice("fill", self.fill, ("ffill", "none"))
        for name in ("missing_indicators", "hour_one_hot", "scale"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        _check_unique("lags", self.lags)
        for lag in self.lags:
            check_positive_int("lags", lag)
        _check_names("lagged_columns", self.lagged_columns)
        for name in ("window", "horizon", "hidden_size", "num_layers", "epochs", "batch_size"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("ensemble_size", self.ensemble_size)
        check_choice("months_per_fold", self.months_per_fold, (1, 2, 3, 4, 6))
        if self.folds is not None:
            _check_unique("folds", self.folds)
            n_folds = 12 // self.months_per_fold
            for k in self.folds:
                check_non_negative_int("folds", k)
                if k >= n_folds:
                    raise ValueError(f"folds must be indices in [0, {n_folds}), got {self.folds!r}")
        if isinstance(self.val_fraction, bool) or not isinstance(
            self.val_fraction, (int, float, np.integer, np.floating)
        ):
            raise TypeError(f"val_fraction must be a number in [0, 0.5), got {self.val_fraction!r}")
        if not 0.0 <= float(self.val_fraction) < 0.5:
            raise ValueError(f"val_fraction must be in [0, 0.5), got {self.val_fraction!r}")
        _check_unique("cells", self.cells)
        for cell in self.cells:
            check_choice("cells", cell, CELLS)
        check_probability("dropout", self.dropout)
        check_positive_float("lr", self.lr)
        if isinstance(self.weight_decay, bool) or not (
            isinstance(self.weight_decay, (int, float, np.integer, np.floating))
            and 0.0 <= float(self.weight_decay) < math.inf
        ):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        check_choice("schedule", self.schedule, ("one_cycle", "constant"))
        check_probability("warmup_fraction", self.warmup_fraction)
        if not float(self.warmup_fraction) > 0.0:
            raise ValueError(f"warmup_fraction must be in (0, 1), got {self.warmup_fraction!r}")
        if self.grad_clip_norm is not None:
            check_positive_float("grad_clip_norm", self.grad_clip_norm)
        _check_unique("seeds", self.seeds)
        for seed in self.seeds:
            check_non_negative_int("seeds", seed)

    @classmethod
    def quick(cls, **overrides: Any) -> ForecastRecipe:
        """Return the small smoke-run recipe (``cellvision benzene --quick``).

        24-hour windows, one model (no ensemble) of one layer of 32 units per cell and fold,
        6 epochs at learning rate ``5e-3``; everything else as the default recipe.

        Parameters
        ----------
        **overrides
            Fields to set on top (they win over the quick values).

        Returns
        -------
        ForecastRecipe
            The validated recipe.

        Raises
        ------
        ValueError, TypeError
            If an override is invalid.

        Examples
        --------
        >>> ForecastRecipe.quick(epochs=2).epochs, ForecastRecipe.quick().ensemble_size
        (2, 1)
        """
        quick: dict[str, Any] = {
            "window": 24,
            "ensemble_size": 1,
            "hidden_size": 32,
            "num_layers": 1,
            "epochs": 6,
            "lr": 5e-3,
        }
        return cls.from_dict({**quick, **overrides})


def _check_unique(name: str, values: object) -> None:
    if not isinstance(values, tuple):
        raise TypeError(f"{name} must be a tuple, got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must not repeat an entry, got {values!r}")


def _check_names(name: str, values: object) -> None:
    _check_unique(name, values)
    if not all(isinstance(v, str) and v for v in values):  # type: ignore[attr-defined]
        raise TypeError(f"{name} must hold column names, got {values!r}")


def model_seed(seed: int, cell: str, fold: int, member: int) -> int:
    """Return the torch seed of one model: distinct for every seed, cell, fold and member.

    Parameters
    ----------
    seed : int
        The run's seed (``ForecastRecipe.seeds``).
    cell : {"rnn", "gru", "lstm"}
        The recurrent cell.
    fold : int
        The month-fold index.
    member : int
        The ensemble member.

    Returns
    -------
    int
        ``seed * 100000 + member * 1000 + cell index * 10 + fold``.

    Raises
    ------
    ValueError
        If ``cell`` is unknown.

    Examples
    --------
    >>> model_seed(1, "lstm", 3, 2)
    102023
    """
    check_choice("cell", cell, CELLS)
    return seed * 100_000 + member * 1_000 + CELLS.index(cell) * 10 + fold


# --------------------------------------------------------------------------- 1. data
def build_windows(
    recipe: ForecastRecipe, air_quality: AirQuality | None = None
) -> SlidingWindowDataset:
    """Build the study's windows: filled inputs plus calendar and lag columns, raw targets.

    Parameters
    ----------
    recipe : ForecastRecipe
        Data choices (columns, fill, extra inputs, window, horizon).
    air_quality : AirQuality, optional
        The data; default the copy bundled with cellvision
        (:func:`~cellvision.data.airquality.load_air_quality`).

    Returns
    -------
    SlidingWindowDataset
        Named columns (measurements, ``hour_sin`` ... ``weekend``, ``<column>_lag<L>``,
        ``<column>_missing``), the target as measured, timestamps for the folds; windows
        with a missing input are skipped.

    Raises
    ------
    ValueError
        If the data lack the target column.

    Examples
    --------
    >>> windows = build_windows(ForecastRecipe())
    >>> len(windows), len(windows.input_columns), windows.columns[-4:]
    (8920, 45, ('C6H6(GT)_lag23', 'PT08.S2(NMHC)_lag23', 'CO(GT)_lag23', 'NOx(GT)_lag23'))
    """
    aq = load_air_quality() if air_quality is None else air_quality
    if recipe.target not in aq.columns:
        raise ValueError(f"air_quality must have the target column {recipe.target!r}")
    dropped = [c for c in recipe.drop_columns if c in aq.columns]
    if dropped:
        aq = aq.drop(dropped)
    filled = aq.fill_missing(recipe.fill)  # "ffill" is causal: only earlier readings fill
    blocks = [
        FeatureColumns(filled.values, aq.columns),
        calendar_columns(aq.timestamps, hour_one_hot=recipe.hour_one_hot, weekend=True),
    ]
    lagged = [c for c in recipe.lagged_columns if c in aq.columns]
    if recipe.lags and lagged:
        # readings from L hours before each step (NaN for the first L rows: those windows
        # are skipped below)
        blocks.append(lagged_columns(filled.select(lagged).values, lagged, recipe.lags))
    if recipe.missing_indicators:
        blocks.append(missing_indicator_columns(aq.values, aq.columns))
    series = FeatureColumns.concat(blocks)
    return SlidingWindowDataset(
        series.values,
        window=recipe.window,
        horizon=recipe.horizon,
        target_columns=[recipe.target],
        targets=aq[recipe.target],  # never filled: windows with a missing target are skipped
        timestamps=aq.timestamps,
        columns=series.names,
        # a leading gap survives forward filling; such windows cannot be used
        drop_incomplete_inputs=True,
    )


# --------------------------------------------------------------------------- 2. folds
@dataclasses.dataclass(frozen=True, eq=False)
class Fold:
    """One month fold: sample indices to fit on, to validate on (maybe none) and to test on.

    Attributes
    ----------
    index : int
        Fold index (0 = the first months of the year).
    name : str
        E.g. ``"Mar-Apr"``.
    fit, val, test : numpy.ndarray
        Sorted ``int64`` sample indices; ``val`` is empty without a validation slice.
    """

    index: int
    name: str
    fit: npt.NDArray[np.int64]
    val: npt.NDArray[np.int64]
    test: npt.NDArray[np.int64]


def month_folds(recipe: ForecastRecipe, windows: SlidingWindowDataset) -> list[Fold]:
    """Split the windows into purged month folds, each with an optional validation slice.

    A window is a test sample of a fold when its whole span (start to target) lies in the
    fold's months and a training sample when none of it does
    (:class:`~cellvision.splits.MonthFoldSplitter`). With ``recipe.val_fraction > 0`` the
    latest share of the training windows validates, and only training windows whose target
    lies more than one window before the first validation window are fit on
    (:class:`~cellvision.splits.TimeHoldoutSplitter` with ``gap=window``): no reading is
    shared between fit, validation and test windows.

    Parameters
    ----------
    recipe : ForecastRecipe
        ``months_per_fold``, ``folds`` and ``val_fraction``.
    windows : SlidingWindowDataset
        From :func:`build_windows`.

    Returns
    -------
    list of Fold
        In fold order; folds without test or training windows are skipped with a warning.

    Raises
    ------
    ValueError
        If a validation slice leaves no fit window.

    Examples
    --------
    >>> recipe = ForecastRecipe(folds=(1,), val_fraction=0.1)
    >>> [fold] = month_folds(recipe, build_windows(recipe))
    >>> fold.name, fold.val.size > 0, int(fold.fit.max()) < int(fold.val.min())
    ('Mar-Apr', True, True)
    """
    splitter = MonthFoldSplitter(months_per_fold=recipe.months_per_fold, empty="skip")
    spans = windows.sample_timestamps
    end = windows.end_rows
    rows = np.stack([end - (windows.window - 1), end, end + windows.horizon], axis=1)
    folds: list[Fold] = []
    for train, test in splitter.split(spans, groups=spans):
        # which fold this is (a skipped empty fold would shift a plain count)
        month = int(spans[test[0], 0].astype("datetime64[M]").astype(np.int64)) % 12
        k = month // recipe.months_per_fold
        if recipe.folds is not None and k not in recipe.folds:
            continue
        train_idx = np.asarray(train, np.int64)
        if recipe.val_fraction > 0:
            holdout = TimeHoldoutSplitter(recipe.val_fraction, gap=windows.window)
            fit_pos, val_pos = next(holdout.split(train_idx, groups=rows[train_idx]))
            fit_idx, val_idx = train_idx[fit_pos], train_idx[val_pos]
        else:  # no validation slice: the fixed schedule's last epoch is used
            fit_idx, val_idx = train_idx, train_idx[:0]
        folds.append(Fold(k, splitter.fold_names[k], fit_idx, val_idx, np.asarray(test, np.int64)))
    return folds


# --------------------------------------------------------------------------- 3. one model
@dataclasses.dataclass(eq=False)
class TrainedForecaster:
    """One trained model of the study and what is needed to use it.

    Attributes
    ----------
    model : torch.nn.Module
        The recurrent regressor (eval mode after :func:`predict`).
    scaler : ZScoreScaler
        Fitted on the rows of the fold's fit windows.
    windows : SlidingWindowDataset
        The study's windows in scaled units (same sample indices as the unscaled ones).
    history : History
        Per-epoch records of :func:`~cellvision.engine.fit` (scaled units).
    best_epoch : int
        The epoch whose weights the model holds (the last one without a validation slice).
    curve : list of dict
        Per epoch: ``epoch``, ``train_mse`` and (with a validation slice) ``val_mse`` in
        original units, (µg/m³)².
    recipe : ForecastRecipe
        The recipe it was trained with.
    cell, fold, seed, member
        Which model of the study it is.
    """

    model: torch.nn.Module
    scaler: ZScoreScaler
    windows: SlidingWindowDataset
    history: History
    best_epoch: int
    curve: list[dict[str, float]]
    recipe: ForecastRecipe
    cell: str
    fold: int
    seed: int
    member: int

    def save(self, path: str | Path) -> Path:
        """Write the model with its recipe, scaler, input columns and history.

        Parameters
        ----------
        path : str or pathlib.Path
            Checkpoint file (directories are created).

        Returns
        -------
        pathlib.Path
            The written file (read it with :func:`cellvision.checkpoint.load_checkpoint`).
        """
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return save_checkpoint(
            path,
            self.model,
            epoch=self.best_epoch,
            extra={
                "recipe": self.recipe.to_dict(),
                "cell": self.cell,
                "fold": self.fold,
                "seed": self.seed,
                "member": self.member,
                "input_columns": [str(c) for c in (self.windows.columns or ())],
                "scaler": self.scaler.state_dict(),
                "history": self.history.to_dict(),
            },
        )


def train(
    recipe: ForecastRecipe,
    windows: SlidingWindowDataset,
    fold: Fold,
    *,
    cell: str = "lstm",
    seed: int = 0,
    member: int = 0,
    on_epoch: EpochCallback | None = None,
) -> TrainedForecaster:
    """Train one model of the study on one fold.

    Parameters
    ----------
    recipe : ForecastRecipe
        Model and training choices.
    windows : SlidingWindowDataset
        From :func:`build_windows` (original units).
    fold : Fold
        From :func:`month_folds`; only its ``fit`` (and ``val``) windows are read.
    cell : {"rnn", "gru", "lstm"}, default "lstm"
        The recurrent cell.
    seed, member : int, default 0
        Seed and ensemble member; with the cell and fold they give the torch seed
        (:func:`model_seed`), so a model is reproducible on its own.
    on_epoch : callable, optional
        ``on_epoch(epoch, mse)`` after each epoch, with the validation MSE (the training MSE
        without a validation slice) in original units; it may raise to stop training.

    Returns
    -------
    TrainedForecaster
        With a validation slice, holding the weights of the epoch with the lowest validation
        MSE; else those of the last epoch.

    Raises
    ------
    ValueError
        If ``cell`` is unknown.

    Examples
    --------
    >>> recipe = ForecastRecipe.quick(folds=(3,), epochs=1)
    >>> windows = build_windows(recipe)
    >>> [fold] = month_folds(recipe, windows)
    >>> trained = train(recipe, windows, fold, cell="gru")
    >>> [sorted(r) for r in trained.curve], trained.best_epoch
    ([['epoch', 'train_mse']], 1)
    """
    check_choice("cell", cell, CELLS)
    # Statistics from the rows the fit windows read: never from validation or test months.
    scaler = ZScoreScaler(enabled=recipe.scale).fit(
        windows.series, rows=windows.covered_rows(fold.fit)
    )
    scaled = windows.scaled(scaler)
    # target standard deviation: an MSE in scaled units times its square is in (ug/m3)^2
    to_original = 1.0 if scaler.scale_ is None else float(scaler.scale_[windows.target_columns[0]])

    torch_seed = model_seed(seed, cell, fold.index, member)
    torch.manual_seed(torch_seed)  # initialisation and dropout
    generator = torch.Generator().manual_seed(torch_seed)  # batch order
    train_loader = window_loader(
        scaled, fold.fit, batch_size=recipe.batch_size, shuffle=True, generator=generator
    )
    validate = fold.val.size > 0
    val_loader = window_loader(scaled, fold.val, batch_size=_EVAL_BATCH_SIZE) if validate else None

    model = create_model(
        f"{cell}_regressor",
        input_size=len(windows.input_columns),
        hidden_size=recipe.hidden_size,
        num_layers=recipe.num_layers,
        dropout=recipe.dropout,
        output_size=len(windows.target_columns),
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    scheduler = (
        torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=recipe.lr,
            total_steps=recipe.epochs * len(train_loader),
            pct_start=recipe.warmup_fraction,
        )
        if recipe.schedule == "one_cycle"
        else None
    )

    def report(history: History) -> None:
        if on_epoch is not None:
            record = history[-1]
            loss = record["val_loss"] if validate else record["train_loss"]
            on_epoch(int(record["epoch"]), float(loss) * to_original**2)

    history = fit(
        model,
        train_loader,
        optimizer,
        epochs=recipe.epochs,
        val_loader=val_loader,
        loss_fn=F.mse_loss,
        scheduler=scheduler,
        grad_clip_norm=recipe.grad_clip_norm,
        # with a validation slice: the epoch with the best validation MSE (never test data)
        restore_best=validate,
        on_epoch_end=report,
    )
    best = history.best_epoch() if validate else int(history.records[-1]["epoch"])
    curve = [
        {
            "epoch": r["epoch"],
            "train_mse": r["train_loss"] * to_original**2,
            **({"val_mse": r["val_loss"] * to_original**2} if validate else {}),
        }
        for r in history
    ]
    return TrainedForecaster(
        model=model,
        scaler=scaler,
        windows=scaled,
        history=history,
        best_epoch=best,
        curve=curve,
        recipe=recipe,
        cell=cell,
        fold=fold.index,
        seed=seed,
        member=member,
    )


# --------------------------------------------------------------------------- 4. predictions
@torch.no_grad()
def predict(trained: TrainedForecaster, indices: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return the model's forecasts for the given windows in original units (µg/m³).

    Parameters
    ----------
    trained : TrainedForecaster
        From :func:`train`.
    indices : array_like of int
        Sample indices of the study's windows (e.g. ``fold.test``).

    Returns
    -------
    numpy.ndarray
        ``float64`` forecasts of the target, one per index.

    Raises
    ------
    ValueError
        If an index is out of range.

    Examples
    --------
    >>> recipe = ForecastRecipe.quick(folds=(3,), epochs=1)
    >>> windows = build_windows(recipe)
    >>> [fold] = month_folds(recipe, windows)
    >>> predict(train(recipe, windows, fold), fold.test[:3]).shape
    (3,)
    """
    positions = np.asarray(indices, dtype=np.int64)
    if positions.size == 0:
        return np.zeros(0)
    model, scaled = trained.model, trained.windows
    model.eval()
    outputs = [model(x) for x, _ in window_loader(scaled, positions, batch_size=_EVAL_BATCH_SIZE)]
    pred = torch.cat(outputs).numpy()
    original = trained.scaler.inverse_transform(pred, columns=list(scaled.target_columns))
    return np.asarray(original[:, 0], dtype=np.float64)


def targets_of(windows: SlidingWindowDataset, indices: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return the measured target of each window (original units, ``float64``).

    Parameters
    ----------
    windows : SlidingWindowDataset
        From :func:`build_windows`.
    indices : array_like of int
        Sample indices.

    Returns
    -------
    numpy.ndarray
        The target value at each window's target hour.

    Examples
    --------
    >>> windows = build_windows(ForecastRecipe())
    >>> targets_of(windows, [0]).round(2)  # benzene at the first window's target hour
    array([10.6])
    """
    positions = np.asarray(indices, dtype=np.int64)
    rows = torch.as_tensor(windows.end_rows[positions] + windows.horizon)
    return windows.targets[rows, 0].double().numpy()


# --------------------------------------------------------------------------- 5. the study
@dataclasses.dataclass(frozen=True, eq=False)
class MemberResult:
    """What one trained model of a study produced (forecasts in original units).

    Attributes
    ----------
    seed, cell, fold, member
        Which model.
    test_pred, val_pred : numpy.ndarray
        Forecasts for the fold's test and validation windows.
    best_epoch : int
        The epoch whose weights were used.
    curve : list of dict
        Learning curve in (µg/m³)² (see :attr:`TrainedForecaster.curve`).
    cpu_seconds, wall_seconds : float
        Training and prediction time.
    """

    seed: int
    cell: str
    fold: int
    member: int
    test_pred: npt.NDArray[np.float64]
    val_pred: npt.NDArray[np.float64]
    best_epoch: int
    curve: list[dict[str, float]]
    cpu_seconds: float
    wall_seconds: float


@dataclasses.dataclass(frozen=True, eq=False)
class CellFoldResult:
    """The ensemble of one cell on one fold for one seed; MSEs in (µg/m³)².

    Attributes
    ----------
    cell, fold, seed
        Which ensemble.
    test_mse : float
        MSE of the averaged forecasts on the fold's test windows.
    val_mse : float or None
        The same on the validation slice (``None`` without one).
    member_test_mse : tuple of float
        Test MSE of each member on its own.
    members : tuple of MemberResult
        The members.
    """

    cell: str
    fold: int
    seed: int
    test_mse: float
    val_mse: float | None
    member_test_mse: tuple[float, ...]
    members: tuple[MemberResult, ...]


@dataclasses.dataclass(frozen=True, eq=False)
class MonthFoldResult:
    """Everything :func:`run_month_folds` measured.

    Attributes
    ----------
    recipe : ForecastRecipe
        The recipe that was run.
    input_columns : tuple of str
        Names of the model inputs.
    fold_names : dict of int to str
        The folds that were run.
    split_sizes : dict of int to dict
        Per fold: ``{"fit": n, "val": n, "test": n}`` windows.
    persistence : dict of int to float
        Per fold: the persistence baseline's test MSE in (µg/m³)².
    results : tuple of CellFoldResult
        One per seed, cell and fold.
    wall_seconds : float
        Duration of the run.
    """

    recipe: ForecastRecipe
    input_columns: tuple[str, ...]
    fold_names: dict[int, str]
    split_sizes: dict[int, dict[str, int]]
    persistence: dict[int, float]
    results: tuple[CellFoldResult, ...]
    wall_seconds: float

    def result(self, cell: str, fold: int, seed: int) -> CellFoldResult:
        """Return the ensemble result of ``cell`` on ``fold`` for ``seed``.

        Parameters
        ----------
        cell : str
            A cell of the recipe.
        fold : int
            A fold index that was run.
        seed : int
            A seed of the recipe.

        Returns
        -------
        CellFoldResult
            The result.

        Raises
        ------
        KeyError
            If that combination was not run.
        """
        for r in self.results:
            if (r.cell, r.fold, r.seed) == (cell, fold, seed):
                return r
        raise KeyError(f"no result for cell={cell!r}, fold={fold!r}, seed={seed!r}")

    def test_mse(self, cell: str, fold: int) -> float:
        """Return the test MSE of ``cell`` on ``fold``, the mean over the seeds.

        Parameters
        ----------
        cell : str
            A cell of the recipe.
        fold : int
            A fold index that was run.

        Returns
        -------
        float
            In (µg/m³)².
        """
        return float(np.mean([self.result(cell, fold, s).test_mse for s in self.recipe.seeds]))

    def seed_means(self, cell: str) -> list[float]:
        """Return the mean test MSE over the folds of ``cell``, one value per seed.

        Parameters
        ----------
        cell : str
            A cell of the recipe.

        Returns
        -------
        list of float
            In the order of ``recipe.seeds``.
        """
        folds = sorted(self.fold_names)
        return [
            float(np.mean([self.result(cell, k, s).test_mse for k in folds]))
            for s in self.recipe.seeds
        ]

    def mean_test_mse(self, cell: str) -> float:
        """Return the test MSE of ``cell``, mean over folds and seeds.

        Parameters
        ----------
        cell : str
            A cell of the recipe.

        Returns
        -------
        float
            In (µg/m³)²; compare with :meth:`mean_persistence_mse`.
        """
        return float(np.mean(self.seed_means(cell)))

    def mean_persistence_mse(self) -> float:
        """Return the persistence baseline's test MSE, mean over the folds.

        Returns
        -------
        float
            In (µg/m³)².
        """
        return float(np.mean([self.persistence[k] for k in sorted(self.fold_names)]))

    def table(self) -> str:
        """Return the study's table: test MSE per fold and cell, persistence and the means.

        With several seeds each entry is the mean over the seeds and a ``sd/seeds`` row gives
        the standard deviation over the seeds of the mean over folds. With ensembles a
        ``single`` row gives the mean test MSE of the individual members.

        Returns
        -------
        str
            The table, figures to two decimals.
        """
        folds = sorted(self.fold_names)
        cells, seeds = list(self.recipe.cells), list(self.recipe.seeds)
        n_members = self.recipe.ensemble_size
        head = f"{'fold':<10}{'n_test':>7}{'persistence':>13}" + "".join(f"{c:>10}" for c in cells)
        title = f"Next-hour benzene {self.recipe.target}: test MSE in (ug/m3)^2"
        if self.recipe.horizon != 1:
            title = title.replace("Next-hour", f"{self.recipe.horizon}-hour-ahead")
        if n_members > 1:
            title += f", {n_members}-model ensembles"
        title += f", mean over seeds {seeds}" if len(seeds) > 1 else f", seed {seeds[0]}"
        lines = [title, head, "-" * len(head)]
        for k in folds:
            row = f"{self.fold_names[k]:<10}{self.split_sizes[k]['test']:>7d}"
            row += f"{self.persistence[k]:>13.2f}"
            lines.append(row + "".join(f"{self.test_mse(c, k):>10.2f}" for c in cells))
        lines.append("-" * len(head))
        per_seed = {c: self.seed_means(c) for c in cells}
        row = f"{'mean':<10}{'':>7}{self.mean_persistence_mse():>13.2f}"
        lines.append(row + "".join(f"{np.mean(per_seed[c]):>10.2f}" for c in cells))
        if len(seeds) > 1:
            row = f"{'sd/seeds':<10}{'':>7}{'':>13}"
            lines.append(row + "".join(f"{np.std(per_seed[c], ddof=1):>10.2f}" for c in cells))
        if n_members > 1:
            row = f"{'single':<10}{'':>7}{'':>13}"
            single = {
                c: np.mean(
                    [np.mean(self.result(c, k, s).member_test_mse) for k in folds for s in seeds]
                )
                for c in cells
            }
            lines.append(row + "".join(f"{single[c]:>10.2f}" for c in cells))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Return the results as JSON-ready data (the ``results.json`` of the command).

        Returns
        -------
        dict
            ``recipe``, ``input_columns``, per-fold ``folds`` (split sizes, persistence and,
            per ``<cell>_seed<seed>``, the ensemble and member MSEs, restored epochs and
            learning curves), ``mean_test_mse`` per cell and for persistence, and ``table``.
        """
        return {
            "recipe": self.recipe.to_dict(),
            "input_columns": list(self.input_columns),
            "folds": {
                self.fold_names[k]: {
                    **self.split_sizes[k],
                    "persistence_mse": self.persistence[k],
                    **{
                        f"{r.cell}_seed{r.seed}": {
                            "test_mse": r.test_mse,
                            "val_mse": r.val_mse,
                            "member_test_mse": list(r.member_test_mse),
                            "best_epochs": [m.best_epoch for m in r.members],
                            "curves": [m.curve for m in r.members],
                        }
                        for r in self.results
                        if r.fold == k
                    },
                }
                for k in sorted(self.fold_names)
            },
            "mean_test_mse": {
                "persistence": self.mean_persistence_mse(),
                **{c: self.mean_test_mse(c) for c in self.recipe.cells},
            },
            "table": self.table(),
            "timing": {
                "wall_seconds": self.wall_seconds,
                "training_cpu_seconds": sum(m.cpu_seconds for r in self.results for m in r.members),
            },
        }


class _RunningStep:
    """Turn per-model epoch numbers into one step count over the whole run."""

    def __init__(self, callback: EpochCallback) -> None:
        self.callback, self.step = callback, 0

    def __call__(self, _epoch: int, value: float) -> None:
        step, self.step = self.step, self.step + 1
        self.callback(step, value)


@dataclasses.dataclass(frozen=True)
class _Job:
    seed: int
    cell: str
    fold: int
    member: int


# Per worker process: the study's windows and folds, built once by the pool's initializer.
_WORKER_STATE: dict[str, Any] = {}


def _run_job(
    recipe: ForecastRecipe,
    windows: SlidingWindowDataset,
    folds: dict[int, Fold],
    job: _Job,
    checkpoint_dir: Path | None,
    on_epoch: EpochCallback | None,
) -> MemberResult:
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    fold = folds[job.fold]
    trained = train(
        recipe,
        windows,
        fold,
        cell=job.cell,
        seed=job.seed,
        member=job.member,
        on_epoch=on_epoch,
    )
    if checkpoint_dir is not None:
        trained.save(checkpoint_dir / f"{job.cell}_fold{job.fold}_seed{job.seed}_m{job.member}.pt")
    return MemberResult(
        seed=job.seed,
        cell=job.cell,
        fold=job.fold,
        member=job.member,
        test_pred=predict(trained, fold.test),
        val_pred=predict(trained, fold.val),
        best_epoch=trained.best_epoch,
        curve=trained.curve,
        cpu_seconds=time.process_time() - start_cpu,
        wall_seconds=time.perf_counter() - start_wall,
    )


def _init_worker(recipe: ForecastRecipe, air_quality: AirQuality | None, threads: int) -> None:
    torch.set_num_threads(threads)
    windows = build_windows(recipe, air_quality)
    _WORKER_STATE.update(
        recipe=recipe, windows=windows, folds={f.index: f for f in month_folds(recipe, windows)}
    )


def _worker_job(job: _Job, checkpoint_dir: Path | None) -> MemberResult:
    state = _WORKER_STATE
    return _run_job(state["recipe"], state["windows"], state["folds"], job, checkpoint_dir, None)


class _Progress:
    """A tqdm bar over the models on a terminal, else one line per model on stderr."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.done, self.bar = total, enabled, 0, None
        if enabled and sys.stderr.isatty():
            try:
                from tqdm.auto import tqdm
            except ImportError:  # the progress extra is optional: fall back to lines
                pass
            else:
                self.bar = tqdm(total=total, file=sys.stderr, unit="model", dynamic_ncols=True)

    def update(self, member: MemberResult, fold_name: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        what = f"seed {member.seed} {member.cell} {fold_name} #{member.member}"
        last = member.curve[-1] if member.curve else {}
        mse = last.get("val_mse", last.get("train_mse", math.nan))
        kind = "val" if "val_mse" in last else "train"
        if self.bar is not None:
            self.bar.set_description(what)
            self.bar.set_postfix({f"{kind}_mse": f"{mse:.2f}"})
            self.bar.update()
        else:
            print(
                f"[{self.done}/{self.total}] {what}: {len(member.curve)} epochs, last {kind} MSE "
                f"{mse:.2f}, {member.cpu_seconds:.1f} s CPU",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_month_folds(
    recipe: ForecastRecipe,
    air_quality: AirQuality | None = None,
    *,
    on_epoch: EpochCallback | None = None,
    progress: bool = False,
    workers: int = 1,
    checkpoint_dir: str | Path | None = None,
) -> MonthFoldResult:
    """Run the study: every seed x cell x fold x ensemble member, scored on the test months.

    Parameters
    ----------
    recipe : ForecastRecipe
        The study's choices.
    air_quality : AirQuality, optional
        The data; default the bundled copy.
    on_epoch : callable, optional
        ``on_epoch(step, mse)`` after every epoch of every model, ``step`` counting epochs
        over the whole run (0, 1, ...) and ``mse`` the epoch's validation MSE in (µg/m³)²
        (the training MSE without a validation slice); it may raise to stop the run. Needs
        ``workers=1``.
    progress : bool, default False
        Report each trained model on stderr: a tqdm bar on a terminal (if tqdm is
        installed), else one line per model.
    workers : int, default 1
        Train this many models at once in separate processes (each with this process's
        number of torch threads). The results do not depend on it: every model is seeded on
        its own (:func:`model_seed`).
    checkpoint_dir : str or pathlib.Path, optional
        Save every model there as ``<cell>_fold<k>_seed<s>_m<member>.pt``
        (:meth:`TrainedForecaster.save`).

    Returns
    -------
    MonthFoldResult
        Per fold and cell the ensembles' test MSEs in (µg/m³)², the persistence baseline,
        the members and their learning curves; ``table()`` and ``to_dict()``.

    Raises
    ------
    ValueError
        If ``workers`` is not positive, or ``on_epoch`` is given with ``workers > 1``.

    Examples
    --------
    >>> result = run_month_folds(ForecastRecipe.quick(cells=("rnn",), folds=(4,), epochs=1))
    >>> print(result.table())  # doctest: +ELLIPSIS
    Next-hour benzene C6H6(GT): test MSE in (ug/m3)^2, seed 0
    fold       n_test  persistence       rnn
    ----------------------------------------
    Sep-Oct      1421        25.33 ...
    """
    check_positive_int("workers", workers)
    if on_epoch is not None and workers > 1:
        raise ValueError(f"workers must be 1 when on_epoch is given, got {workers!r}")
    start = time.perf_counter()
    out_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
    windows = build_windows(recipe, air_quality)
    folds = {f.index: f for f in month_folds(recipe, windows)}
    persistence = {
        k: persistence_mse(windows.targets[:, 0], windows.end_rows[f.test], horizon=windows.horizon)
        for k, f in folds.items()
    }
    jobs = [
        _Job(seed, cell, k, member)
        for seed in recipe.seeds
        for cell in recipe.cells
        for k in folds
        for member in range(recipe.ensemble_size)
    ]
    bar = _Progress(len(jobs), progress)
    members: dict[_Job, MemberResult] = {}
    try:
        if workers == 1:
            count = None if on_epoch is None else _RunningStep(on_epoch)
            for job in jobs:
                member = _run_job(recipe, windows, folds, job, out_dir, count)
                members[job] = member
                bar.update(member, folds[job.fold].name)
        else:
            members.update(_run_pool(recipe, air_quality, jobs, out_dir, workers, folds, bar))
    finally:
        bar.close()
    return MonthFoldResult(
        recipe=recipe,
        input_columns=tuple(windows.columns or ()),
        fold_names={k: f.name for k, f in folds.items()},
        split_sizes={
            k: {"fit": int(f.fit.size), "val": int(f.val.size), "test": int(f.test.size)}
            for k, f in folds.items()
        },
        persistence=persistence,
        results=_ensembles(windows, folds, [members[job] for job in jobs]),
        wall_seconds=time.perf_counter() - start,
    )


def _run_pool(
    recipe: ForecastRecipe,
    air_quality: AirQuality | None,
    jobs: Sequence[_Job],
    out_dir: Path | None,
    workers: int,
    folds: dict[int, Fold],
    bar: _Progress,
) -> dict[_Job, MemberResult]:
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no torch state shared through fork
    done: dict[_Job, MemberResult] = {}
    with concurrent.futures.ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(recipe, air_quality, torch.get_num_threads()),
    ) as pool:
        futures = {pool.submit(_worker_job, job, out_dir): job for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            member = future.result()
            done[futures[future]] = member
            bar.update(member, folds[member.fold].name)
    return done


def _ensembles(
    windows: SlidingWindowDataset, folds: dict[int, Fold], members: Iterable[MemberResult]
) -> tuple[CellFoldResult, ...]:
    """Average the members' forecasts per (seed, cell, fold) and score them."""
    groups: dict[tuple[int, str, int], list[MemberResult]] = {}
    for m in members:
        groups.setdefault((m.seed, m.cell, m.fold), []).append(m)
    out = []
    for (seed, cell, k), group in groups.items():
        y_test, y_val = targets_of(windows, folds[k].test), targets_of(windows, folds[k].val)
        test_pred = np.mean([m.test_pred for m in group], axis=0)
        val_pred = np.mean([m.val_pred for m in group], axis=0)
        out.append(
            CellFoldResult(
                cell=cell,
                fold=k,
                seed=seed,
                test_mse=float(np.mean((test_pred - y_test) ** 2)),
                val_mse=float(np.mean((val_pred - y_val) ** 2)) if y_val.size else None,
                member_test_mse=tuple(float(np.mean((m.test_pred - y_test) ** 2)) for m in group),
                members=tuple(group),
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------- figures
def save_learning_curves(result: MonthFoldResult, out_dir: str | Path) -> list[Path]:
    """Save learning curves: one figure per cell (a panel per fold) and one comparing cells.

    The curves are those of the first seed's first ensemble member: training and (with a
    validation slice) validation MSE per epoch in (µg/m³)², epochs counted from 1. The test
    months are never evaluated per epoch.

    Parameters
    ----------
    result : MonthFoldResult
        From :func:`run_month_folds`.
    out_dir : str or pathlib.Path
        Directory for ``learning_curves.png`` and ``learning_curves_<cell>.png``.

    Returns
    -------
    list of pathlib.Path
        The written files.

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install "cellvision[plot]"``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            'learning-curve figures need matplotlib: pip install "cellvision[plot]"'
        ) from exc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = result.recipe.seeds[0]
    folds = sorted(result.fold_names)
    shown = {
        (c, k): result.result(c, k, seed).members[0] for c in result.recipe.cells for k in folds
    }
    validated = result.recipe.val_fraction > 0
    labels = {"train_mse": "training MSE", "val_mse": "validation MSE"}
    keys = ["train_mse", "val_mse"] if validated else ["train_mse"]
    paths: list[Path] = []
    for cell in result.recipe.cells:
        cols = min(3, len(folds))
        rows = math.ceil(len(folds) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.0 * rows), squeeze=False)
        for ax, k in zip(axes.flat, folds, strict=False):
            member = shown[(cell, k)]
            epochs = [r["epoch"] for r in member.curve]
            for key in keys:
                ax.plot(epochs, [r[key] for r in member.curve], marker="o", label=labels[key])
            if validated:
                ax.axvline(member.best_epoch, color="grey", linestyle=":", linewidth=1)
            ax.set_title(result.fold_names[k])
            ax.set_xlabel("epoch")
            ax.set_ylabel("MSE (ug/m3)^2")
            ax.legend()
        for ax in list(axes.flat)[len(folds) :]:
            ax.axis("off")
        marked = " (dotted: restored epoch)" if validated else ""
        fig.suptitle(f"{cell.upper()}: MSE per epoch{marked}")
        fig.tight_layout()
        path = out / f"learning_curves_{cell}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    compared = "val_mse" if validated else "train_mse"
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for cell in result.recipe.cells:
        n_epochs = min(len(shown[(cell, k)].curve) for k in folds)
        mean = [float(np.mean([shown[(cell, k)].curve[e][compared] for k in folds])) for e in
                range(n_epochs)]  # fmt: skip
        ax.plot(range(1, n_epochs + 1), mean, marker="o", label=cell.upper())
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (ug/m3)^2")
    ax.set_title(f"{labels[compared].capitalize()}, mean over {len(folds)} fold(s)")
    ax.legend()
    fig.tight_layout()
    path = out / "learning_curves.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    paths.append(path)
    return paths


# --------------------------------------------------------------------------- sweeps
#: Folds a sweep trial trains on: one (May-Jun) with ``quick``, else three spread over the year.
SWEEP_FOLDS: dict[bool, tuple[int, ...]] = {True: (2,), False: (0, 2, 4)}


def sweep_objective(
    trial: Any, *, quick: bool = False, seed: int = 0, air_quality: AirQuality | None = None
) -> float:
    """Optuna objective: the validation MSE of one model per fold under suggested settings.

    Suggests ``cell``, ``lr``, ``weight_decay``, ``hidden_size``, ``num_layers`` and
    ``dropout`` on ``trial``, then trains one model (no ensemble) on each fold of
    :data:`SWEEP_FOLDS` with a validation slice (the latest 10% of the fold's training
    windows, after a gap of one window). Every epoch's validation MSE is reported with
    ``trial.report(value, step)`` (``step`` counts epochs over the folds) and the trial is
    pruned (:class:`optuna.TrialPruned`) when ``trial.should_prune()``. The value never
    touches the test months.

    Parameters
    ----------
    trial : optuna.trial.Trial
        Or any object with ``suggest_float``, ``suggest_int``, ``suggest_categorical``,
        ``report`` and ``should_prune``.
    quick : bool, default False
        Start from :meth:`ForecastRecipe.quick` and train on one fold.
    seed : int, default 0
        Seed of the models.
    air_quality : AirQuality, optional
        The data; default the bundled copy.

    Returns
    -------
    float
        Mean over the folds of the validation MSE in (µg/m³)² (lower is better).

    Raises
    ------
    optuna.TrialPruned
        When the trial's pruner stops it.
    ImportError
        If a trial is pruned and Optuna is not installed.
    """
    base = ForecastRecipe.quick() if quick else ForecastRecipe()
    recipe = base.replace(
        cells=(trial.suggest_categorical("cell", list(CELLS)),),
        lr=trial.suggest_float("lr", 5e-4, 1e-2, log=True),
        weight_decay=trial.suggest_float("weight_decay", 1e-4, 1e-1, log=True),
        hidden_size=trial.suggest_categorical("hidden_size", [32, 64, 96]),
        num_layers=trial.suggest_int("num_layers", 1, 2),
        dropout=trial.suggest_float("dropout", 0.0, 0.3),
        ensemble_size=1,
        seeds=(seed,),
        folds=SWEEP_FOLDS[bool(quick)],
        val_fraction=base.val_fraction or 0.1,
    )
    windows = build_windows(recipe, air_quality)

    def report(step: int, value: float) -> None:
        trial.report(value, step)
        if trial.should_prune():
            try:
                import optuna
            except ImportError as exc:
                raise ImportError(
                    'pruning a sweep trial needs Optuna: pip install "cellvision[tune]"'
                ) from exc
            raise optuna.TrialPruned(f"pruned at step {step} (validation MSE {value:.3f})")

    values = []
    count = _RunningStep(report)
    for fold in month_folds(recipe, windows):
        trained = train(recipe, windows, fold, cell=recipe.cells[0], seed=seed, on_epoch=count)
        pred = predict(trained, fold.val)
        values.append(float(np.mean((pred - targets_of(windows, fold.val)) ** 2)))
    return float(np.mean(values))
