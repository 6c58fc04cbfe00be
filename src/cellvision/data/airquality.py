"""The UCI Air Quality data set: a strict, variant-tolerant loader with a bundled copy.

The data are hourly averages from a gas multisensor device deployed in an Italian city
(10 March 2004 to 4 April 2005, 9,357 rows): reference analyser concentrations (CO, NMHC,
benzene C6H6, NOx, NO2), the metal-oxide sensor responses and temperature/humidity.
A gzip-compressed copy of the UCI file ships with the package, so
:func:`load_air_quality` works offline with no arguments.

The data set is licensed CC BY 4.0 (UCI Machine Learning Repository, id 360). Cite
S. De Vito, E. Massera, M. Piga, L. Martinotto, G. Di Francia, "On field calibration of an
electronic nose for benzene estimation in an urban pollution monitoring scenario",
Sensors and Actuators B: Chemical 129(2):750-757, 2008.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import gzip
import importlib.resources
import math
import os
import re
import zlib
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from cellvision.config import as_builtin_number

# Moved to the generic module; re-exported so that the former import path keeps working.
from cellvision.data.features import calendar_features as calendar_features

__all__ = [
    "AIR_QUALITY_COLUMNS",
    "AirQuality",
    "FillMethod",
    "load_air_quality",
    "parse_air_quality",
]

#: The 13 measurement columns of the UCI file, in the file's order.
AIR_QUALITY_COLUMNS: tuple[str, ...] = (
    "CO(GT)",
    "PT08.S1(CO)",
    "NMHC(GT)",
    "C6H6(GT)",
    "PT08.S2(NMHC)",
    "NOx(GT)",
    "PT08.S3(NOx)",
    "NO2(GT)",
    "PT08.S4(NO2)",
    "PT08.S5(O3)",
    "T",
    "RH",
    "AH",
)

#: How missing inputs are filled: ``"none"``, ``"ffill"`` (causal: the last reading carries
#: forward) or ``"linear"`` (interpolation in time; uses the next reading, so it leaks the future
#: into a forecast window).
FillMethod = Literal["none", "ffill", "linear"]
_FILL_METHODS: tuple[str, ...] = ("none", "ffill", "linear")

_MISSING_MARKER = -200.0
_BUNDLED_NAME = "AirQualityUCI.csv.gz"
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_MAX_SHOWN = 120  # characters of an offending line quoted in an error message

# [0-9] rather than \d: \d also matches non-ASCII digits, which int()/float() would accept.
_NUMBER = {
    ";": re.compile(r"[+-]?(?:[0-9]+(?:,[0-9]*)?|,[0-9]+)(?:[eE][+-]?[0-9]+)?"),
    ",": re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"),
}
_DAY_FIRST = re.compile(r"([0-9]{1,2})([/-])([0-9]{1,2})\2([0-9]{4})")
_YEAR_FIRST = re.compile(r"([0-9]{4})([/-])([0-9]{1,2})\2([0-9]{1,2})")
_TIME = re.compile(r"([0-9]{1,2})([.:])([0-9]{2})\2([0-9]{2})")
_FILLER_HEADER = re.compile(r"|Unnamed: [0-9]+")


@dataclasses.dataclass(frozen=True, eq=False)
class AirQuality:
    """Hourly Air Quality readings: timestamps, a float32 value matrix and column names.

    Parameters
    ----------
    timestamps : numpy.ndarray
        ``datetime64[s]`` array of shape ``(T,)``, strictly increasing.
    values : numpy.ndarray
        ``float32`` array of shape ``(T, F)``; ``NaN`` marks a missing reading (``-200`` in
        the file).
    columns : tuple of str
        The ``F`` original column names, e.g. ``"C6H6(GT)"``.

    Raises
    ------
    ValueError
        If the shapes, dtypes or names are inconsistent, or the timestamps are not strictly
        increasing.

    Examples
    --------
    >>> aq = load_air_quality()
    >>> len(aq), aq.values.shape, aq.values.dtype
    (9357, (9357, 13), dtype('float32'))
    >>> aq.timestamps[0], aq.timestamps[-1]
    (np.datetime64('2004-03-10T18:00:00'), np.datetime64('2005-04-04T14:00:00'))
    >>> benzene = aq["C6H6(GT)"]
    >>> int(np.isnan(benzene).sum()), round(float(np.nanmean(benzene)), 4)
    (366, 10.0831)
    """

    timestamps: npt.NDArray[np.datetime64]
    values: npt.NDArray[np.float32]
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        ts, values = self.timestamps, self.values
        if not isinstance(ts, np.ndarray) or ts.dtype.kind != "M" or ts.ndim != 1:
            raise ValueError(f"timestamps must be a 1-D datetime64 array, got {ts!r}")
        if not isinstance(values, np.ndarray) or values.dtype != np.float32 or values.ndim != 2:
            raise ValueError(f"values must be a 2-D float32 array, got {values!r}")
        if values.shape[0] != ts.shape[0]:
            raise ValueError(
                f"values must have one row per timestamp ({ts.shape[0]}), got shape {values.shape}"
            )
        # NaT compares False, so it fails this check too.
        steps_ok = ts[1:] > ts[:-1]
        if not bool(steps_ok.all()):
            bad = int(np.flatnonzero(~steps_ok)[0]) + 1
            raise ValueError(
                f"timestamps must be strictly increasing, got {ts[bad]!r} after "
                f"{ts[bad - 1]!r} at position {bad}"
            )
        cols = tuple(self.columns)
        if len(cols) != values.shape[1] or len(set(cols)) != len(cols):
            raise ValueError(
                f"columns must be {values.shape[1]} distinct names, got {self.columns!r}"
            )
        object.__setattr__(self, "columns", cols)

    def __len__(self) -> int:
        """Return the number of hourly rows.

        Returns
        -------
        int
            ``T``.

        Examples
        --------
        >>> len(load_air_quality())
        9357
        """
        return int(self.values.shape[0])

    def __getitem__(self, name: str) -> npt.NDArray[np.float32]:
        """Return one column by its original name (a view into :attr:`values`).

        Parameters
        ----------
        name : str
            A column name such as ``"C6H6(GT)"``.

        Returns
        -------
        numpy.ndarray
            The ``(T,)`` float32 column.

        Raises
        ------
        KeyError
            If ``name`` is not a column (the message lists the columns).

        Examples
        --------
        >>> float(load_air_quality()["T"][0])
        13.6...
        """
        if not isinstance(name, str) or name not in self.columns:
            raise KeyError(f"name must be one of the columns {self.columns!r}, got {name!r}")
        return self.values[:, self.columns.index(name)]

    def column_index(self, name: str) -> int:
        """Return the position of a column in :attr:`values`.

        Parameters
        ----------
        name : str
            A column name.

        Returns
        -------
        int
            Index along the last axis of :attr:`values`.

        Raises
        ------
        ValueError
            If ``name`` is not a column.

        Examples
        --------
        >>> load_air_quality().column_index("C6H6(GT)")
        3
        """
        if not isinstance(name, str) or name not in self.columns:
            raise ValueError(f"name must be one of the columns {self.columns!r}, got {name!r}")
        return self.columns.index(name)

    def missing_counts(self) -> dict[str, int]:
        """Return the number of missing readings per column.

        Returns
        -------
        dict of str to int
            Column name to the count of ``NaN`` values.

        Examples
        --------
        >>> counts = load_air_quality().missing_counts()
        >>> counts["NMHC(GT)"], counts["C6H6(GT)"]
        (8443, 366)
        """
        counts = np.isnan(self.values).sum(axis=0)
        return {name: int(c) for name, c in zip(self.columns, counts, strict=True)}

    def select(self, columns: Sequence[str]) -> AirQuality:
        """Return a copy with only ``columns``, in the given order.

        Parameters
        ----------
        columns : sequence of str
            Names to keep.

        Returns
        -------
        AirQuality
            A new object; the timestamps are shared.

        Raises
        ------
        ValueError
            If a name is unknown, repeated, or ``columns`` is empty.

        Examples
        --------
        >>> load_air_quality().select(["T", "C6H6(GT)"]).columns
        ('T', 'C6H6(GT)')
        """
        names = _check_names("columns", columns, self.columns)
        if not names:
            raise ValueError(f"columns must name at least one column, got {columns!r}")
        idx = [self.columns.index(n) for n in names]
        return AirQuality(self.timestamps, np.ascontiguousarray(self.values[:, idx]), names)

    def drop(self, columns: Sequence[str]) -> AirQuality:
        """Return a copy without ``columns``.

        Parameters
        ----------
        columns : sequence of str
            Names to remove, e.g. ``["NMHC(GT)"]`` (about 90% missing).

        Returns
        -------
        AirQuality
            A new object with the remaining columns in their original order.

        Raises
        ------
        ValueError
            If a name is unknown or every column would be dropped.

        Examples
        --------
        >>> len(load_air_quality().drop(["NMHC(GT)"]).columns)
        12
        """
        names = set(_check_names("columns", columns, self.columns))
        return self.select([c for c in self.columns if c not in names])

    def fill_missing(
        self,
        method: FillMethod,
        *,
        exclude: Sequence[str] = (),
        limit: int | None = None,
    ) -> AirQuality:
        """Return a copy with missing readings filled along time, except in ``exclude``.

        ``"ffill"`` carries the last observed reading forward: it is causal, so a filled
        input never depends on later readings. ``"linear"`` interpolates between the
        previous and the next observed reading: the next reading can lie after a forecasting
        window's end (even at the target hour), so prefer ``"ffill"`` for forecasting inputs.
        Leading gaps (and, for ``"linear"``, trailing gaps) stay missing.

        Parameters
        ----------
        method : {"none", "ffill", "linear"}
            How to fill.
        exclude : sequence of str, default ()
            Columns left untouched, typically the targets: targets are never filled.
        limit : int, optional
            Fill only gaps of at most this many consecutive missing hours (``"ffill"``:
            at most ``limit`` hours after the last reading); longer gaps stay missing.

        Returns
        -------
        AirQuality
            A new object (``self`` for ``"none"``).

        Raises
        ------
        ValueError
            If ``method`` is unknown, ``limit`` is not a positive integer or a name in
            ``exclude`` is unknown.

        Examples
        --------
        >>> aq = AirQuality(
        ...     np.arange(5).astype("datetime64[h]").astype("datetime64[s]"),
        ...     np.array([[1.0, 1.0], [np.nan, np.nan], [np.nan, np.nan], [4.0, 4.0],
        ...               [np.nan, np.nan]], dtype=np.float32),
        ...     ("a", "b"),
        ... )
        >>> aq.fill_missing("ffill", exclude=["b"]).values[:, 0]
        array([1., 1., 1., 4., 4.], dtype=float32)
        >>> aq.fill_missing("linear").values[:, 1]
        array([ 1.,  2.,  3.,  4., nan], dtype=float32)
        """
        _check_choice("method", method, _FILL_METHODS)
        limit = as_builtin_number(limit)  # type: ignore[assignment]
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0
        ):
            raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
        skip = set(_check_names("exclude", exclude, self.columns))
        if method == "none":
            return self
        values = self.values.copy()
        for j, name in enumerate(self.columns):
            if name not in skip:
                values[:, j] = _fill_column(values[:, j], method, limit)
        return AirQuality(self.timestamps, values, self.columns)


def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)!r}, got {value!r}")


def _check_names(name: str, given: Iterable[str], valid: Sequence[str]) -> tuple[str, ...]:
    if isinstance(given, str):
        raise TypeError(f"{name} must be a sequence of column names, not a string, got {given!r}")
    names = tuple(given)
    unknown = [n for n in names if not isinstance(n, str) or n not in valid]
    if unknown:
        raise ValueError(f"{name} must name columns among {tuple(valid)!r}, got {unknown!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{name} must not repeat a column, got {names!r}")
    return names


def _fill_column(
    col: npt.NDArray[np.float32], method: str, limit: int | None
) -> npt.NDArray[np.float32]:
    n = col.shape[0]
    valid = ~np.isnan(col)
    if valid.all() or not valid.any():
        return col
    pos = np.arange(n)
    # index of the last valid reading at or before each row (-1 if none)
    prev = np.maximum.accumulate(np.where(valid, pos, -1))
    out: npt.NDArray[np.float32] = np.array(col, dtype=np.float32)
    if method == "ffill":
        fill = ~valid & (prev >= 0)
        if limit is not None:
            fill &= pos - prev <= limit
        out[fill] = col[prev[fill]]
        return out
    # index of the first valid reading at or after each row (n if none)
    nxt = np.minimum.accumulate(np.where(valid, pos, n)[::-1])[::-1]
    fill = ~valid & (prev >= 0) & (nxt < n)
    if limit is not None:
        fill &= nxt - prev - 1 <= limit
    p, q = prev[fill], nxt[fill]
    frac = (pos[fill] - p) / (q - p)
    out[fill] = (col[p] + frac * (col[q].astype(np.float64) - col[p])).astype(np.float32)
    return out


# ---------------------------------------------------------------------------- parsing
def _shown(value: object) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "...")
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _decode(data: bytes, source: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = data.count(b"\n", 0, exc.start) + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        end = data.find(b"\n", exc.start)
        raw = data[start : end if end >= 0 else len(data)]
        if len(raw) > _MAX_SHOWN:
            raw = raw[:_MAX_SHOWN]
        raise ValueError(
            f"{source}, line {line_no}: the file must be UTF-8 text, found bytes {raw!r}"
        ) from None


def _parse_timestamp(date: str, time: str) -> int | str:
    """Return hours since 1970-01-01 00:00, or an error description."""
    m = _DAY_FIRST.fullmatch(date)
    if m is not None:
        day, month, year = int(m.group(1)), int(m.group(3)), int(m.group(4))
    else:
        m = _YEAR_FIRST.fullmatch(date)
        if m is None:
            return (
                f"unparseable date {date!r} (expected dd/mm/yyyy, dd-mm-yyyy, yyyy/m/d or "
                "yyyy-mm-dd)"
            )
        year, month, day = int(m.group(1)), int(m.group(3)), int(m.group(4))
    try:
        ordinal = _dt.date(year, month, day).toordinal()
    except ValueError:
        return f"invalid date {date!r}"
    t = _TIME.fullmatch(time)
    if t is None:
        return f"unparseable time {time!r} (expected HH.MM.SS or HH:MM:SS)"
    hour, minute, second = int(t.group(1)), int(t.group(3)), int(t.group(4))
    if hour > 23 or minute > 59 or second > 59:
        return f"invalid time {time!r}"
    if minute or second:
        return f"non-hourly timestamp {date} {time}"
    return (ordinal - _EPOCH_ORDINAL) * 24 + hour


def _split_fields(line: str, delimiter: str) -> list[str]:
    fields = [f.strip(" \t") for f in line.split(delimiter)]
    # The UCI file has stray commas after the last semicolon ("...;;,,,"): they are empty.
    if delimiter == ";" and fields and fields[-1].strip(", \t") == "":
        fields[-1] = ""
    return fields


def parse_air_quality(data: bytes | str, *, source: str = "<data>") -> AirQuality:
    """Parse the text of an Air Quality CSV file (any supported variant).

    Accepted: ``;`` separator with decimal comma or ``,`` separator with decimal point;
    an optional UTF-8 byte-order mark; CRLF or LF line ends; dates ``dd/mm/yyyy``,
    ``dd-mm-yyyy``, ``yyyy/m/d`` or ``yyyy-mm-dd``; times ``HH.MM.SS`` or ``HH:MM:SS``;
    empty trailing fields (and stray trailing commas after the last ``;``); empty rows after
    the last data row. The header starts with ``Date`` and ``Time`` followed by the 13
    measurement columns of :data:`AIR_QUALITY_COLUMNS` in any order (the result uses the
    canonical order). Rows must be contiguous hourly. ``-200`` (the file's marker of a missing
    reading, and any value that rounds to it in float32, such as ``-199,9999999``) becomes
    ``NaN``.

    Parameters
    ----------
    data : bytes or str
        The file content.
    source : str, default "<data>"
        Name used in error messages (e.g. the path).

    Returns
    -------
    AirQuality
        All 13 columns, no filling.

    Raises
    ------
    ValueError
        For anything else, with the line number and the offending text: empty input, a
        non-UTF-8 byte, a wrong or incomplete header, a wrong number of fields, an
        unparseable number or timestamp, or a duplicated, out-of-order or non-hourly
        timestamp.
    TypeError
        If ``data`` is neither ``bytes`` nor ``str``.

    Examples
    --------
    >>> text = (
    ...     "Date,Time," + ",".join(AIR_QUALITY_COLUMNS) + "\\n"
    ...     "2004-03-10,18:00:00,2.6,1360,150,11.9,1046,166,1056,113,1692,1268,13.6,48.9,0.7578\\n"
    ...     "2004-03-10,19:00:00,2,1292,112,9.4,955,103,1174,92,1559,972,13.3,47.7,-200\\n"
    ... )
    >>> aq = parse_air_quality(text)
    >>> aq.timestamps[1], float(aq["C6H6(GT)"][1]), bool(np.isnan(aq["AH"][1]))
    (np.datetime64('2004-03-10T19:00:00'), 9.4, True)
    >>> parse_air_quality(text.replace("9.4", "9,4"))
    Traceback (most recent call last):
        ...
    ValueError: <data>, line 3: expected 15 fields, found 16: '2004-03-10,19:00:00,2,...'
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        text = _decode(bytes(data), source)
    elif isinstance(data, str):
        text = data[1:] if data.startswith("\ufeff") else data
    else:
        raise TypeError(f"data must be bytes or str, got {type(data).__name__}")
    lines = text.split("\n")
    header = lines[0].rstrip("\r").strip(" \t")
    if not header:
        if len(text.strip()) == 0:
            raise ValueError(f"{source}: the file is empty, expected a header and data rows")
        raise ValueError(f"{source}, line 1: expected a header row starting with 'Date', got ''")
    if "\r" in header:
        raise ValueError(
            f"{source}, line 1: found a carriage return inside the line (only LF or CRLF line "
            f"ends are supported): {_shown(header)}"
        )
    if header.startswith("Date;"):
        delimiter = ";"
    elif header.startswith("Date,"):
        delimiter = ","
    else:
        raise ValueError(
            f"{source}, line 1: the header must start with 'Date' followed by ';' or ',', "
            f"got {_shown(header)}"
        )
    names = _split_fields(header, delimiter)
    while names and _FILLER_HEADER.fullmatch(names[-1]):
        names.pop()
    if names[:2] != ["Date", "Time"]:
        raise ValueError(
            f"{source}, line 1: the header must start with 'Date' and 'Time', got {_shown(header)}"
        )
    measured = names[2:]
    unknown = [n for n in measured if n not in AIR_QUALITY_COLUMNS]
    if unknown:
        raise ValueError(
            f"{source}, line 1: unexpected column(s) {_shown(unknown)}; expected "
            f"{list(AIR_QUALITY_COLUMNS)!r}"
        )
    repeated = sorted({n for n in measured if measured.count(n) > 1})
    missing = [n for n in AIR_QUALITY_COLUMNS if n not in measured]
    if repeated or missing:
        what = f"repeated column(s) {repeated!r}" if repeated else f"missing column(s) {missing!r}"
        raise ValueError(f"{source}, line 1: {what} in header {_shown(header)}")
    order = [measured.index(n) for n in AIR_QUALITY_COLUMNS]
    n_fields = len(names)
    number = _NUMBER[delimiter]

    hours: list[int] = []
    rows: list[list[float]] = []
    previous_text = ""
    first_empty = 0
    for line_no, raw_line in enumerate(lines[1:], start=2):
        line = raw_line[:-1] if raw_line.endswith("\r") else raw_line
        fields = _split_fields(line, delimiter)
        if not any(fields):
            first_empty = first_empty or line_no
            continue
        if first_empty:
            raise ValueError(
                f"{source}, line {line_no}: data row after the empty row at line {first_empty}: "
                f"{_shown(line)}"
            )
        if len(fields) < n_fields or any(fields[n_fields:]):
            raise ValueError(
                f"{source}, line {line_no}: expected {n_fields} fields, found {len(fields)}: "
                f"{_shown(line)}"
            )
        stamp = _parse_timestamp(fields[0], fields[1])
        if isinstance(stamp, str):
            raise ValueError(f"{source}, line {line_no}: {stamp} in {_shown(line)}")
        if hours:
            step = stamp - hours[-1]
            if step != 1:
                kind = (
                    "duplicated timestamp"
                    if step == 0
                    else "out-of-order timestamp"
                    if step < 0
                    else f"non-hourly step of {step} hours"
                )
                raise ValueError(
                    f"{source}, line {line_no}: {kind} {fields[0]} {fields[1]} after "
                    f"{previous_text}; rows must be contiguous hourly"
                )
        previous_text = f"{fields[0]} {fields[1]}"
        row: list[float] = []
        for k in order:
            text_value = fields[2 + k]
            if number.fullmatch(text_value) is None:
                raise ValueError(
                    f"{source}, line {line_no}: unparseable number {text_value!r} in column "
                    f"{measured[k]!r} (expected decimal {'comma' if delimiter == ';' else 'point'})"
                )
            value = float(text_value.replace(",", "."))
            if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
                raise ValueError(
                    f"{source}, line {line_no}: number {text_value!r} in column "
                    f"{measured[k]!r} is out of the float32 range"
                )
            row.append(value)
        hours.append(stamp)
        rows.append(row)
    if not rows:
        raise ValueError(f"{source}: the file has a header but no data rows")
    # The marker is matched in the stored precision: a value that becomes -200.0 in float32
    # would otherwise be indistinguishable from a missing reading yet be kept as a number.
    array = np.asarray(rows, dtype=np.float64).astype(np.float32)
    array[array == np.float32(_MISSING_MARKER)] = np.nan
    timestamps = (np.asarray(hours, dtype=np.int64) * 3600).astype("datetime64[s]")
    return AirQuality(timestamps, array, AIR_QUALITY_COLUMNS)


