"""Tests for cellvision.checkpoint: round trips for every registered model and safe loading."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import cellvision.models
from cellvision.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Checkpoint,
    UnsafeCheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from cellvision.models import create_model, get_model_entry, list_models
from tests._engine_models import MLPClassifier, MLPConfig

# Names registered by other test modules or doctests only to exercise the registry; they are not
# bound by the full model interface (example_input). Every other name must round-trip.
_TEST_ONLY_PREFIXES = ("test_", "doc_")


def _round_trip_names() -> list[str]:
    return list_models()


@pytest.mark.parametrize("name", _round_trip_names())
def test_round_trip_gives_identical_outputs_for_every_registered_model(
    name: str, tmp_path: Path
) -> None:
    entry = get_model_entry(name)
    if not hasattr(entry.model_class, "example_input"):
        if name.startswith(_TEST_ONLY_PREFIXES):
            pytest.skip(f"{name!r} is a registry-only test model without example_input")
        pytest.fail(f"registered model {name!r} lacks example_input()")
    torch.manual_seed(0)
    model = create_model(name)
    # Perturb every floating tensor (weights and buffers such as BatchNorm statistics) so
    # that a loader which silently kept a fresh initialisation could not pass.
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.add_(0.01 * torch.randn(tensor.shape, generator=g).abs())
    model.eval()
    x = model.example_input(2, generator=torch.Generator().manual_seed(2))  # type: ignore[operator]
    with torch.no_grad():
        expected = model(x)

    path = save_checkpoint(tmp_path / f"{name}.pt", model, epoch=3)
    ckpt = load_checkpoint(path, map_location="cpu")

    assert get_model_entry(ckpt.model_name).model_class is entry.model_class
    assert type(ckpt.model) is type(model)
    assert ckpt.config == model.config
    assert ckpt.epoch == 3
    assert ckpt.format_version == FORMAT_VERSION
    loaded = ckpt.model.eval()
    for (k1, v1), (k2, v2) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert k1 == k2
        assert torch.equal(v1, v2), k1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)


def test_optimizer_state_and_extra_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MLPClassifier(MLPConfig(hidden_size=8))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    extra = {"class_names": ["G1", "S", "G2", "Pro", "Meta"], "best": 0.5, "t": torch.arange(3)}
    path = save_checkpoint(tmp_path / "ckpt.pt", model, optimizer=optimizer, extra=extra)
    ckpt = load_checkpoint(path)

    resumed = torch.optim.Adam(ckpt.model.parameters(), lr=1e-2)
    assert ckpt.optimizer_state_dict is not None
    resumed.load_state_dict(ckpt.optimizer_state_dict)
    for (_, a), (_, b) in zip(
        optimizer.state_dict()["state"].items(), resumed.state_dict()["state"].items(), strict=True
    ):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(a[key], b[key])
    assert ckpt.extra["class_names"] == extra["class_names"]
    assert torch.equal(ckpt.extra["t"], extra["t"])
    assert set(ckpt.metadata) == {"cellvision_version", "torch_version"}


def test_wrapped_models_are_saved_unwrapped(tmp_path: Path) -> None:
    model = MLPClassifier(MLPConfig())
    path = save_checkpoint(tmp_path / "wrapped.pt", nn.DataParallel(model))
    payload = torch.load(path, weights_only=True)
    assert payload["model_name"] == "test_engine_mlp"
    assert not any(k.startswith("module.") for k in payload["state_dict"])
    assert load_checkpoint(path).config == model.config


def test_loading_does_not_advance_the_global_rng(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", MLPClassifier(MLPConfig()))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_checkpoint(path)
    assert torch.equal(torch.rand(3), expected)


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m.pt", MLPClassifier(MLPConfig()))
    save_checkpoint(tmp_path / "m.pt", MLPClassifier(MLPConfig()))  # overwrite in place
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_checkpoint_is_plain_data_with_a_format_version(tmp_path: Path) -> None:
    model = MLPClassifier(MLPConfig(n_classes=5))
    path = save_checkpoint(tmp_path / "m.pt", model)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == FORMAT_NAME
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["config"] == {
        "in_features": 6,
        "hidden_size": 16,
        "n_classes": 5,
        "dropout": 0.0,
    }


# --------------------------------------------------------------------------- malicious files
class _WritesAFile:
    """Unpickling this object runs code: it writes the file named at construction."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        code = f"open({str(self.target)!r}, 'w').write('pwned')"
        return (exec, (code,))


