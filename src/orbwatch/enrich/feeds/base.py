"""What every feed reader returns, and the helpers readers share.

A reader turns one input (a file, or a TAXII collection spooled to one) into a
:class:`FeedBatch`: an Arrow table of raw indicators in :data:`INDICATOR_SCHEMA` plus the
records it could not use (``rejects``, which go to ``quarantine``) and the counts of records it
skipped on purpose (a MISP attribute that is a file hash is not a network indicator: skipped,
not bad). Everything after that is shared and lives in :mod:`orbwatch.enrich.intel`: parsing
addresses and networks into keys, validating domains, de-duplication, index buckets,
quarantine and refreshing a list that was loaded before.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.sources.inputs import RAW_KEEP_CHARS, Input

TS = pa.timestamp("us", tz="UTC")

#: One raw indicator as a reader found it. ``kind`` is null for an address or network (the
#: loader tells ``ip`` from ``cidr``) and ``domain`` for a domain name. ``raw`` is what
#: quarantine shows when the indicator is unusable (the whole line of a text list); null means
#: the indicator text itself.
INDICATOR_SCHEMA = pa.schema(
    [
        ("indicator", pa.string()),
        ("kind", pa.string()),
        ("source_offset", pa.int64()),
        ("score", pa.float64()),
        ("confidence", pa.float64()),
        ("intel_class", pa.string()),
        ("tags", pa.string()),
        ("comment", pa.string()),
        ("first_seen", TS),
        ("last_seen", TS),
        ("valid_from", TS),
        ("valid_until", TS),
        ("external_id", pa.string()),
        ("raw", pa.string()),
    ]
)
REJECT_SCHEMA = pa.schema(
    [
        ("source_offset", pa.int64()),
        ("reason", pa.string()),
        ("raw", pa.string()),
        ("raw_length", pa.int64()),
    ]
)
MAX_COMMENT_CHARS = 200
MAX_TAG_CHARS = 500
#: At most this many records are read from one structured (JSON) feed.
MAX_RECORDS = 5_000_000


@dataclass
class FeedOptions:
    """What the user told ``intel add`` about the feed beyond its bytes."""

    #: ``field=column`` for tabular feeds (see :mod:`orbwatch.enrich.feeds.tabular`).
    mapping: dict[str, str] = field(default_factory=dict)


@dataclass
class FeedBatch:
    """Indicators and rejects read from one input."""

    indicators: pa.Table
    rejects: pa.Table
    skipped: dict[str, int] = field(default_factory=dict)
    #: What a record that is not an address, network or domain is called in quarantine.
    invalid_reason: str = "not an IP address, CIDR or domain"
    #: Whether an indicator of unknown kind that is a valid domain name is kept as a domain.
    allow_domains: bool = False


class FeedReader(ABC):
    """One feed format. Subclasses set the class variables and implement :meth:`read`."""

    #: Name used with ``--kind`` and in messages.
    name: ClassVar[str]
    #: ``source_format`` written on the rows it produces.
    source_format: ClassVar[str]
    #: One line for ``orbwatch intel add --help``.
    description: ClassVar[str]

    @classmethod
    @abstractmethod
    def sniff(cls, head: bytes) -> bool:
        """Whether the first bytes of an input look like this format."""

    @abstractmethod
    def read(self, inp: Input, options: FeedOptions) -> FeedBatch:
        """Read the whole input."""


def indicator_table(columns: dict[str, Any], rows: int | None = None) -> pa.Table:
    """A table in :data:`INDICATOR_SCHEMA` from the columns given (the others are null)."""
    count = rows if rows is not None else len(next(iter(columns.values())))
    arrays = []
    for fld in INDICATOR_SCHEMA:
        value = columns.get(fld.name)
        if value is None:
            arrays.append(pa.nulls(count, fld.type))
        elif isinstance(value, pa.Array | pa.ChunkedArray):
            arrays.append(pc.cast(value, fld.type))
        else:
            arrays.append(pa.array(value, fld.type))
    return pa.Table.from_arrays(arrays, schema=INDICATOR_SCHEMA)


def reject_table(rows: Sequence[tuple[int, str, str, int]]) -> pa.Table:
    """Rejects as (offset, reason, raw text, raw length); the raw text is cut to the bound."""
    return pa.table(
        {
            "source_offset": pa.array([r[0] for r in rows], pa.int64()),
            "reason": pa.array([r[1] for r in rows], pa.string()),
            "raw": pa.array([r[2][:RAW_KEEP_CHARS] for r in rows], pa.string()),
            "raw_length": pa.array([r[3] for r in rows], pa.int64()),
        },
        schema=REJECT_SCHEMA,
    )


_FRACTION_OR_ZONE = re.compile(r"(\.\d+)?(Z|[+-]00:?00| UTC)?$")
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def records_batch(
    records: Sequence[dict[str, Any]],
    rejects: Sequence[tuple[int, str, str, int]],
    skipped: dict[str, int],
    feed: str,
) -> FeedBatch:
    """A batch from indicator records read one document object at a time (STIX, MISP)."""
    columns = indicator_table({}, 0).column_names
    table = indicator_table({k: [r.get(k) for r in records] for k in columns}, len(records))
    return FeedBatch(
        table,
        reject_table(rejects),
        skipped,
        invalid_reason=f"{feed} value is not an IP address, CIDR or domain",
    )


def parse_times(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """UTC timestamps from the date forms feeds write; null where a value is not one.

    Accepted: ``2024-04-01``, ``2024-04-01 17:51[:44]``, ISO 8601 with ``T``, fractions and
    ``Z``/``+00:00`` (fractions of a second are dropped). Offsets other than UTC are not in
    any feed we read and come out null.
    """
    text = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
    text = pc.replace_substring_regex(text, _FRACTION_OR_ZONE.pattern, "")
    text = pc.replace_substring(text, "T", " ")
    parsed = pa.nulls(len(text), pa.timestamp("us"))
    for fmt in _TIME_FORMATS:
        attempt = pc.strptime(text, format=fmt, unit="us", error_is_null=True)
        parsed = pc.coalesce(parsed, attempt)
    return pc.assume_timezone(parsed, "UTC").cast(TS)


def parse_numbers(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Floats from text; null where a value is not a plain decimal number."""
    text = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
    numeric = pc.match_substring_regex(text, r"^[+-]?\d+(\.\d+)?$")
    return pc.cast(pc.if_else(numeric, text, pa.scalar(None, pa.string())), pa.float64())


