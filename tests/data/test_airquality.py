"""Tests for the Air Quality loader: stated facts, file variants, malformed input, filling."""

from __future__ import annotations

import datetime as dt
import gzip
import importlib.resources
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellvision.data.airquality import (
    AIR_QUALITY_COLUMNS,
    AirQuality,
    calendar_features,
    load_air_quality,
    parse_air_quality,
)


@pytest.fixture(scope="module")
def raw_bytes() -> bytes:
    resource = importlib.resources.files("cellvision.data").joinpath("AirQualityUCI.csv.gz")
    return gzip.decompress(resource.read_bytes())


@pytest.fixture(scope="module")
def raw_rows(raw_bytes: bytes) -> list[list[str]]:
    """The bundled file's data rows as field strings (Date, Time, 13 values), by a naive split."""
    rows = []
    for line in raw_bytes.decode("ascii").splitlines()[1:]:
        fields = line.split(";")
        if fields[0]:
            rows.append(fields[:15])
    return rows


@pytest.fixture(scope="module")
def bundled() -> AirQuality:
    return load_air_quality()


def naive_values(rows: list[list[str]]) -> np.ndarray:
    out = np.empty((len(rows), 13), dtype=np.float32)
    for i, row in enumerate(rows):
        for j, text in enumerate(row[2:]):
            v = float(text.replace(",", "."))
            out[i, j] = math.nan if v == -200 else v
    return out


def test_stated_facts(bundled: AirQuality) -> None:
    assert len(bundled) == 9357
    assert bundled.values.shape == (9357, 13)
    assert bundled.values.dtype == np.float32
    assert bundled.columns == AIR_QUALITY_COLUMNS
    assert bundled.timestamps[0] == np.datetime64("2004-03-10T18:00")
    assert bundled.timestamps[-1] == np.datetime64("2005-04-04T14:00")
    assert np.all(np.diff(bundled.timestamps) == np.timedelta64(1, "h"))
    benzene = bundled["C6H6(GT)"]
    assert int(np.isnan(benzene).sum()) == 366
    assert round(float(np.nanmean(benzene.astype(np.float64))), 4) == 10.0831
    assert int(np.isnan(bundled["NMHC(GT)"]).sum()) == 8443


def test_matches_naive_parse(bundled: AirQuality, raw_rows: list[list[str]]) -> None:
    np.testing.assert_array_equal(bundled.values, naive_values(raw_rows))
    first = raw_rows[0]
    assert (first[0], first[1]) == ("10/03/2004", "18.00.00")
    day, month, year = (int(p) for p in raw_rows[100][0].split("/"))
    hour = int(raw_rows[100][1][:2])
    assert bundled.timestamps[100] == np.datetime64(dt.datetime(year, month, day, hour))


def test_column_lookup(bundled: AirQuality) -> None:
    j = bundled.column_index("T")
    np.testing.assert_array_equal(bundled["T"], bundled.values[:, j])
    with pytest.raises(KeyError, match="'Temp'"):
        bundled["Temp"]
    with pytest.raises(ValueError, match="name must be one of the columns"):
        bundled.column_index("Temp")


# ------------------------------------------------------------------------------- variants
DATE_FORMATS = {
    "dmy_slash": lambda d, m, y: f"{d:02d}/{m:02d}/{y}",
    "dmy_dash": lambda d, m, y: f"{d:02d}-{m:02d}-{y}",
    "ymd_slash": lambda d, m, y: f"{y}/{m}/{d}",
    "iso": lambda d, m, y: f"{y}-{m:02d}-{d:02d}",
}


