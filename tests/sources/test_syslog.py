"""The shared syslog layer: line splitting, headers, timestamps and the line-format mechanism."""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.sources.firewall.corpus_lines import line_table

from orbwatch.errors import InputError
from orbwatch.sources.firewall import NetfilterLog, PfsenseFilterlog
from orbwatch.sources.inputs import Input
from orbwatch.sources.syslog import Clock, _YearState, header_times, iter_lines, split_headers

UTC = dt.UTC


def _headers(lines: list[str]) -> list[dict[str, object]]:
    return split_headers(pl.DataFrame({"line": lines})).drop("line").to_dicts()


def _times(lines: list[str], clock: Clock) -> list[dt.datetime | None]:
    df = split_headers(pl.DataFrame({"line": lines}))
    return header_times(df, clock, _YearState()).to_list()


def test_bsd_header() -> None:
    (h,) = _headers(["<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed"])
    assert h["pri"] == "34"
    assert (h["stamp"], h["stamp_kind"], h["host"]) == ("Oct 11 22:14:15", "bsd", "mymachine")
    assert (h["program"], h["pid"], h["message"]) == ("su", "123", "'su root' failed")


def test_rfc5424_header_with_structured_data() -> None:
    (h,) = _headers(
        [
            "<165>1 2003-10-11T22:14:15.003Z host.example.com evntslog - ID47 "
            '[exampleSDID@32473 iut="3" eventSource="App]lication"] An application event'
        ]
    )
    assert (h["host"], h["program"], h["pid"], h["msgid"]) == (
        "host.example.com",
        "evntslog",
        None,
        "ID47",
    )
    assert h["sd"] == '[exampleSDID@32473 iut="3" eventSource="App]lication"]'
    assert h["message"] == "An application event"


@pytest.mark.parametrize(
    ("line", "host", "program", "message"),
    [
        ("Jan 22 18:34:00 filterlog: 65,,,0", None, "filterlog", "65,,,0"),  # no host
        ("Sep 20 13:03:58 PA-VM 1,2018/09/20", "PA-VM", None, "1,2018/09/20"),  # no tag
        ("2023-03-18T20:35:05.734+01:00 gw firewall,info x: y", "gw", None, "firewall,info x: y"),
        ("%ASA-6-302013: Built", None, None, "%ASA-6-302013: Built"),  # no header at all
        ("Oct 03 2018 17:34:08: %ASA-4-106023: Deny", None, "%ASA-4-106023", "Deny"),
    ],
)
def test_header_variants(line: str, host: str | None, program: str | None, message: str) -> None:
    (h,) = _headers([line])
    assert (h["host"], h["program"], h["message"]) == (host, program, message)


def test_iso_stamps_keep_their_offset_and_zoneless_ones_take_the_configured_zone() -> None:
    clock = Clock("America/New_York", 2020)
    got = _times(
        [
            "2022-09-06T18:37:34+02:00 h p: m",
            "<14>1 2013-01-19T15:18:17.040 h app - - - m",
            "Oct 03 2018 17:34:08: %ASA-4-106023: m",
        ],
        clock,
    )
    assert got == [
        dt.datetime(2022, 9, 6, 16, 37, 34, tzinfo=UTC),
        dt.datetime(2013, 1, 19, 20, 18, 17, 40000, tzinfo=UTC),
        dt.datetime(2018, 10, 3, 21, 34, 8, tzinfo=UTC),
    ]


def test_year_rolls_over_from_december_to_january() -> None:
    lines = [
        "Dec 31 23:59:58 h p: a",
        "Dec 31 23:59:59 h p: b",
        "Jan  1 00:00:01 h p: c",
    ]
    got = _times(lines, Clock("UTC", 2023))
    assert [t.year for t in got if t] == [2023, 2023, 2024]


def test_rollover_state_carries_across_batches() -> None:
    clock, state = Clock("UTC", 2023), _YearState()
    first = split_headers(pl.DataFrame({"line": ["Dec 30 10:00:00 h p: a"]}))
    second = split_headers(pl.DataFrame({"line": ["Jan  2 10:00:00 h p: b"]}))
    assert header_times(first, clock, state).to_list()[0].year == 2023
    assert header_times(second, clock, state).to_list()[0].year == 2024


