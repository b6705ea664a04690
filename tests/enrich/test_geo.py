"""Bundled geo/ASN database, key decoding, MaxMind upgrade and the workspace cache."""

from __future__ import annotations

import bisect
import datetime as dt
import json
import random
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orbwatch import netaddr
from orbwatch.cli.main import app
from orbwatch.config import Config, EnrichSettings
from orbwatch.enrich import geo
from orbwatch.errors import ConfigError
from orbwatch.store.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]


def lookup(*texts: str) -> list[dict[str, object]]:
    return geo.bundled().lookup(netaddr.keys(pa.array(texts))).table.to_pylist()


@pytest.mark.parametrize(
    ("ip", "country", "asn", "org_word"),
    [
        ("8.8.8.8", "US", 15169, "Google"),  # public resolver
        ("1.1.1.1", None, 13335, "Cloudflare"),  # resolver; registered in AU, so no country check
        ("52.95.110.1", None, 16509, "Amazon"),  # AWS range
        ("24.0.0.1", "US", 7922, "Comcast"),  # residential cable ISP
        ("2001:4860:4860::8888", "US", 15169, "Google"),  # IPv6 resolver
        ("2606:4700:4700::1111", "US", 13335, "Cloudflare"),
    ],
)
def test_well_known_addresses(ip: str, country: str | None, asn: int, org_word: str) -> None:
    [row] = lookup(ip)
    assert row["asn"] == asn
    assert org_word in str(row["as_org"])
    if country:
        assert row["country"] == country
        assert row["latitude"] is not None and row["longitude"] is not None


@pytest.mark.parametrize(
    "ip", ["10.1.2.3", "192.168.1.1", "127.0.0.1", "::1", "fe80::1", "0.0.0.0"]
)
def test_private_and_special_addresses_have_no_answer(ip: str) -> None:
    [row] = lookup(ip)
    assert row["country"] is None and row["asn"] is None and row["as_org"] is None


def test_not_a_key_gives_nulls_not_an_error() -> None:
    keys = pa.array(
        [
            None,
            "bogus",
            "G" * 32,
            "0" * 31,
            "00000000000000000000FFFF08080808",
            netaddr.key("8.8.8.8"),
        ]
    )
    rows = geo.bundled().lookup(keys).table.to_pylist()
    assert [r["asn"] for r in rows] == [None, None, None, None, None, 15169]


def test_decode_keys_matches_python_for_random_addresses() -> None:
    rng = random.Random(5)
    values = [rng.getrandbits(32) | netaddr.V4_MAPPED for _ in range(3000)]
    values += [rng.getrandbits(128) for _ in range(3000)]
    decoded = geo.decode_keys(pa.array([netaddr.key_of_int(v) for v in values]))
    assert decoded.valid.all()
    assert [
        (int(h) << 64) | int(lo) for h, lo in zip(decoded.hi, decoded.lo, strict=True)
    ] == values
    assert decoded.is_v4.tolist() == [v >> 32 == 0xFFFF for v in values]


KEY_ALPHABET = "0123456789abcdefABCDEFgx:. "


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, 2**128 - 1).map(netaddr.key_of_int),
            st.integers(0, 2**32 - 1).map(lambda v: netaddr.key_of_int(v | netaddr.V4_MAPPED)),
            st.text(KEY_ALPHABET, min_size=30, max_size=34),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_vectorised_hex_decode_equals_int_base_16(keys: list[str]) -> None:
    """The SWAR decode agrees with ``int(k, 16)`` on keys and rejects everything else."""
    decoded = geo.decode_keys(pa.array(keys, pa.string()))
    for key, hi, lo, valid, is_v4 in zip(
        keys, decoded.hi, decoded.lo, decoded.valid, decoded.is_v4, strict=True
    ):
        is_key = len(key) == 32 and all(c in "0123456789abcdef" for c in key)
        assert bool(valid) == is_key, key
        if is_key:
            value = int(key, 16)
            assert (int(hi) << 64) | int(lo) == value
            assert bool(is_v4) == (value >> 32 == 0xFFFF)


def _random_keys(count: int, seed: int) -> list[str | None]:
    rng = random.Random(seed)
    keys: list[str | None] = []
    for i in range(count):
        if i % 7 == 0:
            keys.append(netaddr.key_of_int((0x2000 + rng.getrandbits(12)) << 112))
        elif i % 11 == 0:
            keys.append(None if i % 2 else "not a key")
        else:
            keys.append(netaddr.key_of_int(netaddr.V4_MAPPED | rng.getrandbits(32)))
    return keys


