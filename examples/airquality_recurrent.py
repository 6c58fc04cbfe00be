"""Forecast next-hour benzene from 48 hours of sensor readings with RNN, GRU and LSTM cells.

The study of the original notebook, rebuilt from cellvision's building blocks:

* the UCI Air Quality data (bundled with the package, or ``--data PATH``) without the
  90%-missing ``NMHC(GT)`` column; inputs forward-filled (causal: a filled value never comes
  from a later hour), targets as measured (windows whose target is missing are skipped);
* inputs: the 12 measurement columns; hour of day (cyclic, plus a one-hot code:
  ``--no-hour-one-hot`` drops it), weekday (cyclic) and a weekend flag; and copies of
  benzene, its tin-oxide sensor, CO and NOx from 23 hours earlier (``--lags``), so the
  window's last step also shows the target's hour one day before;
* 48-hour windows (``--window``), target ``C6H6(GT)`` one hour after the window's last step;
* six folds of two calendar months (:class:`~cellvision.splits.MonthFoldSplitter`), purging
  windows that straddle a fold boundary;
* per fold: a z-score scaler fitted on the training rows only, AdamW (weight decay 1e-2)
  with a one-cycle learning-rate schedule over a fixed 12 epochs on every training window,
  and the weights of the last epoch (the test months are never looked at to choose
  anything). ``--val-fraction F`` instead holds out the latest ``F`` of the training
  windows in time (separated from the rest by a purge gap of one window) and restores each
  model's epoch with the best MSE on them;
* four models per cell and fold (``--ensemble``; different initialisation and batch order)
  whose predictions are averaged;
* per fold and cell: test MSE in original units ((ug/m3)^2) next to the persistence
  baseline (predict the last observed benzene value), and the mean over the folds.

Outputs under ``--out``: ``results.json``, learning curves as PNG (``learning_curves.png``
comparing the cells, ``learning_curves_<cell>.png`` per fold) and one checkpoint per cell
and fold. The final table goes to stdout and is identical for two runs with the same
seeds (whatever ``--workers``); progress and timings go to stderr.

Run ``python examples/airquality_recurrent.py --help`` for the options; ``--quick`` is a
small smoke run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 (PyTorch's own convention)
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Sampler, SubsetRandomSampler

from cellvision.checkpoint import save_checkpoint
from cellvision.data.airquality import (
    AIR_QUALITY_COLUMNS,
    AirQuality,
    calendar_features,
    load_air_quality,
)
from cellvision.data.scaling import ZScoreScaler
from cellvision.data.windows import SlidingWindowDataset, lag_features
from cellvision.engine import fit
from cellvision.models import create_model
from cellvision.splits import MonthFoldSplitter

TARGET = "C6H6(GT)"
DROPPED = ("NMHC(GT)",)
CELLS = ("rnn", "gru", "lstm")
CALENDAR_COLUMNS = ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")
#: Columns also given as lagged copies (``--lags``): benzene, its sensor, CO and NOx.
LAGGED_COLUMNS = ("C6H6(GT)", "PT08.S2(NMHC)", "CO(GT)", "NOx(GT)")


# --------------------------------------------------------------------------- arguments
def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser (defaults are the recipe reported in the tutorial)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        type=Path,
        default=None,
        help="an AirQualityUCI CSV file (any variant the loader accepts); default: the copy "
        "bundled with cellvision",
    )
    data.add_argument(
        "--drop",
        nargs="+",
        default=list(DROPPED),
        choices=[c for c in AIR_QUALITY_COLUMNS if c != TARGET],
        metavar="COLUMN",
        help="input columns to leave out",
    )
    data.add_argument(
        "--missing-indicators",
        action="store_true",
        help="add a 0/1 input per column with gaps telling whether the reading was filled",
    )
    data.add_argument("--window", type=int, default=48, help="input hours per sample")
    data.add_argument(
        "--hour-one-hot",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add a one-hot code of the hour of day to the cyclic calendar inputs",
    )
    data.add_argument(
        "--lags",
        type=int,
        nargs="*",
        default=[23],
        metavar="L",
        help="add copies of " + ", ".join(LAGGED_COLUMNS) + " shifted back L hours (23: at "
        "the window's last step, the same hour as the target one day earlier); pass no value "
        "for none",
    )
    data.add_argument(
        "--no-scale",
        action="store_true",
        help="turn the per-fold z-transform off (train on raw units)",
    )
    data.add_argument(
        "--folds",
        type=int,
        nargs="+",
        default=None,
        metavar="K",
        help="run only these fold indices (0 = Jan-Feb ... 5 = Nov-Dec); default all six",
    )
    data.add_argument(
        "--val-fraction",
        type=float,
        default=0.0,
        help="share of each fold's training windows (the latest in time) held out to choose "
        "each model's epoch; 0 (default): no validation slice, every training window trains "
        "and the last epoch of the fixed schedule is used",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--cells", nargs="+", choices=CELLS, default=list(CELLS), help="recurrent cells to compare"
    )
    model.add_argument("--hidden-size", type=int, default=64)
    model.add_argument("--num-layers", type=int, default=2)
    model.add_argument("--dropout", type=float, default=0.1)
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=12)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (one-cycle)")
    train.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay")
    train.add_argument("--grad-clip", type=float, default=1.0, help="gradient-norm clip")
    train.add_argument(
        "--ensemble",
        type=int,
        default=4,
        help="models per cell and fold (different initialisation and batch order); their "
        "predictions are averaged",
    )
    train.add_argument(
        "--seed", type=int, default=0, help="random seed (ignored when --seeds is given)"
    )
    train.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="run every seed and report the mean and spread over them, e.g. --seeds 0 1 2",
    )
    train.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; these small recurrent nets gain little from more, and extra "
        "threads spin idly on a busy machine",
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--quick",
        action="store_true",
        help="a small, fast run: 24-hour windows, one model (no ensemble) of one layer of 32 "
        "units per cell and fold, 6 epochs at lr 5e-3",
    )
    run.add_argument("--out", type=Path, default=Path("runs/airquality"), help="output directory")
    run.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="train this many models at once in separate processes of --threads threads "
        "each (the results do not depend on it)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    run.add_argument("--no-plots", action="store_true", help="skip the PNG learning curves")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check the arguments; ``--quick`` replaces the size defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in (
            ("window", 24),
            ("ensemble", 1),
            ("hidden_size", 32),
            ("num_layers", 1),
            ("epochs", 6),
            ("lr", 5e-3),
        ):
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    for name in (
        "window",
        "hidden_size",
        "num_layers",
        "epochs",
        "batch_size",
        "ensemble",
        "workers",
        "threads",
    ):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if any(lag < 1 for lag in args.lags):
        parser.error(f"--lags must be positive integers, got {args.lags!r}")
    if not 0.0 <= args.val_fraction < 0.5:
        parser.error(f"--val-fraction must be in [0, 0.5), got {args.val_fraction!r}")
    if args.folds is not None and any(not 0 <= k < 6 for k in args.folds):
        parser.error(f"--folds must be indices in [0, 6), got {args.folds!r}")
    args.cells = list(dict.fromkeys(args.cells))
    args.seeds = list(dict.fromkeys(args.seeds)) if args.seeds else [args.seed]
    return args


# --------------------------------------------------------------------------- data
def build_dataset(
    aq: AirQuality,
    window: int,
    missing_indicators: bool = False,
    hour_one_hot: bool = False,
    lags: Sequence[int] = (),
) -> SlidingWindowDataset:
    """Windows over forward-filled inputs plus calendar and lag columns; targets as measured."""
    filled = aq.fill_missing("ffill")  # causal: only earlier readings fill a gap
    calendar = calendar_features(aq.timestamps, hour_one_hot=hour_one_hot)
    weekday = (aq.timestamps.astype("datetime64[D]").astype(np.int64) + 3) % 7  # Monday = 0
    weekend = (weekday >= 5).astype(np.float32)[:, None]
    parts = [filled.values, calendar, weekend]
    names = [*aq.columns, *CALENDAR_COLUMNS]
    names += [f"hour_{h:02d}" for h in range(24)] if hour_one_hot else []
    names.append("weekend")
    lagged = [c for c in LAGGED_COLUMNS if c in aq.columns]
    if lags and lagged:
        # readings from L hours before each step (NaN for the first L rows: those windows
        # are dropped below)
        parts.append(lag_features(filled.select(lagged).values, lags))
        names += [f"{c}_lag{lag}" for lag in lags for c in lagged]
    if missing_indicators:
        gaps = np.isnan(aq.values)
        with_gaps = [j for j in range(gaps.shape[1]) if gaps[:, j].any()]
        parts.append(gaps[:, with_gaps].astype(np.float32))
        names += [f"{aq.columns[j]}_filled" for j in with_gaps]
    series = np.concatenate(parts, axis=1)
    return SlidingWindowDataset(
        series,
        window=window,
        horizon=1,
        target_columns=[TARGET],
        targets=aq[TARGET],  # never filled: windows with a missing target are skipped
        timestamps=aq.timestamps,
        columns=names,
        # a leading gap survives forward filling; such windows cannot be used
        drop_incomplete_inputs=True,
    )


def carve_validation(
    ds: SlidingWindowDataset, train_idx: npt.NDArray[np.int64], fraction: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Split a fold's training samples into (fit, validation) by time, with a purge gap.

    The validation samples are the latest ``fraction`` of the training samples; a fit sample
    is kept only if its target hour lies at least one window before the first validation
    window starts, so no fit sample shares a reading with a validation sample.
    """
    order = train_idx[np.argsort(ds.end_rows[train_idx], kind="stable")]
    n_val = max(1, round(fraction * order.size))
    val_idx = order[-n_val:]
    first_val_row = int(ds.end_rows[val_idx].min()) - (ds.window - 1)
    target_rows = ds.end_rows[order] + ds.horizon
    fit_idx = order[target_rows < first_val_row - ds.window]
    if fit_idx.size == 0:
        raise ValueError("the fold has too few training windows to carve a validation slice")
    return np.sort(fit_idx), np.sort(val_idx)


