"""The .ts reader under random damage: truncation, byte flips, inserted separators, wrong counts, in
plain and gzipped files. Each mutated file either gives a clean DataError naming the file (and the
line, where one applies), or a TsData equal to an independent parse of the same text; never another
exception."""

from __future__ import annotations

import gzip
import math
import re
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jax_lstm import data

VALID = (
    b"# a comment\n@problemName Toy\n@timeStamps false\n@dimensions 2\n@equalLength false\n"
    b"@classLabel true a b c\n@data\n1,2,3:4,5,6:a\n7,8:9,10:c\n?,1:2,3:b\n0.5,-1e3:2,3:a\n"
)

# Messages about the file as a whole; every other message names a line.
FILE_LEVEL = ("no @data line", "no series after @data", "not a valid gzip file", "is a directory")

_DIR = Path(tempfile.mkdtemp(prefix="ts_mutations_"))


@st.composite
def mutated(draw) -> tuple[bytes, bool]:
    raw = bytearray(VALID)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "dimensions", "drop_value"]))
        if kind == "truncate":
            raw = raw[: draw(st.integers(0, len(raw)))]
        elif kind == "flip" and raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        elif kind == "insert":
            piece = draw(
                st.sampled_from([b":", b",", b"?", b"\n", b"@", b"\xff", b"\x00", b"a", b"\xe9", b"1"])
            )
            at = draw(st.integers(0, len(raw)))
            raw[at:at] = piece
        elif kind == "delete" and raw:
            at = draw(st.integers(0, len(raw) - 1))
            del raw[at : at + draw(st.integers(1, 8))]
        elif kind == "dimensions":
            raw = raw.replace(b"@dimensions 2", b"@dimensions " + str(draw(st.integers(0, 4))).encode())
        elif kind == "drop_value":  # one value fewer in one channel: unequal dimensions
            raw = raw.replace(b"7,8:", b"7:", 1)
    return bytes(raw), draw(st.booleans())


def _reference_series(text: str) -> tuple[list[np.ndarray], list[str], list[int]]:
    """The data lines of a file that parsed, read independently: (series (T_i, F), labels, lines)."""
    series, labels, lines, in_data = [], [], [], False
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower().split(" ")[0] == "@data"
            continue
        *channels, label = line.split(":")
        values = [[math.nan if v.strip() == "?" else float(v) for v in c.split(",")] for c in channels]
        series.append(np.asarray(values, dtype=np.float64).T)
        labels.append(label.strip())
        lines.append(number)
    return series, labels, lines


@settings(max_examples=60, deadline=None)
@given(mutated())
def test_mutated_ts_files_give_a_clean_error_or_a_correct_parse(case):
    raw, zipped = case
    path = _DIR / ("mutated.ts.gz" if zipped else "mutated.ts")
    path.write_bytes(gzip.compress(raw) if zipped else raw)
    try:
        ts = data.load_ts(path)
        ts.check_missing()
    except data.DataError as err:
        message = str(err)
        assert message.startswith(str(path)), message
        if not any(text in message for text in FILE_LEVEL):
            assert re.match(rf"{re.escape(str(path))}:\d+: ", message), message
        return
    series, labels, lines = _reference_series(raw.decode("utf-8"))
    assert ts.labels == labels and ts.lines == tuple(lines)
    assert len(ts.series) == len(series)
    for got, expected in zip(ts.series, series, strict=True):
        np.testing.assert_array_equal(got, expected)


@settings(max_examples=20, deadline=None)
@given(st.binary(max_size=200))
def test_damaged_gzip_bytes_give_a_clean_error(raw):
    path = _DIR / "damaged.ts.gz"
    compressed = bytearray(gzip.compress(VALID))
    compressed[10 : 10 + len(raw)] = raw  # the deflate stream overwritten, the header kept
    path.write_bytes(bytes(compressed))
    try:
        data.load_ts(path)
    except data.DataError as err:
        assert str(err).startswith(str(path)), err
