"""Tests for the montage layout: cellvision.data.montage and the montage path of the reader.

Montages are written inside the tests as 16-bit PackBits TIFFs (the release's format) from
tiles whose values are known, so every expectation is computed from those tiles by a naive
reference written here. When the developer copy of the real release is present
(``../shared/data/jurkat`` next to the repository, or ``$CELLVISION_SHARED/data/jurkat``), it
is read once per module and checked against the counts published in its README.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellvision.data import (
    CELL_CYCLE_PHASES,
    CHANNEL_SIGNALS,
    DEFAULT_CHANNELS,
    LABEL_FREE_CHANNELS,
    UNLABELLED,
    CellCycleFolder,
    channel_name,
    find_duplicate_tiles,
    infer_tile_size,
    is_label_free,
    load_cells,
    load_jurkat_sample,
    padding_tile_mask,
    split_montage,
)

Image = pytest.importorskip("PIL.Image")

T = 10  # tile size of the test montages


# ----------------------------------------------------------------------------- helpers
def naive_tiles(image: np.ndarray, th: int, tw: int, order: str) -> list[np.ndarray]:
    rows, cols = image.shape[-2] // th, image.shape[-1] // tw
    out = []
    for k in range(rows * cols):
        r, c = (k % rows, k // rows) if order == "column" else (k // cols, k % cols)
        out.append(image[..., r * th : (r + 1) * th, c * tw : (c + 1) * tw])
    return out


def assemble(tiles: np.ndarray, rows: int, cols: int, order: str = "column") -> np.ndarray:
    """Place ``rows * cols`` tiles (n, th, tw) into one montage, naively."""
    th, tw = tiles.shape[-2:]
    montage = np.zeros((rows * th, cols * tw), dtype=tiles.dtype)
    for k in range(rows * cols):
        r, c = (k % rows, k // rows) if order == "column" else (k // cols, k % cols)
        montage[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = tiles[k]
    return montage


def cell_tiles(n: int, seed: int, size: int = T, base: int = 300) -> np.ndarray:
    """``n`` cell-like uint16 tiles: a centred blob of random brightness on a noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centre = (size - 1) / 2
    blob = np.exp(-((yy - centre) ** 2 + (xx - centre) ** 2) / (2 * (size / 5) ** 2))
    gains = rng.uniform(200, 900, size=(n, 1, 1))
    noise = rng.normal(0, 8, size=(n, size, size))
    return np.clip(base + gains * blob + noise, 0, 65535).astype(np.uint16)


def padding_tile(size: int = T, seed: int = 99) -> np.ndarray:
    """A padding tile whose repeated row varies a lot: overall std far above 40."""
    row = np.random.default_rng(seed).integers(100, 400, size=size).astype(np.uint16)
    tile = np.tile(row, (size, 1))
    assert tile.std() > 40
    return tile


def write_montage(path: Path, montage: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(montage).save(path, compression="packbits")


def write_class(
    root: Path,
    folder: str,
    montage: str,
    channels: dict[str, np.ndarray],
    rows: int,
    cols: int,
    order: str = "column",
) -> None:
    """Write one montage per channel from (n_cells, T, T) tiles, padded to rows * cols."""
    for ch, cells in channels.items():
        pads = np.stack([padding_tile(cells.shape[-1], seed=i) for i in range(rows * cols)])
        tiles = np.concatenate([cells, pads[len(cells) :]])
        write_montage(root / folder / f"{ch}_{montage}.tif", assemble(tiles, rows, cols, order))


# ----------------------------------------------------------------------------- tile functions
@pytest.mark.parametrize("order", ["column", "row"])
def test_split_montage_matches_naive_cut(order):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 1000, size=(2, 3 * 4, 5 * 6)).astype(np.uint16)  # 3 x 5 grid, 4x6
    tiles = split_montage(image, (4, 6), order=order)
    expected = np.stack(naive_tiles(image, 4, 6, order))  # (n, C, th, tw)
    np.testing.assert_array_equal(tiles, expected)
    np.testing.assert_array_equal(split_montage(image, grid=(3, 5), order=order), expected)
    np.testing.assert_array_equal(split_montage(image[1], (4, 6), order=order), expected[:, 1])


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 5),
    cols=st.integers(1, 5),
    th=st.integers(1, 6),
    tw=st.integers(1, 6),
    order=st.sampled_from(["column", "row"]),
)
def test_split_montage_inverts_assembly(rows, cols, th, tw, order):
    tiles = np.arange(rows * cols * th * tw, dtype=np.int64).reshape(rows * cols, th, tw)
    montage = assemble(tiles, rows, cols, order)
    out = split_montage(montage, (th, tw), order=order)
    assert out.shape == (rows * cols, th, tw)
    assert out.dtype == tiles.dtype
    np.testing.assert_array_equal(out, tiles)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tile_size": 7}, ValueError, "tile_size must divide"),
        ({"grid": (3, 4)}, ValueError, "grid must divide"),
        ({"tile_size": 5, "grid": (2, 2)}, ValueError, "must match grid"),
        ({"tile_size": 0}, ValueError, "positive"),
        ({"tile_size": 2.5}, TypeError, "tile_size"),
        ({"tile_size": 5, "order": "diagonal"}, ValueError, "order"),
    ],
)
def test_split_montage_rejects_bad_sizes(kwargs, error, match):
    with pytest.raises(error, match=match):
        split_montage(np.zeros((20, 20)), **kwargs)