def write_variant(
    rows: list[list[str]],
    *,
    sep: str,
    bom: bool,
    eol: str,
    date: str,
    time_sep: str,
    trailing: bool,
    float_repr: bool = False,
) -> bytes:
    header = ["Date", "Time", *AIR_QUALITY_COLUMNS]
    lines = [sep.join(header) + ((sep * 2 + ",,,") if trailing else "")]
    for row in rows:
        d, m, y = (int(p) for p in row[0].split("/"))
        hh, mm, ss = row[1].split(".")
        values = row[2:]
        if sep == ",":
            values = [v.replace(",", ".") for v in values]
            if float_repr:  # what pandas.to_csv writes for float columns
                values = [repr(float(v)) for v in values]
        fields = [DATE_FORMATS[date](d, m, y), time_sep.join([hh, mm, ss]), *values]
        lines.append(
            sep.join(fields) + (sep * 2 + ("," if len(lines) % 3 == 0 else "") if trailing else "")
        )
    if trailing:
        lines += [sep * 16 + ",,,,,"] * 3
    text = eol.join(lines) + eol
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


# (sep, bom, eol, date format, time separator, trailing junk, pandas-style floats): every
# value of every option appears at least once.
VARIANTS = [
    (";", False, "\r\n", "dmy_slash", ".", True, False),
    (",", True, "\n", "iso", ":", False, False),
    (",", False, "\r\n", "dmy_dash", ":", True, False),
    (";", True, "\n", "ymd_slash", ":", False, False),
    (",", False, "\n", "ymd_slash", ".", False, False),
    (";", False, "\n", "iso", ".", True, False),
    (";", True, "\r\n", "dmy_dash", ".", False, False),
    (",", True, "\r\n", "dmy_slash", ":", True, False),
    (",", False, "\n", "iso", ":", False, True),
]


@pytest.mark.parametrize(
    ("sep", "bom", "eol", "date", "time_sep", "trailing", "float_repr"), VARIANTS
)
def test_variants_read_identically(
    sep: str,
    bom: bool,
    eol: str,
    date: str,
    time_sep: str,
    trailing: bool,
    float_repr: bool,
    raw_rows: list[list[str]],
    bundled: AirQuality,
) -> None:
    n = 1500  # a slice spanning a month boundary, with missing values, keeps this fast
    data = write_variant(
        raw_rows[:n],
        sep=sep,
        bom=bom,
        eol=eol,
        date=date,
        time_sep=time_sep,
        trailing=trailing,
        float_repr=float_repr,
    )
    aq = parse_air_quality(data)
    assert aq.columns == bundled.columns
    np.testing.assert_array_equal(aq.timestamps, bundled.timestamps[:n])
    np.testing.assert_array_equal(aq.values, bundled.values[:n])


def test_full_comma_variant_from_path(
    tmp_path: object, raw_rows: list[list[str]], bundled: AirQuality
) -> None:
    import pathlib

    assert isinstance(tmp_path, pathlib.Path)
    data = write_variant(
        raw_rows, sep=",", bom=True, eol="\n", date="iso", time_sep=":", trailing=False
    )
    path = tmp_path / "aq.csv"
    path.write_bytes(data)
    aq = load_air_quality(path)
    np.testing.assert_array_equal(aq.values, bundled.values)
    np.testing.assert_array_equal(aq.timestamps, bundled.timestamps)
    gz = tmp_path / "aq.csv.gz"
    gz.write_bytes(gzip.compress(data))
    np.testing.assert_array_equal(load_air_quality(str(gz)).values, bundled.values)


def test_column_order_in_file_does_not_matter(
    raw_rows: list[list[str]], bundled: AirQuality
) -> None:
    header = ["Date", "Time", *reversed(AIR_QUALITY_COLUMNS)]
    lines = [";".join(header)] + [";".join(r[:2] + r[2:][::-1]) for r in raw_rows[:50]]
    aq = parse_air_quality("\n".join(lines))
    np.testing.assert_array_equal(aq.values, bundled.values[:50])


