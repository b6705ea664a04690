"""The evaluation harness: label readers and hand-computed metrics."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from orbwatch.enrich.intel import add_list
from orbwatch.errors import InputError
from orbwatch.evaluate.labels import read_labels
from orbwatch.evaluate.metrics import evaluate
from orbwatch.sources.ingest import Ingestor
from orbwatch.store.workspace import Workspace

T0 = dt.datetime(2026, 5, 4, 8, 0, tzinfo=dt.UTC)

SIM_LABELS = """level,entity_type,value,phase,technique,first_seen,last_seen,file,offset
entity,ip,198.51.100.1,recon,T1595.001,2026-05-04T08:00:00Z,2026-05-04T09:00:00Z,,
entity,ip,198.51.100.1,password-spray,T1110.003,2026-05-04T10:00:00Z,2026-05-04T11:00:00Z,,
entity,ip,198.51.100.2,password-spray,T1110.003,2026-05-04T12:00:00Z,2026-05-04T12:00:00Z,,
entity,user,alice,initial-access,T1078,2026-05-05T08:00:00Z,2026-05-05T08:00:00Z,,
event,,,password-spray,T1110.003,2026-05-04T12:00:00Z,2026-05-04T12:00:00Z,auth.log,12
"""

FLOWS = """ts,src_ip,src_port,dst_ip,dst_port,proto,src_bytes,dst_bytes
2026-05-04T08:00:00Z,198.51.100.1,4000,10.0.0.1,443,tcp,10,10
2026-05-04T08:00:00Z,198.51.100.2,4000,10.0.0.1,443,tcp,10,10
2026-05-04T08:00:00Z,203.0.113.5,4000,10.0.0.1,443,tcp,10,10
2026-05-04T08:00:00Z,203.0.113.6,4000,10.0.0.1,443,tcp,10,10
"""


def _alert(alert_id: str, detector: str, hours: float, **fields: Any) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "detector": detector,
        "severity": "high",
        "first_seen": T0 + dt.timedelta(hours=hours),
        "last_seen": T0 + dt.timedelta(hours=hours),
        "entity": fields.get("entity"),
        "src_ip": fields.get("src_ip"),
        "dst_ip": fields.get("dst_ip"),
        "user": fields.get("user"),
        "evidence": json.dumps(fields.get("evidence", {})),
    }


def test_metrics_match_hand_computed_values(tmp_path: Path, workspace: Workspace) -> None:
    from orbwatch.config import Config

    (tmp_path / "labels.csv").write_text(SIM_LABELS)
    (tmp_path / "flows.csv").write_text(FLOWS)
    (tmp_path / "feed.txt").write_text("198.51.100.2\n203.0.113.6\n")
    Ingestor(workspace, Config(internal_networks=["10.0.0.0/8"])).ingest(
        str(tmp_path / "flows.csv")
    )
    add_list(workspace, str(tmp_path / "feed.txt"), "feed")
    alerts = [
        _alert("a", "spray", 2, entity="sso", evidence={"sources": ["198.51.100.1"]}),
        _alert("b", "spray", 3, entity="sso", src_ip="203.0.113.5"),
        _alert("c", "travel", 26, user="alice", src_ip="198.51.100.1"),
    ]
    workspace.append("alerts", pa.Table.from_pylist(alerts))
    truth = read_labels(tmp_path / "labels.csv")
    assert truth.num_rows == 3  # two addresses and one account; event rows are not entities
    result = evaluate(workspace, truth)

    overall = result.overall
    assert (overall.alerts, overall.true_alerts, overall.labelled, overall.caught) == (3, 2, 3, 2)
    assert overall.precision == pytest.approx(2 / 3)
    assert overall.recall == pytest.approx(2 / 3)
    # Flagged but unlabelled: "sso" and 203.0.113.5. Benign observed: 10.0.0.1, 203.0.113.5,
    # 203.0.113.6 (the labelled 198.51.100.x are not benign).
    assert (overall.false_entities, overall.benign_entities) == (2, 3)
    assert overall.first_detection_s == 2 * 3600
    spray = next(q for q in result.detectors if q.name == "spray")
    assert (spray.alerts, spray.true_alerts, spray.caught) == (2, 1, 1)
    assert result.phases["password-spray"] == (1, 2)
    assert result.phases["initial-access"] == (1, 1)
    blocklist = result.blocklist
    assert blocklist is not None
    # The feed lists 198.51.100.2 (labelled) and 203.0.113.6 (benign); both are in the data.
    assert (blocklist.alerts, blocklist.true_alerts, blocklist.caught) == (2, 1, 1)
    assert blocklist.labelled == 2 and blocklist.recall == pytest.approx(0.5)


def test_stratosphere_labelled_conn_log(tmp_path: Path) -> None:
    fields = "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto label detailed-label"
    lines = [
        "#separator \\x09",
        "#fields\t" + fields.replace(" ", "\t"),
        # IoT-23 separates the last three columns by spaces, not tabs.
        "1525879831.0\tC1\t192.168.100.103\t1\t1.2.3.4\t23\t"
        "tcp   Malicious   PartOfAHorizontalPortScan",
        "1525879832.0\tC2\t192.168.100.103\t2\t1.2.3.5\t23\ttcp\tMalicious\tC&C",
        "1525879833.0\tC3\t192.168.100.1\t3\t8.8.8.8\t53\tudp\tBenign\t-",
    ]
    path = tmp_path / "conn.log.labeled"
    path.write_text("\n".join(lines) + "\n")
    truth = read_labels(path).to_pylist()
    # One malicious originator; its detailed labels (the first in sort order is kept).
    assert [(r["value"], r["phase"]) for r in truth] == [("192.168.100.103", "C&C")]
    assert truth[0]["first_seen"] == dt.datetime.fromtimestamp(1525879831, dt.UTC)


def test_ctu13_binetflow(tmp_path: Path) -> None:
    path = tmp_path / "capture.binetflow"
    path.write_text(
        "StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,TotPkts,TotBytes,Label\n"
        "2011/08/10 09:46:53.047277,3.5,tcp,147.32.84.165,1027,->,60.190.223.75,888,S,3,180,"
        "flow=From-Botnet-V42-TCP-CC6-Plain-HTTP-Encrypted-Data\n"
        "2011/08/10 09:46:54.0,1,udp,147.32.84.2,53,<->,8.8.8.8,53,CON,2,120,"
        "flow=Background-UDP-Established\n"
    )
    truth = read_labels(path).to_pylist()
    assert [r["value"] for r in truth] == ["147.32.84.165"]
    assert truth[0]["phase"].startswith("V42-TCP-CC6")


def test_unknown_labels_format_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("hello\n")
    with pytest.raises(InputError, match="unknown labels format"):
        read_labels(path)
