"""Blocklist exports: what goes in, each entry's expiry, and validation by the real tools.

``nft -c -f`` checks the nftables file; ``ipset restore`` loads the ipset file inside a
network namespace the test creates (``ip netns add``), so the host's sets are never touched.
Both are skipped with the reason when the tool (Debian packages ``nftables``, ``ipset``,
``iproute2``) or the permission is missing. Suricata is not packaged for Debian 12, so its
rules are checked against the rule grammar of the Suricata documentation.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orbwatch.config import Config
from orbwatch.enrich.intel import FeedSource, add_feed, add_list
from orbwatch.export.blocklist import IPSET_MAX_TIMEOUT, export, live_entries
from orbwatch.store.workspace import Workspace

NOW = dt.datetime.now(dt.UTC)
CONFIG = Config(internal_networks=["10.0.0.0/8", "192.168.0.0/16"])


@pytest.fixture
def loaded(workspace: Workspace, tmp_path: Path) -> Workspace:
    relays = tmp_path / "relays.txt"
    relays.write_text(
        "45.9.148.0/24\n"
        "45.9.148.10\n"  # inside the /24 above: left out (interval sets refuse overlaps)
        "91.92.93.94\n"
        "10.0.0.0/8\n"  # ours: never exported
        "198.51.100.7\n"  # documentation range: never exported
        "2a06:e480::/29\n"
    )
    add_feed(workspace, str(relays), "relays", FeedSource(intel_class="vps-relay"))
    soho = tmp_path / "soho.csv"
    soho.write_text(
        "ip,last_seen,confidence\n"
        f"77.1.2.3,{(NOW - dt.timedelta(days=2)):%Y-%m-%d %H:%M:%S},90\n"
        "77.1.2.4,2020-01-01,90\n"  # long expired
        f"91.92.93.94,{NOW:%Y-%m-%d %H:%M:%S},40\n"  # also on relays: written once, best score
    )
    add_feed(workspace, str(soho), "soho", FeedSource(intel_class="compromised-soho"))
    return workspace


def test_live_entries(loaded: Workspace) -> None:
    entries = {e.indicator: e for e in live_entries(loaded, CONFIG, NOW)}
    assert list(entries) == ["45.9.148.0/24", "77.1.2.3/32", "91.92.93.94/32", "2a06:e480::/29"]
    assert entries["91.92.93.94/32"].lists == "relays,soho"
    assert entries["91.92.93.94/32"].intel_class == "vps-relay"
    soho = entries["77.1.2.3/32"]
    # base 90, SOHO tau 17 days: expires 17 * (1 - 30/90)^2 = 7.556 days after last seen,
    # last seen 2 days ago (whole seconds), so about 5.556 days from now.
    assert soho.timeout(NOW) == pytest.approx(17 * (1 - 30 / 90) ** 2 * 86400 - 2 * 86400, abs=2)
    # 77.1.2.3: 90 * (1 - (2 / 17) ** 0.5) = 59.1, under 75; the relays are fresh (80).
    assert [e.indicator for e in live_entries(loaded, CONFIG, NOW, min_score=75)] == [
        "45.9.148.0/24",
        "91.92.93.94/32",
        "2a06:e480::/29",
    ]


def test_plain_round_trips(loaded: Workspace, tmp_path: Path) -> None:
    text, count = export(loaded, CONFIG, "plain", now=NOW)
    assert count == 4
    assert re.search(
        r"^77\.1\.2\.3/32 ; expires \S+Z score \d+ class compromised-soho$", text, re.M
    )
    path = tmp_path / "exported.txt"
    path.write_text(text)
    with Workspace.open(tmp_path / "other.duckdb") as other:
        assert add_list(other, str(path), "exported").indicators == 4


def test_edl_has_a_comment_header_then_entries(loaded: Workspace) -> None:
    text, _ = export(loaded, CONFIG, "edl", now=NOW)
    lines = text.splitlines()
    assert all(ln.startswith("#") for ln in lines[:2]) and "re-export before" in lines[1]
    assert lines[2:] == ["45.9.148.0/24", "77.1.2.3/32", "91.92.93.94/32", "2a06:e480::/29"]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_nftables_validates(loaded: Workspace, tmp_path: Path) -> None:
    text, _ = export(loaded, CONFIG, "nftables", now=NOW)
    assert "set blocklist_v4" in text and "set blocklist_v6" in text
    assert re.search(r"2a06:e480::/29 timeout \d+s", text)
    if shutil.which("nft") is None:
        pytest.skip("nft not installed (Debian package nftables)")
    path = tmp_path / "blocklist.nft"
    path.write_text(text)
    checked = _run(["nft", "-c", "-f", str(path)])
    if checked.returncode != 0 and "Operation not permitted" in checked.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN here")
    assert checked.returncode == 0, checked.stderr


@pytest.fixture
def netns() -> Iterator[str]:
    if shutil.which("ipset") is None or shutil.which("ip") is None:
        pytest.skip("ipset or ip not installed (Debian packages ipset, iproute2)")
    name = f"orbwatch-test-{uuid.uuid4().hex[:8]}"
    made = _run(["ip", "netns", "add", name])
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        yield name
    finally:
        _run(["ip", "netns", "delete", name])


def test_ipset_restores_in_a_namespace(loaded: Workspace, tmp_path: Path, netns: str) -> None:
    text, count = export(loaded, CONFIG, "ipset", now=NOW)
    timeouts = [int(t) for t in re.findall(r"^add .* timeout (\d+) -exist$", text, re.M)]
    assert len(timeouts) == count and max(timeouts) <= IPSET_MAX_TIMEOUT
    path = tmp_path / "blocklist.ipset"
    path.write_text(text)
    restored = _run(["ip", "netns", "exec", netns, "ipset", "restore", "-file", str(path)])
    if restored.returncode != 0 and "not permitted" in restored.stderr.lower():
        pytest.skip(f"ipset restore not permitted here: {restored.stderr.strip()}")
    assert restored.returncode == 0, restored.stderr
    v4 = _run(["ip", "netns", "exec", netns, "ipset", "list", "orbwatch_v4"]).stdout
    v6 = _run(["ip", "netns", "exec", netns, "ipset", "list", "orbwatch_v6"]).stdout
    assert "Number of entries: 3" in v4 and "family inet " in v4
    assert "Number of entries: 1" in v6 and "family inet6" in v6


# Suricata rule grammar (docs: "Rules format"): action protocol source port direction
# destination port (options); options are `name:value;` or `name;`.
RULE = re.compile(r"^alert ip (?P<src>[0-9a-f.:/]+) any <> \$HOME_NET any \((?P<options>.*)\)$")
OPTION = re.compile(r'\s*([a-z_]+)(?::((?:"[^"]*")|[^;]*))?;')


def test_suricata_rules_follow_the_grammar(loaded: Workspace) -> None:
    text, count = export(loaded, CONFIG, "suricata", now=NOW)
    rules = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert len(rules) == count == 4
    sids = set()
    for rule in rules:
        parsed = RULE.match(rule)
        assert parsed, rule
        options = dict(OPTION.findall(parsed["options"]))
        assert "".join(m.group(0) for m in OPTION.finditer(parsed["options"])).strip() == (
            parsed["options"].strip()
        )
        assert set(options) == {"msg", "classtype", "sid", "rev", "metadata"}
        assert options["classtype"] in {"trojan-activity", "policy-violation", "bad-unknown"}
        sids.add(int(options["sid"]))
        metadata = dict(item.strip().split(" ", 1) for item in options["metadata"].split(","))
        assert re.fullmatch(r"\d{4}_\d{2}_\d{2}", metadata["expires"])
    assert len(sids) == 4


def test_bad_format_and_score(loaded: Workspace) -> None:
    from orbwatch.errors import InputError

    with pytest.raises(InputError, match="unknown blocklist format"):
        export(loaded, CONFIG, "iptables")
    with pytest.raises(InputError, match="--min-score"):
        export(loaded, CONFIG, "plain", min_score=120)