def make_loader(
    dataset: SlidingWindowDataset,
    indices: npt.NDArray[np.int64],
    batch_size: int,
    generator: torch.Generator | None = None,
) -> DataLoader[Any]:
    """A loader yielding whole batches gathered in one operation by the data set.

    A :class:`~torch.utils.data.BatchSampler` as ``sampler`` with ``batch_size=None`` hands
    each list of indices to ``dataset[indices]`` (no per-sample collate). With a
    ``generator`` the order is reshuffled every pass, reproducibly.
    """
    order: Sampler[int] | list[int] = (
        SubsetRandomSampler(indices.tolist(), generator=generator)
        if generator is not None
        else indices.tolist()
    )
    return DataLoader(
        dataset, batch_size=None, sampler=BatchSampler(order, batch_size, drop_last=False)
    )


# --------------------------------------------------------------------------- one fold
@dataclass(frozen=True)
class Job:
    """One model to train: ensemble ``member`` of ``cell`` on ``fold`` for ``seed``."""

    seed: int
    cell: str
    fold: int
    member: int

    @property
    def torch_seed(self) -> int:
        return self.seed * 100_000 + self.member * 1_000 + CELLS.index(self.cell) * 10 + self.fold


@dataclass
class MemberResult:
    """What one trained model produced (predictions and MSEs in original units)."""

    job: Job
    test_pred: npt.NDArray[np.float64]
    val_pred: npt.NDArray[np.float64]
    best_epoch: int
    records: list[dict[str, Any]]
    cpu_seconds: float
    wall_seconds: float


