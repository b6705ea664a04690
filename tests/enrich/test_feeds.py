"""Feed readers on real feeds: every count is derived independently from the file itself.

How the expected counts are made, per format (never with orbwatch's own parsers):

* text lists: lines that are neither blank nor ``#``/``;`` comments (distinct first tokens);
* CSV: Python's ``csv`` module over the non-``#`` lines, minus the header row;
* STIX: ``json`` over the bundle; an indicator counts once per ``ipv4-addr``/``ipv6-addr``/
  ``domain-name`` ``:value`` comparison in its pattern (a regular expression over the pattern
  text), an address observable counts once;
* MISP: ``json`` over the event; attributes (of the event and its objects) whose type is a
  network type and whose ``to_ids`` is true.
"""

from __future__ import annotations

import csv
import datetime as dt
import ipaddress
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orbwatch.enrich.feeds import READERS, detect
from orbwatch.enrich.feeds.base import class_from_tags
from orbwatch.enrich.feeds.stix import pattern_values
from orbwatch.enrich.feeds.taxii import collection_url
from orbwatch.enrich.intel import FeedSource, add_feed
from orbwatch.errors import InputError
from orbwatch.store.workspace import Workspace

MISP_NETWORK = {"ip-src", "ip-dst", "ip-src|port", "ip-dst|port", "domain", "hostname"}
STIX_VALUE = re.compile(r"(ipv4-addr|ipv6-addr|domain-name):value\s*(=|ISSUBSET)")


def _text_list_count(path: Path) -> int:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return len({ln.split()[0] for ln in lines if ln and not ln.startswith(("#", ";"))})


def _rows(ws: Workspace, name: str) -> list[dict[str, Any]]:
    return ws.query(
        "SELECT * FROM intel WHERE list_name = ? ORDER BY source_offset, indicator", [name]
    ).to_pylist()


@pytest.mark.parametrize(
    "relative",
    [
        "firehol/blocklist_de_ssh.ipset",
        "firehol/dshield.netset",
        "firehol/et_compromised.ipset",
        "firehol/feodo.ipset",
        "firehol/firehol_level1.netset",
        "firehol/socks_proxy.ipset",
        "firehol/spamhaus_drop.netset",
        "firehol/tor_exits.ipset",
        "ipsum/levels_3.txt",
        "intelmq-feed-samples/spamhaus__drop.txt",
    ],
)
def test_text_lists_load_every_line(corpus: Path, workspace: Workspace, relative: str) -> None:
    path = corpus / "threat_intel" / relative
    result = add_feed(workspace, str(path), "feed")
    assert (result.indicators, result.quarantined) == (_text_list_count(path), 0)
    assert workspace.scalar("SELECT count(DISTINCT intel_id) FROM intel_buckets") == (
        result.indicators
    )
    singles = workspace.scalar("SELECT count(*) FROM intel WHERE kind = 'ip'")
    assert singles == workspace.scalar(
        "SELECT count(*) FROM intel WHERE prefix_len = (CASE family WHEN 4 THEN 32 ELSE 128 END)"
    )


