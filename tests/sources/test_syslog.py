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

from orbwatch.collect.base import Received
from orbwatch.collect.syslog import LineSourceHandler
from orbwatch.errors import InputError
from orbwatch.sources.firewall import (
    FortigateTraffic,
    JuniperSrxRtFlow,
    NetfilterLog,
    PanosTraffic,
    PfsenseFilterlog,
)
from orbwatch.sources.inputs import Input
from orbwatch.sources.syslog import (
    Clock,
    _general_header_times,
    _split_headers_general,
    _YearState,
    csv_fields,
    header_times,
    iter_lines,
    split_headers,
)

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


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("a,,b", ["a", "", "b"]),
        (",x,", ["", "x", ""]),
        (
            'a,"Microsoft Windows 11 Enterprise , 64-bit",b',
            ["a", "Microsoft Windows 11 Enterprise , 64-bit", "b"],
        ),
        ('"say ""hi""",""', ['say "hi"', ""]),
        ('a,"never closed,b', ["a", '"never closed', "b"]),  # not a quoted field: plain split
    ],
)
def test_csv_fields_honour_double_quotes(text: str, fields: list[str]) -> None:
    got = pl.DataFrame({"t": [text]}).select(csv_fields(pl.col("t"), ",")).item()
    assert got.to_list() == fields


def test_panos_quoted_field_with_a_comma_does_not_shift_later_columns() -> None:
    line = (
        "Sep 20 13:03:58 PA-VM 1,2018/09/20 13:03:58,44A1B3FC68F5304,TRAFFIC,end,2049,"
        '2018/09/20 13:03:58,34.217.108.226,10.0.2.65,0.0.0.0,0.0.0.0,"allow, then log",,,'
        "incomplete,vsys1,untrusted,trusted,ethernet1/3,ethernet1/2,log-forwarding-default,"
        "2018/09/20 13:03:58,574326,1,49760,8088,0,0,0x400064,tcp,allow,296,296,0,4,"
        "2018/09/20 13:03:45,7,any,0,730277,0x0,United States,10.0.0.0-10.255.255.255,0,4,0,"
        "aged-out,0,0,0,0,,PA-VM,from-policy,,,0,,0,,N/A,0,0,0,0"
    )
    (row,) = PanosTraffic(year=2018).parse_lines(line_table([line])).rows.to_pylist()
    assert row["rule"] == "allow, then log"
    assert (row["src_port"], row["dst_port"], row["protocol"]) == (49760, 8088, "tcp")
    assert (row["src_bytes"], row["dst_bytes"], row["action"]) == (296, 0, "allow")


def _srx_line(i: int) -> str:
    minute, second = divmod(i % 3600, 60)
    stamp = f"2024-03-01T10:{minute:02d}:{second:02d}.000Z"
    kind = ("CREATE", "CLOSE", "DENY")[i % 3]
    reason = 'reason="idle Timeout" ' if kind == "CLOSE" else ""
    return (
        f"<14>1 {stamp} fw01 RT_FLOW - RT_FLOW_SESSION_{kind} [junos@2636.1.1.1.2.39 {reason}"
        f'source-address="192.168.{i // 250 % 250}.{i % 250 + 1}" source-port="{1024 + i}" '
        f'destination-address="67.43.156.15" destination-port="53" protocol-id="17" '
        f'policy-name="trust-to-untrust" session-id-32="{i}" bytes-from-client="{i}"]'
    )


def test_a_file_spanning_many_batches_parses_like_one_batch(tmp_path: Path) -> None:
    """Every record of a file read in small batches: none lost or shifted at a boundary."""
    lines = [_srx_line(i) for i in range(3_000)]
    path = tmp_path / "srx.log"
    path.write_text("\n".join(lines) + "\n")
    source = JuniperSrxRtFlow(year=2024)
    source.read_bytes = 16_384  # about 60 batches, boundaries inside lines
    parts = list(source.parse(Input.open(str(path))))
    assert len(parts) > 50
    whole = JuniperSrxRtFlow(year=2024).parse_lines(line_table(lines))
    batched = pl.concat([pl.DataFrame(p.rows) for p in parts if p.rows.num_rows])
    assert batched.height == whole.rows.num_rows == len(lines)
    assert batched.equals(pl.DataFrame(whole.rows))
    assert batched["src_bytes"].to_list() == list(range(3_000))
    assert sum(p.rejects.num_rows for p in parts) == 0


