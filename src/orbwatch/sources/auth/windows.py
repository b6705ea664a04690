"""Windows Security log logon events, from XML (EVTX export) and JSON (Wazuh, Winlogbeat).

Events kept (everything else in the Security channel is counted as skipped):

=====  ===========================================  ========  ===============================
id     meaning                                      outcome   user / session
=====  ===========================================  ========  ===============================
4624   an account logged on                         success   Target*, TargetLogonId
4625   an account failed to log on                  failure   Target*
4634   an account was logged off                    end       Target*, TargetLogonId
4647   user-initiated logoff                        end       Target*, TargetLogonId
4648   logon attempted with explicit credentials    info      Target* (credentials used)
4672   special privileges assigned to new logon     info      Subject*, SubjectLogonId
4771   Kerberos pre-authentication failed (DC)      failure   Target*
4776   DC validated NTLM credentials                Status 0x0 success, else failure
=====  ===========================================  ========  ===============================

``IpAddress``/``IpPort`` -> src_ip/src_port (port 0 and address ``-`` mean "not logged"),
``Computer`` -> target (4648: ``TargetServerName``), ``LogonType`` -> logon_type with its
name, ``AuthenticationPackageName`` (and ``LogonProcessName``) -> auth_method,
``WorkstationName`` -> client, ``Status``/``SubStatus`` -> failure_reason: the sub-status when
it is set (it is the precise one), else the status, as ``0xc000006a: wrong password``.
Windows does not log whether MFA or a device certificate was used: both stay ``unknown``.

XML input is any concatenation of ``<Event>`` elements: ``wevtutil qe /f:xml``, Event
Viewer's "Save as XML" (inside ``<Events>``, possibly pretty-printed or with the ``-`` fold
markers of the viewer), or JSON exports whose ``_raw`` holds the XML. Fields are taken with
one regular expression per field over all events at once (DuckDB/Arrow, no XML tree per
event); entities are decoded. JSON input is Wazuh ``win.system``/``win.eventdata``,
Winlogbeat ``winlog.event_data`` or NXLog's flat fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import ClassVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.sources.auth.json_records import iter_records
from orbwatch.sources.auth.logins import build_logins
from orbwatch.sources.base import Parsed, Source, rejects
from orbwatch.sources.inputs import CHUNK_BYTES, MAX_LINE_BYTES, Input

KEPT_EVENTS = ("4624", "4625", "4634", "4647", "4648", "4672", "4771", "4776")
EVENT_FIELDS = (
    "TargetUserName",
    "TargetDomainName",
    "TargetLogonId",
    "SubjectUserName",
    "SubjectDomainName",
    "SubjectLogonId",
    "IpAddress",
    "IpPort",
    "LogonType",
    "Status",
    "SubStatus",
    "LogonProcessName",
    "AuthenticationPackageName",
    "WorkstationName",
    "Workstation",
    "TargetServerName",
)
SYSTEM_FIELDS = ("EventID", "TimeCreated", "Computer")
LOGON_TYPES = {
    "2": "2 interactive",
    "3": "3 network",
    "4": "4 batch",
    "5": "5 service",
    "7": "7 unlock",
    "8": "8 network-cleartext",
    "9": "9 new-credentials",
    "10": "10 remote-interactive",
    "11": "11 cached-interactive",
    "12": "12 cached-remote-interactive",
    "13": "13 cached-unlock",
}
# NTSTATUS and Kerberos codes of failed logons (Microsoft's 4625/4771/4776 documentation).
FAILURE_CODES = {
    "0xc0000064": "user name does not exist",
    "0xc000006a": "wrong password",
    "0xc000006d": "bad user name or authentication information",
    "0xc000006e": "account restriction",
    "0xc000006f": "logon outside allowed hours",
    "0xc0000070": "workstation restriction",
    "0xc0000071": "password expired",
    "0xc0000072": "account disabled",
    "0xc00000dc": "server in wrong state",
    "0xc0000133": "clock out of sync with the domain controller",
    "0xc000015b": "logon type not granted",
    "0xc000018c": "trust relationship failed",
    "0xc0000192": "netlogon service not started",
    "0xc0000193": "account expired",
    "0xc0000224": "password must change at next logon",
    "0xc0000225": "Windows bug (not a risk)",
    "0xc0000234": "account locked out",
    "0xc00002ee": "an error occurred during logon",
    "0xc0000413": "authentication firewall: machine not allowed",
    "0x6": "Kerberos: client not found",
    "0x12": "Kerberos: client revoked (disabled, expired or locked out)",
    "0x17": "Kerberos: password expired",
    "0x18": "Kerberos: pre-authentication failed (wrong password)",
    "0x25": "Kerberos: clock skew too great",
}
MAX_EVENT_BYTES = MAX_LINE_BYTES * 4


def _mapped(values: pa.Array, table: dict[str, str], keep_code: bool) -> pa.Array:
    """Replace codes by names through ``table`` (``code: name`` when ``keep_code``)."""
    keys = pa.array(list(table), pa.string())
    names = pa.array(list(table.values()), pa.string())
    lowered = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    found = pc.take(names, pc.index_in(lowered, keys))
    if keep_code:
        found = pc.binary_join_element_wise(lowered, found, ": ")
    return pc.coalesce(found, values)


def _pick(event_id: pa.Array, by_event: dict[str, pa.Array], default: pa.Array) -> pa.Array:
    """Per row, the column chosen for its event id (``default`` for the others)."""
    out = default
    for eid, values in by_event.items():
        out = pc.if_else(pc.equal(event_id, eid), values, out)
    return out


def windows_logins(fields: dict[str, pa.Array], offsets: pa.Array, raw: pa.Array) -> Parsed:
    """``logins`` from Windows field columns (named as in the event XML), all events at once."""
    n = len(offsets)

    def col(name: str) -> pa.Array:
        values = fields.get(name)
        if values is None:
            return pa.nulls(n, pa.string())
        return pc.if_else(pc.is_in(values, pa.array(["-", ""])), None, values)

    eid = pc.utf8_trim_whitespace(col("EventID"))
    kept = pc.is_in(eid, pa.array(KEPT_EVENTS))
    skip = pc.if_else(
        kept,
        None,
        pc.binary_join_element_wise(
            "Windows event ", pc.coalesce(eid, "(no EventID)"), " is not a logon event", ""
        ),
    )
    status = col("Status")
    sub = col("SubStatus")
    code = pc.if_else(
        pc.is_in(pc.utf8_lower(pc.coalesce(sub, "0x0")), pa.array(["0x0", "0"])), status, sub
    )
    ok_4776 = pc.is_in(pc.utf8_lower(pc.coalesce(status, "")), pa.array(["0x0", "0"]))
    outcome = _pick(
        eid,
        {
            "4624": pa.repeat("success", n),
            "4625": pa.repeat("failure", n),
            "4634": pa.repeat("end", n),
            "4647": pa.repeat("end", n),
            "4771": pa.repeat("failure", n),
            "4776": pc.if_else(ok_4776, "success", "failure"),
        },
        pa.repeat("info", n),
    )
    failed = pc.equal(outcome, "failure")
    subject = {"4672": col("SubjectUserName")}
    package = col("AuthenticationPackageName")
    process = pc.utf8_trim_whitespace(col("LogonProcessName"))
    port = col("IpPort")
    raw_columns = {
        "ts": col("TimeCreated"),
        "event": eid,
        "user": _pick(eid, subject, col("TargetUserName")),
        "domain": _pick(eid, {"4672": col("SubjectDomainName")}, col("TargetDomainName")),
        "session_id": _pick(
            eid,
            {"4672": col("SubjectLogonId"), "4648": col("SubjectLogonId")},
            col("TargetLogonId"),
        ),
        "src_ip": col("IpAddress"),
        "src_port": pc.if_else(pc.equal(port, "0"), None, port),
        "service": pa.repeat("windows", n),
        "target": _pick(eid, {"4648": col("TargetServerName")}, col("Computer")),
        "outcome": outcome,
        "failure_reason": pc.if_else(failed, _mapped(code, FAILURE_CODES, True), None),
        "logon_type": _mapped(col("LogonType"), LOGON_TYPES, False),
        "auth_method": pc.coalesce(
            pc.if_else(
                pc.equal(package, process),
                package,
                pc.binary_join_element_wise(package, process, " via "),
            ),
            package,
        ),
        "client": pc.coalesce(col("WorkstationName"), col("Workstation")),
    }
    return build_logins(raw_columns, offsets, raw, skip)


def _xml_text(values: pa.Array) -> pa.Array:
    """Decode the five predefined XML entities and numeric character references of digits."""
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'")):
        values = pc.replace_substring(values, entity, char)
    return pc.replace_substring(values, "&amp;", "&")


def xml_fields(events: pa.Array) -> dict[str, pa.Array]:
    """Windows field columns from event XML texts: one regex pass per field."""
    q = "[\"']"
    patterns = {
        "EventID": r"<EventID(?:\s[^>]*)?>\s*(?P<v>\d+)\s*</EventID>",
        "TimeCreated": rf"<TimeCreated\s+SystemTime={q}(?P<v>[^\"']+){q}",
        "Computer": r"<Computer>(?P<v>[^<]*)</Computer>",
    }
    for name in EVENT_FIELDS:
        patterns[name] = rf"<Data\s+Name={q}{name}{q}\s*>(?P<v>[^<]*)</Data>"
    out: dict[str, pa.Array] = {}
    for name, pattern in patterns.items():
        found = pc.struct_field(pc.extract_regex(events, pattern), "v")
        out[name] = _xml_text(pc.utf8_trim_whitespace(found))
    return out


def iter_xml_events(inp: Input) -> Iterator[tuple[pa.Array, pa.Array, pa.Table]]:
    """(first line numbers, event texts, rejects) per chunk of an XML event stream.

    The stream is cut after each ``</Event>``; the text before an event's ``<Event`` (an
    ``<Events>`` root, the ``-`` fold markers Event Viewer copies) is not part of it. An
    unterminated piece longer than :data:`MAX_EVENT_BYTES` is rejected, so memory is bounded.
    """
    line = 1
    carry = b""
    with inp.open_binary() as stream:
        while True:
            chunk = stream.read(CHUNK_BYTES)
            pieces = (carry + chunk).split(b"</Event>")
            carry = pieces.pop()
            done = [p + b"</Event>" for p in pieces]
            if not chunk:
                if carry.strip():
                    done.append(carry)  # an unterminated tail: rejected below
                carry = b""
            if len(carry) > MAX_EVENT_BYTES:
                done.append(carry)
                carry = b""
            if done:
                texts = pa.array([p.decode("utf-8", "replace") for p in done], pa.string())
                newlines = pc.count_substring(texts, "\n").to_numpy(zero_copy_only=False)
                lead = pc.struct_field(pc.extract_regex(texts, r"^(?P<v>[^<]*)"), "v")
                lead_lines = pc.count_substring(lead, "\n").to_numpy(zero_copy_only=False)
                starts = line + np.concatenate([[0], np.cumsum(newlines)[:-1]]) + lead_lines
                line += int(newlines.sum())
                yield from _events_of(pa.array(starts, pa.int64()), texts)
            if not chunk:
                return


def _events_of(starts: pa.Array, texts: pa.Array) -> Iterator[tuple[pa.Array, pa.Array, pa.Table]]:
    event = pc.struct_field(pc.extract_regex(texts, r"(?s)(?P<v><Event[\s>].*)$"), "v")
    is_event = pc.and_(pc.is_valid(event), pc.less_equal(pc.binary_length(texts), MAX_EVENT_BYTES))
    leftover = pc.utf8_trim_whitespace(
        pc.replace_substring_regex(texts, r"</?Events[^>]*>|<\?xml[^>]*\?>", "")
    )
    junk = pc.and_(pc.invert(is_event), pc.not_equal(leftover, ""))
    bad = rejects(
        starts.filter(junk),
        pc.if_else(
            pc.greater(pc.binary_length(texts.filter(junk)), MAX_EVENT_BYTES),
            f"Windows event longer than {MAX_EVENT_BYTES} bytes or not terminated",
            "not a Windows <Event> element",
        ),
        texts.filter(junk),
    )
    yield starts.filter(is_event), event.filter(is_event), bad


class WindowsXml(Source):
    """Windows Security events as XML."""

    name: ClassVar[str] = "windows_xml"
    table: ClassVar[str] = "logins"
    description: ClassVar[str] = "Windows Security logon events 4624/4625/4634/4648/4672 (XML)"

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        return bool(re.search(rb"<Event[\s>]", head) and b"<EventID" in head)

    def parse(self, inp: Input) -> Iterator[Parsed]:
        stripped = inp.head(64).lstrip()
        if stripped[:1] in (b"[", b"{"):
            yield from self._parse_json_wrapped(inp)
            return
        for starts, events, bad in iter_xml_events(inp):
            parsed = windows_logins(xml_fields(events), starts, events)
            yield Parsed(parsed.rows, pa.concat_tables([bad, parsed.rejects]), parsed.skipped)

    def _parse_json_wrapped(self, inp: Input) -> Iterator[Parsed]:
        """XML events carried as the ``_raw`` text of JSON records (pipeline exports)."""
        con = duckdb.connect()
        try:
            for records in iter_records(inp, con):
                if records.rejects.num_rows:
                    yield Parsed(pa.table({}), records.rejects)
                if not records.rows.num_rows:
                    continue
                offsets = records.rows["source_offset"].combine_chunks()
                texts = records.rows["record"].combine_chunks()
                starts, events, bad = next(_events_of(offsets, texts))
                parsed = windows_logins(xml_fields(events), starts, events)
                yield Parsed(parsed.rows, pa.concat_tables([bad, parsed.rejects]), parsed.skipped)
        finally:
            con.close()


def _lower_first(name: str) -> str:
    return name[0].lower() + name[1:]


def _json_field(name: str) -> str:
    """SQL: a Windows field from Wazuh, Winlogbeat or NXLog JSON, as text."""
    if name == "EventID":
        paths = ["win.system.eventID", "winlog.event_id", "event.code", "EventID"]
    elif name == "TimeCreated":
        paths = ["win.system.systemTime", "winlog.time_created", "@timestamp", "EventTime"]
    elif name == "Computer":
        paths = ["win.system.computer", "winlog.computer_name", "Hostname", "Computer"]
    else:
        paths = [f"win.eventdata.{_lower_first(name)}", f"winlog.event_data.{name}", name]
    # Quoted members: Winlogbeat's "@timestamp" is not a plain JSON path identifier.
    quoted = ["$." + ".".join(f'"{part}"' for part in path.split(".")) for path in paths]
    return "coalesce(" + ", ".join(f"json_extract_string(r, '{q}')" for q in quoted) + ")"


class WindowsJson(Source):
    """Windows Security events as JSON (Wazuh eventchannel, Winlogbeat, NXLog)."""

    name: ClassVar[str] = "windows_json"
    table: ClassVar[str] = "logins"
    description: ClassVar[str] = "Windows Security logon events as JSON (Wazuh, Winlogbeat, NXLog)"

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        sample = head[:16384]
        return bool(
            re.search(rb'"(eventID|event_id|EventID)"\s*:', sample)
            and re.search(
                rb'"(win|winlog)"\s*:\s*\{|"SourceName"\s*:\s*"Microsoft-Windows-Security', sample
            )
        )

    def parse(self, inp: Input) -> Iterator[Parsed]:
        names = (*SYSTEM_FIELDS, *EVENT_FIELDS)
        selects = ", ".join(f'{_json_field(n)} AS "{n}"' for n in names)
        con = duckdb.connect()
        try:
            for records in iter_records(inp, con):
                if records.rejects.num_rows:
                    yield Parsed(pa.table({}), records.rejects)
                if not records.rows.num_rows:
                    continue
                con.register("records", records.rows)
                try:
                    table = con.execute(
                        "WITH p AS (SELECT source_offset, record, CASE WHEN "
                        "coalesce(json_valid(record), false) THEN record::JSON END AS r "
                        f"FROM records) SELECT source_offset, record, r IS NOT NULL AS valid, "
                        f"{selects} FROM p"
                    ).fetch_arrow_table()
                finally:
                    con.unregister("records")
                yield self._logins(table)
        finally:
            con.close()

    @staticmethod
    def _logins(table: pa.Table) -> Parsed:
        valid = table["valid"].combine_chunks()
        invalid = pc.invert(valid)
        not_json = rejects(
            table["source_offset"].combine_chunks().filter(invalid),
            pa.repeat("not a JSON object", pc.sum(invalid).as_py() or 0),
            table["record"].combine_chunks().filter(invalid),
        )
        good = table.filter(valid)
        fields = {
            name: good[name].combine_chunks()
            for name in good.column_names
            if name not in ("source_offset", "record", "valid")
        }
        parsed = windows_logins(
            fields, good["source_offset"].combine_chunks(), good["record"].combine_chunks()
        )
        return Parsed(parsed.rows, pa.concat_tables([not_json, parsed.rejects]), parsed.skipped)