def test_small_steps_back_are_not_a_new_year() -> None:
    got = _times(["Mar  1 00:00:01 h p: a", "Feb 28 23:59:59 h p: late"], Clock("UTC", 2021))
    assert [t.year for t in got if t] == [2021, 2021]


def test_year_from_file_modification_time(tmp_path: Path) -> None:
    path = tmp_path / "fw.log"
    path.write_text("Dec 30 10:00:00 h p: a\nJan  2 10:00:00 h p: b\n")
    written = dt.datetime(2024, 1, 3, 12, 0, tzinfo=UTC).timestamp()
    os.utime(path, (written, written))
    clock = Clock.for_input(Input.open(str(path)))
    assert clock.first_year(12, 30) == 2023  # December lies after the file's January mtime
    assert clock.first_year(1, 2) == 2024


def test_zone_applies_to_bsd_stamps_and_daylight_saving_gaps_are_invalid() -> None:
    got = _times(
        ["Jul  1 12:00:00 h p: a", "Mar 31 02:30:00 h p: gap"], Clock("Europe/Berlin", 2024)
    )
    assert got == [dt.datetime(2024, 7, 1, 10, 0, tzinfo=UTC), None]


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(InputError, match="unknown time zone"):
        Clock("Mars/Olympus_Mons")


def test_iter_lines_numbers_lines_across_reads_and_bounds_their_length() -> None:
    data = b"a\r\nbb\n" + b"x" * 100 + b"\n\xff\xfe ok\nlast"
    batches = list(iter_lines(io.BytesIO(data), read_bytes=7, max_bytes=50))
    lines = [
        (n, t)
        for b in batches
        for n, t in zip(
            b.table["source_offset"].to_pylist(), b.table["line"].to_pylist(), strict=True
        )
    ]
    too_long = [t for b in batches for t in b.too_long]
    assert lines == [(1, "a"), (2, "bb"), (4, "\ufffd\ufffd ok"), (5, "last")]
    assert [(n, size) for n, _, size in too_long] == [(3, 100)]


def test_pfsense_file_is_parsed_through_parse(tmp_path: Path) -> None:
    path = tmp_path / "filter.log"
    path.write_text(
        "Nov  8 12:37:34 pfSense filterlog: 5,,,1000102433,em0,match,block,in,4,0x0,,128,24677,"
        "0,none,17,udp,186,10.9.0.119,10.9.0.255,17500,17600,166\n\nnot filterlog at all\n"
    )
    parsed = list(PfsenseFilterlog(year=2019).parse(Input.open(str(path))))
    rows = sum(p.rows.num_rows for p in parsed)
    reasons = [r for p in parsed for r in p.rejects["reason"].to_pylist()]
    assert rows == 1
    assert reasons == ["not a pfSense/OPNsense filterlog record"]


_LINE = st.one_of(
    st.text(max_size=300),
    st.builds(
        lambda a, b, c: f"{a} kernel: IN={b} OUT= SRC={c} DST=10.0.0.1 PROTO=TCP SPT=1 DPT={b}",
        st.sampled_from(
            ["Jan  1 00:00:00 h", "<13>1 2020-01-01T00:00:00Z h", "", "Feb 30 99:99:99"]
        ),
        st.text(alphabet="0123456789abc", max_size=8),
        st.text(alphabet="0123456789.:abcdef", max_size=40),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINE, min_size=1, max_size=30))
def test_any_lines_are_parsed_skipped_or_quarantined(lines: list[str]) -> None:
    lines = [ln.replace("\n", " ").replace("\r", " ") for ln in lines]
    parsed = NetfilterLog(year=2020).parse_lines(line_table(lines))
    blank = sum(1 for ln in lines if not ln.strip())
    accounted = parsed.rows.num_rows + parsed.rejects.num_rows + sum(parsed.skipped.values())
    assert accounted + blank == len(lines)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_split_into_numbered_lines(data: bytes) -> None:
    batches = list(iter_lines(io.BytesIO(data), read_bytes=64, max_bytes=100))
    numbers = sorted(
        [n for b in batches for n in b.table["source_offset"].to_pylist()]
        + [n for b in batches for n, _, _ in b.too_long]
    )
    expected = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    assert numbers == list(range(1, expected + 1))
