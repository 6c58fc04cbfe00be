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
            ["--test-dir", "--quick", "--out DIR", "runs/cellcycle-train", "--train-labels"],
            ["--folds", "--checkpoint", "--n-trials"],
        ),
        (
            ("cellcycle", "cv"),
            ["--folds", "runs/cellcycle-cv", "--train-labels {merged,release}"],
            ["--test-dir", "--checkpoint"],
        ),
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
        (["benzene", "--window", "0"], "window must be a positive integer, got 0"),
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


def montage_folder(root: Path, channels: tuple[str, ...], grid: tuple[int, int]) -> Path:
    """An unlabelled montage folder, <root>/Ch<k>_CP0001.tif, 40x40 noise tiles (uint16)."""
    image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    rows, cols = grid
    for channel in channels:
        pixels = rng.integers(1000, 60000, size=(40 * rows, 40 * cols)).astype(np.uint16)
        image.fromarray(pixels).save(root / f"{channel}_CP0001.tif")
    return root


def test_train_on_the_real_sample_then_predict_a_montage_folder(tmp_path: Path) -> None:
    out = tmp_path / "train"
    code, stdout, err = run(
        "cellcycle", "train", "--quick", "--epochs", "1", "--baseline-epochs", "0",
        "--no-figures", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert "embedded real Jurkat sample" in stdout
    assert "Ch3 = brightfield, Ch6 = darkfield" in stdout
    assert "label-free" in stdout
    assert "NOT label-free" not in stdout + err
    assert "cellcycle_resnet epoch   1/1:" in stdout  # one line per epoch, counted from 1
    results = json.loads((out / "results.json").read_text())
    assert results["label_free"] is True
    assert results["channels"] == ["Ch3", "Ch6"]
    checkpoint = out / "checkpoint.pt"

    # An unlabelled montage of 3 x 4 tiles: one CSV row per cell, fractions printed.
    cells = montage_folder(tmp_path / "sample", ("Ch3", "Ch6"), (3, 4))
    csv_path = tmp_path / "cells.csv"
    code, stdout, err = run(
        "cellcycle", "predict", "--checkpoint", str(checkpoint), "--data-dir", str(cells),
        "--out", str(csv_path),
    )  # fmt: skip
    assert code == 0, err
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["id"] for r in rows] == [f"CP0001#{k}" for k in range(12)]
    names = ["Interphase", "Prophase", "Metaphase", "Anaphase", "Telophase"]
    assert list(rows[0]) == ["id", "predicted_phase", *(f"p_{n}" for n in names)]
    for row in rows:
        probs = [float(row[f"p_{n}"]) for n in names]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert row["predicted_phase"] == names[probs.index(max(probs))]
    predicted = [r["predicted_phase"] for r in rows]
    fractions = {
        line.split()[0]: line.split() for line in stdout.splitlines() if line.endswith("%")
        or "(every phase but Interphase)" in line
    }  # fmt: skip
    for name in names:
        assert int(fractions[name][1]) == predicted.count(name)
        assert fractions[name][2] == f"{predicted.count(name) / 12:.1%}"
    mitotic = sum(p != "Interphase" for p in predicted)
    assert int(fractions["mitotic"][1]) == mitotic

    # The checkpoint's channels are required: a folder without Ch6 is a clear error.
    only_ch3 = montage_folder(tmp_path / "ch3", ("Ch3",), (2, 2))
    code, _, err = run(
        "cellcycle", "predict", "--checkpoint", str(checkpoint), "--data-dir", str(only_ch3),
        "--out", str(tmp_path / "x.csv"),
    )  # fmt: skip
    assert code != 0
    assert "without ['Ch6']" in err
    assert "channels found: ['Ch3']" in err


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


def jurkat_like_folder(
    root: Path,
    per_phase: int,
    seed: int,
    channels: tuple[str, ...] = ("Ch3",),
    phases: tuple[str, ...] = ("G1", "Prophase", "Metaphase", "Anaphase", "Telophase"),
) -> Path:
    """A tiny labelled folder in the Jurkat layout, <phase>/<id>_Ch<k>.png, noise images."""
    image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(seed)
    for phase in phases:
        (root / phase).mkdir(parents=True)
        for cell in range(per_phase):
            for channel in channels:
                pixels = rng.integers(0, 255, size=(32, 32), dtype=np.uint8)
                image.fromarray(pixels).save(root / phase / f"{cell}_{channel}.png")
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
        "--channels",
        "Ch3",
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
        "cellcycle", "cv", "--quick", "--synthetic", "--folds", "2", "--epochs", "1",
        "--tta", "d4", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    assert "pooled" in stdout
    assert "recall per class (pooled out of fold): Interphase" in stdout
    assert "cross-validation wall time:" in stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["folds"]) == 2
    assert len(results["fold_of"]) == sum(QUICK_COUNTS)
    assert sorted(set(results["fold_of"])) == [0, 1]