@dataclass
class Study:
    """The data set and its splits, shared by every job of a run."""

    ds: SlidingWindowDataset
    fold_names: tuple[str, ...]
    # fold -> (fit, validation, test) sample indices
    splits: dict[int, tuple[npt.NDArray[np.int64], ...]]


def build_study(args: argparse.Namespace) -> Study:
    """Load the data, build the windows and the purged month folds (and validation slices)."""
    aq = load_air_quality(args.data, drop_columns=args.drop)
    ds = build_dataset(aq, args.window, args.missing_indicators, args.hour_one_hot, args.lags)
    splitter = MonthFoldSplitter(months_per_fold=2, empty="skip")
    spans = ds.sample_timestamps
    splits: dict[int, tuple[npt.NDArray[np.int64], ...]] = {}
    for k, (train, test) in enumerate(splitter.split(spans, groups=spans)):
        if args.folds is None or k in args.folds:
            train_idx = np.asarray(train, np.int64)
            if args.val_fraction > 0:
                fit_idx, val_idx = carve_validation(ds, train_idx, args.val_fraction)
            else:  # no validation slice: the fixed schedule's last epoch is used
                fit_idx, val_idx = train_idx, train_idx[:0]
            splits[k] = (fit_idx, val_idx, np.asarray(test, np.int64))
    return Study(ds, splitter.fold_names, splits)


_STUDY: dict[str, Study] = {}  # per process: built once, reused by every job it runs