def test_year_roll_over_holds_when_batches_are_parsed_in_parallel(tmp_path: Path) -> None:
    """Batches run on several threads, but year-less stamps are resolved in file order."""
    stamps = [f"Dec 31 23:{m:02d}:{s:02d}" for m in range(50, 60) for s in range(60)]
    stamps += [f"Jan  1 00:{m:02d}:{s:02d}" for m in range(10) for s in range(60)]
    lines = [
        f"{stamp} gw kernel: [UFW BLOCK] IN=eth0 OUT= SRC=192.0.2.{i % 250} DST=10.0.0.1 "
        f"LEN=40 PROTO=TCP SPT={1024 + i} DPT=22"
        for i, stamp in enumerate(stamps)
    ]
    path = tmp_path / "kern.log"
    path.write_text("\n".join(lines) + "\n")
    source = NetfilterLog(year=2023)
    source.read_bytes = 4_096  # about 40 batches, several in flight at once
    parts = list(source.parse(Input.open(str(path))))
    assert len(parts) > 30
    batched = pl.concat([pl.DataFrame(p.rows) for p in parts])
    whole = pl.DataFrame(NetfilterLog(year=2023).parse_lines(line_table(lines)).rows)
    assert batched.equals(whole)
    years = batched["ts_start"].dt.year().to_list()
    assert years == [2023] * 600 + [2024] * 600
    assert batched["src_port"].to_list() == list(range(1024, 1024 + len(lines)))