def test_split_montage_accepts_numpy_integers():
    out = split_montage(np.zeros((20, 20)), np.int64(10))
    assert out.shape == (4, 10, 10)


def test_padding_mask_uses_constant_columns_not_std():
    pad = padding_tile(12)
    flat = np.full((12, 12), 5, np.uint16)  # constant everywhere: also padding
    cells = cell_tiles(3, seed=1, size=12)
    dim = cells[0].copy()
    dim[:] = 300
    dim[4, 7] = 301  # one pixel differs: not padding
    stack = np.stack([cells[0], pad, flat, cells[1], dim, cells[2]])
    naive = [all(len(set(tile[:, x])) == 1 for x in range(12)) for tile in stack]
    assert padding_tile_mask(stack).tolist() == naive == [False, True, True, False, False, False]
    assert padding_tile_mask(torch.from_numpy(stack.astype(np.int32))).tolist() == naive
    # per channel for (n, C, th, tw)
    both = np.stack([np.stack([pad, cells[0]]), np.stack([pad, pad])])
    assert padding_tile_mask(both).tolist() == [[True, False], [True, True]]


def naive_duplicates(tiles: np.ndarray, tolerance: float) -> list[int]:
    x = tiles.astype(np.float64)
    if x.ndim == 3:
        x = x[:, None]
    scale = [x[:, c].std() for c in range(x.shape[1])]
    out: list[int] = []
    for i in range(len(x)):
        match = -1
        for j in range(i):
            if out[j] != -1:  # only kept tiles can be repeated
                continue
            rms = [np.sqrt(((x[i, c] - x[j, c]) ** 2).mean()) for c in range(x.shape[1])]
            if all(r <= tolerance * s for r, s in zip(rms, scale, strict=True)):
                match = j
                break
        out.append(match)
    return out


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 8),
    th=st.integers(2, 5),
    tw=st.integers(1, 5),
    seed=st.integers(0, 10_000),
)
def test_padding_mask_property(n, th, tw, seed):
    rng = np.random.default_rng(seed)
    tiles = rng.integers(0, 3, size=(n, th, tw))  # few values: constant columns do happen
    rows = rng.integers(0, 3, size=(n, 1, tw))
    padded = rng.random(n) < 0.5
    tiles[padded] = np.broadcast_to(rows, tiles.shape)[padded]
    naive = [all(len(set(tile[:, x].tolist())) == 1 for x in range(tw)) for tile in tiles]
    assert padding_tile_mask(tiles).tolist() == naive
    assert all(naive[i] for i in np.flatnonzero(padded))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_exact_duplicates_property(n, seed):
    rng = np.random.default_rng(seed)
    tiles = rng.integers(0, 2, size=(n, 2, 2, 2))  # 2 x 2 x 2 bits: repeats are common
    assert find_duplicate_tiles(tiles).tolist() == naive_duplicates(tiles, 0.0)