def test_ipsum_counts_become_confidence(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "ipsum.txt"
    path.write_text("# IPsum Threat Intelligence Feed\n1.2.3.4\t7\n5.6.7.8\t3\n9.9.9.1\t1\n")
    result = add_feed(workspace, str(path), "ipsum")
    assert result.format == "ipsum"
    rows = {r["indicator"]: r for r in _rows(workspace, "ipsum")}
    # min(100, 50 + 10 * count)
    assert [rows[i]["confidence"] for i in ("1.2.3.4/32", "5.6.7.8/32", "9.9.9.1/32")] == [
        100.0,
        80.0,
        60.0,
    ]
    assert rows["5.6.7.8/32"]["score"] == 3.0


def test_feodo_csv(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "threat_intel" / "abusech" / "feodotracker_ipblocklist_2024-04-04.csv"
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    records = list(csv.DictReader(lines))
    assert len(records) == 28  # the file's own footer says "# END 28 entries"
    result = add_feed(workspace, str(path), "feodo")
    assert (result.format, result.indicators, result.quarantined) == ("csv", 28, 0)
    rows = _rows(workspace, "feodo")
    first = rows[0]
    assert (first["indicator"], first["intel_class"], first["comment"]) == (
        "192.9.135.73/32",
        "c2",
        "Pikabot",
    )
    assert first["source_offset"] == 10  # line 9 is the header
    assert first["first_seen"] == dt.datetime(2023, 5, 23, 17, 51, 44, tzinfo=dt.UTC)
    assert first["last_seen"] == dt.datetime(2024, 4, 1, tzinfo=dt.UTC)
    assert {r["indicator"].split("/")[0] for r in rows} == {r["dst_ip"] for r in records}


def test_csv_without_header_and_with_map(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "threat_intel" / "intelmq-feed-samples" / "bambenek__c2-ipmasterlist.txt"
    data = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    result = add_feed(
        workspace,
        str(path),
        "bambenek",
        FeedSource(intel_class="c2", mapping={"comment": "2", "last_seen": "3"}),
    )
    assert result.indicators == len(data) == 1
    (row,) = _rows(workspace, "bambenek")
    assert (row["indicator"], row["intel_class"]) == ("213.247.47.190/32", "c2")
    assert row["comment"] == "IP used by shiotob/urlzone/bebloh C&C"
    assert row["last_seen"] == dt.datetime(2016, 11, 12, 18, 2, tzinfo=dt.UTC)
    with pytest.raises(InputError, match="unknown field"):
        add_feed(workspace, str(path), "b2", FeedSource(mapping={"nonsense": "1"}))
    with pytest.raises(InputError, match="no such column"):
        add_feed(workspace, str(path), "b3", FeedSource(mapping={"comment": "9"}))


def test_ctip_json_records_with_map(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "threat_intel" / "intelmq-feed-samples" / "microsoft__ctip.txt"
    records = json.loads(path.read_text())
    good = 0
    for record in records:
        try:
            ipaddress.ip_address(record["networkdestinationipv4"])
            good += 1
        except ValueError:
            pass
    result = add_feed(
        workspace,
        str(path),
        "ctip",
        FeedSource(
            mapping={
                "indicator": "networkdestinationipv4",
                "valid_until": "indicatorexpirationdatetime",
                "confidence": "confidence",
            }
        ),
    )
    assert (result.indicators, result.quarantined) == (good, len(records) - good)
    first = _rows(workspace, "ctip")[0]
    assert first["confidence"] == 20.0
    # Fractions of a second are dropped.
    assert first["valid_until"] == dt.datetime(2018, 2, 8, 9, 38, 56, tzinfo=dt.UTC)


def _stix_expected(path: Path) -> int:
    objects = json.loads(path.read_text())["objects"]
    patterns = sum(
        len(STIX_VALUE.findall(o["pattern"])) for o in objects if o["type"] == "indicator"
    )
    observables = sum(o["type"] in ("ipv4-addr", "ipv6-addr", "domain-name") for o in objects)
    return patterns + observables


@pytest.mark.parametrize(
    "name",
    [
        "indicator-for-c2-ip-address.json",
        "indicator-to-campaign-relationship.json",
        "indicators-for-C2-with-COA.json",
        "infrastructure.json",
    ],
)
def test_stix_examples(corpus: Path, workspace: Workspace, name: str) -> None:
    path = corpus / "threat_intel" / "stix2" / name
    result = add_feed(workspace, str(path), "stix")
    assert result.format == "stix"
    assert (result.indicators, result.quarantined) == (_stix_expected(path), 0)


def test_stix_infrastructure_gives_class(corpus: Path, workspace: Workspace) -> None:
    add_feed(workspace, str(corpus / "threat_intel" / "stix2" / "infrastructure.json"), "infra")
    rows = {r["indicator"]: r for r in _rows(workspace, "infra")}
    assert rows["198.51.100.3/32"]["intel_class"] == "c2"  # consists-of C2 infrastructure
    assert rows["example.com"]["kind"] == "domain"
    assert rows["example.com"]["start_key"] is None


STIX_BUNDLE = {
    "type": "bundle",
    "id": "bundle--6e4e8f04-5b5d-4e5a-9c55-6b2a0e1d2c11",
    "objects": [
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "created": "2026-10-01T00:00:00.000Z",
            "modified": "2026-11-20T00:00:00.000Z",
            "pattern": "[ipv4-addr:value = '45.9.148.10' OR ipv6-addr:value = '2a06:e480::1'] "
            "OR [domain-name:value = 'relay.example.net']",
            "pattern_type": "stix",
            "valid_from": "2026-10-01T00:00:00Z",
            "valid_until": "2026-12-31T00:00:00Z",
            "confidence": 70,
            "indicator_types": ["compromised"],
            "labels": ["quad7"],
        },
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--1e4ffad7-0b88-41d4-ba4d-77d27490b956",
            "created": "2026-10-01T00:00:00.000Z",
            "modified": "2026-10-01T00:00:00.000Z",
            "pattern": "[ipv4-addr:value ISSUBSET '203.0.113.0/24']",
            "pattern_type": "stix",
            "valid_from": "2026-10-01T00:00:00Z",
            "indicator_types": ["anonymization"],
        },
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--2f9a9aa9-108a-4333-83e2-4fb25add0463",
            "created": "2026-10-01T00:00:00.000Z",
            "modified": "2026-10-01T00:00:00.000Z",
            "pattern": "[ipv4-addr:value = '1.2.3.4'",  # unbalanced: invalid pattern
            "pattern_type": "stix",
            "valid_from": "2026-10-01T00:00:00Z",
        },
        {
            "type": "observed-data",
            "spec_version": "2.1",
            "id": "observed-data--b67d30ff-02ac-498a-92f9-32f845f448cf",
            "created": "2026-10-01T00:00:00.000Z",
            "modified": "2026-10-01T00:00:00.000Z",
            "first_observed": "2026-10-01T00:00:00Z",
            "last_observed": "2026-10-01T00:00:00Z",
            "number_observed": 1,
            "object_refs": ["ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd"],
        },
        {
            "type": "ipv4-addr",
            "spec_version": "2.1",
            "id": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd",
            "value": "91.92.93.94",
        },
    ],
}


def test_stix_or_patterns_validity_confidence_and_rejects(
    workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(STIX_BUNDLE))
    result = add_feed(workspace, str(path), "stix")
    assert (result.indicators, result.quarantined) == (5, 1)
    rows = {r["indicator"]: r for r in _rows(workspace, "stix")}
    assert set(rows) == {
        "45.9.148.10/32",
        "2a06:e480::1/128",
        "relay.example.net",
        "203.0.113.0/24",
        "91.92.93.94/32",
    }
    quad7 = rows["45.9.148.10/32"]
    assert (quad7["intel_class"], quad7["confidence"], quad7["tags"]) == (
        "quad7",
        70.0,
        "compromised,quad7",
    )
    assert quad7["valid_until"] == dt.datetime(2026, 12, 31, tzinfo=dt.UTC)
    assert quad7["last_seen"] == dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert quad7["external_id"] == "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
    assert rows["203.0.113.0/24"]["intel_class"] == "proxy"
    assert rows["203.0.113.0/24"]["kind"] == "cidr"
    (bad,) = workspace.query("SELECT source_offset, reason FROM quarantine").to_pylist()
    assert bad["source_offset"] == 3 and bad["reason"].startswith("invalid STIX indicator")


def test_pattern_values() -> None:
    assert pattern_values(
        "[ipv4-addr:value = '1.2.3.4' OR ipv4-addr:value = '5.6.7.8' AND "
        "network-traffic:dst_port = 80]"
    ) == [(None, "1.2.3.4"), (None, "5.6.7.8")]
    assert pattern_values("[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']") == []


def _misp_expected(path: Path) -> tuple[int, int]:
    document = json.loads(path.read_text())
    event = document.get("Event", document)
    attributes = list(event.get("Attribute", []))
    for obj in event.get("Object", []):
        attributes += obj.get("Attribute", [])
    network = [
        a
        for a in attributes
        if a["type"] in MISP_NETWORK and str(a.get("to_ids")).lower() in ("true", "1")
    ]
    return len(network), len(attributes) - len(network)


@pytest.mark.parametrize("name", ["57c4445b-c548-4654-af0b-4be3950d210f.json", "misp_event.json"])
def test_misp_corpus_events(corpus: Path, workspace: Workspace, name: str) -> None:
    path = corpus / "threat_intel" / "misp" / name
    indicators, others = _misp_expected(path)
    result = add_feed(workspace, str(path), "misp")
    assert result.format == "misp"
    # Neither sample event carries a network attribute meant for detection: all are skipped.
    assert (result.indicators, sum(result.skipped.values())) == (indicators, others)
    assert result.status == "loaded"


MISP_EVENT = {
    "Event": {
        "info": "Covert relay nodes",
        "uuid": "5758ebf5-c898-48e6-9fe9-5665c0a83866",
        "Tag": [{"name": 'misp-galaxy:botnet="Quad7"'}, {"name": "tlp:amber"}],
        "Attribute": [
            {
                "type": "ip-src",
                "value": "45.9.148.10",
                "to_ids": True,
                "timestamp": "1763596800",
                "uuid": "a1",
            },
            {
                "type": "ip-dst|port",
                "value": "91.92.93.94|7777",
                "to_ids": True,
                "timestamp": "1763596800",
                "uuid": "a2",
                "Tag": [{"name": "kill-chain:command-and-control"}],
            },
            {
                "type": "domain",
                "value": "Relay.Example.NET.",
                "to_ids": True,
                "timestamp": "1763596800",
                "uuid": "a3",
            },
            {"type": "ip-dst", "value": "8.8.8.8", "to_ids": False, "timestamp": "1763596800"},
            {"type": "ip-dst", "value": "not-an-ip", "to_ids": True, "timestamp": "1763596800"},
            {"type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e", "to_ids": True},
        ],
        "Object": [
            {
                "name": "ip-port",
                "Attribute": [
                    {
                        "type": "ip-dst",
                        "value": "2a06:e480::7",
                        "to_ids": "1",
                        "timestamp": "1763596800",
                        "uuid": "o1",
                    },
                    {
                        "type": "domain|ip",
                        "value": "c2.example.org|198.18.0.9",
                        "to_ids": True,
                        "timestamp": "1763596800",
                        "uuid": "o2",
                    },
                ],
            }
        ],
    }
}


@pytest.mark.parametrize("form", ["feed", "api", "search"])
def test_misp_attributes_objects_tags(workspace: Workspace, tmp_path: Path, form: str) -> None:
    document: Any = {
        "feed": MISP_EVENT,
        "api": MISP_EVENT["Event"],
        "search": {"response": [MISP_EVENT]},
    }[form]
    path = tmp_path / "event.json"
    path.write_text(json.dumps(document))
    result = add_feed(workspace, str(path), "misp")
    assert (result.indicators, result.quarantined) == (6, 1)
    assert result.skipped == {
        "attribute type md5 is not a network indicator": 1,
        "ip-dst attribute with to_ids false (context, not for detection)": 1,
    }
    rows = {r["indicator"]: r for r in _rows(workspace, "misp")}
    assert set(rows) == {
        "45.9.148.10/32",
        "91.92.93.94/32",
        "relay.example.net",
        "2a06:e480::7/128",
        "c2.example.org",
        "198.18.0.9/32",
    }
    assert rows["45.9.148.10/32"]["intel_class"] == "quad7"
    assert rows["45.9.148.10/32"]["last_seen"] == dt.datetime(2025, 11, 20, tzinfo=dt.UTC)
    assert rows["91.92.93.94/32"]["tags"] == (
        'misp-galaxy:botnet="Quad7",tlp:amber,kill-chain:command-and-control'
    )
    assert rows["relay.example.net"]["comment"] == "Covert relay nodes"
    assert rows["c2.example.org"]["external_id"] == "o2"


def test_detection_order() -> None:
    assert detect(b'{"type": "bundle", "objects": []}').name == "stix"
    assert detect(b'{"Event": {"Attribute": []}}').name == "misp"
    assert detect(b"# IPsum\n1.2.3.4\t3\n").name == "ipsum"
    assert detect(b'"first_seen_utc","dst_ip"\n').name == "csv"
    assert detect(b"1.2.3.4\n").name == "plain"
    assert set(READERS) == {"stix", "misp", "csv", "ipsum", "plain"}


def test_class_words() -> None:
    assert class_from_tags(['misp-galaxy:botnet="Quad7"']) == "quad7"
    assert class_from_tags(["director"]) is None  # whole words only
    assert class_from_tags(["Tor exit"]) == "tor"


def test_refresh_moves_last_seen_keeps_first_seen_for_dated_feeds(
    workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "feed.csv"
    path.write_text("ip,first_seen,last_seen\n1.2.3.4,2026-01-01,2026-02-01\n")
    add_feed(workspace, str(path), "dated")
    path.write_text("ip,first_seen,last_seen\n1.2.3.4,2026-01-15,2026-03-01\n")
    add_feed(workspace, str(path), "dated")
    (row,) = _rows(workspace, "dated")
    assert row["first_seen"] == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert row["last_seen"] == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def test_class_and_confidence_options(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "soho.txt"
    path.write_text("1.2.3.4\n")
    add_feed(
        workspace, str(path), "soho", FeedSource(intel_class="compromised-soho", confidence=65)
    )
    (row,) = _rows(workspace, "soho")
    assert (row["intel_class"], row["confidence"]) == ("compromised-soho", 65.0)
    with pytest.raises(InputError, match="--class"):
        add_feed(workspace, str(path), "x", FeedSource(intel_class="evil"))
    with pytest.raises(InputError, match="--confidence"):
        add_feed(workspace, str(path), "x", FeedSource(confidence=101))


def test_collection_urls() -> None:
    assert collection_url("taxii://example.org/api1/collections/abc") == (
        "https://example.org/api1/collections/abc/"
    )
    assert collection_url("taxii+http://127.0.0.1:5000/api1/", "abc") == (
        "http://127.0.0.1:5000/api1/collections/abc/"
    )
    with pytest.raises(InputError, match="name the collection"):
        collection_url("taxii://example.org/api1/")


# TAXII: medallion (the OASIS TAXII 2.1 reference server, from PyPI) on 127.0.0.1.
COLLECTION_ID = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"


@pytest.fixture(scope="module")
def taxii_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    medallion = pytest.importorskip("medallion", reason="medallion (TAXII server) not installed")
    from werkzeug.serving import make_server

    folder = tmp_path_factory.mktemp("taxii")
    data = {
        "/discovery": {
            "title": "test",
            "default": "http://127.0.0.1/api1/",
            "api_roots": ["http://127.0.0.1/api1/"],
        },
        "api1": {
            "information": {
                "title": "api1",
                "versions": ["application/taxii+json;version=2.1"],
                "max_content_length": 10_000_000,
            },
            "status": [],
            "collections": [
                {
                    "id": COLLECTION_ID,
                    "title": "relays",
                    "can_read": True,
                    "can_write": True,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": [],
                    "manifest": [],
                }
            ],
        },
    }
    (folder / "data.json").write_text(json.dumps(data))
    config = {
        "backend": {
            "module": "medallion.backends.memory_backend",
            "module_class": "MemoryBackend",
            "filename": str(folder / "data.json"),
        },
        "users": {"analyst": "secret"},
        "taxii": {"max_page_size": 2},  # forces the client to follow pages
    }
    (folder / "config.json").write_text(json.dumps(config))
    app = medallion.load_app(str(folder / "config.json"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/api1/"
    from taxii2client.v21 import Collection

    Collection(f"{url}collections/{COLLECTION_ID}/", user="analyst", password="secret").add_objects(
        json.dumps(STIX_BUNDLE)
    )
    try:
        yield url
    finally:
        server.shutdown()


def test_taxii_collection(taxii_server: str, workspace: Workspace) -> None:
    source = taxii_server.replace("http://", "taxii+http://") + f"collections/{COLLECTION_ID}"
    options = FeedSource(user="analyst", password="secret")
    result = add_feed(workspace, source, "taxii", options)
    assert (result.format, result.indicators, result.quarantined) == ("stix", 5, 1)
    assert result.file == f"{taxii_server}collections/{COLLECTION_ID}/"
    again = add_feed(
        workspace,
        taxii_server,
        "taxii2",
        FeedSource(collection=COLLECTION_ID, user="analyst", password="secret"),
    )
    assert again.indicators == 5
    with pytest.raises(InputError, match="TAXII fetch failed"):
        add_feed(workspace, source, "denied", FeedSource(user="analyst", password="wrong"))
