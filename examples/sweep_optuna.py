"""Bayesian (TPE) hyper-parameter search of the cell-cycle recipe with Optuna, in one process.

Every trial is :func:`cellvision.recipes.cellcycle.sweep_objective`: it draws the learning rate,
batch size, dropout, sampler alpha and model width (``SWEEP_SPACE``; ``sweep_wandb.yaml`` is
the same space for wandb), trains on the training split, reports the validation balanced
accuracy every epoch (unpromising trials are pruned by the median rule) and returns the last
one. The test split is never looked at. At the end the best trial's recipe is printed as JSON
(ready for ``CellCycleRecipe.from_json`` or ``cellvision cellcycle train --recipe``).

``cellvision sweep cellcycle`` runs the same search with a shared study storage, so several
processes or machines can work on it; this script shows the library calls. Needs the ``tune``
extra: ``pip install "cellvision[tune]"``.

Examples::

    python examples/sweep_optuna.py --quick --n-trials 4
    python examples/sweep_optuna.py --n-trials 30 --epochs 8 --out runs/sweep-optuna
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cellvision.recipes.cellcycle import CellCycleRecipe, load_data, sweep_objective


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the sweep; return the best trial's summary."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-trials", type=int, default=20, help="number of trials (default 20)")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default 8, --quick 2)")
    parser.add_argument("--counts", type=int, nargs=5, metavar="N", help="synthetic cells/class")
    parser.add_argument("--size", type=int, help="synthetic image side")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, split and TPE")
    parser.add_argument("--quick", action="store_true", help="small data, 2 epochs per trial")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/sweep-optuna"),
        help="output folder (default runs/sweep-optuna)",
    )
    args = parser.parse_args(argv)
    try:
        import optuna
    except ImportError:
        parser.error('this example needs Optuna: pip install "cellvision[tune]"')
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    data, description = load_data(
        quick=args.quick, counts=args.counts, size=args.size, seed=args.seed
    )
    print(f"data: {description}; {args.n_trials} TPE trials")

    def objective(trial: Any) -> float:
        return sweep_objective(
            trial, quick=args.quick, seed=args.seed, data=data, epochs=args.epochs
        )

    def show(study: Any, trial: Any) -> None:
        params = " ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
        )
        value = "pruned" if trial.value is None else f"val bal_acc {trial.value:.3f}"
        print(f"trial {trial.number:3d} {params}  {value}", flush=True)

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=args.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    study.optimize(objective, n_trials=args.n_trials, callbacks=[show])

    best = study.best_trial
    recipe = CellCycleRecipe.from_json(best.user_attrs["recipe"])
    print()
    print(f"best trial {best.number}: validation balanced accuracy {best.value:.3f}")
    print("best config (CellCycleRecipe JSON):")
    print(recipe.to_json())
    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "params": t.params,
            "val_balanced_accuracy": t.value,
        }
        for t in study.trials
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "best_config.json").write_text(recipe.to_json())
    (args.out / "trials.json").write_text(json.dumps(trials, indent=2, allow_nan=True))
    return {"number": best.number, "value": best.value, "recipe": recipe.to_dict()}


if __name__ == "__main__":
    main()