@pytest.mark.parametrize("tolerance", [0.0, 0.05, 0.3])
def test_find_duplicate_tiles_matches_naive_reference(tolerance):
    cells = cell_tiles(8, seed=3).astype(np.int64)
    rng = np.random.default_rng(4)
    cells[5] = cells[2]  # exact repeat
    cells[7] = cells[1] + rng.integers(-2, 3, size=cells[1].shape)  # near repeat
    two_channel = np.stack([cells, cells[::-1]], axis=1)
    for tiles in (cells, two_channel):
        got = find_duplicate_tiles(tiles, tolerance).tolist()
        assert got == naive_duplicates(tiles, tolerance)
    assert find_duplicate_tiles(cells).tolist() == [-1, -1, -1, -1, -1, 2, -1, -1]
    assert find_duplicate_tiles(cells, 0.05).tolist() == [-1, -1, -1, -1, -1, 2, -1, 1]


def test_near_duplicates_never_point_at_a_dropped_tile():
    base = cell_tiles(1, seed=6)[0].astype(np.float64)
    step = np.full_like(base, 1.0)
    others = cell_tiles(3, seed=7).astype(np.float64)
    chain = np.stack([base, base + 3 * step, base + 6 * step, *others])  # 0~1, 1~2, not 0~2
    scale = chain.std()
    tolerance = 4.0 / scale  # a 3-level shift is within it, a 6-level one is not
    assert find_duplicate_tiles(chain, tolerance).tolist() == [-1, 0, -1, -1, -1, -1]


def test_find_duplicate_tiles_keeps_first_of_many_copies():
    cells = cell_tiles(3, seed=5)
    tiles = np.stack([cells[0], cells[1], cells[0], cells[0], cells[2], cells[1]])
    assert find_duplicate_tiles(tiles).tolist() == [-1, -1, 0, 0, -1, 1]
    assert find_duplicate_tiles(tiles[:1]).tolist() == [-1]


@pytest.mark.parametrize("tolerance", [-0.1, float("nan"), "0.1"])
def test_find_duplicate_tiles_rejects_bad_tolerance(tolerance):
    with pytest.raises((TypeError, ValueError), match="tolerance"):
        find_duplicate_tiles(np.zeros((2, 3, 3)), tolerance)


