"""nfdump's nfcapd files: refused with a clear way out, and that way out works end to end."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from orbwatch.config import Config
from orbwatch.errors import InputError
from orbwatch.sources.ingest import Ingestor
from orbwatch.store.workspace import Workspace

NFCAPD = "netflow/nfdump/test1-malicious.nfdump"


def test_nfcapd_refused_with_conversion_hint(
    corpus: Path, workspace: Workspace, config: Config
) -> None:
    with pytest.raises(InputError) as info:
        Ingestor(workspace, config).ingest(str(corpus / NFCAPD))
    message = str(info.value)
    assert "nfcapd file (layout 1) cannot be read directly" in message
    assert "nfdump -r" in message and "-o csv" in message and "flow_csv" in message
    assert workspace.count("flows") == 0


@pytest.mark.skipif(shutil.which("nfdump") is None, reason="nfdump is not installed")
def test_nfdump_csv_conversion(
    corpus: Path, workspace: Workspace, config: Config, tmp_path: Path
) -> None:
    csv = tmp_path / "flows.csv"
    with csv.open("wb") as out:
        subprocess.run(["nfdump", "-r", str(corpus / NFCAPD), "-o", "csv"], stdout=out,
                       check=True)  # fmt: skip
    result = Ingestor(workspace, config).ingest(str(csv))
    assert (result.format, result.rows) == ("flow_csv", 4593)  # nfdump's own summary: 4593 flows
    # nfdump ends its CSV with a three-line summary block; it is quarantined, not lost.
    assert result.quarantined == 3
    assert (
        workspace.query("SELECT raw FROM quarantine ORDER BY source_offset")["raw"].to_pylist()[0]
        == "Summary"
    )
    first = workspace.query(
        "SELECT src_ip, dst_ip, src_port, dst_port, protocol, src_bytes, src_packets, exporter "
        "FROM flows ORDER BY source_offset LIMIT 1"
    ).to_pylist()[0]
    assert first == {
        "src_ip": "147.32.80.119", "dst_ip": "147.32.82.62", "src_port": 52324, "dst_port": 902,
        "protocol": "tcp", "src_bytes": 60, "src_packets": 1, "exporter": "147.32.82.62",
    }  # fmt: skip
    assert workspace.scalar("SELECT sum(src_bytes) FROM flows") == 241025
