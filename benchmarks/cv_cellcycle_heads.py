"""Decoupled heads on the default network's frozen embeddings, out of fold on real cells.

The default recipe's misses are mostly rare mitotic cells (Anaphase: 9 cells in the developer
data). This benchmark asks whether the *head* is what loses them, or the *representation*:
it trains the default recipe once per fold (:func:`cellvision.recipes.cellcycle.
cross_validate`, the same folds as ``cv_cellcycle_real.py`` for the same ``--seed``), takes
every cell's 128-d embedding (``forward_features``, float32) under each of the 8 dihedral
views, and scores other heads on the same frozen embeddings of each fold's held-out cells:

- ``linear``: the trained head with post-hoc adjustment by the sampler's training mix at
  each ``--taus`` value (``linear tau1 v1`` is the default recipe as it ships: it matches the
  ``trained default`` row up to the default's bfloat16 prediction), on one view or the mean
  probability of 8 views;
- ``tau-norm``: the trained head's class weight vectors divided by their norm to the power
  ``t``, no bias (Kang et al., ICLR 2020);
- ``ncm``: cosine nearest class mean of the training cells' embeddings (all 8 views),
  softmax with temperature 0.05;
- ``refit``: the linear head retrained on the frozen training embeddings (all 8 views) with
  class-balanced cross-entropy and L2 strength ``lambda`` (the "classifier re-training" of
  Kang et al.), by L-BFGS, on the fine labels (G1, S and G2 apart) as in training.

Every head predicts the 7 release classes and is scored on the 5 merged ones (Interphase =
G1 + S + G2, probabilities summed), as the recipe does. Columns: mean +- sd over folds of
balanced accuracy and Cohen's kappa, and the recall per merged class pooled out of fold.

Example (from the repository root; about 12 minutes on 2 threads)::

    PYTHONPATH=src python benchmarks/cv_cellcycle_heads.py --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cv_cellcycle_real import DEFAULT_DATA, base_recipe, parse_set

from cellvision.data import INTERPHASE_MERGE, merge_labels, to_float_images
from cellvision.features import extract_features
from cellvision.losses import adjust_logits
from cellvision.metrics import BalancedClassificationMetrics, ClassificationReport
from cellvision.recipes.cellcycle import cross_validate, load_data
from cellvision.tta import dihedral_views

#: A head: (fold, held-out mask) -> (views, cells, 7) fine-class logits of the held-out cells.
Head = Callable[[int, Tensor], Tensor]


def embed(model: torch.nn.Module, images: Tensor, batch: int = 512) -> Tensor:
    """``(8, N, D)`` embeddings of normalised ``images`` under the 8 dihedral views."""
    dummy = torch.zeros(len(images))
    return torch.stack(
        [
            extract_features(
                model, [(v[i : i + batch], dummy[i : i + batch]) for i in range(0, len(v), batch)]
            )[0]
            for v in dihedral_views(images)
        ]
    )


def refit_head(features: Tensor, labels: Tensor, n_classes: int, l2: float) -> torch.nn.Linear:
    """Class-balanced softmax regression on frozen, standardised features (L-BFGS)."""
    head = torch.nn.Linear(features.shape[1], n_classes)
    counts = torch.bincount(labels, minlength=n_classes).clamp(min=1).float()
    weight = counts.sum() / (n_classes * counts)
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss: Tensor = torch.nn.functional.cross_entropy(head(features), labels, weight=weight)
        loss = loss + l2 * head.weight.square().sum()
        torch.autograd.backward(loss)
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    return head.requires_grad_(False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs (quick checks)")
    parser.add_argument("--taus", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0])
    parser.add_argument("--lambdas", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2])
    parser.add_argument(
        "--set", type=parse_set, action="append", default=[], metavar="FIELD=VALUE",
        help="change a field of the default recipe, e.g. --set seed=1",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not Path(args.data_dir).is_dir():
        print(f"cv_cellcycle_heads: no data at {args.data_dir}; nothing to do.")
        return 0
    changes: dict[str, Any] = dict(args.set)
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    try:
        recipe = base_recipe("default", changes)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    if recipe.train_labels != "release" or recipe.n_models != 1:
        parser.error("the heads are defined for a single network trained on the release classes")
    data, _ = load_data(args.data_dir, channels=recipe.data_channels, release_labels=True)
    fine = data.targets
    merged, merged_names = merge_labels(fine, INTERPHASE_MERGE, class_names=data.class_names)
    # fine class -> merged class, to sum the probabilities.
    to_merged = torch.zeros(len(data.class_names), dtype=torch.long)
    to_merged[fine] = merged
    start = time.perf_counter()
    result = cross_validate(recipe, data, args.folds, args.seed, keep_classifiers=True)
    seconds = time.perf_counter() - start
    print(f"data: {args.data_dir}; {args.folds} folds, fold seed {args.seed}, recipe seed "
          f"{recipe.seed}; torch threads {torch.get_num_threads()}; cross-validation "
          f"{seconds:.0f} s")  # fmt: skip
    fold_of = torch.from_numpy(result.fold_of)
    # The classifiers' inputs (without an auxiliary training target, if the recipe has one).
    images = to_float_images(data.images[:, : len(recipe.channels)])
    emb: list[Tensor] = []
    heads: list[torch.nn.Linear] = []
    priors: list[Tensor] = []
    for clf in result.classifiers:
        emb.append(embed(clf.model, clf.normalize(images)))
        heads.append(cast(torch.nn.Linear, clf.model.head))
        priors.append(torch.tensor(clf.class_prior))
    n_fine = len(data.class_names)

    def score(name: str, head: Head) -> None:
        # Each head is fitted once per fold; its 1-view and 8-view rows share the logits.
        logits = [head(k, fold_of == k) for k in range(args.folds)]
        for views in (1, 8):
            predicted = torch.empty_like(merged)
            reports = []
            for k in range(args.folds):
                held_out = fold_of == k
                proba = torch.softmax(logits[k][:views], dim=-1).mean(0)
                merged_proba = torch.zeros(len(proba), len(merged_names)).index_add_(
                    1, to_merged, proba
                )
                predicted[held_out] = merged_proba.argmax(1)
                metric = BalancedClassificationMetrics(len(merged_names), class_names=merged_names)
                reports.append(metric.update(merged_proba.log(), merged[held_out]).compute())
            pooled = BalancedClassificationMetrics(len(merged_names), class_names=merged_names)
            print_row(f"{name} v{views}", reports, pooled.update(predicted, merged).compute())

    def print_row(
        name: str, reports: list[ClassificationReport], pooled: ClassificationReport
    ) -> None:
        cells = []
        for key in ("balanced_accuracy", "cohen_kappa"):
            values = torch.tensor([float(getattr(r, key)) for r in reports])
            cells.append(f"{values.mean():.3f}+-{values.std():.3f}")
        recall = " ".join(f"{r:5.2f}" for r in pooled.per_class_recall.tolist())
        print(f"{name:26s} " + " ".join(f"{c:>12s}" for c in cells) + f"  {recall}", flush=True)

    header = f"{'head':26s} {'bal_acc':>12s} {'kappa':>12s}  recall " + " ".join(
        f"{n[:5]:>5s}" for n in merged_names
    )
    print(header)
    print("-" * len(header))
    print_row("trained default", result.fold_reports, result.pooled)

    def linear(tau: float) -> Head:
        def head(k: int, m: Tensor) -> Tensor:
            logits: Tensor = heads[k](emb[k][:, m])
            return adjust_logits(logits.flatten(0, 1), priors[k], tau=tau).view_as(logits)

        return head

    def tau_norm(t: float) -> Head:
        def head(k: int, m: Tensor) -> Tensor:
            weight = heads[k].weight
            logits: Tensor = emb[k][:, m] @ (weight / weight.norm(dim=1, keepdim=True).pow(t)).T
            return logits

        return head

    def ncm(k: int, m: Tensor) -> Tensor:
        train = torch.nn.functional.normalize(emb[k][:, ~m], dim=-1).flatten(0, 1)
        labels = fine[~m].repeat(8)
        means = torch.stack([train[labels == c].mean(0) for c in range(n_fine)])
        means = torch.nn.functional.normalize(means, dim=-1)
        cosine: Tensor = torch.nn.functional.normalize(emb[k][:, m], dim=-1) @ means.T
        return cosine / 0.05

    def refit(l2: float) -> Head:
        def head(k: int, m: Tensor) -> Tensor:
            train = emb[k][:, ~m].flatten(0, 1)
            mean, std = train.mean(0), train.std(0).clamp(min=1e-6)
            new = refit_head((train - mean) / std, fine[~m].repeat(8), n_fine, l2)
            logits: Tensor = new((emb[k][:, m] - mean) / std)
            return logits

        return head

    for tau in args.taus:
        score(f"linear tau{tau:g}", linear(tau))
    for t in (0.5, 1.0):
        score(f"tau-norm t{t:g}", tau_norm(t))
    score("ncm", ncm)
    for l2 in args.lambdas:
        score(f"refit lambda{l2:g}", refit(l2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
