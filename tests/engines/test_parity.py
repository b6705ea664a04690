"""One detector definition, two engines: DuckDB and Spark must raise identical alerts.

Spark runs in local mode; the test is skipped (with the reason) only where no Java runtime
exists. Inputs: the scenario workspace plus every Zeek conn.log of the corpus with real
threat lists, so the comparison covers IPv4, IPv6, CIDR and bogon handling.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from tests.detect.flowkit import build_edge
from tests.scenario import build

from orbwatch.config import Config
from orbwatch.detect.base import DetectContext
from orbwatch.detect.registry import detectors
from orbwatch.detect.run import alerts_of
from orbwatch.engines.duckdb_engine import DuckDBEngine
from orbwatch.enrich.intel import add_list
from orbwatch.sources.ingest import Ingestor, expand_paths
from orbwatch.store.workspace import Workspace

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
pytestmark = pytest.mark.spark
#: Alerts each detector must raise on the parity workspace, so that the comparison is not
#: vacuous (the scenario's logins give every login detector at least one).
MIN_ALERTS = {"known_bad_infrastructure": 7}


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    if shutil.which("java") is None:
        pytest.skip("no Java runtime on this machine: Spark cannot start")
    pyspark = pytest.importorskip("pyspark", reason="PySpark is not installed")
    del pyspark
    from orbwatch.engines.spark_engine import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


def _workspace(tmp: Path) -> Workspace:
    config = Config(internal_networks=["10.0.0.0/8", "192.168.0.0/16"])
    ws = Workspace.open(tmp / "ws.duckdb")
    build(tmp, ws, config)
    build_edge(ws, config)  # edge traffic for the flow detectors, after all other data
    if CORPUS.exists():
        ingestor = Ingestor(ws, config)
        for name in expand_paths([str(CORPUS / "zeek")]):
            if name.endswith("conn.log") and "text_file" not in name:
                ingestor.ingest(name)
        add_list(ws, str(CORPUS / "threat_intel/firehol/firehol_level1.netset"), "firehol_level1")
        analyst = tmp / "analyst.txt"
        # The Android RAT's controller (Stratosphere README), the RITA sample's DNS server, and
        # a neighbour of the port-scan target 45.33.32.156 (so intel_neighbourhood has work).
        analyst.write_text(
            "147.32.83.234\n165.227.88.15\n2001:718:2:1663::/64\n45.33.32.1\n", encoding="utf-8"
        )
        add_list(ws, str(analyst), "analyst")
    return ws


def _comparable(table: pa.Table) -> list[dict]:
    rows = table.drop_columns(["created_at", "updated_at"]).to_pylist()
    return sorted(rows, key=lambda r: r["alert_id"])


@pytest.mark.parametrize("detector_id", sorted(detectors()))
def test_duckdb_and_spark_raise_identical_alerts(
    tmp_path: Path, spark: object, detector_id: str
) -> None:
    from orbwatch.engines.spark_engine import SparkEngine

    config = Config(internal_networks=["10.0.0.0/8", "192.168.0.0/16"])
    detector = detectors()[detector_id]()
    with _workspace(tmp_path) as ws:
        ws.export_parquet(tmp_path / "parquet")
        on_duckdb = alerts_of(detector, DetectContext(config, DuckDBEngine(ws)))
    on_spark = alerts_of(detector, DetectContext(config, SparkEngine(tmp_path / "parquet", spark)))
    assert on_duckdb.num_rows >= MIN_ALERTS.get(detector_id, 1)
    assert _comparable(on_duckdb) == _comparable(on_spark)
