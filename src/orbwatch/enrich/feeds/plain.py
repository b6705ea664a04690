"""Plain text lists: one address or CIDR per line (FireHOL, Spamhaus DROP, DShield, your own).

Read forms:

* FireHOL ``.ipset`` / ``.netset`` and Spamhaus DROP: one address or CIDR per line, ``#`` or
  ``;`` comments; a trailing ``; comment`` is kept as the indicator's comment;
* ``address<TAB>number`` (IPsum): the number becomes the indicator's ``score``;
* DShield ``block.txt``: ``start<TAB>end<TAB>prefix ...`` rows (its ``Start End Netblock``
  header row is skipped);
* anything with one address per line.

Lines are split by one regular expression over the whole column (no per-line Python); the
addresses themselves are parsed by the shared loader.
"""

from __future__ import annotations

import re
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.enrich.feeds.base import (
    MAX_COMMENT_CHARS,
    FeedBatch,
    FeedOptions,
    FeedReader,
    indicator_table,
    parse_numbers,
    reject_table,
)
from orbwatch.sources.inputs import RAW_KEEP_CHARS, Input, read_all_lines

#: Up to three whitespace-separated tokens, then anything, then an optional ``#``/``;`` comment.
_LINE = (
    r"^\s*(?P<a>[^\s#;]+)(?:\s+(?P<b>[^\s#;]+))?(?:\s+(?P<c>[^\s#;]+))?[^#;]*"
    r"(?:[#;]\s*(?P<comment>.*))?$"
)
INVALID = "not an IP address, CIDR or 'address score' line"
_ADDRESSY = re.compile(rb"^\s*[0-9a-fA-F:.]+(/\d+)?(\s|$)", re.MULTILINE)


def _group(parts: pa.Array, name: str) -> pa.Array:
    """A regex group as a column, null where the group did not take part (not ``""``)."""
    value = pc.struct_field(parts, name)
    return pc.if_else(pc.equal(value, ""), pa.scalar(None, pa.string()), value)


def split_lines(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(indicator columns, rows whose second token is not a number) of a line table."""
    parts = pc.extract_regex(table["line"], _LINE)
    keep = pc.is_valid(parts)  # blank and comment-only lines do not match
    table, parts = table.filter(keep), parts.filter(keep)
    a, b, c = (_group(parts, n) for n in ("a", "b", "c"))
    comment = pc.utf8_slice_codeunits(
        pc.utf8_trim_whitespace(_group(parts, "comment")), 0, MAX_COMMENT_CHARS
    )
    comment = pc.if_else(pc.equal(comment, ""), pa.scalar(None, pa.string()), comment)
    header = pc.and_(
        pc.equal(pc.utf8_lower(a), "start"),
        pc.fill_null(pc.equal(pc.utf8_lower(b), "end"), False),
    )
    dshield = pc.and_(
        pc.fill_null(pc.match_substring_regex(c, r"^\d+$"), False),
        pc.invert(pc.match_substring(a, "/")),
    )
    indicator = pc.if_else(dshield, pc.binary_join_element_wise(a, c, "/"), a)
    score = pc.if_else(dshield, pa.scalar(None, pa.float64()), parse_numbers(b))
    bad_score = pc.and_(
        pc.invert(pc.or_(dshield, header)), pc.and_(pc.is_valid(b), pc.is_null(score))
    )
    good = pc.invert(pc.or_(header, bad_score))
    rows = table.filter(good)
    indicators = indicator_table(
        {
            "indicator": indicator.filter(good),
            "source_offset": rows["source_offset"],
            "score": score.filter(good),
            "comment": comment.filter(good),
            "raw": rows["line"],
        },
        rows.num_rows,
    )
    return indicators, table.filter(bad_score)


class PlainListReader(FeedReader):
    """FireHOL, Spamhaus DROP, DShield block list, IPsum without scores, one IP per line."""

    name: ClassVar[str] = "plain"
    source_format: ClassVar[str] = "intel_plain_list"
    description: ClassVar[str] = "one IP or CIDR per line (FireHOL, Spamhaus DROP, DShield)"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return bool(_ADDRESSY.search(head))

    def read(self, inp: Input, options: FeedOptions) -> FeedBatch:
        del options  # plain lists have no columns to map
        parts: list[pa.Table] = []
        rejected: list[tuple[int, str, str, int]] = []
        for batch in read_all_lines(inp):
            rejected += [(n, "line too long", head, size) for n, head, size in batch.too_long]
            indicators, bad = split_lines(batch.table)
            parts.append(self.annotate(indicators))
            for offset, line in zip(
                bad["source_offset"].to_pylist(), bad["line"].to_pylist(), strict=True
            ):
                reason = f"{INVALID}: the second field {line.split()[1]!r} is not a number"
                rejected.append((offset, reason, line[:RAW_KEEP_CHARS], len(line)))
        table = pa.concat_tables(parts) if parts else indicator_table({}, 0)
        return FeedBatch(table, reject_table(rejected), invalid_reason=INVALID)

    def annotate(self, indicators: pa.Table) -> pa.Table:
        """Hook for list flavours that derive more columns from the parsed ones."""
        return indicators
