"""Opening inputs: files, ``.gz`` and stdin, hashed for de-duplication, read in bounded pieces.

Every source reads through :class:`Input` so that compression, stdin, hashing and the bounds
on line length are handled once. Lines are produced in batches as Arrow tables of
(``source_offset`` = 1-based line number, ``line``) so that parsers work on whole columns.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from orbwatch.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
CHUNK_BYTES = 4 << 20
BATCH_LINES = 200_000
MAX_LINE_BYTES = 65_536
RAW_KEEP_CHARS = 4_096


@dataclass
class Input:
    """One input to ingest. ``display`` is what messages and provenance call it."""

    path: Path
    display: str
    sha256: str
    compressed: bool
    _spool: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, name: str) -> Input:
        """Open a path, or ``-`` for stdin (spooled to a temporary file so it can be re-read)."""
        spool = None
        if name == "-":
            spool = tempfile.TemporaryDirectory(prefix="orbwatch-stdin-")
            path = Path(spool.name) / "stdin"
            with path.open("wb") as out:
                shutil.copyfileobj(sys.stdin.buffer, out, CHUNK_BYTES)
        else:
            path = Path(name)
            if not path.exists():
                raise InputError(f"{name}: no such file")
            if not path.is_file():
                raise InputError(f"{name}: not a regular file")
        digest = hashlib.sha256()
        try:
            with path.open("rb") as handle:
                head = handle.read(2)
                digest.update(head)
                while chunk := handle.read(CHUNK_BYTES):
                    digest.update(chunk)
        except OSError as exc:
            raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None
        return cls(path, name, digest.hexdigest(), head == GZIP_MAGIC, spool)

    def open_binary(self) -> BinaryIO:
        """The decompressed bytes of the input."""
        if self.compressed:
            return gzip.open(self.path, "rb")  # type: ignore[return-value]
        return self.path.open("rb")

    def head(self, size: int = 65_536) -> bytes:
        """The first ``size`` decompressed bytes, for format detection."""
        try:
            with self.open_binary() as handle:
                return handle.read(size)
        except (OSError, EOFError) as exc:
            raise InputError(f"{self.display}: cannot read: {exc}") from None

    def local_file(self) -> Path:
        """A plain (decompressed) file path, for readers that need random access."""
        if not self.compressed:
            return self.path
        if self._spool is None:
            self._spool = tempfile.TemporaryDirectory(prefix="orbwatch-gunzip-")
        target = Path(self._spool.name) / "decompressed"
        if not target.exists():
            with self.open_binary() as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_BYTES)
        return target

    def close(self) -> None:
        if self._spool is not None:
            self._spool.cleanup()
            self._spool = None


@dataclass
class LineBatch:
    """Lines with their 1-based line numbers, plus the lines that were too long to parse."""

    table: pa.Table
    too_long: list[tuple[int, str, int]]  # (line number, head of the line, length in bytes)


def iter_line_batches(
    stream: BinaryIO, batch_lines: int = BATCH_LINES, max_bytes: int = MAX_LINE_BYTES
) -> Iterator[LineBatch]:
    """Split a byte stream into batches of decoded lines, never holding an unbounded line.

    Bytes that are not UTF-8 are replaced (U+FFFD) rather than failing the file. A line longer
    than ``max_bytes`` is not parsed: its head is reported in ``too_long`` for quarantine, and at
    most ``max_bytes`` of it are ever held in memory. A truncated stream (e.g. a cut ``.gz``)
    raises :class:`InputError` after the lines read so far have been yielded.
    """
    line_no = 0
    carry, carry_total = b"", 0
    offsets: list[int] = []
    lines: list[str] = []
    too_long: list[tuple[int, str, int]] = []

    def complete(raw: bytes, total: int) -> None:
        nonlocal line_no
        line_no += 1
        if total > max_bytes:
            too_long.append((line_no, raw[:RAW_KEEP_CHARS].decode("utf-8", "replace"), total))
        else:
            offsets.append(line_no)
            lines.append(raw.decode("utf-8", "replace").removesuffix("\r"))

    def flush() -> LineBatch:
        table = pa.table(
            {"source_offset": pa.array(offsets, pa.int64()), "line": pa.array(lines, pa.string())}
        )
        batch = LineBatch(table, list(too_long))
        offsets.clear()
        lines.clear()
        too_long.clear()
        return batch

    while True:
        try:
            chunk = stream.read(CHUNK_BYTES)
        except (OSError, EOFError) as exc:
            if offsets or too_long:
                yield flush()
            raise InputError(f"input ends unexpectedly after line {line_no}: {exc}") from None
        if not chunk:
            break
        parts = chunk.split(b"\n")
        if len(parts) == 1:
            carry = (carry + chunk)[: max_bytes + 1]
            carry_total += len(chunk)
            continue
        complete((carry + parts[0])[: max_bytes + 1], carry_total + len(parts[0]))
        for raw in parts[1:-1]:
            # One chunk can hold many more lines than a batch: flush as the batch fills.
            if len(offsets) >= batch_lines:
                yield flush()
            complete(raw, len(raw))
        carry, carry_total = parts[-1][: max_bytes + 1], len(parts[-1])
        if len(offsets) >= batch_lines:
            yield flush()
    if carry_total:
        complete(carry, carry_total)
    if offsets or too_long:
        yield flush()


def read_all_lines(inp: Input) -> Iterator[LineBatch]:
    """Line batches of an input, with decompression errors named after the input."""
    with inp.open_binary() as stream:
        try:
            yield from iter_line_batches(stream)
        except InputError as exc:
            raise InputError(f"{inp.display}: {exc}") from None