# ------------------------------------------------------------------------------ malformed
def small_file(rows: list[list[str]], n: int = 6) -> list[str]:
    return [";".join(["Date", "Time", *AIR_QUALITY_COLUMNS])] + [";".join(r) for r in rows[:n]]


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (
            lambda ls: ls.__setitem__(3, ls[3].replace("11,9", "13,x")),
            r"line 4: unparseable number '13,x'",
        ),
        (
            lambda ls: ls.__setitem__(3, ls[3].replace("11,9", "13.3")),
            r"line 4: unparseable number '13.3'",
        ),
        (lambda ls: ls.__setitem__(3, ls[3].replace("11,9", "")), r"line 4: unparseable number ''"),
        (
            lambda ls: ls.__setitem__(3, ls[3].replace("11,9", "nan")),
            r"line 4: unparseable number 'nan'",
        ),
        (
            lambda ls: ls.__setitem__(3, ls[3].replace("11,9", "1e99")),
            r"line 4: number '1e99'.*float32",
        ),
        (
            lambda ls: ls.__setitem__(3, ls[3].replace("20.00.00", "20.30.00")),
            r"line 4: non-hourly timestamp",
        ),
        (
            lambda ls: ls.__setitem__(3, ls[3].replace("20.00.00", "19.00.00")),
            r"line 4: duplicated timestamp 10/03/2004 19.00.00",
        ),
        (
            lambda ls: ls.__setitem__(4, ls[4].replace("21.00.00", "17.00.00")),
            r"line 5: out-of-order timestamp",
        ),
        (
            lambda ls: ls.__setitem__(4, ls[4].replace("21.00.00", "23.00.00")),
            r"line 5: non-hourly step of 3 hours",
        ),
        (
            lambda ls: ls.__setitem__(3, ls[3].replace("10/03/2004", "31/02/2004")),
            r"line 4: invalid date '31/02/2004'",
        ),
        (
            lambda ls: ls.__setitem__(3, ls[3].replace("10/03/2004", "2004.03.10")),
            r"line 4: unparseable date '2004.03.10'",
        ),
        (
            lambda ls: ls.__setitem__(3, ls[3].replace("20.00.00", "19h")),
            r"line 4: unparseable time '19h'",
        ),
        (lambda ls: ls.__setitem__(3, ls[3] + ";5"), r"line 4: expected 15 fields, found 16"),
        (
            lambda ls: ls.__setitem__(3, ls[3].rsplit(";", 1)[0]),
            r"line 4: expected 15 fields, found 14",
        ),
        (lambda ls: ls.insert(3, ""), r"line 5: data row after the empty row at line 4"),
        (
            lambda ls: ls.__setitem__(0, ls[0].replace(";AH", "")),
            r"line 1: missing column\(s\) \['AH'\]",
        ),
        (
            lambda ls: ls.__setitem__(0, ls[0].replace("AH", "AHX")),
            r"line 1: unexpected column\(s\) \['AHX'\]",
        ),
        (lambda ls: ls.__setitem__(0, ls[0].replace(";AH", ";T")), r"line 1: .*repeated"),
        (
            lambda ls: ls.__setitem__(0, "Datum" + ls[0][4:]),
            r"line 1: the header must start with 'Date'",
        ),
        (
            lambda ls: ls.__setitem__(0, ls[0].replace("Time", "Hour")),
            r"line 1: the header must start with 'Date' and 'Time'",
        ),
        (lambda ls: ls.__setitem__(0, "\r" + ls[0]), r"line 1"),
        (lambda ls: ls.__delitem__(slice(1, None)), r"header but no data rows"),
    ],
)
def test_malformed_raises_with_line(edit: object, pattern: str, raw_rows: list[list[str]]) -> None:
    lines = small_file(raw_rows)
    edit(lines)  # type: ignore[operator]
    with pytest.raises(ValueError, match=pattern):
        parse_air_quality("\n".join(lines), source="f.csv")


def test_error_names_source_and_text(raw_rows: list[list[str]]) -> None:
    lines = small_file(raw_rows)
    lines[2] = lines[2].replace("1292", "12#2")
    with pytest.raises(
        ValueError, match=r"^f\.csv, line 3: unparseable number '12#2' in column 'PT08\.S1\(CO\)'"
    ):
        parse_air_quality("\n".join(lines), source="f.csv")


