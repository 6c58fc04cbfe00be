"""The ``cellvision`` command: help, errors, train -> predict, and a two-worker sweep."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cellvision.cli import main
from cellvision.recipes.cellcycle import QUICK_COUNTS

ROOT = Path(__file__).resolve().parents[1]


def command(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``python -m cellvision <args>`` with this checkout's ``src`` importable."""
    full = dict(os.environ) | (env or {})
    full["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), full.get("PYTHONPATH")) if p
    )
    full.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.Popen(
        [sys.executable, "-m", "cellvision", *args],
        env=full,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = command(*args, env=env)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def help_text(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main([*args, "--help"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "present", "absent"),
    [
        (
            ("cellcycle", "train"),
            ["--test-dir", "--quick", "--out DIR", "runs/cellcycle-train"],
            ["--folds", "--checkpoint", "--n-trials"],
        ),
        (("cellcycle", "cv"), ["--folds", "runs/cellcycle-cv"], ["--test-dir", "--checkpoint"]),
        (("cellcycle", "predict"), ["--checkpoint", "FILE.csv"], ["--epochs", "--folds"]),
        (("sweep",), ["--storage", "--n-trials", "--timeout", "--study-name"], ["--epochs"]),
        ((), ["cellcycle", "benzene", "sweep"], []),
    ],
)
def test_help_lists_only_the_subcommands_options(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], present: list[str], absent: list[str]
) -> None:
    text = help_text(capsys, *args)
    for item in present:
        assert item in text, item
    for item in absent:
        assert item not in text, item
    assert "(default: None)" not in text
    assert "PYTHONPATH" not in text
    # Each default is shown once: no option line says "default:" twice.
    lines = text.replace("\n                        ", " ").splitlines()
    assert all(line.count("default:") <= 1 for line in lines), lines


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cellcycle", "train", "--epochs", "0"], "epochs must be a positive integer"),
        (["cellcycle", "train", "--data-dir", "/no/such/folder"], "must be an existing directory"),
        (["cellcycle", "predict", "--checkpoint", "/no/such.pt"], "--checkpoint must be"),
        (["benzene"], "not available yet"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cellvision: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_bad_input_from_the_installed_entry_point_has_no_traceback() -> None:
    code, _, err = run("cellcycle", "train", "--lr", "-1")
    assert code != 0
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith("cellvision: error: lr must be")


def test_train_quick_then_predict_writes_one_row_per_cell(tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    out = tmp_path / "train"
    code, stdout, err = run(
        "cellcycle",
        "train",
        "--quick",
        "--epochs",
        "1",
        "--baseline-epochs",
        "0",
        "--no-figures",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert "Test split" in stdout
    assert "cellcycle_convnet epoch   1/1:" in stdout  # one line per epoch, counted from 1
    checkpoint = out / "checkpoint.pt"

    csv_path = tmp_path / "default.csv"
    code, stdout, err = run(
        "cellcycle", "predict", "--checkpoint", str(checkpoint), "--out", str(csv_path)
    )
    assert code == 0, err
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == sum(QUICK_COUNTS)
    names = ["Interphase", "Prophase", "Metaphase", "Anaphase", "Telophase"]
    assert list(rows[0]) == ["id", "predicted_phase", *(f"p_{n}" for n in names)]
    for row in rows[:20]:
        probs = [float(row[f"p_{n}"]) for n in names]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert row["predicted_phase"] == names[probs.index(max(probs))]
    fractions = [line for line in stdout.splitlines() if "%" in line]
    assert len(fractions) == 5

    cells = tmp_path / "cells"
    cells.mkdir()
    for cell in ("a1", "a2", "b7"):
        image.new("L", (48, 48), color=40).save(cells / f"{cell}_Ch3.png")
    code, _, err = run(
        "cellcycle",
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--data-dir",
        str(cells),
        "--out",
        str(tmp_path / "cells.csv"),
    )
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "cells.csv").open()))
    assert [r["id"] for r in rows] == ["a1", "a2", "b7"]


@pytest.mark.slow
def test_two_sweep_workers_share_one_sqlite_study(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = [
        "sweep",
        "cellcycle",
        "--n-trials",
        "2",
        "--storage",
        storage,
        "--study-name",
        "shared",
        "--out",
        str(tmp_path),
    ]
    tiny = {"CELLVISION_SWEEP_TINY": "1"}
    workers = [command(*args, env=tiny) for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        print(out)  # the sweep's two-worker output, for the record (pytest -s)
    study = optuna.load_study(study_name="shared", storage=storage)
    assert len(study.trials) == 4
    by_worker = {t.user_attrs["worker"] for t in study.trials}
    assert len(by_worker) == 2  # both processes contributed trials
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)


def jurkat_like_folder(root: Path, per_phase: int, seed: int) -> Path:
    """A tiny labelled folder in the Jurkat layout, <phase>/<id>_Ch3.png, noise images."""
    image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(seed)
    for phase in ("G1", "Prophase", "Metaphase", "Anaphase", "Telophase"):
        (root / phase).mkdir(parents=True)
        for cell in range(per_phase):
            pixels = rng.integers(0, 255, size=(32, 32), dtype=np.uint8)
            image.fromarray(pixels).save(root / phase / f"{cell}_Ch3.png")
    return root


def test_train_with_a_separate_test_folder_reports_on_that_folder(tmp_path: Path) -> None:
    data = jurkat_like_folder(tmp_path / "train", 8, seed=0)
    test = jurkat_like_folder(tmp_path / "test", 3, seed=1)
    out = tmp_path / "out"
    code, stdout, err = run(
        "cellcycle",
        "train",
        "--data-dir",
        str(data),
        "--test-dir",
        str(test),
        "--epochs",
        "1",
        "--baseline-epochs",
        "0",
        "--no-figures",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert "Test split (15 cells)" in stdout  # the 15 cells of the test folder
    results = json.loads((out / "results.json").read_text())
    assert results["split_counts"]["test"] == [3, 3, 3, 3, 3]
    assert sum(results["split_counts"]["train"]) + sum(results["split_counts"]["val"]) == 40


def test_cv_writes_fold_and_pooled_reports(tmp_path: Path) -> None:
    code, stdout, err = run(
        "cellcycle", "cv", "--quick", "--folds", "2", "--epochs", "1", "--out", str(tmp_path)
    )
    assert code == 0, err
    assert "pooled" in stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["folds"]) == 2
    assert len(results["fold_of"]) == sum(QUICK_COUNTS)
    assert sorted(set(results["fold_of"])) == [0, 1]