def _read_bytes(path: str | os.PathLike[str] | None) -> tuple[bytes, str]:
    if path is None:
        resource = importlib.resources.files("cellvision.data").joinpath(_BUNDLED_NAME)
        return gzip.decompress(resource.read_bytes()), f"<bundled {_BUNDLED_NAME}>"
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str, os.PathLike or None, got {path!r}")
    source = os.fspath(path)
    with open(source, "rb") as fh:
        raw = fh.read()
    if raw.startswith(b"\x1f\x8b"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{source}: not a valid gzip file ({exc})") from None
    return raw, str(source)


def load_air_quality(
    path: str | os.PathLike[str] | None = None,
    *,
    drop_columns: Sequence[str] = (),
    fill: FillMethod = "none",
    fill_limit: int | None = None,
    target_columns: Sequence[str] = ("C6H6(GT)",),
) -> AirQuality:
    """Load the UCI Air Quality data: the bundled copy, or a user's file.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A CSV file in any variant accepted by :func:`parse_air_quality` (gzip-compressed
        files are recognised). ``None`` reads the copy bundled with the package.
    drop_columns : sequence of str, default ()
        Columns to remove, e.g. ``["NMHC(GT)"]`` (about 90% missing).
    fill : {"none", "ffill", "linear"}, default "none"
        How to fill missing *input* readings along time; see :meth:`AirQuality.fill_missing`.
    fill_limit : int, optional
        Longest gap (hours) to fill; longer gaps stay missing.
    target_columns : sequence of str, default ("C6H6(GT)",)
        Columns that are never filled (targets must stay as measured).

    Returns
    -------
    AirQuality
        Timestamps, float32 values with ``NaN`` for missing readings, and column names.

    Raises
    ------
    ValueError
        If the file is malformed (see :func:`parse_air_quality`) or an option is invalid.
    TypeError
        If ``path`` has the wrong type.
    OSError
        If ``path`` cannot be read.

    Examples
    --------
    >>> aq = load_air_quality(drop_columns=["NMHC(GT)"], fill="ffill")
    >>> aq.columns[:4]
    ('CO(GT)', 'PT08.S1(CO)', 'C6H6(GT)', 'PT08.S2(NMHC)')
    >>> aq.missing_counts()["C6H6(GT)"]  # targets are never filled
    366
    """
    raw, source = _read_bytes(path)
    aq = parse_air_quality(raw, source=source)
    _check_names("target_columns", target_columns, AIR_QUALITY_COLUMNS)
    _check_choice("fill", fill, _FILL_METHODS)
    if drop_columns:
        aq = aq.drop(drop_columns)
    keep = [c for c in target_columns if c in aq.columns]
    return aq.fill_missing(fill, exclude=keep, limit=fill_limit)
