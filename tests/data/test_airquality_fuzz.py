"""Fuzz test of the Air Quality parser: any mangled file parses to a valid object or raises
``ValueError``; never another exception type and never a hang."""

from __future__ import annotations

import contextlib
import gzip
import importlib.resources
import signal
from collections.abc import Iterator

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellvision.data.airquality import parse_air_quality

# A head of the real file (header, 40 data rows) plus its tail (the empty ';;;;' rows), in the
# UCI format with CRLF line endings, so the mutations start from every feature of the format.
_RAW = gzip.decompress(
    importlib.resources.files("cellvision.data").joinpath("AirQualityUCI.csv.gz").read_bytes()
)
_LINES = _RAW.split(b"\r\n")
BASE = b"\r\n".join(_LINES[:41] + _LINES[-4:])

SECONDS_PER_EXAMPLE = 5.0


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail instead of hanging: SIGALRM interrupts a parse that runs too long."""

    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"parse_air_quality ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@st.composite
def mangled_files(draw: st.DrawFn) -> bytes:
    data = bytearray(BASE)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["set", "insert", "delete", "truncate", "shuffle", "dup"]))
        if op == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
            continue
        if op in ("shuffle", "dup"):
            lines = bytes(data).split(b"\r\n")
            if op == "shuffle":
                lines = draw(st.permutations(lines))
            else:
                i = draw(st.integers(0, len(lines) - 1))
                lines = [*lines[: i + 1], lines[i], *lines[i + 1 :]]
            data = bytearray(b"\r\n".join(lines))
            continue
        if not data:
            continue
        pos = draw(st.integers(0, len(data) - 1))
        if op == "set":
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[pos : pos + draw(st.integers(1, 16))]
    return bytes(data)


@settings(
    max_examples=300,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mangled_files())
def test_mangled_file_parses_or_raises_value_error(data: bytes) -> None:
    with time_limit(SECONDS_PER_EXAMPLE):
        try:
            aq = parse_air_quality(data)
        except ValueError as exc:
            message = str(exc)
        else:
            message = ""
    if message:  # rejected with an explanation
        return
    assert aq.values.dtype == np.float32
    assert aq.values.shape == (len(aq.timestamps), len(aq.columns))
    assert np.all(np.diff(aq.timestamps) == np.timedelta64(1, "h"))
    assert not np.any(aq.values == -200)  # the missing-value marker always becomes NaN


def test_unmangled_base_parses() -> None:
    # Guards the fuzz test: its starting point is a valid file, so the mutations matter.
    aq = parse_air_quality(BASE)
    assert len(aq.timestamps) == 40
