"""The compiled ``key=value`` scan gives what the per-key regex gives, on any text."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from orbwatch.sources.kv import kv_lookup_regex, kv_values

# Characters that decide matches: separators, quotes (one of them multi-byte), delimiters,
# ASCII and Unicode white space (\x85, \xa0, \u2003, \u3000 are white space to the regex
# engine, \x1c is not), and a non-ASCII letter.
ALPHABET = 'ab=:"\u201d \t,;[|-\x85\xa0\u2003\u2028\u3000\x1c\u00e9'
KEYS = ["a", "b", "ab", "a-b", "\u00e9", "a b", "a,b"]


def _by_regex(text: list[str | None], keys: list[str], sep: str, quotes: str) -> pl.DataFrame:
    frame = pl.DataFrame({"text": text}, schema={"text": pl.String})
    return frame.select(kv_lookup_regex(pl.col("text"), k, sep, quotes).alias(k) for k in keys)


@settings(max_examples=400, deadline=None)
@given(
    text=st.lists(st.none() | st.text(ALPHABET, max_size=40), min_size=1, max_size=20),
    keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True),
    sep=st.sampled_from(["=", ":"]),
    quotes=st.sampled_from(["", '"', '"\u201d']),
)
def test_scan_matches_the_regex(
    text: list[str | None], keys: list[str], sep: str, quotes: str
) -> None:
    series = pl.Series("text", text, dtype=pl.String)
    scanned = pl.DataFrame(kv_values(series, keys, sep, quotes, scan_min_keys=1))
    assert scanned.equals(_by_regex(text, keys, sep, quotes))


def test_fields_of_a_fortigate_line() -> None:
    line = (
        'date=2021-01-06 devname="fgt" srcip=10.1.2.3 msg="user dstip=9.9.9.9 left" '
        'dstip=8.8.8.8 action="accept" note="unterminated'
    )
    values = kv_values(
        pl.Series([line, None, ""]),
        ["srcip", "dstip", "action", "note", "vd"],
        "=",
        '"',
        scan_min_keys=1,
    )
    got = {s.name: s.to_list() for s in values}
    assert got == {
        "srcip": ["10.1.2.3", None, None],
        # The first match counts, even inside another key's quoted value (as the regex does).
        "dstip": ["9.9.9.9", None, None],
        "action": ["accept", None, None],
        "note": ["", None, None],
        "vd": [None, None, None],
    }


def test_few_keys_take_the_regex_and_agree() -> None:
    lines = pl.Series(['a=1 b="2 3" c=4', "b=5", None])
    by_scan = kv_values(lines, ["a", "b", "c"], "=", '"', scan_min_keys=1)
    by_regex = kv_values(lines, ["a", "b", "c"], "=", '"', scan_min_keys=99)
    assert [s.to_list() for s in by_scan] == [s.to_list() for s in by_regex]
    assert by_scan[1].to_list() == ["2 3", "5", None]


def test_a_sliced_series_reads_its_own_rows() -> None:
    series = pl.Series(["a=1", "a=2", "a=3", "b=4"])[1:3]
    (value,) = kv_values(series, ["a"], "=", "", scan_min_keys=1)
    assert value.to_list() == ["2", "3"]


def test_a_series_of_several_chunks() -> None:
    long_value = "x" * 40
    first = pl.Series([f"k={long_value} a=1", "a=2"])
    second = pl.Series([f"pad={long_value} a={long_value}", None])
    series = pl.concat([first, second], rechunk=False)
    (value,) = kv_values(series, ["a"], "=", "", scan_min_keys=1)
    assert value.to_list() == ["1", "2", long_value, None]


def test_empty_and_all_null_columns() -> None:
    keys = [f"k{i}" for i in range(12)]
    empty = kv_values(pl.Series([], dtype=pl.String), keys, "=", '"')
    nulls = kv_values(pl.Series([None, None], dtype=pl.String), keys, "=", '"')
    assert [len(s) for s in empty] == [0] * 12
    assert all(s.to_list() == [None, None] for s in nulls)