def run_job(args: argparse.Namespace, job: Job, study: Study | None = None) -> MemberResult:
    """Train one model and return its validation and test predictions in original units."""
    torch.set_num_threads(args.threads)
    if study is None:
        study = _STUDY.setdefault("study", build_study(args))
    ds = study.ds
    fit_idx, val_idx, test_idx = study.splits[job.fold]
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    # Statistics from the rows the fit windows read: never from validation or test months.
    scaler = ZScoreScaler(enabled=not args.no_scale).fit(ds.series, rows=ds.covered_rows(fit_idx))
    scaled = ds.scaled(scaler)
    # target standard deviation: an MSE in scaled units times its square is in (ug/m3)^2
    to_original = 1.0 if scaler.scale_ is None else float(scaler.scale_[ds.target_columns[0]])

    torch.manual_seed(job.torch_seed)
    generator = torch.Generator().manual_seed(job.torch_seed)
    train_loader = make_loader(scaled, fit_idx, args.batch_size, generator)
    validate = val_idx.size > 0
    val_loader = make_loader(scaled, val_idx, 1024) if validate else None

    model = create_model(
        f"{job.cell}_regressor",
        input_size=len(ds.input_columns),
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        dropout=args.dropout,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * len(train_loader), pct_start=0.2
    )
    history = fit(
        model,
        train_loader,
        optimizer,
        epochs=args.epochs,
        val_loader=val_loader,
        loss_fn=F.mse_loss,
        scheduler=scheduler,
        grad_clip_norm=args.grad_clip,
        # with a validation slice: the epoch with the best validation MSE (never test data)
        restore_best=validate,
    )
    best = history.best_epoch() if validate else int(history.records[-1]["epoch"])
    records = [
        {
            "epoch": r["epoch"],
            "train_mse": r["train_loss"] * to_original**2,
            **({"val_mse": r["val_loss"] * to_original**2} if validate else {}),
        }
        for r in history
    ]
    save_checkpoint(
        Path(args.out)
        / "checkpoints"
        / f"{job.cell}_fold{job.fold}_seed{job.seed}_m{job.member}.pt",
        model,
        epoch=best,
        extra={
            "fold": job.fold,
            "seed": job.seed,
            "member": job.member,
            "input_columns": [str(c) for c in (ds.columns or ())],
            "scaler": scaler.state_dict(),
            "history": history.to_dict(),
        },
    )
    return MemberResult(
        job=job,
        test_pred=predict(model, scaled, test_idx, scaler),
        val_pred=predict(model, scaled, val_idx, scaler),
        best_epoch=best,
        records=records,
        cpu_seconds=time.process_time() - start_cpu,
        wall_seconds=time.perf_counter() - start_wall,
    )


@torch.no_grad()
def predict(
    model: nn.Module,
    scaled: SlidingWindowDataset,
    indices: npt.NDArray[np.int64],
    scaler: ZScoreScaler,
) -> npt.NDArray[np.float64]:
    """Predictions for ``indices`` mapped back to original units (ug/m3)."""
    if indices.size == 0:
        return np.zeros(0)
    model.eval()
    outputs = [model(x) for x, _ in make_loader(scaled, indices, 1024)]
    pred = torch.cat(outputs).numpy()
    original = scaler.inverse_transform(pred, columns=list(scaled.target_columns))
    return np.asarray(original[:, 0], dtype=np.float64)


