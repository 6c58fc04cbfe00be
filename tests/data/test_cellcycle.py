"""Tests for cellvision.data.cellcycle on a real folder tree written with Pillow."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cellvision.data.cellcycle import (
    CELL_CYCLE_PHASES,
    INTERPHASE_MERGE,
    MERGED_CELL_CYCLE_PHASES,
    CellCycleFolder,
    CellImageDataset,
    canonical_phase,
    merge_labels,
)
from cellvision.data.transforms import RandomDihedral

SIZE = 12
CH3 = ("Ch3",)


def pattern(seed: int, bits: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    high = 256 if bits == 8 else 65536
    return rng.integers(0, high, size=(SIZE, SIZE)).astype(np.uint8 if bits == 8 else np.uint16)


def save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype == np.uint16:
        Image.fromarray(array).save(path)  # mode I;16, written as a 16-bit TIFF/PNG
    else:
        Image.fromarray(array, mode="L").save(path)


# Cells of the clean tree: (folder, cell id, extension, bits, seed). JPEG is lossy, so JPEG
# cells are flat images whose value survives compression.
CLEAN_CELLS = [
    ("G1", "10", "png", 8, 1),
    ("G1", "2", "png", 8, 2),
    ("S_phase", "7", "tif", 16, 3),
    ("g2", "5", "jpg", 8, 4),
    ("Prophase", "1", "ome.jpg", 8, 5),
    ("anaphase", "3", "tiff", 16, 6),
    ("Telophase", "4", "jpeg", 8, 7),
]


def cell_arrays(ext: str, bits: int, seed: int) -> dict[str, np.ndarray]:
    if "jpg" in ext or "jpeg" in ext:
        return {
            ch: np.full((SIZE, SIZE), 40 * k + seed, np.uint8)
            for k, ch in enumerate(("Ch3", "Ch6"))
        }
    return {"Ch3": pattern(seed, bits), "Ch6": pattern(seed + 100, bits)}


@pytest.fixture
def clean_tree(tmp_path: Path) -> tuple[Path, dict[tuple[str, str], dict[str, np.ndarray]]]:
    truth = {}
    for folder, cell, ext, bits, seed in CLEAN_CELLS:
        arrays = cell_arrays(ext, bits, seed)
        for ch, arr in arrays.items():
            save(tmp_path / folder / f"{cell}_{ch}.{ext}", arr)
        truth[(folder, cell)] = arrays
    (tmp_path / "G1" / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    return tmp_path, truth


def as_float(arr: np.ndarray) -> np.ndarray:
    return arr.astype(np.float64) / (255.0 if arr.dtype == np.uint8 else 65535.0)


def test_loader_returns_right_tensors_labels_and_class_names(clean_tree):
    root, truth = clean_tree
    ds = CellCycleFolder(root, channels=("Ch3", "Ch6"))
    assert ds.class_names == ("Interphase", "Prophase", "Metaphase", "Anaphase", "Telophase")
    # Sorted by phase order, then cell id numerically ("2" before "10").
    order = [("G1", "2"), ("G1", "10"), ("S_phase", "7"), ("g2", "5"), ("Prophase", "1"),
             ("anaphase", "3"), ("Telophase", "4")]  # fmt: skip
    assert [r.cell_id for r in ds.records] == [cell for _, cell in order]
    assert ds.targets.dtype == torch.int64
    assert ds.targets.tolist() == [0, 0, 0, 0, 1, 3, 4]
    assert ds.counts == (
        ("Interphase", 4), ("Prophase", 1), ("Metaphase", 0), ("Anaphase", 1), ("Telophase", 1)
    )  # fmt: skip
    assert ds.classes == 5
    assert ds.image_size == (SIZE, SIZE)
    assert ds.problems == {}
    for i, key in enumerate(order):
        image, label = ds[i]
        assert image.dtype == torch.float32
        assert image.shape == (2, SIZE, SIZE)
        assert label == ds.targets[i].item()
        expected = np.stack([as_float(truth[key]["Ch3"]), as_float(truth[key]["Ch6"])])
        tol = 2 / 255 if "jp" in Path(ds.records[i].paths[0]).suffix else 1e-7
        np.testing.assert_allclose(image.numpy(), expected, atol=tol)


def test_sixteen_bit_tiff_keeps_full_precision(clean_tree):
    root, truth = clean_tree
    ds = CellCycleFolder(root, channels=["ch6"], merge=None)
    i = [r.cell_id for r in ds.records].index("7")
    raw = ds.load_into_memory().images[i, 0]
    assert raw.dtype == torch.uint16
    np.testing.assert_array_equal(raw.numpy().astype(np.int64), truth[("S_phase", "7")]["Ch6"])


def test_without_merge_the_seven_phases_are_classes(clean_tree):
    root, _ = clean_tree
    ds = CellCycleFolder(root, merge=None)
    assert ds.class_names == CELL_CYCLE_PHASES
    assert ds.targets.tolist() == [0, 0, 1, 2, 3, 5, 6]


def test_channel_order_follows_request(clean_tree):
    root, truth = clean_tree
    ds = CellCycleFolder(root, channels=("CH6", "ch3"))
    assert ds.channels == ("Ch6", "Ch3")
    image, _ = ds[0]
    np.testing.assert_allclose(image[0].numpy(), as_float(truth[("G1", "2")]["Ch6"]), atol=1e-7)


def test_load_into_memory_matches_getitem_and_keeps_transform(clean_tree):
    root, _ = clean_tree
    transform = RandomDihedral()
    ds = CellCycleFolder(root, channels=("Ch3", "Ch6"), transform=transform)
    mem = ds.load_into_memory()
    assert isinstance(mem, CellImageDataset)
    assert mem.images.shape == (7, 2, SIZE, SIZE)
    assert mem.images.dtype == torch.uint16  # some files are 16-bit
    assert torch.equal(mem.targets, ds.targets)
    assert mem.class_names == ds.class_names
    assert mem.transform is transform
    plain = CellCycleFolder(root, channels=("Ch3", "Ch6"))
    mem_plain = plain.load_into_memory()
    for i in range(len(plain)):
        torch.testing.assert_close(mem_plain[i][0], plain[i][0], atol=1e-7, rtol=0)


def test_only_eight_bit_files_load_as_uint8(tmp_path):
    save(tmp_path / "Metaphase" / "1_Ch3.png", pattern(0))
    save(tmp_path / "G2" / "2_Ch3.png", pattern(1))
    mem = CellCycleFolder(tmp_path, channels=CH3).load_into_memory()
    assert mem.images.dtype == torch.uint8
    np.testing.assert_array_equal(mem.images[1, 0].numpy(), pattern(0))  # Metaphase after G2


def add_problems(root: Path) -> None:
    save(root / "G1" / "99_Ch3.png", pattern(9))  # Ch6 missing
    (root / "Prophase" / "98_Ch3.png").write_bytes(b"definitely not a png")
    save(root / "Prophase" / "98_Ch6.png", pattern(8))
    save(root / "debris" / "97_Ch3.png", pattern(7))
    big = np.zeros((SIZE + 4, SIZE + 4), np.uint8)
    save(root / "Metaphase" / "96_Ch3.png", big)
    save(root / "Metaphase" / "96_Ch6.png", big)


def test_problems_raise_by_default_with_counts_and_examples(clean_tree):
    root, _ = clean_tree
    add_problems(root)
    with pytest.raises(ValueError, match="on_error='skip'") as info:
        CellCycleFolder(root, channels=("Ch3", "Ch6"))
    message = str(info.value)
    assert "1 x cell missing a requested channel" in message
    assert "99 (missing Ch6)" in message
    assert "1 x unreadable file" in message
    assert "98_Ch3.png" in message
    assert "1 x unknown phase folder" in message
    assert "debris" in message
    assert "2 x image size differs from 12x12" in message
    assert "96_Ch3.png (16x16)" in message


def test_problems_skipped_with_warning(clean_tree):
    root, _ = clean_tree
    add_problems(root)
    with pytest.warns(UserWarning, match="skipped"):
        ds = CellCycleFolder(root, channels=("Ch3", "Ch6"), on_error="skip")
    assert len(ds) == len(CLEAN_CELLS)
    assert {r.cell_id for r in ds.records} == {cell for _, cell, *_ in CLEAN_CELLS}
    assert set(ds.problems) == {
        "cell missing a requested channel",
        "unreadable file",
        "unknown phase folder",
        "image size differs from 12x12",
    }
    # Requesting only Ch3, cell 99 is complete.
    with pytest.warns(UserWarning, match="unreadable file"):
        ds3 = CellCycleFolder(root, channels=CH3, on_error="skip")
    assert "99" in {r.cell_id for r in ds3.records}


def test_undecodable_file_found_while_loading_into_memory(tmp_path):
    save(tmp_path / "G1" / "1_Ch3.png", pattern(0))
    save(tmp_path / "G1" / "2_Ch3.png", pattern(1))
    good = (tmp_path / "G1" / "2_Ch3.png").read_bytes()
    # A valid header with truncated pixel data passes the index scan but fails to decode.
    (tmp_path / "G1" / "2_Ch3.png").write_bytes(good[: len(good) // 2])
    ds = CellCycleFolder(tmp_path, channels=CH3)
    with pytest.raises(ValueError, match="could not decode 1 cell"):
        ds.load_into_memory()
    with pytest.raises(ValueError, match="could not decode cell '2'"):
        ds[1]
    skipping = CellCycleFolder(tmp_path, channels=CH3, on_error="skip")
    with pytest.warns(UserWarning, match="skipped"):
        mem = skipping.load_into_memory()
    assert len(mem) == 1


def test_bad_arguments(tmp_path):
    save(tmp_path / "G1" / "1_Ch3.png", pattern(0))
    with pytest.raises(FileNotFoundError, match="root"):
        CellCycleFolder(tmp_path / "missing")
    with pytest.raises(ValueError, match="channels"):
        CellCycleFolder(tmp_path, channels=("brightfield",))
    with pytest.raises(ValueError, match="channels"):
        CellCycleFolder(tmp_path, channels=("Ch3", "ch3"))
    with pytest.raises(ValueError, match="on_error"):
        CellCycleFolder(tmp_path, channels=CH3, on_error="ignore")
    with pytest.raises(TypeError, match="transform"):
        CellCycleFolder(tmp_path, channels=CH3, transform=3)  # type: ignore[arg-type]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="accepted layouts"):
        CellCycleFolder(empty)


def test_missing_pillow_names_the_extra(tmp_path, monkeypatch):
    save(tmp_path / "G1" / "1_Ch3.png", pattern(0))
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r'pip install "cellvision\[images\]"'):
        CellCycleFolder(tmp_path, channels=CH3)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("G1", "G1"),
        ("g1", "G1"),
        ("S", "S"),
        ("S_phase", "S"),
        ("s-phase", "S"),
        ("G2 Phase", "G2"),
        ("PROPHASE", "Prophase"),
        ("metaphase", "Metaphase"),
        ("Ana_phase", "Anaphase"),
        ("telophase", "Telophase"),
        ("phase", None),
        ("Interphase", None),
        ("debris", None),
    ],
)
def test_canonical_phase_aliases(name, expected):
    assert canonical_phase(name) == expected


def test_merge_labels_by_name_and_index():
    labels, names = merge_labels(list(CELL_CYCLE_PHASES), INTERPHASE_MERGE)
    assert names == MERGED_CELL_CYCLE_PHASES
    assert labels.tolist() == [0, 0, 0, 1, 2, 3, 4]
    labels, names = merge_labels(
        np.array([6, 5, 0]),
        {"Anaphase": "Late", "Telophase": "Late"},
        class_names=CELL_CYCLE_PHASES,
    )
    assert names == ("G1", "S", "G2", "Prophase", "Metaphase", "Late")
    assert labels.tolist() == [5, 5, 0]
    labels, names = merge_labels(torch.tensor([1, 0]), None, class_names=["a", "b"])
    assert (labels.tolist(), names) == ([1, 0], ("a", "b"))
    # String labels without class_names: phases in cell-cycle order, then other names sorted.
    labels, names = merge_labels(["zeta", "Metaphase", "alpha", "G1"], INTERPHASE_MERGE)
    assert names == ("Interphase", "Metaphase", "alpha", "zeta")
    assert labels.tolist() == [3, 1, 2, 0]


@pytest.mark.parametrize(
    ("labels", "mapping", "kwargs", "error", "match"),
    [
        ([0, 3], None, {"class_names": ["a", "b"]}, ValueError, "labels must be in"),
        ([0, 1], None, {}, TypeError, "class_names must be given"),
        (["x"], None, {"class_names": ["a"]}, ValueError, "among class_names"),
        (["a", 1], None, {"class_names": ["a"]}, TypeError, "all str or all int"),
        (["a"], {"a": 1}, {}, TypeError, "mapping"),
        ([0], None, {"class_names": ["a", "a"]}, ValueError, "unique"),
    ],
)
def test_merge_labels_rejects_bad_input(labels, mapping, kwargs, error, match):
    with pytest.raises(error, match=match):
        merge_labels(labels, mapping, **kwargs)


def test_cell_image_dataset_access_and_batches():
    images = torch.arange(5 * 2 * 3 * 3, dtype=torch.float32).reshape(5, 2, 3, 3)
    ds = CellImageDataset(images, np.array([0, 1, 2, 1, 0]), ["a", "b", "c"])
    image, label = ds[3]
    assert torch.equal(image, images[3])
    assert label == 1
    assert isinstance(label, int)
    x, y = ds.get_batch(torch.tensor([4, 0]))
    assert torch.equal(x, images[[4, 0]])
    assert y.tolist() == [0, 0]
    assert ds.counts == (("a", 2), ("b", 2), ("c", 1))

    u8 = CellImageDataset(np.full((2, 4, 4), 255, np.uint8), [0, 0], ["only"])
    assert u8.images.shape == (2, 1, 4, 4)
    assert u8[0][0].max().item() == 1.0

    augmented = CellImageDataset(images, [0] * 5, ["a"], transform=RandomDihedral())
    xb, _ = augmented.get_batch([0, 1, 2], generator=torch.Generator().manual_seed(0))
    xb2, _ = augmented.get_batch([0, 1, 2], generator=torch.Generator().manual_seed(0))
    assert torch.equal(xb, xb2)
    assert sorted(xb[0].flatten().tolist()) == sorted(images[0].flatten().tolist())
    with pytest.raises(IndexError, match="indices"):
        ds.get_batch([5])


def test_cell_image_dataset_works_with_dataloader():
    ds = CellImageDataset(torch.rand(6, 1, 4, 4), [0, 1] * 3, ["a", "b"])
    batches = list(torch.utils.data.DataLoader(ds, batch_size=4))
    assert batches[0][0].shape == (4, 1, 4, 4)
    assert batches[0][1].tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize(
    ("images", "labels", "names", "error", "match"),
    [
        (torch.zeros(2, 4), [0, 0], ["a"], ValueError, "images must have shape"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.int32), [0, 0], ["a"], TypeError, "dtype"),
        (torch.zeros(2, 1, 4, 4), [0], ["a"], ValueError, "one entry per image"),
        (torch.zeros(2, 1, 4, 4), [0, 2], ["a", "b"], ValueError, r"labels must be in \[0, 2\)"),
        (torch.zeros(2, 1, 4, 4), [0.0, 1.0], ["a", "b"], TypeError, "labels"),
        (torch.zeros(2, 1, 4, 4), [0, 0], "ab", TypeError, "class_names"),
        (torch.zeros(2, 1, 4, 4), [0, 0], [], ValueError, "class_names"),
        ([[0]], [0], ["a"], TypeError, "images must be a Tensor"),
    ],
)
def test_cell_image_dataset_rejects_bad_input(images, labels, names, error, match):
    with pytest.raises(error, match=match):
        CellImageDataset(images, labels, names)


def test_cell_image_dataset_ids_subset_and_unlabelled_targets():
    images = torch.arange(4 * 1 * 2 * 2, dtype=torch.float32).reshape(4, 1, 2, 2)
    transform = RandomDihedral()
    ds = CellImageDataset(
        images, [0, -1, 1, 0], ["a", "b"], ids=["p", "q", "r", "s"], transform=transform
    )
    assert ds.ids == ("p", "q", "r", "s")
    assert not ds.is_labelled
    assert ds.counts == (("a", 2), ("b", 1))  # the unlabelled sample is not counted
    part = ds.subset(np.array([2, -1]))
    assert part.ids == ("r", "s")
    assert part.targets.tolist() == [1, 0]
    assert part.is_labelled
    assert part.transform is transform
    assert torch.equal(part.images, images[[2, 3]])
    assert ds.subset([0], transform=None).transform is None
    assert CellImageDataset(images, [0] * 4, ["a"]).subset([1]).ids is None
    with pytest.raises(IndexError, match="indices"):
        ds.subset([4])
    with pytest.raises(ValueError, match="transform"):
        ds.subset([0], transform="other")


@pytest.mark.parametrize(
    ("labels", "ids", "error", "match"),
    [
        ([0, -2], None, ValueError, r"or -1 \(unlabelled\)"),
        ([0, 0], ["x"], ValueError, "one entry per image"),
        ([0, 0], ["x", "x"], ValueError, "unique"),
        ([0, 0], "xy", TypeError, "ids"),
        ([0, 0], [1, 2], TypeError, "ids"),
    ],
)
def test_cell_image_dataset_rejects_bad_ids_and_labels(labels, ids, error, match):
    with pytest.raises(error, match=match):
        CellImageDataset(torch.zeros(2, 1, 2, 2), labels, ["a"], ids=ids)


def test_per_cell_ids_follow_folder_and_cell(clean_tree):
    root, _ = clean_tree
    ds = CellCycleFolder(root, channels=("Ch3", "Ch6"))
    assert ds.ids[:3] == ("G1/2", "G1/10", "S_phase/7")
    assert ds.layout == "per-cell"
    assert ds.load_into_memory().ids == ds.ids
