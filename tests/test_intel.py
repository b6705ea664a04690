"""Threat-intelligence lists: parsing the common free feeds, indexing, refreshing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from orbwatch import netaddr
from orbwatch.enrich.intel import add_list, intel_id
from orbwatch.errors import InputError
from orbwatch.store.workspace import Workspace


def _intel(ws: Workspace, name: str, indicator: str) -> dict[str, Any]:
    (row,) = ws.query(
        "SELECT * FROM intel WHERE list_name = ? AND indicator = ?", [name, indicator]
    ).to_pylist()
    return row


def _buckets(ws: Workspace, iid: str) -> list[str]:
    table = ws.query("SELECT bucket FROM intel_buckets WHERE intel_id = ? ORDER BY 1", [iid])
    return table["bucket"].to_pylist()


def _data_lines(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith(("#", ";"))]


def test_firehol_level1(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "threat_intel" / "firehol" / "firehol_level1.netset"
    result = add_list(workspace, str(path), "firehol_level1")
    expected = len(_data_lines(path))
    assert expected == 4631
    assert (result.status, result.indicators, result.added, result.removed) == (
        "loaded",
        expected,
        expected,
        0,
    )
    assert result.quarantined == 0
    assert workspace.count("intel") == expected

    private = _intel(workspace, "firehol_level1", "10.0.0.0/8")
    assert (private["family"], private["prefix_len"]) == (4, 8)
    assert private["start_key"] == "00000000000000000000ffff0a000000"
    assert private["end_key"] == "00000000000000000000ffff0affffff"
    assert private["source_offset"] == 57
    assert private["intel_id"] == intel_id("firehol_level1", "10.0.0.0/8")
    assert private["score"] is None and private["comment"] is None
    buckets = _buckets(workspace, private["intel_id"])
    assert len(buckets) == 256  # a /8 covers 256 /16 buckets
    assert buckets[0] == "00000000000000000000ffff0a00"
    assert buckets[-1] == "00000000000000000000ffff0aff"

    first = _intel(workspace, "firehol_level1", "1.10.16.0/20")
    assert first["source_offset"] == 35
    assert _buckets(workspace, first["intel_id"]) == ["00000000000000000000ffff010a"]

    # Every indicator is indexed, and its buckets agree with netaddr's.
    assert workspace.scalar("SELECT count(DISTINCT intel_id) FROM intel_buckets") == expected
    net = netaddr.network("1.32.128.0/18")
    assert _buckets(workspace, _intel(workspace, "firehol_level1", net.text)["intel_id"]) == (
        net.buckets()
    )
    runs = workspace.table("ingest_runs").to_pylist()
    assert [(r["format"], r["target_table"], r["rows_parsed"]) for r in runs] == [
        ("intel_plain_list", "intel", expected)
    ]


def test_ipsum_addresses(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "threat_intel" / "ipsum" / "levels_3.txt"
    result = add_list(workspace, str(path), "ipsum3")
    expected = len(_data_lines(path))
    assert result.indicators == expected == 14217
    row = _intel(workspace, "ipsum3", "77.90.185.20/32")
    assert (row["family"], row["prefix_len"], row["source_offset"]) == (4, 32, 1)
    assert row["start_key"] == row["end_key"] == netaddr.key("77.90.185.20")
    assert _buckets(workspace, row["intel_id"]) == ["00000000000000000000ffff4d5a"]
    assert workspace.scalar("SELECT count(*) FROM intel_buckets") == expected


def test_ipsum_scores(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "ipsum.txt"
    path.write_text("# IPsum Threat Intelligence Feed\n1.2.3.4\t7\n5.6.7.8\t3\n")
    add_list(workspace, str(path), "ipsum")
    assert _intel(workspace, "ipsum", "1.2.3.4/32")["score"] == 7.0
    assert _intel(workspace, "ipsum", "5.6.7.8/32")["score"] == 3.0


def test_spamhaus_drop(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "threat_intel" / "intelmq-feed-samples" / "spamhaus__drop.txt"
    result = add_list(workspace, str(path), "drop")
    assert (result.indicators, result.quarantined) == (2, 0)
    v6 = _intel(workspace, "drop", "2a06:e480::/29")
    assert (v6["family"], v6["prefix_len"], v6["comment"], v6["source_offset"]) == (
        6,
        29,
        "SBL301771",
        6,
    )
    assert v6["start_key"] == "2a06e480000000000000000000000000"
    assert v6["end_key"] == "2a06e487ffffffffffffffffffffffff"
    assert _buckets(workspace, v6["intel_id"]) == [f"2a06e48{d}" for d in range(8)]
    v4 = _intel(workspace, "drop", "1.4.0.0/17")
    assert (v4["family"], v4["prefix_len"], v4["comment"]) == (4, 17, "SBL256893")


def test_dshield_block_list(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "threat_intel" / "intelmq-feed-samples" / "dshield__block.txt"
    result = add_list(workspace, str(path), "dshield")
    # Two networks; the "Start End Netblock ..." column header is not an indicator.
    assert (result.indicators, result.quarantined) == (2, 0)
    rows = workspace.query(
        "SELECT indicator, family, prefix_len, start_key, end_key, source_offset FROM intel "
        "ORDER BY source_offset"
    ).to_pylist()
    assert rows == [
        {
            "indicator": "43.229.53.0/24",
            "family": 4,
            "prefix_len": 24,
            "start_key": netaddr.key("43.229.53.0"),
            "end_key": netaddr.key("43.229.53.255"),
            "source_offset": 32,
        },
        {
            "indicator": "194.63.140.0/24",
            "family": 4,
            "prefix_len": 24,
            "start_key": netaddr.key("194.63.140.0"),
            "end_key": netaddr.key("194.63.140.255"),
            "source_offset": 33,
        },
    ]


def test_garbage_lines_are_quarantined(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "mixed.txt"
    path.write_text(
        "# a list with problems\n"  # 1
        "198.51.100.7\n"  # 2
        "this is not an address\n"  # 3
        "\n"  # 4
        "203.0.113.0/24 ; documentation net\n"  # 5
        "300.1.2.3\n"  # 6
        "2001:db8::/33 # v6\n"  # 7
        "192.0.2.1 lots\n"  # 8: a score that is not a number
        "192.0.2.9\n"  # 9
    )
    result = add_list(workspace, str(path), "mixed")
    assert (result.indicators, result.quarantined) == (4, 3)
    assert result.reasons == {"not an IP address, CIDR or 'address score' line": 3}
    bad = workspace.query(
        "SELECT source_offset, raw, source_format, source_file FROM quarantine ORDER BY 1"
    ).to_pylist()
    assert [(b["source_offset"], b["raw"]) for b in bad] == [
        (3, "this is not an address"),
        (6, "300.1.2.3"),
        (8, "192.0.2.1 lots"),
    ]
    assert {(b["source_format"], b["source_file"]) for b in bad} == {
        ("intel_plain_list", str(path))
    }
    loaded = workspace.query("SELECT indicator, comment, source_offset FROM intel ORDER BY 3")
    assert loaded.to_pylist() == [
        {"indicator": "198.51.100.7/32", "comment": None, "source_offset": 2},
        {"indicator": "203.0.113.0/24", "comment": "documentation net", "source_offset": 5},
        {"indicator": "2001:db8::/33", "comment": "v6", "source_offset": 7},
        {"indicator": "192.0.2.9/32", "comment": None, "source_offset": 9},
    ]


def test_same_file_again_is_skipped_and_force_reloads(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("1.1.1.1\nnonsense\n2.2.2.0/24\n")
    assert add_list(workspace, str(path), "mine").status == "loaded"
    again = add_list(workspace, str(path), "mine")
    assert again.status == "skipped"
    assert "already loaded" in again.message
    assert workspace.count("intel") == 2
    # The same file under another name is another list.
    assert add_list(workspace, str(path), "theirs").status == "loaded"
    assert workspace.count("intel") == 4

    forced = add_list(workspace, str(path), "mine", force=True)
    assert (forced.status, forced.indicators, forced.added, forced.removed) == ("loaded", 2, 0, 0)
    assert workspace.count("intel") == 4
    assert workspace.count("intel_buckets") == 4
    # One quarantined line per list, not one per load.
    assert workspace.count("quarantine") == 2


def test_refresh_keeps_first_seen_and_drops_vanished(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "feed.txt"
    path.write_text("1.1.1.1\n2.2.2.0/24\n3.3.3.3\n")
    add_list(workspace, str(path), "feed")
    before = {
        r["indicator"]: r
        for r in workspace.query("SELECT * FROM intel WHERE list_name = 'feed'").to_pylist()
    }
    time.sleep(0.01)
    path.write_text("# refreshed\n2.2.2.0/24\n3.3.3.3 ; now with a comment\n4.4.4.4\n")
    result = add_list(workspace, str(path), "feed")
    assert (result.status, result.indicators, result.added, result.removed) == (
        "loaded",
        3,
        1,
        1,
    )
    after = {
        r["indicator"]: r
        for r in workspace.query("SELECT * FROM intel WHERE list_name = 'feed'").to_pylist()
    }
    assert set(after) == {"2.2.2.0/24", "3.3.3.3/32", "4.4.4.4/32"}
    for kept in ("2.2.2.0/24", "3.3.3.3/32"):
        assert after[kept]["first_seen"] == before[kept]["first_seen"]
        assert after[kept]["last_seen"] > before[kept]["last_seen"]
        assert after[kept]["intel_id"] == before[kept]["intel_id"]
    assert after["3.3.3.3/32"]["comment"] == "now with a comment"
    assert after["3.3.3.3/32"]["source_offset"] == 3
    assert after["4.4.4.4/32"]["first_seen"] > before["1.1.1.1/32"]["first_seen"]
    # The vanished indicator leaves no bucket behind.
    gone = intel_id("feed", "1.1.1.1/32")
    assert workspace.scalar("SELECT count(*) FROM intel_buckets WHERE intel_id = ?", [gone]) == 0
    assert workspace.count("intel_buckets") == 3


def test_bad_name_and_empty_list_are_refused(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("# nothing here\n\n")
    with pytest.raises(InputError, match="list name"):
        add_list(workspace, str(path), "bad name!")
    with pytest.raises(InputError, match="no indicators found"):
        add_list(workspace, str(path), "empty")
    with pytest.raises(InputError, match="no such file"):
        add_list(workspace, str(tmp_path / "missing.txt"), "missing")
    assert workspace.count("intel") == 0


def test_cli_intel_commands_and_blocklist(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from orbwatch.cli.main import app

    runner = CliRunner()
    ws = tmp_path / "ws.duckdb"

    def orbwatch(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["--workspace", str(ws), *args], env={"COLUMNS": "200"})
        return result.exit_code, result.output

    feed = tmp_path / "feed.csv"
    feed.write_text("ip,last_seen\n45.9.148.10,2026-11-20\n91.92.93.94,2020-01-01\nbad,\n")
    code, out = orbwatch("intel", "add", str(feed), "--name", "relays", "--class", "vps-relay")
    assert code == 1  # one quarantined record
    assert "relays: loaded (csv), 2 indicators" in out and "1 quarantined" in out
    code, out = orbwatch("intel", "stats", "--json")
    (by_list,) = json.loads(out)["by_list"]
    assert (by_list["live"], by_list["expired"]) == (1, 1)
    code, out = orbwatch("blocklist", "export", "--format", "plain")
    assert code == 0 and "45.9.148.10/32 ; expires " in out and "91.92.93.94" not in out
    code, out = orbwatch("intel", "expire", "--json")
    assert [r["indicator"] for r in json.loads(out)] == ["91.92.93.94/32"]
    code, out = orbwatch("intel", "list", "--json")
    assert json.loads(out)[0]["indicators"] == 1
    code, out = orbwatch("intel", "add", "--name", "x")
    assert code == 2 and "give one feed" in out