def test_a_run_with_the_dna_stain_warns_that_it_is_not_label_free(tmp_path: Path) -> None:
    data = jurkat_like_folder(tmp_path / "cells", 6, seed=0, channels=("Ch3", "Ch4"))
    out = tmp_path / "out"
    code, stdout, err = run(
        "cellcycle", "cv", "--data-dir", str(data), "--channels", "Ch3", "Ch4", "--folds",
        "2", "--epochs", "1", "--width", "8", "--depth", "1", "--no-progress",
        "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert "Ch4 = DNA stain" in stdout
    assert "WARNING: this run is NOT label-free: Ch4" in err
    results = json.loads((out / "results.json").read_text())
    assert results["label_free"] is False
    assert results["channels"] == ["Ch3", "Ch4"]


def test_the_dna_stain_as_an_auxiliary_target_keeps_the_run_label_free(tmp_path: Path) -> None:
    data = jurkat_like_folder(tmp_path / "cells", 6, seed=0, channels=("Ch3", "Ch6", "Ch4"))
    out = tmp_path / "out"
    code, stdout, err = run(
        "cellcycle", "cv", "--data-dir", str(data), "--channels", "Ch3", "Ch6",
        "--auxiliary-channel", "Ch4", "--auxiliary-weight", "3", "--folds", "2", "--epochs",
        "1", "--width", "8", "--depth", "1", "--no-progress", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert "auxiliary training target: Ch4 = DNA stain" in stdout
    assert "NOT label-free" not in err
    results = json.loads((out / "results.json").read_text())
    assert results["label_free"] is True
    assert results["channels"] == ["Ch3", "Ch6"]
    assert results["recipe"]["auxiliary_channel"] == "Ch4"
    assert results["recipe"]["auxiliary_weight"] == 3.0


def test_member_channels_flag_builds_a_mixed_channel_ensemble(tmp_path: Path) -> None:
    from cellvision.cli import build_parser
    from cellvision.cli.cellcycle import _recipe

    parser = build_parser()
    args = parser.parse_args(["cellcycle", "cv", "--member-channels", "Ch3,Ch6", "Ch3"])
    recipe = _recipe(args)
    assert recipe.member_channels == (("Ch3", "Ch6"), ("Ch3",))
    assert recipe.n_models == 2  # their number, unless --n-models says otherwise
    wrong = parser.parse_args(["cellcycle", "cv", "--member-channels", "Ch3", "Ch3,Ch6"])
    with pytest.raises(ValueError, match="member_channels must start with channels"):
        _recipe(wrong)
    # End to end: the saved classifier holds a two-channel and a one-channel member.
    data = jurkat_like_folder(tmp_path / "cells", 6, seed=0, channels=("Ch3", "Ch6"))
    out = tmp_path / "out"
    code, _, err = run(
        "cellcycle", "train", "--data-dir", str(data), "--member-channels", "Ch3,Ch6", "Ch6",
        "--epochs", "1", "--width", "8", "--depth", "1", "--baseline-epochs", "0",
        "--no-progress", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    from cellvision.recipes.cellcycle import TrainedClassifier

    (checkpoint,) = out.glob("*.pt")
    trained = TrainedClassifier.load(checkpoint)
    assert [m.config.in_channels for m in trained.members] == [2, 1]
    assert trained.recipe.member_channels == (("Ch3", "Ch6"), ("Ch6",))


@pytest.mark.parametrize("subcommand", ["train", "cv"])
def test_train_labels_flag_reaches_the_recipe(subcommand: str) -> None:
    from cellvision.cli import build_parser
    from cellvision.cli.cellcycle import _recipe

    parser = build_parser()
    args = parser.parse_args(["cellcycle", subcommand, "--train-labels", "release"])
    assert _recipe(args).train_labels == "release"
    args = parser.parse_args(["cellcycle", subcommand, "--train-labels", "merged"])
    assert _recipe(args).train_labels == "merged"
    # without the flag: the default preset's choice (release classes since the real-cell study)
    assert _recipe(parser.parse_args(["cellcycle", subcommand])).train_labels == "release"
    legacy = parser.parse_args(["cellcycle", subcommand, "--preset", "legacy"])
    assert _recipe(legacy).train_labels == "merged"
    with pytest.raises(SystemExit):
        parser.parse_args(["cellcycle", subcommand, "--train-labels", "fine"])


def test_cv_with_release_labels_trains_fine_and_reports_merged(tmp_path: Path) -> None:
    phases = ("G1", "S", "G2", "Prophase", "Metaphase", "Anaphase", "Telophase")
    data = jurkat_like_folder(tmp_path / "cells", 4, seed=0, phases=phases)
    outputs = {}
    for labels in ("merged", "release"):
        out = tmp_path / labels
        code, stdout, err = run(
            "cellcycle", "cv", "--data-dir", str(data), "--folds", "2", "--epochs", "1",
            "--width", "4", "--depth", "1", "--baseline-epochs", "0", "--no-progress",
            "--channels", "Ch3", "--train-labels", labels, "--out", str(out),
        )  # fmt: skip
        assert code == 0, err
        assert "recall per class (pooled out of fold): Interphase" in stdout
        outputs[labels] = json.loads((out / "results.json").read_text())
    release = outputs["release"]
    assert release["recipe"]["train_labels"] == "release"
    assert release["class_names"] == [
        "Interphase", "Prophase", "Metaphase", "Anaphase", "Telophase"
    ]  # fmt: skip
    assert release["fold_of"] == outputs["merged"]["fold_of"]
    assert release["oof_proba"] != outputs["merged"]["oof_proba"]  # a different network