def targets_of(ds: SlidingWindowDataset, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Measured benzene at the target hour of each sample."""
    rows = torch.as_tensor(ds.end_rows[indices] + ds.horizon)
    return ds.targets[rows, 0].double().numpy()


def persistence_mse(ds: SlidingWindowDataset, test_idx: npt.NDArray[np.int64]) -> float:
    """MSE of predicting the last observed benzene value (the filled input at the window end)."""
    last = ds.series[torch.as_tensor(ds.end_rows[test_idx]), ds.target_columns[0]].double()
    return float(np.mean((last.numpy() - targets_of(ds, test_idx)) ** 2))


def run_jobs(
    args: argparse.Namespace, study: Study, jobs: Sequence[Job], bar: Any
) -> list[MemberResult]:
    """Run the jobs in this process or in ``--workers`` processes; results in job order."""
    results: dict[Job, MemberResult] = {}

    def done(r: MemberResult) -> None:
        results[r.job] = r
        if bar is not None:
            j = r.job
            bar.set_description(f"seed {j.seed} {j.cell} {study.fold_names[j.fold]} #{j.member}")
            bar.set_postfix(cpu_s=f"{r.cpu_seconds:.0f}")
            bar.update()

    if args.workers <= 1:
        for job in jobs:
            done(run_job(args, job, study))
    else:
        import concurrent.futures
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # no torch state shared through fork
        with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=context) as pool:
            futures = [pool.submit(run_job, args, job) for job in jobs]
            for future in concurrent.futures.as_completed(futures):
                done(future.result())
    return [results[job] for job in jobs]


# --------------------------------------------------------------------------- reporting
@dataclass
class CellFold:
    """The (ensemble) result of one cell on one fold for one seed, in (ug/m3)^2."""

    cell: str
    fold: int
    seed: int
    test_mse: float
    val_mse: float
    member_test_mse: list[float]
    members: list[MemberResult]


def combine(study: Study, members: Sequence[MemberResult]) -> list[CellFold]:
    """Average the members' predictions per (seed, cell, fold) and score them."""
    groups: dict[tuple[int, str, int], list[MemberResult]] = {}
    for m in members:
        groups.setdefault((m.job.seed, m.job.cell, m.job.fold), []).append(m)
    out = []
    for (seed, cell, fold), group in groups.items():
        _, val_idx, test_idx = study.splits[fold]
        y_test, y_val = targets_of(study.ds, test_idx), targets_of(study.ds, val_idx)
        test_pred = np.mean([m.test_pred for m in group], axis=0)
        val_pred = np.mean([m.val_pred for m in group], axis=0)
        out.append(
            CellFold(
                cell=cell,
                fold=fold,
                seed=seed,
                test_mse=float(np.mean((test_pred - y_test) ** 2)),
                val_mse=float(np.mean((val_pred - y_val) ** 2)) if y_val.size else math.nan,
                member_test_mse=[float(np.mean((m.test_pred - y_test) ** 2)) for m in group],
                members=list(group),
            )
        )
    return out


def format_table(
    study: Study,
    persistence: dict[int, float],
    results: Sequence[CellFold],
    cells: Sequence[str],
    seeds: Sequence[int],
) -> str:
    """The final table: test MSE per fold and cell, the persistence baseline and the means.

    With several seeds each cell's entry is the mean over the seeds, and a last row gives
    the spread (standard deviation over the seeds) of the mean over folds. With an ensemble,
    a row gives the mean over folds of the single members too.
    """
    folds = sorted(persistence)
    by_key = {(r.cell, r.fold, r.seed): r for r in results}
    n_members = len(results[0].members)
    head = f"{'fold':<10}{'n_test':>7}{'persistence':>13}" + "".join(f"{c:>10}" for c in cells)
    title = "Next-hour benzene C6H6(GT): test MSE in (ug/m3)^2"
    if n_members > 1:
        title += f", {n_members}-model ensembles"
    title += f", mean over seeds {list(seeds)}" if len(seeds) > 1 else f", seed {seeds[0]}"
    lines = [title, head, "-" * len(head)]
    for k in folds:
        row = f"{study.fold_names[k]:<10}{study.splits[k][2].size:>7d}{persistence[k]:>13.2f}"
        for cell in cells:
            row += f"{np.mean([by_key[(cell, k, s)].test_mse for s in seeds]):>10.2f}"
        lines.append(row)
    lines.append("-" * len(head))
    per_seed = {
        cell: [float(np.mean([by_key[(cell, k, s)].test_mse for k in folds])) for s in seeds]
        for cell in cells
    }
    row = f"{'mean':<10}{'':>7}{np.mean([persistence[k] for k in folds]):>13.2f}"
    lines.append(row + "".join(f"{np.mean(per_seed[c]):>10.2f}" for c in cells))
    if len(seeds) > 1:
        row = f"{'sd/seeds':<10}{'':>7}{'':>13}"
        lines.append(row + "".join(f"{np.std(per_seed[c], ddof=1):>10.2f}" for c in cells))
    if n_members > 1:
        row = f"{'single':<10}{'':>7}{'':>13}"
        single = {
            c: np.mean([np.mean(by_key[(c, k, s)].member_test_mse) for k in folds for s in seeds])
            for c in cells
        }
        lines.append(row + "".join(f"{single[c]:>10.2f}" for c in cells))
    return "\n".join(lines)


def save_plots(out_dir: Path, study: Study, members: Sequence[MemberResult]) -> list[Path]:
    """Learning curves: one figure per cell (a panel per fold) and one comparing the cells.

    Curves are those of the first seed's first ensemble member: training and validation MSE
    per epoch, or the training MSE alone without a validation slice (the test months are
    never evaluated per epoch).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cellvision.plotting import plot_history

    first = members[0].job
    shown = [m for m in members if m.job.seed == first.seed and m.job.member == 0]
    cells = list(dict.fromkeys(m.job.cell for m in shown))
    validated = "val_mse" in shown[0].records[0]
    compared = "val_mse" if validated else "train_mse"
    paths: list[Path] = []
    for cell in cells:
        runs = [m for m in shown if m.job.cell == cell]
        cols = min(3, len(runs))
        rows = math.ceil(len(runs) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.0 * rows), squeeze=False)
        for ax, m in zip(axes.flat, runs, strict=False):
            keys = ["train_mse", "val_mse"] if validated else ["train_mse"]
            plot_history(m.records, keys, ax=ax, title=study.fold_names[m.job.fold])
            if validated:
                ax.axvline(m.best_epoch, color="grey", linestyle=":", linewidth=1)
        for ax in list(axes.flat)[len(runs) :]:
            ax.axis("off")
        marked = " (dotted: restored epoch)" if validated else ""
        fig.suptitle(f"{cell.upper()}: MSE in (ug/m3)^2 per epoch{marked}")
        fig.tight_layout()
        path = out_dir / f"learning_curves_{cell}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    # Mean validation (else training) MSE over the folds, per epoch, one line per cell.
    n_epochs = min(len(m.records) for m in shown)
    records = [
        {
            "epoch": e,
            **{
                f"{cell}_{compared}": float(
                    np.mean([m.records[e][compared] for m in shown if m.job.cell == cell])
                )
                for cell in cells
            },
        }
        for e in range(n_epochs)
    ]
    fig = plot_history(
        records,
        [f"{cell}_{compared}" for cell in cells],
        title=f"{'Validation' if validated else 'Training'} MSE, mean over {len(study.splits)} "
        "fold(s)",
    )
    fig.axes[0].set_ylabel("MSE (ug/m3)^2")
    path = out_dir / "learning_curves.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    paths.append(path)
    return paths


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:  # the examples extra brings tqdm
        raise ImportError(
            'the progress bar needs tqdm: pip install "cellvision[progress]" (or pass '
            "--no-progress)"
        ) from exc
    return tqdm(total=total, file=sys.stderr, unit="model", dynamic_ncols=True)


# --------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """Run the study; return the process exit status."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    study = build_study(args)
    out_dir: Path = args.out
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    persistence = {k: persistence_mse(study.ds, test) for k, (_, _, test) in study.splits.items()}

    jobs = [
        Job(seed, cell, fold, member)
        for seed in args.seeds
        for cell in args.cells
        for fold in study.splits
        for member in range(args.ensemble)
    ]
    bar = _progress_bar(len(jobs), not args.no_progress)
    try:
        members = run_jobs(args, study, jobs, bar)
    finally:
        if bar is not None:
            bar.close()
    results = combine(study, members)

    table = format_table(study, persistence, results, args.cells, args.seeds)
    plots = [] if args.no_plots else save_plots(out_dir, study, members)
    cpu = sum(m.cpu_seconds for m in members)
    summary = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "input_columns": list(study.ds.columns or ()),
        "folds": {
            study.fold_names[k]: {
                "fit": int(fit_idx.size),
                "val": int(val_idx.size),
                "test": int(test_idx.size),
                "persistence_mse": persistence[k],
                **{
                    f"{r.cell}_seed{r.seed}": {
                        "test_mse": r.test_mse,
                        "val_mse": None if math.isnan(r.val_mse) else r.val_mse,
                        "member_test_mse": r.member_test_mse,
                        "best_epochs": [m.best_epoch for m in r.members],
                        "curves": [m.records for m in r.members],
                    }
                    for r in results
                    if r.fold == k
                },
            }
            for k, (fit_idx, val_idx, test_idx) in study.splits.items()
        },
        "mean_test_mse": {
            "persistence": float(np.mean(list(persistence.values()))),
            **{
                cell: float(np.mean([r.test_mse for r in results if r.cell == cell]))
                for cell in args.cells
            },
        },
        "table": table,
        "plots": [p.name for p in plots],
        "timing": {
            "wall_seconds": time.perf_counter() - start,
            "training_cpu_seconds": cpu,
            "cpu_seconds_per_model": cpu / len(members),
        },
    }
    (out_dir / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(table)
    print(
        f"done in {time.perf_counter() - start:.0f} s wall; training took {cpu:.0f} s CPU "
        f"({cpu / len(members):.1f} s per model); outputs in {out_dir}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