def test_the_crafted_payload_really_runs_under_plain_pickle(tmp_path: Path) -> None:
    # Guards the next test: the payload is live, so its refusal below means something.
    target = tmp_path / "proof.txt"
    pickle.loads(pickle.dumps(_WritesAFile(target)))
    assert target.read_text() == "pwned"


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path: Path, writer: str) -> None:
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_name": "test_engine_mlp",
        "config": {},
        "state_dict": {},
        "extra": _WritesAFile(target),
    }
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(payload, fh, protocol=2)
    with pytest.raises(UnsafeCheckpointError, match="refusing to load .*nothing in it was run"):
        load_checkpoint(path)
    assert not target.exists()


# --------------------------------------------------------------------------- bad files
def _save_payload(tmp_path: Path, edit: Any) -> Path:
    path = save_checkpoint(tmp_path / "m.pt", MLPClassifier(MLPConfig()))
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda p: p.pop("state_dict"), r"missing required key\(s\) \['state_dict'\]"),
        (lambda p: p.pop("format"), "is not a cellvision checkpoint"),
        (lambda p: p.update(format_version=FORMAT_VERSION + 1), "newer than the 1 this"),
        (lambda p: p.update(format_version="1"), "format_version must be an int >= 1"),
        (lambda p: p.update(model_name="no_such_model"), "names model 'no_such_model', which is"),
        (lambda p: p.update(config={"depth": 3}), r"invalid MLPConfig: unknown MLPConfig field"),
        (lambda p: p.update(config={"n_classes": 0}), "n_classes must be a positive integer"),
        (lambda p: p.update(config=[1]), "config must be a dict, got list"),
        (
            lambda p: p["state_dict"].update(extra_weight=torch.zeros(1)),
            r"unexpected keys \['extra_weight'\]",
        ),
        (lambda p: p["state_dict"].pop("head.bias"), r"missing keys \['head.bias'\]"),
        (
            lambda p: p["state_dict"].update({"head.bias": torch.zeros(7)}),
            "weights do not fit 'test_engine_mlp' with its config",
        ),
    ],
)
def test_bad_checkpoints_give_clear_errors(tmp_path: Path, edit: Any, match: str) -> None:
    path = _save_payload(tmp_path, edit)
    with pytest.raises(ValueError, match=match):
        load_checkpoint(path)


def test_plain_state_dict_and_garbage_files_are_rejected(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save(MLPClassifier(MLPConfig()).state_dict(), plain)
    with pytest.raises(ValueError, match="is not a cellvision checkpoint"):
        load_checkpoint(plain)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(ValueError, match="path must be a checkpoint written by save_checkpoint"):
        load_checkpoint(garbage)
    with pytest.raises(FileNotFoundError, match="path must be an existing checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_save_rejects_bad_arguments(tmp_path: Path) -> None:
    model = MLPClassifier(MLPConfig())
    with pytest.raises(ValueError, match="must be an instance of a registered model class"):
        save_checkpoint(tmp_path / "a.pt", nn.Linear(2, 2))
    with pytest.raises(TypeError, match=r"extra\['obj'\] must contain only tensors"):
        save_checkpoint(tmp_path / "a.pt", model, extra={"obj": object()})
    with pytest.raises(TypeError, match="epoch must be an int or None"):
        save_checkpoint(tmp_path / "a.pt", model, epoch="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        save_checkpoint(tmp_path / "a.pt", model, optimizer="adam")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="path's directory must exist"):
        save_checkpoint(tmp_path / "no" / "dir" / "a.pt", model)
    assert not (tmp_path / "a.pt").exists()


def test_checkpoint_exposes_its_fields() -> None:
    fields = set(Checkpoint.__dataclass_fields__)
    assert {"model", "model_name", "config", "epoch", "optimizer_state_dict", "extra"} <= fields
    assert cellvision.models.list_models("test_engine_*") == [
        "test_engine_gru",
        "test_engine_mlp",
        "test_engine_mlp_wide",
    ]