@pytest.mark.parametrize("data", [b"", "", b"   \n\n", b"\xef\xbb\xbf"])
def test_empty_input(data: bytes | str) -> None:
    with pytest.raises(ValueError, match="empty"):
        parse_air_quality(data)


def test_non_utf8_reports_line(raw_rows: list[list[str]]) -> None:
    data = "\n".join(small_file(raw_rows)).encode()
    bad = data.replace(b"1292", b"12\xff2")
    with pytest.raises(
        ValueError, match=r"line 3: the file must be UTF-8 text, found bytes b'10/03/2004"
    ):
        parse_air_quality(bad)


def test_bad_types_and_paths(tmp_path: object) -> None:
    import pathlib

    assert isinstance(tmp_path, pathlib.Path)
    with pytest.raises(TypeError, match="data must be bytes or str"):
        parse_air_quality(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path must be"):
        load_air_quality(3)  # type: ignore[arg-type]
    broken = tmp_path / "x.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match="not a valid gzip file"):
        load_air_quality(broken)


@settings(max_examples=60)
@given(data=st.data())
def test_random_mutations_give_result_or_value_error(data: st.DataObject, raw_bytes: bytes) -> None:
    base = bytearray(b"\n".join(raw_bytes.split(b"\n")[:6]))
    kind = data.draw(st.sampled_from(["byte", "truncate", "shuffle"]))
    if kind == "byte":
        for _ in range(data.draw(st.integers(1, 4))):
            pos = data.draw(st.integers(0, len(base) - 1))
            base[pos] = data.draw(st.integers(0, 255))
        mutated = bytes(base)
    elif kind == "truncate":
        mutated = bytes(base[: data.draw(st.integers(0, len(base)))])
    else:
        lines = bytes(base).split(b"\n")
        mutated = b"\n".join(data.draw(st.permutations(lines)))
    try:
        aq = parse_air_quality(mutated)
    except ValueError:
        return
    assert aq.values.shape == (len(aq), 13)
    assert np.all(np.diff(aq.timestamps) == np.timedelta64(1, "h"))


# ----------------------------------------------------------------------- drop and fill
def test_drop_and_select(bundled: AirQuality) -> None:
    dropped = load_air_quality(drop_columns=["NMHC(GT)"])
    assert dropped.columns == tuple(c for c in AIR_QUALITY_COLUMNS if c != "NMHC(GT)")
    np.testing.assert_array_equal(dropped["T"], bundled["T"])
    with pytest.raises(ValueError, match=r"drop_columns|columns must name columns.*\['NMHC'\]"):
        load_air_quality(drop_columns=["NMHC"])
    with pytest.raises(ValueError, match="at least one column"):
        bundled.drop(list(bundled.columns))
    with pytest.raises(TypeError, match="not a string"):
        bundled.drop("T")  # type: ignore[arg-type]


def naive_ffill(col: np.ndarray, limit: int | None) -> np.ndarray:
    out = col.copy()
    last, since = math.nan, 0
    for i, v in enumerate(col):
        if not math.isnan(v):
            last, since = v, 0
        else:
            since += 1
            if limit is None or since <= limit:
                out[i] = last
    return out


@pytest.mark.parametrize("limit", [None, 3])
def test_ffill_matches_naive_and_keeps_target(bundled: AirQuality, limit: int | None) -> None:
    filled = load_air_quality(fill="ffill", fill_limit=limit)
    for name in ("CO(GT)", "NMHC(GT)", "T"):
        np.testing.assert_array_equal(filled[name], naive_ffill(bundled[name], limit))
    np.testing.assert_array_equal(filled["C6H6(GT)"], bundled["C6H6(GT)"])  # target untouched


def test_ffill_is_causal(bundled: AirQuality) -> None:
    cut = 3000
    head = AirQuality(bundled.timestamps[:cut], bundled.values[:cut].copy(), bundled.columns)
    full = bundled.fill_missing("ffill")
    np.testing.assert_array_equal(head.fill_missing("ffill").values, full.values[:cut])


def test_linear_matches_numpy_interp(bundled: AirQuality) -> None:
    filled = load_air_quality(fill="linear", target_columns=["C6H6(GT)"])
    col = bundled["CO(GT)"].astype(np.float64)
    valid = ~np.isnan(col)
    pos = np.arange(col.size)
    expected = np.interp(pos, pos[valid], col[valid])
    first, last = np.flatnonzero(valid)[[0, -1]]
    expected[:first] = np.nan
    expected[last + 1 :] = np.nan
    np.testing.assert_allclose(filled["CO(GT)"], expected.astype(np.float32), rtol=1e-6)
    assert int(np.isnan(filled["C6H6(GT)"]).sum()) == 366


def test_linear_limit_leaves_long_gaps() -> None:
    ts = np.arange(8).astype("datetime64[h]").astype("datetime64[s]")
    col = np.array([0, np.nan, 2, np.nan, np.nan, np.nan, 6, np.nan], dtype=np.float32)
    aq = AirQuality(ts, col[:, None], ("a",))
    out = aq.fill_missing("linear", limit=2).values[:, 0]
    np.testing.assert_array_equal(out, [0, 1, 2, np.nan, np.nan, np.nan, 6, np.nan])


def test_fill_rejects_bad_options(bundled: AirQuality) -> None:
    with pytest.raises(ValueError, match="fill must be one of"):
        load_air_quality(fill="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        bundled.fill_missing("ffill", limit=0)
    with pytest.raises(ValueError, match="target_columns must name columns"):
        load_air_quality(target_columns=["benzene"])


def test_calendar_features_against_datetime() -> None:
    stamps = [dt.datetime(2004, 3, 10, 18), dt.datetime(2005, 1, 2, 7)]
    feats = calendar_features(np.array(stamps, dtype="datetime64[s]"))
    for row, stamp in zip(feats, stamps, strict=True):
        a = 2 * math.pi * stamp.hour / 24
        b = 2 * math.pi * stamp.weekday() / 7
        np.testing.assert_allclose(
            row, [math.sin(a), math.cos(a), math.sin(b), math.cos(b)], atol=1e-6
        )
    with pytest.raises(ValueError, match="timestamps must be a 1-D datetime64"):
        calendar_features(np.zeros(3))


def test_calendar_features_hour_one_hot_against_datetime() -> None:
    start = dt.datetime(2004, 3, 10, 18)
    stamps = [start + dt.timedelta(hours=h) for h in range(0, 24 * 9, 5)]
    feats = calendar_features(np.array(stamps, dtype="datetime64[s]"), hour_one_hot=True)
    assert feats.shape == (len(stamps), 28)
    assert feats.dtype == np.float32
    np.testing.assert_array_equal(
        feats[:, :4], calendar_features(np.array(stamps, dtype="datetime64[s]"))
    )
    for row, stamp in zip(feats, stamps, strict=True):
        expected = np.zeros(24, np.float32)
        expected[stamp.hour] = 1.0
        np.testing.assert_array_equal(row[4:], expected)
    with pytest.raises(TypeError, match="hour_one_hot must be a bool, got 'yes'"):
        calendar_features(np.array(stamps, dtype="datetime64[s]"), hour_one_hot="yes")  # type: ignore[arg-type]


def test_airquality_validates_shapes() -> None:
    ts = np.arange(3).astype("datetime64[h]")
    with pytest.raises(ValueError, match="one row per timestamp"):
        AirQuality(ts, np.zeros((2, 1), np.float32), ("a",))
    with pytest.raises(ValueError, match="distinct names"):
        AirQuality(ts, np.zeros((3, 2), np.float32), ("a", "a"))