def test_chunked_threaded_and_dictionary_inputs_give_the_same_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Uneven Arrow chunks across tiny lookup chunks, one or four threads, dictionary keys."""
    keys = _random_keys(1000, 17)
    whole = geo.bundled().lookup(pa.array(keys, pa.string())).table
    monkeypatch.setattr(geo, "CHUNK", 64)
    for cpus in (1, 4):
        monkeypatch.setattr(geo, "usable_cpus", lambda cpus=cpus: cpus)
        pieces = [keys[:37], keys[37:37], keys[37:500], keys[500:]]
        chunked = pa.chunked_array([pa.array(p, pa.string()) for p in pieces])
        assert geo.bundled().lookup(chunked).table.to_pylist() == whole.to_pylist()
    encoded = pa.array(keys, pa.string()).dictionary_encode()
    assert geo.bundled().lookup(encoded).table.to_pylist() == whole.to_pylist()


def test_answer_columns_cast_to_the_ip_info_types() -> None:
    table = geo.bundled().lookup(pa.array(_random_keys(200, 3), pa.string())).table
    rows = table.to_pylist()
    for name, kind in (("latitude", pa.float64()), ("longitude", pa.float64())):
        assert table[name].cast(kind).to_pylist() == [r[name] for r in rows]
    assert table["country"].cast(pa.string()).to_pylist() == [r["country"] for r in rows]
    assert any(r["latitude"] is not None for r in rows)
    assert all(r["latitude"] is None for r in rows if r["country"] is None)


def test_searchsorted128_matches_bisect() -> None:
    rng = random.Random(9)
    starts = sorted({rng.getrandbits(70) for _ in range(2000)} | {5 << 64, (5 << 64) + 7})
    queries = [rng.getrandbits(70) for _ in range(3000)] + [5 << 64, (5 << 64) + 6, 0]
    split = lambda xs: (  # noqa: E731
        np.array([x >> 64 for x in xs], np.uint64),
        np.array([x & (2**64 - 1) for x in xs], np.uint64),
    )
    got = geo.searchsorted128(*split(starts), *split(queries))
    assert got.tolist() == [bisect.bisect_right(starts, q) - 1 for q in queries]


def test_bundled_lookup_matches_a_plain_range_search() -> None:
    """The /24 index and the IPv6 search agree with bisect over the shipped segment starts."""
    table = pa.ipc.open_file(str(geo.DATA_DIR / geo.IPDB_FILE)).read_all()
    starts = [
        (h << 64) | lo
        for h, lo in zip(table["start_hi"].to_pylist(), table["start_lo"].to_pylist(), strict=True)
    ]
    asns = table["asn"].to_pylist()
    rng = random.Random(3)
    values = [netaddr.V4_MAPPED | rng.getrandbits(32) for _ in range(2500)]
    values += [(0x2000 + rng.getrandbits(12)) << 112 | rng.getrandbits(112) for _ in range(2500)]
    keys = pa.array([netaddr.key_of_int(v) for v in values] * 120)  # > the /24-index threshold
    got = geo.bundled().lookup(keys).table["asn"].to_pylist()[: len(values)]
    assert got == [asns[bisect.bisect_right(starts, v) - 1] for v in values]


def test_shipped_metadata_names_sources_licences_and_dates() -> None:
    sources = json.loads((geo.DATA_DIR / geo.SOURCES_FILE).read_text())
    by_name = {p["name"]: p for p in sources["packages"]}
    assert by_name["@ip-location-db/asn"]["licence"] == "CC-BY-4.0"
    assert "DB-IP" in by_name["@ip-location-db/asn"]["attribution"]
    assert by_name["@ip-location-db/geo-whois-asn-country"]["licence"] == "CC0-1.0"
    assert all(p["version"] and p["integrity"].startswith("sha512-") for p in sources["packages"])
    dt.date.fromisoformat(sources["build_date"])
    dt.date.fromisoformat(sources["data_date"])
    assert {a["file"] for a in sources["asn_lists"]} <= {f.name for f in geo.DATA_DIR.iterdir()}
    total = sum(f.stat().st_size for f in geo.DATA_DIR.iterdir())
    assert total < 15_000_000
    reader = pa.ipc.open_file(str(geo.DATA_DIR / geo.IPDB_FILE))
    assert reader.schema.names == ["start_hi", "start_lo", "asn", "as_org", "country"]
    assert json.loads(reader.schema.metadata[b"orbwatch.ipdb"])["data_date"] == sources["data_date"]


def test_shipped_file_equals_the_build_script_output(tmp_path: Path) -> None:
    """Rebuild from the cached npm tarballs (never downloaded here) and compare."""
    sys.path.insert(0, str(REPO / "scripts"))
    import build_ipdb

    cache = build_ipdb.default_cache()
    missing = [p.tarball for p in build_ipdb.CONVERTED if not (cache / p.tarball).exists()]
    if missing:
        pytest.skip(f"npm tarballs not cached in {cache} (run `make ipdb`): {missing}")
    shipped = json.loads((geo.DATA_DIR / geo.SOURCES_FILE).read_text())
    build_ipdb.build(cache, tmp_path, shipped["build_date"])
    for name in (geo.IPDB_FILE, geo.CENTROIDS_FILE, geo.SOURCES_FILE):
        assert (tmp_path / name).read_bytes() == (geo.DATA_DIR / name).read_bytes(), name


def _mmdb(path: Path, records: dict[str, dict[str, object]], kind: str) -> Path:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=kind)
    for cidr, record in records.items():
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path


def test_maxmind_databases_answer_when_configured(tmp_path: Path) -> None:
    city = _mmdb(
        tmp_path / "city.mmdb",
        {
            "81.2.69.0/24": {
                "country": {"iso_code": "GB"},
                "subdivisions": [{"names": {"en": "England"}}],
                "city": {"names": {"en": "London"}},
                "location": {"latitude": 51.5142, "longitude": -0.0931},
            }
        },
        "GeoLite2-City",
    )
    asn = _mmdb(
        tmp_path / "asn.mmdb",
        {
            "81.2.69.0/24": {
                "autonomous_system_number": 20712,
                "autonomous_system_organization": "Andrews & Arnold Ltd",
            }
        },
        "GeoLite2-ASN",
    )
    db = geo.open_databases(EnrichSettings(city_mmdb=city, asn_mmdb=asn))
    assert isinstance(db, geo.MaxMindDatabases)
    answers = db.lookup(netaddr.keys(pa.array(["81.2.69.142", "81.2.69.142", "8.8.8.8", "bogus"])))
    db.close()
    rows = answers.table.to_pylist()
    assert rows[0] == rows[1]
    assert (
        rows[0]["city"] == "London" and rows[0]["region"] == "England" and rows[0]["asn"] == 20712
    )
    assert rows[2]["asn"] is None and rows[3]["country"] is None  # not in the small file
    assert answers.geo_db.startswith("GeoLite2-City ") and answers.asn_db.startswith(
        "GeoLite2-ASN "
    )


def test_missing_mmdb_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    config_file = tmp_path / "orbwatch.toml"
    config_file.write_text(f'[enrich]\ncity_mmdb = "{tmp_path / "nope.mmdb"}"\n')
    from orbwatch.config import load

    with pytest.raises(ConfigError, match=r"nope\.mmdb"):
        load(config_file)


def _flows(*pairs: tuple[str, str]) -> pa.Table:
    src = pa.array([p[0] for p in pairs])
    dst = pa.array([p[1] for p in pairs])
    return pa.table(
        {"src_ip": src, "src_key": netaddr.keys(src), "dst_ip": dst, "dst_key": netaddr.keys(dst)}
    )


def test_enrich_workspace_is_incremental(workspace: Workspace, config: Config) -> None:
    workspace.append("flows", _flows(("10.0.0.5", "8.8.8.8"), ("10.0.0.5", "24.0.0.1")))
    first = geo.enrich_workspace(workspace, config)
    assert first.added == 3 and first.total == 3
    rows = {r["ip"]: r for r in workspace.query("SELECT * FROM ip_info").to_pylist()}
    assert rows["8.8.8.8"]["asn"] == 15169 and rows["8.8.8.8"]["net_class"] == "hosting"
    assert rows["24.0.0.1"]["net_class"] == "residential"
    assert rows["10.0.0.5"]["net_class"] == "corporate"
    assert rows["8.8.8.8"]["geo_db"].startswith("orbwatch-ipdb ")
    assert rows["8.8.8.8"]["asn_db"] == rows["8.8.8.8"]["geo_db"]

    again = geo.enrich_workspace(workspace, config)
    assert again.added == 0 and again.total == 3
    workspace.append("flows", _flows(("10.0.0.6", "2001:4860:4860::8888")))
    workspace.append(
        "logins",
        pa.table({"src_ip": ["1.1.1.1"], "src_key": [netaddr.key("1.1.1.1")]}),
    )
    third = geo.enrich_workspace(workspace, config)
    assert third.added == 3 and third.total == 6
    assert third.by_class["hosting"] == 3


def test_cli_lookup_and_about(tmp_path: Path) -> None:
    runner = CliRunner()
    ws = str(tmp_path / "ws.duckdb")
    result = runner.invoke(app, ["-w", ws, "lookup", "8.8.8.8", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["asn"] == 15169 and row["net_class"] == "hosting"
    about = runner.invoke(app, ["lookup", "--about"])
    assert about.exit_code == 0 and "CC-BY-4.0" in about.output and "DB-IP" in about.output
    bad = runner.invoke(app, ["lookup", "not-an-ip"])
    assert bad.exit_code == 2
