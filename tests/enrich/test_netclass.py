"""Network classes: corporate, private, Tor, VPN, hosting, mobile, residential, unknown."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest

from orbwatch import netaddr
from orbwatch.config import Config
from orbwatch.enrich import geo, netclass
from orbwatch.enrich.intel import add_list
from orbwatch.store.workspace import Workspace


def classes(texts: list[str], networks: netclass.Networks | None = None) -> list[str]:
    keys = netaddr.keys(pa.array(texts))
    found = geo.bundled().lookup(keys).table
    nets = networks or netclass.Networks(corporate=[], tor=[])
    result = netclass.classify(
        keys, found["asn"].combine_chunks(), found["as_org"].combine_chunks(), nets
    )
    return [str(c) for c in result.to_pylist()]


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("8.8.8.8", "hosting"),  # Google, on the datacenter lists
        ("52.95.110.1", "hosting"),  # AWS
        ("2001:4860:4860::8888", "hosting"),
        ("24.0.0.1", "residential"),  # Comcast
        ("98.0.0.1", "residential"),  # Charter
        ("172.58.0.1", "mobile"),  # T-Mobile USA
        ("10.1.2.3", "private"),
        ("fe80::1", "private"),
        ("2001:db8::1", "private"),
        ("1.2.3.4", "unknown"),  # in a country range, no AS
    ],
)
def test_class_of_well_known_addresses(ip: str, expected: str) -> None:
    assert classes([ip]) == [expected]


def test_corporate_comes_from_config_ranges() -> None:
    nets = netclass.Networks(
        corporate=[netaddr.network("10.0.0.0/8"), netaddr.network("24.0.0.0/24")], tor=[]
    )
    assert classes(["10.1.2.3", "24.0.0.1", "24.0.1.1"], nets) == [
        "corporate",
        "corporate",
        "residential",
    ]


def test_range_membership_matches_python_on_random_networks() -> None:
    """The merged-range binary search agrees with a plain check per address and network."""
    rng = random.Random(12)
    nets = [
        netaddr.network(f"10.{rng.randrange(256)}.0.0/{rng.randrange(12, 25)}") for _ in range(40)
    ]
    nets += [
        netaddr.network(f"2001:db8:{rng.randrange(65536):x}::/{rng.randrange(40, 64)}")
        for _ in range(20)
    ]
    nets.append(netaddr.network("10.200.1.7"))  # a single address
    texts = [
        f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(2000)
    ]
    texts += [f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}" for _ in range(500)]
    texts += ["10.200.1.7", "not an address"]
    keys = netaddr.keys(pa.array(texts))
    got = netclass._in_networks(geo.decode_keys(keys), nets)
    values = [None if k is None else int(k, 16) for k in keys.to_pylist()]
    expected = [v is not None and any(n.start <= v <= n.end for n in nets) for v in values]
    assert got.tolist() == expected


def test_vpn_asn_list_and_name_pattern() -> None:
    keys = netaddr.keys(pa.array(["203.0.113.9", "198.51.100.7", "192.0.2.1"]))
    asn = pa.array([9009, 64512, 64513], pa.int64())
    org = pa.array(["M247 Europe SRL", "Example VPN Ltd", "Cable Example"]).dictionary_encode()
    public = netclass.Networks(corporate=[], tor=[])
    # Documentation ranges are special-purpose: the address rules run first.
    assert netclass.classify(keys, asn, org, public).to_pylist() == ["private"] * 3
    other = netaddr.keys(pa.array(["1.2.3.4", "1.2.3.5", "1.2.3.6"]))
    assert netclass.classify(other, asn, org, public).to_pylist() == [
        "vpn",
        "vpn",
        "residential",
    ]


def test_shipped_asn_lists_are_read() -> None:
    hosting = netclass.shipped_asns(netclass.HOSTING_LISTS)
    assert {14061, 16276, 24940, 16509} <= set(hosting.tolist())  # DO, OVH, Hetzner, AWS
    assert 7922 not in set(hosting.tolist())  # Comcast is no datacenter


def test_tor_exits_come_from_intel_lists(
    workspace: Workspace, config: Config, corpus: Path
) -> None:
    tor_file = corpus / "threat_intel/firehol/tor_exits.ipset"
    add_list(workspace, str(tor_file), "tor_exits")
    exits = [
        line.strip()
        for line in tor_file.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ][:3]
    networks = geo.workspace_networks(workspace, config)
    assert len(networks.tor) > 100
    assert classes([*exits, "8.8.8.8"], networks) == ["tor", "tor", "tor", "hosting"]


def test_enrich_counts_classes(workspace: Workspace, config: Config) -> None:
    src = pa.array(["10.0.0.1", "10.0.0.1"])
    dst = pa.array(["172.58.0.1", "24.0.0.1"])
    workspace.append(
        "flows",
        pa.table(
            {
                "src_ip": src,
                "src_key": netaddr.keys(src),
                "dst_ip": dst,
                "dst_key": netaddr.keys(dst),
            }
        ),
    )
    result = geo.enrich_workspace(workspace, config)
    assert result.by_class == {"corporate": 1, "mobile": 1, "residential": 1}


def test_own_networks_are_corporate_other_special_ranges_private() -> None:
    """The config's internal networks are the organisation's own; other special ranges are not."""
    texts = ["10.1.2.3", "192.168.1.1", "fd00::1", "100.64.0.1", "127.0.0.1", "169.254.1.1"]
    texts += ["fe80::1", "2001:db8::1", "8.8.8.8"]
    # The built-in internal networks also count CGNAT, link-local and loopback as internal.
    default = [row["net_class"] for row in geo.lookup_addresses(texts, Config())]
    assert default == ["corporate"] * 7 + ["private", "hosting"]
    narrowed = Config(internal_networks=["10.0.0.0/8"], corporate_egress=["8.8.8.0/24"])
    assert [row["net_class"] for row in geo.lookup_addresses(texts, narrowed)] == (
        ["corporate"] + ["private"] * 7 + ["corporate"]
    )