#: Words in tags, labels and types that say what kind of infrastructure an indicator is.
#: Checked in this order; the first class whose word occurs in any tag wins.
CLASS_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("quad7", ("quad7", "covertnetwork-1658", "7777-botnet")),
    ("compromised-soho", ("compromised-soho", "soho", "router", "iot", "compromised")),
    ("vps-relay", ("vps-relay", "vps", "relay", "orb")),
    ("c2", ("c2", "c&c", "command-and-control", "botnet-cc", "cnc")),
    ("tor", ("tor", "tor-exit")),
    ("proxy", ("proxy", "anonymization", "socks")),
    ("scanner", ("scanner", "scanning", "scan", "brute-force", "bruteforce")),
)
_TAG_SPLIT = re.compile(r"[^a-z0-9&-]+")


def class_from_tags(tags: Iterable[str]) -> str | None:
    """The indicator class that tags name, or None (see :data:`CLASS_WORDS`).

    Tags are matched word by word (``misp-galaxy:botnet="Quad7"`` has the word ``quad7``),
    so ``tor`` does not match ``director``.
    """
    words: set[str] = set()
    for tag in tags:
        lowered = tag.lower()
        words.add(lowered)
        words.update(w for w in _TAG_SPLIT.split(lowered) if w)
    for cls, keywords in CLASS_WORDS:
        if any(k in words for k in keywords):
            return cls
    return None


def join_tags(tags: Iterable[str]) -> str | None:
    """Tags as the comma-separated text stored in ``intel.tags`` (commas inside become ';')."""
    unique = list(dict.fromkeys(t.strip().replace(",", ";") for t in tags if t and t.strip()))
    return ",".join(unique)[:MAX_TAG_CHARS] or None
