"""Bayesian (TPE) hyper-parameter search for the cell-cycle recipe with Optuna.

Searches the learning rate, batch size, dropout, sampler alpha and model width of the shared
cell-cycle recipe (``cellcycle_recipe.py``; ConvNet by default, ``--model cellcycle_vit`` for
the ViT). Every trial's settings are a flat dictionary turned into a validated
``CellCycleRecipe`` with ``Config.from_flat_dict``, exactly as a wandb sweep agent's
parameters would be (``sweep_wandb.yaml`` defines the same search space for wandb).

The objective is the validation balanced accuracy of the last epoch; the test split is never
looked at while searching. At the end the best trial, its configuration as JSON (ready for
``CellCycleRecipe.from_json``) and its test-split numbers are printed, and written with every
trial to ``--out``.

Needs the ``tune`` extra: ``pip install "cellvision[tune]"``.

Examples::

    PYTHONPATH=src python examples/sweep_optuna.py --quick --n-trials 4
    PYTHONPATH=src python examples/sweep_optuna.py --n-trials 30 --epochs 8 --out runs/sweep
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cellcycle_recipe import QUICK_COUNTS, TABLE_METRICS, CellCycleRecipe, load_cells, run_study

#: The search space: (kind, arguments). wandb's twin is ``sweep_wandb.yaml``.
SEARCH_SPACE: dict[str, tuple[str, tuple[Any, ...]]] = {
    "lr": ("log_float", (3e-4, 1e-2)),
    "batch_size": ("categorical", (32, 64, 128)),
    "dropout": ("float", (0.0, 0.3)),
    "alpha": ("float", (0.5, 1.0)),
    "width": ("categorical", (16, 24, 32, 48)),
}


def _require_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise ImportError(
            'sweep_optuna.py needs Optuna; install it with: pip install "cellvision[tune]"'
        ) from exc
    return optuna


def suggest(trial: Any) -> dict[str, Any]:
    """Draw one flat parameter dictionary from :data:`SEARCH_SPACE`."""
    params: dict[str, Any] = {}
    for name, (kind, spec) in SEARCH_SPACE.items():
        if kind == "log_float":
            params[name] = trial.suggest_float(name, *spec, log=True)
        elif kind == "float":
            params[name] = trial.suggest_float(name, *spec)
        else:
            params[name] = trial.suggest_categorical(name, list(spec))
    return params


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the sweep; return the best trial's summary."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="cellcycle_convnet",
                        choices=("cellcycle_convnet", "cellcycle_vit"))  # fmt: skip
    parser.add_argument("--n-trials", type=int, default=20, help="number of trials")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per trial")
    parser.add_argument("--data-dir", default=None, help="Jurkat CellCycle folder")
    parser.add_argument("--counts", type=int, nargs=5, default=None, metavar="N",
                        help="synthetic cells per class")  # fmt: skip
    parser.add_argument("--size", type=int, default=None, help="synthetic image side")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, split and TPE")
    parser.add_argument("--quick", action="store_true", help="tiny data, 2 epochs per trial")
    parser.add_argument("--out", type=Path, default=Path("runs") / "sweep", help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    optuna = _require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    epochs = 2 if args.quick and args.epochs == parser.get_default("epochs") else args.epochs
    counts = args.counts if args.counts is not None else (QUICK_COUNTS if args.quick else None)
    size = args.size if args.size is not None else (48 if args.quick else 66)
    data, description = load_cells(args.data_dir, counts=counts, size=size, seed=args.seed)
    base = CellCycleRecipe(model=args.model, epochs=epochs, baseline_epochs=0, seed=args.seed)
    print(f"data: {description}; {args.n_trials} TPE trials of {epochs} epochs ({args.model})")

    trials: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        flat = base.to_flat_dict() | suggest(trial)
        recipe = CellCycleRecipe.from_flat_dict(flat)
        start = time.perf_counter()
        summary = run_study(
            recipe, data, data_description=description, progress=False, verbose=False
        )
        entry = summary["models"][recipe.model]
        val = entry["history"]["records"][-1]["val_balanced_accuracy"]
        trials.append({"number": trial.number, "params": trial.params, "val_balanced_accuracy":
                       val, "test": entry["test"], "recipe": recipe.to_dict()})  # fmt: skip
        print(f"trial {trial.number:3d} " + " ".join(
            f"{k}={_short(v)}" for k, v in trial.params.items()
        ) + f"  val bal_acc {val:.3f}", flush=True)  # fmt: skip
        print(f"  trial {trial.number} took {time.perf_counter() - start:.1f} s", file=sys.stderr)
        return float(val)

    sampler = optuna.samplers.TPESampler(seed=args.seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=args.n_trials, show_progress_bar=not args.no_progress)

    best = next(t for t in trials if t["number"] == study.best_trial.number)
    best_recipe = CellCycleRecipe.from_dict(best["recipe"])
    print()
    print(f"best trial {best['number']}: validation balanced accuracy "
          f"{best['val_balanced_accuracy']:.3f}")  # fmt: skip
    print("its test split (never used by the search): " + "  ".join(
        f"{short} {best['test'][key]:.3f}" for key, short in TABLE_METRICS
        if best["test"][key] is not None
    ))  # fmt: skip
    print("best config (CellCycleRecipe JSON):")
    print(best_recipe.to_json())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "best_config.json").write_text(best_recipe.to_json())
    (args.out / "trials.json").write_text(json.dumps(trials, indent=2, allow_nan=True))
    return best


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
