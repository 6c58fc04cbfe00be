"""``cellvision benzene``: options, help text, a tiny run and one-line errors."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from cellvision.cli import benzene
from cellvision.recipes.forecasting import ForecastRecipe

TINY = ["--quick", "--cells", "gru", "--folds", "2", "--epochs", "1", "--workers", "1"]


def _parser(formatter: type[argparse.HelpFormatter]) -> tuple[argparse.ArgumentParser, ...]:
    top = argparse.ArgumentParser(prog="cellvision")
    sub = benzene.add_parser(top.add_subparsers(), formatter)
    return top, sub


@pytest.mark.parametrize(
    "formatter", [argparse.HelpFormatter, argparse.ArgumentDefaultsHelpFormatter]
)
def test_help_lists_each_option_once_with_one_default(
    formatter: type[argparse.HelpFormatter],
) -> None:
    _, sub = _parser(formatter)
    text = sub.format_help()
    flags = [opt for action in sub._actions for opt in action.option_strings]
    assert len(flags) == len(set(flags))
    assert not [f for f in flags if "_" in f]  # one spelling: dashes only
    for flag in ("--data", "--cells", "--seeds", "--quick", "--out", "--val-fraction"):
        assert flag in flags
    assert "(default: None)" not in text
    assert "(default: False)" not in text
    assert "PYTHONPATH" not in text
    for action in sub._actions:
        if action.help:
            assert len(re.findall(r"default:", action.help % {"default": action.default})) <= 1
    # every default shown once per option
    for line in ("(default: 48; --quick: 24)", "(default: runs/benzene)"):
        assert text.count(line) == 1, line


def test_options_become_the_recipe() -> None:
    top, _ = _parser(argparse.HelpFormatter)
    args = top.parse_args(["benzene"])
    assert benzene.recipe_from_args(args) == ForecastRecipe()
    args = top.parse_args(["benzene", "--quick", "--epochs", "2", "--lags", "--no-scale"])
    assert benzene.recipe_from_args(args) == ForecastRecipe.quick(epochs=2, lags=(), scale=False)
    args = top.parse_args(
        ["benzene", "--cells", "lstm", "--seeds", "0", "1", "2", "--ensemble", "3"]
    )
    recipe = benzene.recipe_from_args(args)
    assert (recipe.cells, recipe.seeds, recipe.ensemble_size) == (("lstm",), (0, 1, 2), 3)
    assert recipe.window == 48
    assert top.parse_args(["benzene"]).out == Path("runs/benzene")


def test_bad_input_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        benzene.main(["--lags", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "cellvision benzene: error: lags must be a positive integer, got 0"
    top, _ = _parser(argparse.HelpFormatter)
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 0.5\), got 0.7"):
        benzene.run(top.parse_args(["benzene", "--val-fraction", "0.7"]))
    with pytest.raises(ValueError, match="--workers must be a positive integer, got 0"):
        benzene.run(top.parse_args(["benzene", "--workers", "0"]))


def test_tiny_run_writes_table_results_figures_and_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert benzene.main([*TINY, "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("Next-hour benzene C6H6(GT): test MSE")
    assert "[1/1] seed 0 gru May-Jun #0: 1 epochs" in err  # not a terminal: one line per model
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["figures"] == ["learning_curves_gru.png", "learning_curves.png"]
    for name in results["figures"]:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "checkpoints" / "gru_fold2_seed0_m0.pt").stat().st_size > 0
    assert results["table"] == out.strip()
    assert results["mean_test_mse"]["gru"] < results["mean_test_mse"]["persistence"]
