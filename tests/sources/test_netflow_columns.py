"""The hand-written column conversions agree with the standard library, and run on demand."""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from orbwatch.sources.netflow.columns import Columns, ipv4_text, ipv6_text
from orbwatch.sources.netflow.decode import FIXED_FORMATS


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), max_size=300))
def test_ipv4_text_matches_ipaddress(values: list[int]) -> None:
    repeated = values + values[: len(values) // 2]  # repeats go through the dictionary
    got = ipv4_text(np.array(repeated, np.uint32)).to_pylist()
    assert got == [str(ipaddress.IPv4Address(v)) for v in repeated]


def test_ipv4_text_edges_and_big_endian_input() -> None:
    raw = np.array([0, 0xFFFFFFFF, 0x0A000001, 0xC0A80101], ">u4")
    assert ipv4_text(raw).to_pylist() == ["0.0.0.0", "255.255.255.255", "10.0.0.1", "192.168.1.1"]
    assert ipv4_text(np.array([], np.uint32)).to_pylist() == []


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=16, max_size=16), max_size=50))
def test_ipv6_text_matches_ipaddress(values: list[bytes]) -> None:
    matrix = np.frombuffer(b"".join(values), np.uint8).reshape(len(values), 16)
    assert ipv6_text(matrix).to_pylist() == [str(ipaddress.IPv6Address(v)) for v in values]


def test_columns_convert_once_and_only_when_read() -> None:
    template = FIXED_FORMATS[5].template
    assert template.dtype is not None
    records = np.zeros(3, template.dtype)
    records["sourceIPv4Address"] = [0x0A000001, 0x0A000002, 0x0A000001]
    specs = dict(zip(template.names, template.fields, strict=True))
    columns = Columns(specs, records=records)
    assert len(columns) == len(template.fields) and not columns.converted
    first = columns["sourceIPv4Address"]
    assert isinstance(first, pa.Array)
    assert first.to_pylist() == ["10.0.0.1", "10.0.0.2", "10.0.0.1"]
    assert columns["sourceIPv4Address"] is first and columns.converted == ("sourceIPv4Address",)
    ports = columns["sourceTransportPort"]
    assert isinstance(ports, np.ndarray) and ports.dtype == np.uint16
