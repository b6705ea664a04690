"""Input formats. Each module holds one format's :class:`~orbwatch.sources.base.Source`.

Third-party packages add formats through the ``orbwatch.sources`` entry-point group; each
entry point names a ``Source`` subclass.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points

from orbwatch.errors import InputError
from orbwatch.sources.auth import AUTH_SOURCES
from orbwatch.sources.base import Source
from orbwatch.sources.firewall import FIREWALL_SOURCES
from orbwatch.sources.flow_table import FlowCsv, FlowParquet
from orbwatch.sources.inputs import Input
from orbwatch.sources.netflow import NetflowPcap, NetflowRaw, Nfcapd
from orbwatch.sources.vpn import VPN_SOURCES
from orbwatch.sources.zeek_conn import ZeekConnJson, ZeekConnTsv

# Order matters for detection: binary formats with magic numbers first, the permissive CSV last.
BUILTIN: tuple[type[Source], ...] = (
    ZeekConnTsv,
    ZeekConnJson,
    FlowParquet,
    NetflowPcap,
    NetflowRaw,
    Nfcapd,
    *AUTH_SOURCES,
    *VPN_SOURCES,
    *FIREWALL_SOURCES,
    FlowCsv,
)


def registry() -> dict[str, type[Source]]:
    """Every known format by name: the built-in ones first, then plugins."""
    found: dict[str, type[Source]] = {cls.name: cls for cls in BUILTIN}
    for ep in entry_points(group="orbwatch.sources"):
        cls = ep.load()
        found.setdefault(cls.name, cls)
    return found


# An INI file (a rule-test or config file: "[section]" then "key = value" lines) holds log
# lines as values at most; no log format is detected in it.
_INI = re.compile(rb"\A(?:\s*[;#][^\n]*\n)*\s*\[[^\]\n]+\][ \t]*\r?\n\s*[\w .-]+?\s*=")


def detect_format(inp: Input) -> type[Source]:
    """The first registered format whose ``sniff`` accepts the input's first bytes."""
    head = inp.head()
    if not head.strip():
        raise InputError(f"{inp.display}: empty input, nothing to ingest")
    if _INI.match(head):
        raise InputError(
            f"{inp.display}: an INI file ([section] and key = value lines), not a log; "
            "pass --format to read it as one anyway"
        )
    for cls in registry().values():
        if cls.sniff(head, inp.display):
            return cls
    known = ", ".join(registry())
    raise InputError(
        f"{inp.display}: unknown format (first bytes: {head[:60]!r}); "
        f"pass --format with one of: {known}"
    )


__all__ = ["Source", "detect_format", "registry"]