def test_a_failing_batch_stops_the_parse_without_waiting_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that fails before its turn gives the turn up, so later batches finish."""
    lines = [f"Mar  1 00:00:{i % 60:02d} gw kernel: IN=eth0 OUT= SRC=192.0.2.1 DST=10.0.0.1 "
             f"PROTO=TCP SPT={i} DPT=22" for i in range(2_000)]  # fmt: skip
    path = tmp_path / "kern.log"
    path.write_text("\n".join(lines) + "\n")
    source = NetfilterLog(year=2023)
    source.read_bytes = 4_096
    original = NetfilterLog.parse_lines

    def fail_third(self: NetfilterLog, table: object, *args: object) -> object:
        if args[-1] == 2:
            raise RuntimeError("batch 2 broke")
        return original(self, table, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(NetfilterLog, "parse_lines", fail_third)
    with pytest.raises(RuntimeError, match="batch 2 broke"):
        list(source.parse(Input.open(str(path))))


def test_kv_values_are_looked_up_once_per_key_and_unquoted() -> None:
    line = (
        'Jan  6 19:47:37 fgt date=2021-01-06 time=11:17:02 devname="fgt" logid="0000000013" '
        'type="traffic" srcip=10.0.0.1 srcport=5 dstip=10.0.0.2 dstport=53 proto=17 '
        'action="accept" policyid=1 trandisp="snat" transip=192.0.2.1 transport=7 '
        "eventtime=1609960622"
    )
    (row,) = FortigateTraffic().parse_lines(line_table([line])).rows.to_pylist()
    assert (row["src_ip"], row["dst_ip"], row["action"], row["rule"]) == (
        "10.0.0.1",
        "10.0.0.2",
        "allow",
        "1",
    )
    assert (row["nat_src_ip"], row["nat_src_port"], row["exporter"]) == ("192.0.2.1", 7, "fgt")


def test_live_syslog_uses_the_configured_zone() -> None:
    handler = LineSourceHandler("netfilter_log", timezone="Europe/Berlin")
    line = b"Jul  1 12:00:00 gw kernel: IN=eth0 OUT= SRC=1.2.3.4 DST=10.0.0.1 PROTO=TCP SPT=1 DPT=2"
    handler.add([Received(1, line, "udp://127.0.0.1:5514", "127.0.0.1")])
    (out,) = handler.drain(final=True)
    (stamp,) = out.parsed.rows["ts_start"].to_pylist()
    assert (stamp.hour, stamp.minute) == (10, 0)  # 12:00 in Berlin summer time is 10:00 UTC


# Header shapes for the fast/general agreement below: the common one and its near misses.
_HEADER_PIECES = st.tuples(
    st.sampled_from(["", "<13>", "<191>", " <5>"]),
    st.sampled_from(["Jan", "Feb", "Dec", "Foo", "jan"]),
    st.sampled_from([" 1", "  1", " 01", " 29", " 31", " 30", " 00", " 32"]),
    st.sampled_from(["", " 2024", " 2023"]),
    st.sampled_from([" 00:00:01", " 23:59:59", " 24:00:00", " 12:60:00", " 10:11:12.345"]),
    st.sampled_from(["", " UTC", ":"]),
    st.sampled_from([" gw", " -", " ABC", " host.example", " FW01", ""]),
    st.sampled_from([" kernel:", " sshd[42]:", " -:", " tag[x]:", " 1,2018/09/20", " a=b"]),
    st.sampled_from(["", " message text", " [1.2] IN=eth0 OUT="]),
).map("".join)
_RFC5424_LINES = st.tuples(
    st.sampled_from(["<14>1 ", "<165>1 ", " <14>1 ", "<14>2 ", "1 "]),
    st.sampled_from(
        [
            "2024-03-01T00:00:16.000Z",
            "2024-03-01T00:00:16Z",
            "2024-12-31T23:59:59.123456789Z",
            "2024-02-30T00:00:00Z",
            "2003-10-11T22:14:15+02:00",
            "-",
            "2024-02-30T1",
        ]
    ),
    st.sampled_from([" fw01", " -"]),
    st.sampled_from([" RT_FLOW - RT_FLOW_SESSION_CLOSE", " app 12 - ", " app - ID47", " a b"]),
    st.sampled_from(
        ["", " -", " - msg", ' [x@1 a="]" b="\\""] text', ' [x@1][y@2 c="d"]', " [bad"]
    ),
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(_HEADER_PIECES | _RFC5424_LINES, min_size=1, max_size=8))
def test_common_header_path_agrees_with_the_general_stages(lines: list[str]) -> None:
    df = pl.DataFrame({"line": lines})
    fast = split_headers(df)
    assert fast.equals(_split_headers_general(df))
    clock = Clock("Europe/Berlin", 2023)
    fast_times = header_times(fast, clock, _YearState())
    general_times = _general_header_times(fast, clock, _YearState())
    assert fast_times.to_list() == general_times.to_list()


@pytest.mark.parametrize(
    "stamps",
    [
        [
            "Mar  1 00:00:01",
            "Feb 29 12:00:00",
            "Feb 30 12:00:00",
            "Dec 31 23:59:59",
            "Jan 01 00:00:00",
        ],
        ["2024-03-01T00:00:16.000Z", "2024-02-30T00:00:00Z", "2024-12-31T23:59:59.123456789Z"],
    ],
)
def test_fast_header_times_equal_the_general_ones(stamps: list[str]) -> None:
    prefix = "" if stamps[0][0].isalpha() else "<14>1 "
    df = split_headers(pl.DataFrame({"line": [f"{prefix}{s} gw app - - - x" for s in stamps]}))
    clock = Clock("America/New_York", 2024)
    fast = header_times(df, clock, _YearState()).to_list()
    assert fast == _general_header_times(df, clock, _YearState()).to_list()
    assert fast.count(None) == 1
