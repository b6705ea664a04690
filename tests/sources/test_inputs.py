"""Reading inputs line by line: every line accounted for, in bounded batches and bounded memory."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import BinaryIO, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbwatch.errors import InputError
from orbwatch.sources.inputs import (
    RAW_KEEP_CHARS,
    Input,
    LineBatch,
    iter_line_batches,
    read_all_lines,
)


class TrickleStream(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read, to cross chunk boundaries."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        take = self._step if size < 0 else min(size, self._step)
        out = bytes(self._data[self._pos : self._pos + take])
        self._pos += len(out)
        return out


def _batches(data: bytes, *, step: int, batch_lines: int, max_bytes: int) -> list[LineBatch]:
    stream = cast(BinaryIO, TrickleStream(data, step))
    return list(iter_line_batches(stream, batch_lines=batch_lines, max_bytes=max_bytes))


def _expected(
    data: bytes, max_bytes: int
) -> tuple[dict[int, str], dict[int, tuple[set[str], int]]]:
    """The model: split on LF, a final LF ends the last line, CR before LF is dropped.

    A too-long line is reported with its length and a head of at most ``RAW_KEEP_CHARS``
    bytes: all of those when the line arrived within one read, else the ``max_bytes + 1``
    bytes that were held of it (so the head is one of two prefixes).
    """
    segments = data.split(b"\n")
    if segments and segments[-1] == b"":
        segments.pop()
    lines: dict[int, str] = {}
    too_long: dict[int, tuple[set[str], int]] = {}
    for number, segment in enumerate(segments, start=1):
        if len(segment) > max_bytes:
            heads = {
                segment[:keep].decode("utf-8", "replace")
                for keep in (min(max_bytes + 1, RAW_KEEP_CHARS), RAW_KEEP_CHARS)
            }
            too_long[number] = (heads, len(segment))
        else:
            lines[number] = segment.decode("utf-8", "replace").removesuffix("\r")
    return lines, too_long


PIECES = st.sampled_from(
    [b"\n", b"\r\n", b"\r", b"\xff", b"\xc3", b"\xc3\xa9", b"\xe2\x82", b"abc", b"x" * 30, b"\t"]
)
DATA = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(PIECES, st.binary(max_size=12)), max_size=60).map(b"".join),
)


@settings(max_examples=300, deadline=None)
@given(
    data=DATA,
    step=st.integers(1, 64),
    batch_lines=st.integers(1, 6),
    max_bytes=st.integers(1, 40),
)
def test_every_line_is_accounted_for_exactly_once(
    data: bytes, step: int, batch_lines: int, max_bytes: int
) -> None:
    batches = _batches(data, step=step, batch_lines=batch_lines, max_bytes=max_bytes)
    want_lines, want_too_long = _expected(data, max_bytes)

    numbers: list[int] = []
    got_lines: dict[int, str] = {}
    got_too_long: dict[int, tuple[str, int]] = {}
    for batch in batches:
        assert batch.table.column_names == ["source_offset", "line"]
        assert batch.table.num_rows <= batch_lines
        assert batch.table.num_rows or batch.too_long  # no empty batches
        in_batch = sorted(
            [*batch.table["source_offset"].to_pylist(), *(n for n, _, _ in batch.too_long)]
        )
        assert not numbers or in_batch[0] > numbers[-1]  # batches come in line order
        numbers.extend(in_batch)
        offsets = batch.table["source_offset"].to_pylist()
        assert offsets == sorted(offsets)
        got_lines.update(zip(offsets, batch.table["line"].to_pylist(), strict=True))
        for number, head, size in batch.too_long:
            got_too_long[number] = (head, size)

    assert numbers == list(range(1, len(want_lines) + len(want_too_long) + 1))
    assert got_lines == want_lines
    assert got_too_long.keys() == want_too_long.keys()
    for number, (head, size) in got_too_long.items():
        heads, true_size = want_too_long[number]
        assert size == true_size
        assert head in heads


def test_crlf_invalid_utf8_and_no_trailing_newline() -> None:
    data = b"first\r\nsecond \xff\xfe\r\n\r\nlast\r"
    (batch,) = _batches(data, step=3, batch_lines=100, max_bytes=100)
    assert batch.table["source_offset"].to_pylist() == [1, 2, 3, 4]
    assert batch.table["line"].to_pylist() == ["first", "second \ufffd\ufffd", "", "last"]
    assert batch.too_long == []


def test_empty_stream_yields_nothing() -> None:
    assert _batches(b"", step=10, batch_lines=10, max_bytes=10) == []


def test_long_line_is_reported_with_its_true_length() -> None:
    data = b"short\n" + b"L" * 1000 + b"\nafter\n" + b"M" * 50
    batches = _batches(data, step=7, batch_lines=100, max_bytes=20)
    lines = [
        (n, line)
        for b in batches
        for n, line in zip(
            b.table["source_offset"].to_pylist(), b.table["line"].to_pylist(), strict=True
        )
    ]
    too_long = [item for b in batches for item in b.too_long]
    assert lines == [(1, "short"), (3, "after")]
    assert too_long == [(2, "L" * 21, 1000), (4, "M" * 21, 50)]


def test_line_exactly_at_the_limit_is_kept() -> None:
    (batch,) = _batches(b"a" * 20 + b"\n" + b"b" * 21 + b"\n", step=5, batch_lines=9, max_bytes=20)
    assert batch.table["line"].to_pylist() == ["a" * 20]
    assert batch.too_long == [(2, "b" * 21, 21)]


def test_small_batch_lines_splits_into_several_batches() -> None:
    data = b"".join(f"line {i}\n".encode() for i in range(1, 11))
    # One read returns the whole input: batches must still be bounded.
    batches = list(iter_line_batches(io.BytesIO(data), batch_lines=3))
    assert [b.table.num_rows for b in batches] == [3, 3, 3, 1]
    assert [b.table["source_offset"].to_pylist() for b in batches] == [
        [1, 2, 3],
        [4, 5, 6],
        [7, 8, 9],
        [10],
    ]
    assert batches[3].table["line"].to_pylist() == ["line 10"]


def test_truncated_gzip_raises_after_yielding_what_was_read(tmp_path: Path) -> None:
    # More than one 4 MiB read before the cut, so that some lines arrive before the error.
    body = b"".join(f"{i:07d} some text to pad the line out\n".encode() for i in range(400_000))
    packed = gzip.compress(body, compresslevel=1)
    path = tmp_path / "cut.log.gz"
    path.write_bytes(packed[: len(packed) * 3 // 4])
    inp = Input.open(str(path))
    try:
        assert inp.compressed
        seen: list[int] = []
        with pytest.raises(InputError, match=r"cut\.log\.gz: input ends unexpectedly after line"):
            for batch in read_all_lines(inp):
                seen.extend(batch.table["source_offset"].to_pylist())
    finally:
        inp.close()
    assert len(seen) > 100_000
    assert seen == list(range(1, len(seen) + 1))


def test_input_open_hashes_and_detects_gzip(tmp_path: Path) -> None:
    plain = tmp_path / "a.log"
    plain.write_bytes(b"hello\n")
    packed = tmp_path / "a.log.gz"
    packed.write_bytes(gzip.compress(b"hello\n"))
    a, b = Input.open(str(plain)), Input.open(str(packed))
    try:
        assert (a.compressed, b.compressed) == (False, True)
        assert a.sha256 == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        assert a.head() == b.head() == b"hello\n"
        assert b.local_file().read_bytes() == b"hello\n"
    finally:
        a.close()
        b.close()
    with pytest.raises(InputError, match="no such file"):
        Input.open(str(tmp_path / "missing.log"))
    with pytest.raises(InputError, match="not a regular file"):
        Input.open(str(tmp_path))
