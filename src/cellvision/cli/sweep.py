"""``cellvision sweep {cellcycle,benzene}``: Optuna TPE search with pruning on shared storage.

Every trial calls the target recipe's ``sweep_objective(trial, quick=..., seed=...)``, which
reports every epoch to the trial and raises ``optuna.TrialPruned`` when the median pruner
says so. The study lives in ``--storage`` (default: an SQLite file under ``--out``; any
SQLAlchemy URL such as ``postgresql://user@host/db`` works), so several ``cellvision sweep``
processes, on one machine or many, given the same storage and ``--study-name`` share one
study. Needs the ``tune`` extra (``pip install "cellvision[tune]"``).

Setting the environment variable ``CELLVISION_SWEEP_TINY=1`` makes the cell-cycle objective
tiny (a few dozen cells, one epoch): for smoke tests of the machinery, not for results.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

#: Target -> (objective direction, what the value is).
_TARGETS: dict[str, tuple[str, str]] = {
    "cellcycle": ("maximize", "validation balanced accuracy"),
    "benzene": ("minimize", "validation MSE"),
}


def add_parser(
    subparsers: Any, formatter_class: type[argparse.HelpFormatter]
) -> argparse.ArgumentParser:
    """Register ``cellvision sweep`` on ``subparsers``.

    Parameters
    ----------
    subparsers : argparse subparsers action
        From ``parser.add_subparsers()``.
    formatter_class : type
        The shared help formatter.

    Returns
    -------
    argparse.ArgumentParser
        The ``sweep`` parser.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sweep",
        help="hyper-parameter search (Optuna TPE, median pruning, shared storage)",
        description=__doc__,
        formatter_class=formatter_class,
    )
    parser.add_argument("target", choices=tuple(_TARGETS), help="the study to tune")
    parser.add_argument(
        "--n-trials", type=int, default=20, metavar="N", help="trials this process runs"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop starting trials after this many seconds",
    )
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="SQLAlchemy URL of the study; default: sqlite:///OUT/study.db",
    )
    parser.add_argument(
        "--study-name", metavar="NAME", help="study to create or join; default: the target's name"
    )
    parser.add_argument("--quick", action="store_true", help="small data, short trials")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and training")
    parser.add_argument(
        "--sampler-seed",
        type=int,
        metavar="N",
        help="seed of the TPE sampler; default: random (so workers differ)",
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="output folder; default: runs/sweep-TARGET"
    )
    parser.set_defaults(func=run)
    return parser


def _require_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise ImportError(
            'cellvision sweep needs Optuna; install it with: pip install "cellvision[tune]"'
        ) from exc
    return optuna


def _objective(target: str, quick: bool, seed: int) -> Callable[[Any], float]:
    if target == "benzene":
        try:
            from cellvision.recipes import forecasting  # type: ignore[attr-defined, unused-ignore]
        except ImportError as exc:
            raise ImportError(
                f"the benzene sweep needs cellvision.recipes.forecasting ({exc})"
            ) from exc

        def benzene_objective(trial: Any) -> float:
            return float(forecasting.sweep_objective(trial, quick=quick, seed=seed))

        return benzene_objective
    from cellvision.recipes import cellcycle

    kwargs: dict[str, Any] = {}
    if os.environ.get("CELLVISION_SWEEP_TINY", "") not in ("", "0"):
        kwargs["data"], _ = cellcycle.load_data(counts=(40, 12, 8, 8, 8), size=32, seed=seed)
        kwargs["epochs"] = 1

    def cellcycle_objective(trial: Any) -> float:
        return cellcycle.sweep_objective(trial, quick=quick, seed=seed, **kwargs)

    return cellcycle_objective


def _storage(optuna: Any, url: str) -> Any:
    if url.startswith("sqlite"):
        # Several processes write one SQLite file: wait for the lock instead of failing.
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return url


def _create_study(optuna: Any, url: str, **kwargs: Any) -> Any:
    # Workers starting together on a fresh database race to create its schema; the loser
    # gets an SQLAlchemy integrity/operational error and simply retries (then joins).
    for attempt in range(6):
        try:
            return optuna.create_study(storage=_storage(optuna, url), load_if_exists=True, **kwargs)
        except Exception as exc:
            if attempt == 5 or not type(exc).__module__.startswith("sqlalchemy"):
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def run(args: argparse.Namespace) -> int:
    """Run this process's share of the sweep; returns the exit status."""
    from cellvision.config import check_positive_int

    check_positive_int("--n-trials", args.n_trials)
    optuna = _require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = args.out if args.out is not None else Path("runs") / f"sweep-{args.target}"
    out.mkdir(parents=True, exist_ok=True)
    url = args.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    direction, meaning = _TARGETS[args.target]
    study = _create_study(
        optuna,
        url,
        study_name=args.study_name or args.target,
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=args.sampler_seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    target_objective = _objective(args.target, args.quick, args.seed)
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: Any) -> float:
        # Which process ran the trial: several workers share one study.
        trial.set_user_attr("worker", worker)
        return target_objective(trial)

    def report(study: Any, trial: Any) -> None:
        params = " ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
        )
        value = "pruned" if trial.value is None else f"{meaning} {trial.value:.4f}"
        print(
            f"[worker {worker}] trial {trial.number:3d} {trial.state.name.lower():8s} "
            f"{params}  {value}",
            flush=True,
        )

    study.optimize(objective, n_trials=args.n_trials, timeout=args.timeout, callbacks=[report])
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    print(
        f"study {study.study_name!r} in {url}: {len(study.trials)} trials "
        f"({len(complete)} complete)"
    )
    if not complete:
        print("no trial completed", file=sys.stderr)
        return 1
    best = study.best_trial
    print(f"best trial {best.number}: {meaning} {best.value:.4f}")
    print("best parameters: " + json.dumps(best.params))
    summary = {
        "study_name": study.study_name,
        "storage": url,
        "direction": direction,
        "best": {
            "number": best.number,
            "value": best.value,
            "params": best.params,
            "user_attrs": best.user_attrs,
        },
        "trials": [
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "params": t.params,
                "user_attrs": t.user_attrs,
            }
            for t in study.trials
        ],
    }
    (out / "best.json").write_text(json.dumps(summary["best"], indent=2))
    (out / "trials.json").write_text(json.dumps(summary, indent=2, allow_nan=True))
    if "recipe" in best.user_attrs:
        # Ready for `cellvision cellcycle train --recipe OUT/best_recipe.json`.
        (out / "best_recipe.json").write_text(best.user_attrs["recipe"])
        print(f"best recipe (JSON, also in {out / 'best_recipe.json'}):")
        print(best.user_attrs["recipe"])
    return 0
