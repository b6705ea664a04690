"""``key=value`` lookups: what a key's value is, and the two ways of finding it.

FortiGate, Juniper SRX, netfilter, Check Point and Sophos lines are ``key=value`` text. A key's
value is defined by :func:`kv_regex`:

* a key matches at the start of the text or after whitespace (Unicode ``\\s``, as the regex
  engine has it), ``,``, ``;``, ``[`` or ``|``, and is followed by the separator;
* the first match of each key counts, wherever it is, even inside another key's quoted value;
* a value that opens with one of the quote characters and has its closing quote is the text
  between them; otherwise the value runs to whitespace or a quote character (to whitespace
  only when the format has no quotes), and may be empty;
* a key that no match has gives null.

:func:`kv_values` finds many keys of one column at once: by one regex per key for a few keys
(each a vectorised literal search), by the compiled one-pass scan of
:mod:`orbwatch.sources.kv_scan` for many (imported only then: it brings Numba).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

#: What may stand before a key besides white space and the start of the text.
KEY_PUNCTUATION = ",;[|"


@dataclass(frozen=True)
class KvKey:
    """One ``key=value`` lookup: ``key`` in column ``on``, with the product's ``sep``/``quotes``."""

    on: str
    key: str
    sep: str = "="
    quotes: str = '"'


def kv_regex(key: str, sep: str, quotes: str) -> str:
    """One key's lookup as a regex: a group per quote character for a quoted value, one for a
    bare one (the definition the compiled scan follows).

    Led by the literal ``key=`` so that the regex engine jumps straight to it. The value is
    captured without its quotes, so no second pass over the column strips them.
    """
    delimiters = "".join(re.escape(c) for c in KEY_PUNCTUATION)
    head = rf"(?:^|[\s{delimiters}])" + re.escape(key) + re.escape(sep)
    if not quotes:
        return head + r"(\S*)"
    q = "".join(re.escape(c) for c in quotes)
    quoted = [
        f"{re.escape(c)}(?P<q{i}>[^{re.escape(c)}]*){re.escape(c)}" for i, c in enumerate(quotes)
    ]
    return head + f"(?:{'|'.join(quoted)}|(?P<bare>[^\\s{q}]*))"


def kv_lookup_regex(text: pl.Expr, key: str, sep: str, quotes: str) -> pl.Expr:
    """One key's value in ``text``, without its quotes, by :func:`kv_regex`."""
    if not quotes:
        return text.str.extract(kv_regex(key, sep, quotes), 1)
    groups = text.str.extract_groups(kv_regex(key, sep, quotes)).struct
    return pl.coalesce(*[groups.field(f"q{i}") for i in range(len(quotes))], groups.field("bare"))


# Fewer keys than this are looked up by their regexes: each is a vectorised literal search, and
# for a few keys they beat one scalar pass. Measured on 10 batches of generated lines (CPU per
# line, regexes / scan): netfilter, 7 keys, 1.13 / 1.32-1.63 µs; FortiGate, 21 keys,
# 5.27 / 2.78 µs; Juniper SRX, 18 keys, 6.38 / 2.87 µs.
SCAN_MIN_KEYS = 10


def scannable(key: str, sep: str) -> bool:
    """Whether the scan can look ``key`` up: a run of non-delimiters, without the separator."""
    return (
        bool(key) and sep not in key and not any(c.isspace() or c in KEY_PUNCTUATION for c in key)
    )


def kv_values(
    text: pl.Series, keys: Sequence[str], sep: str, quotes: str, scan_min_keys: int | None = None
) -> list[pl.Series]:
    """The value of each of ``keys`` in every line of ``text`` (null where it has none).

    By the compiled scan when there are at least ``scan_min_keys`` (default
    :data:`SCAN_MIN_KEYS`) keys it can take, else by the per-key regexes.
    """
    if not sep:
        raise ValueError("kv_values: the separator is empty")
    scanned = [key for key in keys if scannable(key, sep)]
    if len(scanned) < (SCAN_MIN_KEYS if scan_min_keys is None else scan_min_keys):
        scanned = []
    values = dict(zip(scanned, _scanned(text, scanned, sep, quotes), strict=True))
    rest = [key for key in dict.fromkeys(keys) if key not in values]
    if rest:
        frame = text.alias("text").to_frame()
        found = frame.select(kv_lookup_regex(pl.col("text"), k, sep, quotes).alias(k) for k in rest)
        values.update({key: found.get_column(key) for key in rest})
    return [values[key].alias(key) for key in keys]


def _scanned(text: pl.Series, keys: list[str], sep: str, quotes: str) -> list[pl.Series]:
    """:func:`kv_values` of keys the compiled scan takes (Numba is loaded on first use)."""
    if not keys:
        return []
    # Imported here, not at the top: Numba (about 120 MiB resident) loads only for formats
    # that use the scan.
    from orbwatch.sources.kv_scan import scan_values

    return scan_values(text, keys, sep, quotes)