@pytest.mark.parametrize(("n_cells", "rows", "cols"), [(12, 3, 4), (5, 6, 6), (36, 6, 6)])
def test_infer_tile_size_on_centred_cells(n_cells, rows, cols):
    cells = cell_tiles(n_cells, seed=n_cells, size=12)
    pads = np.stack([padding_tile(12, seed=i) for i in range(rows * cols)])
    montage = assemble(np.concatenate([cells, pads[n_cells:]]), rows, cols)
    assert infer_tile_size(montage) == 12
    assert infer_tile_size(np.stack([montage, montage // 2])) == 12


# ----------------------------------------------------------------------------- channels
def test_channel_vocabulary():
    assert channel_name("ch03") == channel_name(3) == channel_name(np.int64(3)) == "Ch3"
    assert set(LABEL_FREE_CHANNELS) == {"Ch3", "Ch6"}
    assert DEFAULT_CHANNELS == ("Ch3", "Ch6")
    assert "brightfield" in CHANNEL_SIGNALS["Ch3"]
    assert "DNA" in CHANNEL_SIGNALS["Ch4"]
    assert "darkfield" in CHANNEL_SIGNALS["Ch6"]
    assert is_label_free(("Ch3", "Ch6"))
    assert is_label_free("ch6")
    assert is_label_free([3])
    assert not is_label_free(("Ch3", "Ch4"))
    assert not is_label_free(["Ch1"])  # unknown meaning: not counted as label-free
    for bad in ("brightfield", -1, 2.0):
        with pytest.raises((TypeError, ValueError), match="channel"):
            channel_name(bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- the reader
@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    """A small release: three phase folders, Ch3 + Ch6, Prophase in two montages."""
    truth: dict[str, dict[str, np.ndarray]] = {}
    plan = {"G1": [7], "Prophase": [6, 3], "Anaphase": [2]}  # cells per montage
    seed = 0
    for folder, sizes in plan.items():
        for m, n in enumerate(sizes, start=1):
            key = f"CP{m:04d}"
            chans = {ch: cell_tiles(n, seed=(seed := seed + 1), base=300 + 50 * k)
                     for k, ch in enumerate(("Ch3", "Ch4", "Ch6"))}  # fmt: skip
            write_class(tmp_path, folder, key, chans, rows=3, cols=3)
            truth[f"{folder}/{key}"] = chans
    return tmp_path, truth


def test_reader_drops_padding_and_keeps_cells_in_order(release):
    root, truth = release
    ds = CellCycleFolder(root, channels=("Ch3", "Ch6"), merge=None)
    assert ds.layout == "montage"
    assert ds.labelled
    assert ds.image_size == (T, T)  # inferred
    assert ds.counts == (
        ("G1", 7), ("S", 0), ("G2", 0), ("Prophase", 9), ("Metaphase", 0), ("Anaphase", 2),
        ("Telophase", 0),
    )  # fmt: skip
    expected_ids = (
        [f"G1/CP0001#{k}" for k in range(7)]
        + [f"Prophase/CP0001#{k}" for k in range(6)]
        + [f"Prophase/CP0002#{k}" for k in range(3)]
        + [f"Anaphase/CP0001#{k}" for k in range(2)]
    )
    assert ds.ids == tuple(expected_ids)
    assert ds.padding_tiles == {"G1/CP0001": 2, "Prophase/CP0001": 3, "Prophase/CP0002": 6,
                                "Anaphase/CP0001": 7}  # fmt: skip
    assert ds.dropped == {}
    mem = ds.load_into_memory()
    assert mem.images.dtype == torch.uint16
    assert mem.images.shape == (18, 2, T, T)
    assert mem.ids == ds.ids
    for i, cell_id in enumerate(ds.ids):
        montage, k = cell_id.split("#")
        # channels matched by montage number: Ch3 and Ch6 of the same montage and tile
        np.testing.assert_array_equal(mem.images[i, 0].numpy(), truth[montage]["Ch3"][int(k)])
        np.testing.assert_array_equal(mem.images[i, 1].numpy(), truth[montage]["Ch6"][int(k)])
    image, label = ds[8]
    assert image.dtype == torch.float32
    assert label == CELL_CYCLE_PHASES.index("Prophase")
    np.testing.assert_allclose(
        image[1].numpy(), truth["Prophase/CP0001"]["Ch6"][1] / 65535.0, rtol=0, atol=1e-7
    )
    assert ds.records[8].tile == 1
    # Padding tiles with large std are gone: no returned tile has only constant columns.
    flat = mem.images.numpy()
    assert all((tile.max(axis=0) != tile.min(axis=0)).any() for tile in flat[:, 0])


def test_reader_tile_size_and_grid_options_agree_with_inference(release):
    root, _ = release
    inferred = load_cells(root)
    by_size = load_cells(root, tile_size=T)
    by_grid = load_cells(root, grid=(3, 3))
    assert inferred.ids == by_size.ids == by_grid.ids
    assert torch.equal(inferred.images, by_size.images)
    assert torch.equal(inferred.images, by_grid.images)
    assert inferred.class_names[0] == "Interphase"
    with pytest.raises(ValueError, match="tile_size must divide"):
        load_cells(root, tile_size=7)


def test_natural_montage_order_and_several_montages(tmp_path):
    parts = {key: cell_tiles(2, seed=i) for i, key in enumerate(["CP0002", "CP0010", "CP0001"])}
    for key, cells in parts.items():
        write_class(tmp_path, "Telophase", key, {"Ch3": cells}, rows=2, cols=2)
    ds = load_cells(tmp_path, channels="Ch3")
    assert ds.ids == tuple(f"Telophase/{key}#{k}" for key in ("CP0001", "CP0002", "CP0010")
                           for k in (0, 1))  # fmt: skip
    expected = np.concatenate([parts["CP0001"], parts["CP0002"], parts["CP0010"]])
    np.testing.assert_array_equal(ds.images[:, 0].numpy(), expected)


def test_duplicate_tiles_are_dropped_exact_by_default_near_on_request(tmp_path):
    cells = cell_tiles(6, seed=11).astype(np.int64)
    cells[4] = cells[1]  # exact repeat, as the release's last Anaphase tile
    rng = np.random.default_rng(0)
    cells[5] = cells[0] + rng.integers(-1, 2, size=cells[0].shape)  # near repeat
    write_class(tmp_path, "Anaphase", "CP0001", {"Ch3": cells.astype(np.uint16)}, rows=3, cols=3)
    # a later montage of the same class repeating an earlier montage's cell is caught too
    later = np.stack([cells[2], cell_tiles(1, seed=12)[0]]).astype(np.uint16)
    write_class(tmp_path, "Anaphase", "CP0002", {"Ch3": later}, rows=2, cols=2)

    exact = CellCycleFolder(tmp_path, channels="Ch3")
    assert exact.dropped == {
        "Anaphase/CP0001#4": "duplicate of Anaphase/CP0001#1",
        "Anaphase/CP0002#0": "duplicate of Anaphase/CP0001#2",
    }
    assert "Anaphase/CP0001#5" in exact.ids
    assert len(exact) == 6
    near = CellCycleFolder(tmp_path, channels="Ch3", duplicate_tolerance=0.05)
    assert near.dropped["Anaphase/CP0001#5"] == "duplicate of Anaphase/CP0001#0"
    assert len(near) == 5
    keep_all = CellCycleFolder(tmp_path, channels="Ch3", drop_duplicates=False)
    assert len(keep_all) == 8
    assert keep_all.dropped == {}


def test_tile_order_is_configurable(tmp_path):
    cells = cell_tiles(5, seed=21)
    write_class(tmp_path, "G2", "CP0001", {"Ch3": cells}, rows=2, cols=3, order="row")
    row = load_cells(tmp_path, channels="Ch3", tile_order="row", tile_size=T)
    np.testing.assert_array_equal(row.images[:, 0].numpy(), cells)
    column = load_cells(tmp_path, channels="Ch3", tile_size=T)  # wrong order for this file
    montage = assemble(np.concatenate([cells, [padding_tile()]]), 2, 3, order="row")
    expected = [
        t
        for t in naive_tiles(montage, T, T, "column")
        if not all(len(set(t[:, x])) == 1 for x in range(T))
    ]
    np.testing.assert_array_equal(column.images[:, 0].numpy(), np.stack(expected))
    assert not np.array_equal(column.images[:, 0].numpy(), cells)


def test_channels_that_disagree_are_a_clear_error(tmp_path):
    cells = cell_tiles(4, seed=31)
    write_class(tmp_path, "G1", "CP0001", {"Ch3": cells, "Ch6": cells[:3]}, rows=2, cols=3)
    with pytest.raises(ValueError, match="same cell tiles") as info:
        CellCycleFolder(tmp_path, channels=("Ch3", "Ch6"))
    assert "Ch3_CP0001.tif 4" in str(info.value)
    assert "Ch6_CP0001.tif 3" in str(info.value)
    assert len(CellCycleFolder(tmp_path, channels="Ch3")) == 4  # one channel alone is fine

    other = tmp_path / "sizes"
    write_class(other, "G1", "CP0001", {"Ch3": cells}, rows=2, cols=3)
    write_class(other, "G1", "CP0001", {"Ch6": cells}, rows=3, cols=2)
    with pytest.raises(ValueError, match="must have one size") as info:
        CellCycleFolder(other, channels=("Ch3", "Ch6"), tile_size=T)
    assert "20x30" in str(info.value)
    assert "30x20" in str(info.value)


def test_montages_with_different_tile_sizes_are_an_error(tmp_path):
    write_class(tmp_path, "G1", "CP0001", {"Ch3": cell_tiles(3, seed=1, size=10)}, 2, 2)
    write_class(tmp_path, "G2", "CP0001", {"Ch3": cell_tiles(3, seed=2, size=12)}, 2, 2)
    with pytest.raises(ValueError, match="one tile size"):
        CellCycleFolder(tmp_path, channels="Ch3")


def test_montage_missing_a_channel_is_a_problem(tmp_path):
    write_class(tmp_path, "G1", "CP0001", {"Ch3": cell_tiles(3, seed=1), "Ch6": cell_tiles(3, 2)},
                2, 2)  # fmt: skip
    write_class(tmp_path, "G1", "CP0002", {"Ch3": cell_tiles(2, seed=3)}, 2, 2)
    with pytest.raises(ValueError, match="1 x montage missing a requested channel"):
        CellCycleFolder(tmp_path)
    with pytest.warns(UserWarning, match="CP0002 \\(missing Ch6\\)"):
        ds = CellCycleFolder(tmp_path, on_error="skip")
    assert len(ds) == 3


def test_unlabelled_montage_folder_reads_for_prediction(tmp_path):
    cells3, cells6 = cell_tiles(5, seed=41), cell_tiles(5, seed=42)
    for ch, cells in (("Ch3", cells3), ("Ch6", cells6)):
        tiles = np.concatenate([cells, np.stack([padding_tile()] * 4)])
        write_montage(tmp_path / f"{ch}_CP0001.tif", assemble(tiles, 3, 3))
    (tmp_path / "results").mkdir()  # an unrelated sub-folder is ignored
    ds = CellCycleFolder(tmp_path)
    assert ds.problems == {}  # the sub-folder is not a problem when cells are found
    assert not ds.labelled
    assert ds.ids == tuple(f"CP0001#{k}" for k in range(5))
    assert ds.targets.tolist() == [UNLABELLED] * 5
    mem = ds.load_into_memory()
    assert not mem.is_labelled
    assert mem.class_names == ("Interphase", "Prophase", "Metaphase", "Anaphase", "Telophase")
    assert all(n == 0 for _, n in mem.counts)
    np.testing.assert_array_equal(mem.images[:, 1].numpy(), cells6)
    assert ds[2][1] == UNLABELLED


def test_unlabelled_per_cell_folder(tmp_path):
    for cell in ("3", "12"):
        for ch in ("Ch3", "Ch6"):
            Image.fromarray(cell_tiles(1, seed=int(cell))[0]).save(tmp_path / f"{cell}_{ch}.tif")
    ds = load_cells(tmp_path)
    assert ds.ids == ("3", "12")
    assert ds.targets.tolist() == [-1, -1]


def test_wrong_layout_error_names_the_accepted_layouts(tmp_path):
    (tmp_path / "G1").mkdir()
    Image.fromarray(cell_tiles(1, seed=1)[0]).save(tmp_path / "G1" / "cell_one.tif")
    with pytest.raises(ValueError, match="accepted layouts") as info:
        CellCycleFolder(tmp_path, on_error="skip")
    message = str(info.value)
    assert "G1/1234_Ch3.ome.jpg" in message  # per-cell example
    assert "Prophase/Ch3_CP0001.tif" in message  # montage example
    assert "unlabelled" in message
    assert "1 x unrecognised file name" in message
    assert "cell_one.tif" in message


def test_parent_folder_error_names_its_sub_folders(tmp_path):
    write_class(tmp_path / "Experiment_1", "G1", "CP0001", {"Ch3": cell_tiles(2, seed=1)}, 2, 2)
    with pytest.raises(ValueError, match="accepted layouts") as info:
        CellCycleFolder(tmp_path, channels="Ch3")
    assert "1 x sub-folder that is not a phase folder" in str(info.value)
    assert "Experiment_1" in str(info.value)


def test_mixed_layouts_are_an_error_unless_one_is_chosen(tmp_path):
    write_class(tmp_path, "G1", "CP0001", {"Ch3": cell_tiles(2, seed=1)}, 2, 2)
    Image.fromarray(cell_tiles(1, seed=2)[0]).save(tmp_path / "G1" / "77_Ch3.tif")
    with pytest.raises(ValueError, match="one layout"):
        CellCycleFolder(tmp_path, channels="Ch3")
    with pytest.warns(UserWarning, match="unrecognised file name"):
        montage = CellCycleFolder(tmp_path, channels="Ch3", layout="montage", on_error="skip")
    assert montage.ids == ("G1/CP0001#0", "G1/CP0001#1")
    with pytest.warns(UserWarning, match="unrecognised file name"):
        per_cell = CellCycleFolder(tmp_path, channels="Ch3", layout="per-cell", on_error="skip")
    assert per_cell.ids == ("G1/77",)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layout": "grid"}, ValueError, "layout"),
        ({"tile_order": "diagonal"}, ValueError, "tile_order"),
        ({"drop_duplicates": "yes"}, TypeError, "drop_duplicates"),
        ({"duplicate_tolerance": -1.0}, ValueError, "tolerance"),
        ({"channels": ()}, ValueError, "channels"),
        ({"channels": ("Ch3", 3)}, ValueError, "repeat"),
    ],
)
def test_reader_rejects_bad_options(release, kwargs, error, match):
    root, _ = release
    with pytest.raises(error, match=match):
        CellCycleFolder(root, **kwargs)


# ----------------------------------------------------------------------------- real data
REPO = Path(__file__).resolve().parents[2]
# The shared folder sits next to the repository; CELLVISION_SHARED points elsewhere (a worktree).
SHARED = Path(os.environ.get("CELLVISION_SHARED", REPO.parent / "shared"))
JURKAT_CANDIDATES = [SHARED / "data" / "jurkat"]
JURKAT = next((p for p in JURKAT_CANDIDATES if (p / "Experiment_1").is_dir()), None)
RELEASE_COUNTS = {
    "G1": 540,
    "S": 540,
    "G2": 540,
    "Prophase": 364,
    "Metaphase": 41,
    "Anaphase": 9,
    "Telophase": 16,
}  # fmt: skip  (from the data's README)


@pytest.fixture(scope="module")
def real() -> CellCycleFolder:
    if JURKAT is None:
        pytest.skip("the Jurkat developer data (../shared/data/jurkat) is not available")
    return CellCycleFolder(JURKAT / "Experiment_1", channels=("Ch3", "Ch4", "Ch6"), merge=None)


def test_real_montages_exact_counts(real):
    assert dict(real.counts) == RELEASE_COUNTS
    assert len(real) == 2050
    assert real.image_size == (40, 40)
    assert real.dropped == {}  # the developer copy has the release's repeats removed
    assert len(set(real.ids)) == len(real.ids)
    assert real.ids[0] == "G1/CP0008#0"
    assert "Anaphase/CP0001#8" in real.ids


def test_real_montages_no_padding_tile_survives(real):
    images = real.load_into_memory().images.numpy()
    assert images.dtype == np.uint16
    assert images.shape == (2050, 3, 40, 40)
    for c in range(3):
        varying_column = (images[:, c].max(axis=1) != images[:, c].min(axis=1)).any(axis=1)
        assert varying_column.all()


def test_real_default_channels_are_the_label_free_pair(real):
    cells = load_cells(real.root)
    assert cells.ids == real.ids
    assert cells.images.shape[1] == 2
    full = real.load_into_memory().images
    assert torch.equal(cells.images, full[:, [0, 2]])
    assert cells.counts == (("Interphase", 1620), ("Prophase", 364), ("Metaphase", 41),
                            ("Anaphase", 9), ("Telophase", 16))  # fmt: skip


# ----------------------------------------------------------------------------- the sample
def test_sample_loads_without_pillow(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    sample = load_jurkat_sample()
    assert sample.images.dtype == torch.uint16
    assert sample.images.shape[1:] == (2, 40, 40)
    counts = dict(sample.counts)
    assert counts["Metaphase"] == 41
    assert counts["Anaphase"] == 9
    assert counts["Telophase"] == 16
    assert counts["Prophase"] >= 100
    assert counts["Interphase"] >= 300
    assert sample.ids is not None
    assert len(set(sample.ids)) == len(sample)
    only_bf = load_jurkat_sample(channels=["Ch3"], merge=None)
    assert torch.equal(only_bf.images[:, 0], sample.images[:, 0])
    assert only_bf.class_names == CELL_CYCLE_PHASES
    with pytest.raises(ValueError, match="label-free channels"):
        load_jurkat_sample(channels=("Ch3", "Ch4"))


def test_sample_ships_with_license_and_is_small():
    import importlib.resources

    data = importlib.resources.files("cellvision.data")
    assert len(data.joinpath("jurkat_sample.npz").read_bytes()) <= 4 * 1024 * 1024
    notice = data.joinpath("JURKAT_LICENSE.txt").read_text()
    assert "BSD 3-Clause" in notice
    assert "minh-doan" in notice


def test_sample_matches_the_source_cells(real):
    sample = load_jurkat_sample(merge=None)
    position = {cell_id: i for i, cell_id in enumerate(real.ids)}
    source = real.load_into_memory().images
    picks = [
        0,
        len(sample) // 2,
        len(sample) - 1,
        *[i for i, cell_id in enumerate(sample.ids) if cell_id.startswith("Anaphase/")][:2],
    ]
    for i in picks:
        j = position[sample.ids[i]]
        assert torch.equal(sample.images[i], source[j][[0, 2]])
        assert int(sample.targets[i]) == int(real.targets[j])
