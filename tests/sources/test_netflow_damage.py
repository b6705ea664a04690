"""Damaged corpus packets: the decoder never raises, and keeps every good record before the damage.

Each case is a real export message with the templates its exporter sent before it (the earlier
files of a Logstash spec context, the earlier packets of a capture). Hypothesis cuts the message
short or overwrites one byte; the records that lie wholly before the damaged byte must come out
exactly as from the intact message, and every byte must be either decoded or rejected.
"""

from __future__ import annotations

import copy
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orbwatch.sources.netflow.decode import Decoder, TemplateCache
from orbwatch.sources.netflow.pcap import UdpPayload, iter_udp

NETFLOW = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "netflow"
HEADER = {5: 24, 9: 20, 10: 16}
EXPORTER = "192.0.2.1"


@dataclass
class Case:
    name: str
    cache: TemplateCache  # templates (and options) the exporter sent before the message
    message: bytes
    exporter: str


def _cases() -> list[Case]:
    if not NETFLOW.is_dir():
        return []
    golden = json.loads(
        (
            NETFLOW / "logstash-codec-netflow" / "EXPECTED_logstash-codec-netflow_spec.json"
        ).read_text()
    )
    cases = []
    for context in golden["contexts"]:
        cache = TemplateCache()
        decoder = Decoder(cache)
        for name in context["local_dat_files"]:
            message = (NETFLOW.parent / name).read_bytes()
            cases.append(Case(f"{context['context']}: {name}", copy.deepcopy(cache), message,
                              EXPORTER))  # fmt: skip
            decoder.feed(message, EXPORTER)
            decoder.flush()
    for pcap in sorted((NETFLOW / "pmacct").rglob("*.pcap")) + sorted(
        (NETFLOW / "akvorado" / "netflow").glob("*.pcap")
    ):
        cache = TemplateCache()
        decoder = Decoder(cache)
        with pcap.open("rb") as stream:
            for item in iter_udp(stream):
                if isinstance(item, UdpPayload):
                    cases.append(Case(f"{pcap.name}@{item.offset}", copy.deepcopy(cache),
                                      item.payload, item.exporter))  # fmt: skip
                    decoder.feed(item.payload, item.exporter)
                    decoder.flush()
    return [c for c in cases if len(c.message) >= 4 and c.message[1] in HEADER]


CASES = _cases()


def decode(case: Case, message: bytes) -> tuple[list[dict[str, Any]], Decoder]:
    """Records of one message in arrival order, each with the byte where it ends."""
    decoder = Decoder(copy.deepcopy(case.cache))
    decoder.feed(message, case.exporter, 0, set_offsets=True)
    batches = decoder.flush()
    decoder.finish()
    records: list[tuple[int, int, dict[str, Any]]] = []
    for batch in batches:
        size = batch.template.record_len
        seen: dict[int, int] = {}
        for i, record in enumerate(batch.records()):
            offset = int(batch.offset[i])
            j = seen[offset] = seen.get(offset, -1) + 1
            if batch.version == 5:
                end = 24 + 48 * (j + 1)
            elif size:
                end = offset + 4 + size * (j + 1)
            else:  # variable-length records: only their set's end is known
                end = offset + struct.unpack_from(">H", message, offset + 2)[0]
            record["_end"] = end
            # A template sent later in the same message is lost with the damage after it.
            record["_template_known"] = batch.version == 5 or (
                case.cache.get(batch.key, batch.template.template_id) is not None
            )
            records.append((int(batch.seq[i]), i, record))
    records.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in records], decoder


def check(case: Case, damaged: bytes, damage_at: int) -> None:
    original, _ = decode(case, case.message)
    got, decoder = decode(case, damaged)
    stats = decoder.stats
    assert stats["bytes_decoded"] + stats["bytes_rejected"] == stats["bytes_in"] == len(damaged)
    if damage_at < HEADER[case.message[1]]:
        return  # a damaged header may change how everything after it reads
    before = [r for r in original if r["_end"] <= damage_at]
    if any(not r["_template_known"] for r in before):
        before = before[: [r["_template_known"] for r in before].index(False)]
    assert got[: len(before)] == before, case.name


pytestmark = pytest.mark.skipif(not CASES, reason=f"NetFlow corpus not found at {NETFLOW}")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_truncation_keeps_records_before_the_cut(data: st.DataObject) -> None:
    case = data.draw(st.sampled_from(CASES), label="case")
    cut = data.draw(st.integers(0, len(case.message)), label="cut")
    check(case, case.message[:cut], cut)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_corruption_keeps_records_before_the_damage(data: st.DataObject) -> None:
    case = data.draw(st.sampled_from(CASES), label="case")
    at = data.draw(st.integers(0, len(case.message) - 1), label="at")
    value = data.draw(st.integers(0, 255).filter(lambda v: v != case.message[at]), label="byte")
    damaged = case.message[:at] + bytes([value]) + case.message[at + 1 :]
    check(case, damaged, at)


def test_cut_v5_and_data_set_keep_whole_records() -> None:
    """The two decoder paths this property needed: whole records of a cut message survive."""
    case = next(c for c in CASES if c.name.endswith("netflow5_test_microtik.dat"))
    got, decoder = decode(case, case.message[: 24 + 48 * 7 + 20])
    assert len(got) == 7 and decoder.reasons["truncated message"] == 1
    case = next(c for c in CASES if c.name.endswith("netflow9_test_paloalto_panos_data.dat"))
    full, _ = decode(case, case.message)
    got, decoder = decode(case, case.message[: full[3]["_end"] + 5])
    assert got == full[:4] and decoder.reasons["bad length"] == 1
