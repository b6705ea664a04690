"""Raw log lines out of the corpus' test-fixture wrappers, and the expectations they carry.

The shared corpus stores some vendor logs inside other projects' test fixtures: Wazuh ruleset
tests (``log N pass = <raw line>`` in an ``.ini``) and Cribl pack samples (JSON arrays whose
``_raw`` is the original line). CrowdSec hub tests keep raw ``.log`` files and their expected
parse in ``parser.assert`` expressions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

_WAZUH_LOG = re.compile(r"^log \d+ (?:pass|fail) = (.*)$")
_CROWDSEC = re.compile(
    r'^results\["s0[01]-(?:raw|parse)"\]\["([^"]+)"\]\[(\d+)\]\.Evt\.Parsed\["(\w+)"\] == "(.*)"$'
)
# A syslog header for Wazuh fixture lines that carry the bare message (Wazuh's test harness
# feeds them to the decoder without transport framing).
FIXTURE_HEADER = "Jan 15 10:00:00 fixture-host "


def with_header(lines: list[str]) -> list[str]:
    """Fixture lines with a syslog header added where the fixture stripped it."""
    stamped = re.compile(r"^(?:<\d+>)?(?:[A-Z][a-z]{2} [ \d]\d |\d{4}-\d\d-\d\dT|\s*1 \d{4}-)")
    return [
        line if not line.strip() or stamped.match(line) else FIXTURE_HEADER + line for line in lines
    ]


def raw_lines(path: Path) -> list[str]:
    """The original log lines in a corpus file, whatever its wrapper."""
    if path.suffix == ".ini":
        found = (_WAZUH_LOG.match(line) for line in path.read_text().splitlines())
        return [m.group(1) for m in found if m]
    if path.name.endswith(".json"):
        return [event["_raw"] for event in json.loads(path.read_text())]
    return path.read_text().splitlines()


def line_table(lines: list[str]) -> pa.Table:
    """Lines as the (``source_offset``, ``line``) table that line sources parse."""
    return pa.table(
        {
            "source_offset": pa.array(range(1, len(lines) + 1), pa.int64()),
            "line": pa.array(lines, pa.string()),
        }
    )


@dataclass(frozen=True)
class Expected:
    """One value CrowdSec's ``parser`` asserted for the line at ``offset`` (1-based)."""

    parser: str
    offset: int
    name: str
    value: str


def crowdsec_expectations(path: Path) -> list[Expected]:
    """The ``Evt.Parsed`` assertions of a CrowdSec ``parser.assert`` file."""
    out = []
    for line in path.read_text().splitlines():
        m = _CROWDSEC.match(line.strip())
        if m:
            out.append(Expected(m.group(1), int(m.group(2)) + 1, m.group(3), m.group(4)))
    return out
