"""Unit checks of the shared recipe module examples/cellcycle_recipe.py."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from tests.examples._run import EXAMPLES

sys.path.insert(0, str(EXAMPLES))
recipe_module = pytest.importorskip("cellcycle_recipe")


def test_three_way_split_is_disjoint_stratified_and_seeded() -> None:
    labels = torch.from_numpy(np.repeat(np.arange(5), [200, 40, 12, 6, 8]))
    train, val, test = recipe_module.three_way_split(labels, 0.15, 0.15, seed=3)
    assert len(set(train) | set(val) | set(test)) == len(labels)
    assert len(train) + len(val) + len(test) == len(labels)
    for part in (val, test):
        counts = np.bincount(labels.numpy()[part], minlength=5)
        # round(n * 0.15) per class (at least one): an independent hand computation.
        assert counts.tolist() == [30, 6, 2, 1, 1]
    again = recipe_module.three_way_split(labels, 0.15, 0.15, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))


def test_recipe_from_flat_sweep_parameters() -> None:
    recipe_cls = recipe_module.CellCycleRecipe
    base = recipe_cls(epochs=2)
    built = recipe_cls.from_flat_dict(base.to_flat_dict() | {"lr": "0.001", "width": "24"})
    assert (built.lr, built.width, built.epochs) == (0.001, 24, 2)
    with pytest.raises(ValueError, match="alpha must be in"):
        recipe_cls(alpha=1.5)
    with pytest.raises(ValueError, match="select must be one of"):
        recipe_cls(select="test")


@pytest.mark.parametrize("total", [1, 2, 7, 100])
def test_warmup_cosine_rises_to_peak_then_decays(total: int) -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=2.0)
    scheduler = recipe_module.warmup_cosine(optimizer, total)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert max(rates) == pytest.approx(2.0)
    assert all(0.0 < r <= 2.0 for r in rates)
    peak = rates.index(max(rates))
    assert rates[peak:] == sorted(rates[peak:], reverse=True)
