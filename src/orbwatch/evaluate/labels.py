"""Ground truth readers: the simulator's ``labels.csv``, Stratosphere-labelled Zeek ``conn.log``
and CTU-13 style Argus ``binetflow``, all turned into one *truth* table.

Truth columns: ``entity_type`` (``ip``, ``user``, ``device``), ``value``, ``phase`` (campaign
phase or the dataset's detailed label), ``technique`` (ATT&CK id, when known), ``first_seen``.
Only malicious entities are listed; every other entity observed in the workspace counts as
benign when false positives are measured.

Each reader is vectorised (DuckDB reads the file; no per-line Python).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from orbwatch.errors import InputError

TRUTH = pa.schema(
    [
        ("entity_type", pa.string()),
        ("value", pa.string()),
        ("phase", pa.string()),
        ("technique", pa.string()),
        ("first_seen", pa.timestamp("us", tz="UTC")),
    ]
)
FORMATS = ("simulator", "stratosphere", "ctu13")


def _query(sql: str, params: list[object]) -> pa.Table:
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql, params).fetch_arrow_table().cast(TRUTH)
    except duckdb.Error as exc:
        raise InputError(f"{params[0]}: cannot read labels: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()


def simulator_labels(path: Path) -> pa.Table:
    """Entity rows of a ``labels.csv`` written by ``orbwatch simulate`` (docs/simulator.md)."""
    return _query(
        "SELECT entity_type, value, string_agg(DISTINCT phase, '+' ORDER BY phase) AS phase,"
        " string_agg(DISTINCT technique, ',' ORDER BY technique) AS technique,"
        " min(CAST(first_seen AS TIMESTAMPTZ)) AS first_seen"
        " FROM read_csv(?, header = true, all_varchar = true)"
        " WHERE level = 'entity' AND value IS NOT NULL GROUP BY entity_type, value",
        [str(path)],
    )


def _zeek_fields(path: Path) -> list[str]:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("#fields"):
                return line.rstrip("\n").split("\t")[1:]
            if not line.startswith("#"):
                break
    raise InputError(f"{path}: no #fields header: not a Zeek TSV log")


def stratosphere_labels(path: Path) -> pa.Table:
    """Originators of flows labelled ``Malicious`` in a Stratosphere/IoT-23 ``conn.log``.

    The labelled logs append ``label`` and ``detailed-label`` to the Zeek fields; in the IoT-23
    release the last three columns are separated by spaces instead of tabs, which is handled.
    """
    fields = _zeek_fields(path)
    if "label" not in fields:
        raise InputError(f"{path}: Zeek log without a `label` column: not a labelled conn.log")
    columns = {f"column{i}": "VARCHAR" for i in range(len(fields))}
    ts, orig = fields.index("ts"), fields.index("id.orig_h")
    return _query(
        "WITH raw AS (SELECT * FROM read_csv(?, delim = '\t', header = false, comment = '#',"
        " columns = ?, null_padding = true, ignore_errors = true)),"
        f" labelled AS (SELECT column{ts} AS ts, column{orig} AS ip,"
        f"  regexp_extract(concat_ws(' ', {', '.join(columns)}),"
        "   '(?i)(malicious|benign)\\s+(\\S+)?\\s*$', ['label', 'detail']) AS l FROM raw)"
        " SELECT 'ip' AS entity_type, ip AS value,"
        "  coalesce(nullif(min(l.detail), '-'), 'malicious') AS phase, NULL AS technique,"
        "  to_timestamp(min(TRY_CAST(ts AS DOUBLE))) AS first_seen"
        " FROM labelled WHERE lower(l.label) = 'malicious' GROUP BY ip",
        [str(path), columns],
    )


def ctu13_labels(path: Path) -> pa.Table:
    """Sources of flows whose ``Label`` says ``From-Botnet`` in a CTU-13 ``binetflow`` file."""
    return _query(
        "SELECT 'ip' AS entity_type, SrcAddr AS value,"
        " min(regexp_extract(Label, 'From-Botnet-?(.*)', 1)) AS phase, NULL AS technique,"
        " min(TRY_CAST(StartTime AS TIMESTAMP)) AS first_seen"
        " FROM read_csv(?, header = true, all_varchar = true)"
        " WHERE Label LIKE '%From-Botnet%' GROUP BY SrcAddr",
        [str(path)],
    )


def read_labels(path: Path, fmt: str | None = None) -> pa.Table:
    """Read ground truth, detecting the format from the file when ``fmt`` is not given."""
    if not path.exists():
        raise InputError(f"{path}: labels file not found")
    if fmt is None:
        head = path.open("rb").read(4096).decode("utf-8", "replace")
        if head.startswith("level,entity_type,value"):
            fmt = "simulator"
        elif head.startswith("#separator") or "#fields" in head:
            fmt = "stratosphere"
        elif "SrcAddr" in head.splitlines()[0] and "Label" in head.splitlines()[0]:
            fmt = "ctu13"
        else:
            raise InputError(f"{path}: unknown labels format; give --format one of {list(FORMATS)}")
    readers = {
        "simulator": simulator_labels,
        "stratosphere": stratosphere_labels,
        "ctu13": ctu13_labels,
    }
    if fmt not in readers:
        raise InputError(f"unknown labels format {fmt!r}; use one of {list(FORMATS)}")
    return readers[fmt](path)
