"""Edge-traffic baselines: what each edge asset and SOHO/IoT subnet normally does on the Internet.

The advisory behind orbwatch asks defenders to map edge devices and baseline their traffic,
because the covert network itself changes every day while the *shape* of normal traffic does
not. This module holds the one relational mechanism every flow detector shares:

* :func:`peer_flows`: each flow that crosses the perimeter, seen from our side (local address,
  external peer, bytes each way) with what is known of the peer (country, AS, network class;
  ``unknown`` where ``ip_info`` has no row yet);
* :func:`edge_flows`: the same, restricted to the edge assets (configured in ``orbwatch.toml``
  or discovered by :mod:`orbwatch.baseline.assets`) and labelled with the asset;
* :func:`hourly`: per asset and hour, bytes and flows in and out and distinct peers,
  countries, ASNs, network classes and ports.

:func:`update_flow_baselines` materialises three workspace tables from these Ibis expressions
(so the same definitions run on any engine): ``edge_hours`` (incremental: only hours touched by
new input are recomputed), ``peer_contacts`` (which internal address dealt with which country,
AS, class and port, first and last seen; merged incrementally) and ``edge_baselines`` (median
and median absolute deviation per hour of the week and per hour of the day, idle hours counted
as zero, over the training period that ends where the detection window starts).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc

from orbwatch import netaddr
from orbwatch.config import Config
from orbwatch.engines.base import Engine, memtable
from orbwatch.engines.base import epoch_seconds as epoch_seconds
from orbwatch.store.schema import EDGE_METRICS
from orbwatch.store.workspace import Workspace

METRICS = tuple(m for m, _ in EDGE_METRICS)
#: The detection window: the most recent data the detectors judge against the history before it.
DETECTION_WINDOW = dt.timedelta(hours=24)
#: Training hours older than this are not used (bounds the calendar and follows slow drift).
MAX_HISTORY = dt.timedelta(days=35)
#: Scale factor that turns a median absolute deviation into a standard-deviation-like unit
#: (consistent for normally distributed data), so deviations read as "sigmas".
MAD_TO_SIGMA = 1.4826
UNKNOWN = "unknown"
_META_KEY = "flow_baselines_at"


def day_index(seconds: ir.IntegerValue) -> ir.IntegerValue:
    """Days since 1970-01-01 (UTC) of a seconds column."""
    return (seconds // 86_400).cast("int64")


def index_time(index: int, unit_s: int) -> dt.datetime:
    """The start of day or hour ``index`` (``unit_s`` 86400 or 3600) as a UTC datetime."""
    return dt.datetime.fromtimestamp(index * unit_s, dt.UTC)


def peer_flows(
    engine: Engine, *, enriched: bool = True, since: ir.TimestampValue | None = None
) -> ir.Table:
    """Flows that cross the perimeter, from our side, with the external peer enriched.

    ``outbound``: the local address initiated. ``bytes_out``/``bytes_in`` are from the local
    address's point of view. Country, AS and class come from ``ip_info`` (left join: a flow is
    never lost because enrichment has not run; its peer is ``unknown``). ``enriched=False``
    leaves that join out for callers that do not need the peer's country, AS or class (engines
    do not drop an unused left join by themselves: it costs a hash probe per flow).

    ``since`` keeps the flows that start at or after it, filtered on ``flows`` itself: the
    same rows as filtering ``ts`` afterwards, but an engine does not push a filter that
    compares with a subquery (such as :func:`data_end`) below the joins, so filtering
    afterwards would join and look up every flow of the history first.
    """
    flows = engine.table("flows")
    kept = flows.direction.isin(["inbound", "outbound"])
    if since is not None:
        kept &= flows.ts_start >= since
    flows = flows.filter(kept)
    out = flows.direction == "outbound"
    src_bytes, dst_bytes = flows.src_bytes.fill_null(0), flows.dst_bytes.fill_null(0)
    view = flows.select(
        ts=flows.ts_start,
        ts_end=flows.ts_end,
        t=epoch_seconds(engine, flows.ts_start),
        outbound=out,
        local_ip=out.ifelse(flows.src_ip, flows.dst_ip),
        local_key=out.ifelse(flows.src_key, flows.dst_key),
        peer_ip=out.ifelse(flows.dst_ip, flows.src_ip),
        peer_key=out.ifelse(flows.dst_key, flows.src_key),
        service_port=flows.dst_port,
        protocol=flows.protocol,
        bytes_out=out.ifelse(src_bytes, dst_bytes),
        bytes_in=out.ifelse(dst_bytes, src_bytes),
        src_bytes=src_bytes,
        dst_bytes=dst_bytes,
        answered=(dst_bytes > 0) | (flows.dst_packets.fill_null(0) > 0),
        denied=flows.action == "deny",
        conn_state=flows.conn_state,
        source_file=flows.source_file,
    )
    return with_peer_info(engine, view) if enriched else view


def with_peer_info(engine: Engine, rows: ir.Table) -> ir.Table:
    """``rows`` (with a ``peer_key``) plus the peer's country, AS and class from ``ip_info``."""
    info = engine.table("ip_info")
    info = info.group_by(info.ip_key).aggregate(
        country=info.country.max(), asn=info.asn.max(), net_class=info.net_class.max()
    )
    joined = rows.left_join(info, rows.peer_key == info.ip_key)
    return joined.select(
        *rows.columns,
        country=joined.country.fill_null(UNKNOWN),
        asn=joined.asn.isnull().ifelse(
            ibis.literal(UNKNOWN), ibis.literal("AS").concat(joined.asn.cast("string"))
        ),
        net_class=joined.net_class.fill_null(UNKNOWN),
    )


def configured_assets(config: Config) -> pa.Table:
    """The config's edge assets as rows (name, role, cidr, start_key, end_key), one per range."""
    rows: dict[str, list[Any]] = {k: [] for k in ("name", "role", "cidr", "start_key", "end_key")}
    for asset in config.edge_assets:
        for cidr in asset.addresses:
            net = netaddr.network(cidr)
            for key, value in zip(
                rows,
                (asset.name, str(asset.role), net.text, net.start_key, net.end_key),
                strict=True,
            ):
                rows[key].append(value)
    return pa.table({k: pa.array(v, pa.string()) for k, v in rows.items()})


def asset_ranges(engine: Engine, config: Config) -> ir.Table:
    """Configured assets plus discovered ones stored in ``assets`` (config wins on a name)."""
    configured = memtable(configured_assets(config))
    assets = engine.table("assets")
    discovered = assets.filter(assets.origin == "discovered")
    discovered = discovered.anti_join(configured, discovered.name == configured.name)
    return configured.union(discovered.select(*configured.columns))


def edge_flows(engine: Engine, config: Config, since: ir.TimestampValue | None = None) -> ir.Table:
    """:func:`peer_flows` of the edge assets, labelled with the asset (``entity``) and its role.

    The range join on the assets comes before the enrichment join, so that only the edge
    assets' flows (a fraction of all) are looked up in ``ip_info``; ``since`` as in
    :func:`peer_flows` (detectors that judge the last hours pass the window's start).
    """
    peers = peer_flows(engine, enriched=False, since=since)
    ranges = asset_ranges(engine, config)
    joined = peers.join(
        ranges, [peers.local_key >= ranges.start_key, peers.local_key <= ranges.end_key]
    )
    labelled = joined.select(*peers.columns, entity=joined.name, role=joined.role)
    enriched = with_peer_info(engine, labelled)
    return enriched.select(*peers.columns, "country", "asn", "net_class", "entity", "role")


def hour_of_week(ts: ir.TimestampValue) -> ir.IntegerValue:
    """0 = Monday 00:00 UTC ... 167 = Sunday 23:00 UTC (identical on every engine)."""
    return (ts.day_of_week.index().cast("int64") * 24 + ts.hour().cast("int64")).name("slot")


def slot_of_hour_index(hour: ir.IntegerValue) -> tuple[ir.IntegerValue, ir.IntegerValue]:
    """(hour of the week, hour of the day) of an hours-since-1970 column (1970-01-01: Thursday)."""
    of_day = hour % 24
    return ((hour // 24 + 3) % 7) * 24 + of_day, of_day


def hourly(edge: ir.Table) -> ir.Table:
    """Per asset and hour (``hour_index``: hours since 1970): the :data:`METRICS`."""
    edge = edge.mutate(hour_index=(edge.t // 3600).cast("int64"))
    zero = ibis.literal(0, "int64")
    return edge.group_by(["entity", "role", "hour_index"]).aggregate(
        first_ts=edge.ts.min(),
        last_ts=edge.ts_end.max(),
        bytes_in=edge.bytes_in.sum().cast("int64"),
        bytes_out=edge.bytes_out.sum().cast("int64"),
        flows_in=(~edge.outbound).ifelse(1, zero).sum().cast("int64"),
        flows_out=edge.outbound.ifelse(1, zero).sum().cast("int64"),
        peers=edge.peer_key.nunique().cast("int64"),
        countries=edge.country.nunique().cast("int64"),
        asns=edge.asn.nunique().cast("int64"),
        net_classes=edge.net_class.nunique().cast("int64"),
        ports=edge.service_port.nunique().cast("int64"),
    )


def contacts(peers: ir.Table) -> ir.Table:
    """(local address, kind, value) with first and last time, from :func:`peer_flows` rows.

    The flows are first reduced to their distinct (address, direction, country, AS, class,
    port) combinations with first and last time, one pass; the four kinds are unpivoted from
    those few rows instead of from four copies of every flow.
    """
    peers = peers.group_by(
        ["local_key", "outbound", "country", "asn", "net_class", "service_port"]
    ).aggregate(ts=peers.ts.min(), ts_last=peers.ts.max())
    parts = []
    for kind, value in (
        ("country", peers.country),
        ("asn", peers.asn),
        ("net_class", peers.net_class),
    ):
        parts.append(
            peers.select("local_key", "ts", "ts_last", kind=ibis.literal(kind), value=value)
        )
    port = peers.service_port.cast("string")
    parts.append(
        peers.select(
            "local_key",
            "ts",
            "ts_last",
            kind=peers.outbound.ifelse(ibis.literal("port_out"), ibis.literal("port_in")),
            value=port.fill_null(UNKNOWN),
        )
    )
    union = parts[0]
    for part in parts[1:]:
        union = union.union(part)
    return union.group_by(["local_key", "kind", "value"]).aggregate(
        first_seen=union.ts.min(), last_seen=union.ts_last.max()
    )


def data_end(engine: Engine) -> ir.TimestampScalar:
    """The latest flow start: detectors judge the window before it (data time, not wall time).

    An uncorrelated scalar subquery over all of ``flows``, to compare with in filters instead
    of cross-joining a one-row aggregate: each such cross join makes ``flows`` a self-join
    of the detector's expression, and Spark's analyser (``DeduplicateRelations``) grows
    exponentially with nested self-joins (minutes on a thousand flows). It is built from an
    aggregate on purpose: a bare ``flows.ts_start.max()`` used in a filter of a table derived
    from ``flows`` is rewritten by Ibis into the maximum of *that* table (the filtered rows).
    """
    flows = engine.table("flows")
    return flows.aggregate(data_end=flows.ts_start.max()).data_end.as_scalar()


def robust_profile(hours: ir.Table, keys: list[str]) -> ir.Table:
    """Per ``keys``: training hours, and median and MAD of every metric (two engine passes)."""
    medians = hours.group_by(keys).aggregate(
        hours=hours.count(),
        history_start=hours.hour.min(),
        **{f"{m}_median": hours[m].cast("float64").median() for m in METRICS},
    )
    joined = hours.join(medians, keys)
    deviations = joined.select(
        *keys,
        **{f"{m}_dev": (joined[m].cast("float64") - joined[f"{m}_median"]).abs() for m in METRICS},
    )
    mads = deviations.group_by(keys).aggregate(
        **{f"{m}_mad": deviations[f"{m}_dev"].median() for m in METRICS}
    )
    return medians.join(mads, keys)


def _calendar(start: dt.datetime, end: dt.datetime) -> pa.Table:
    """Every hour in [start, end): at most :data:`MAX_HISTORY` of them (a few hundred rows)."""
    hours = int((end - start) / dt.timedelta(hours=1))
    stamps = [start + dt.timedelta(hours=i) for i in range(max(hours, 0))]
    return pa.table({"hour": pa.array(stamps, pa.timestamp("us", tz="UTC"))})


def baseline_profiles(engine: Engine, start: dt.datetime, end: dt.datetime) -> ir.Table:
    """``edge_baselines`` rows from ``edge_hours`` over training hours [start, end).

    Idle hours matter (a device silent every night is normal at night), so every asset gets
    every calendar hour from its first active hour, zero where it had no traffic.
    """
    stored = engine.table("edge_hours")
    stored = stored.filter((stored.hour >= start) & (stored.hour < end))
    firsts = stored.group_by("entity").aggregate(first_hour=stored.hour.min())
    calendar = memtable(_calendar(start, end))
    grid = firsts.cross_join(calendar)
    grid = grid.filter(grid.hour >= grid.first_hour).select("entity", "hour")
    dense = grid.left_join(stored, [grid.entity == stored.entity, grid.hour == stored.hour])
    dense = dense.select(
        entity=grid.entity,
        hour=grid.hour,
        **{m: dense[m].fill_null(0) for m in METRICS},
    )
    by_week = dense.mutate(slot=hour_of_week(dense.hour), slot_kind=ibis.literal("hour_of_week"))
    by_day = dense.mutate(
        slot=dense.hour.hour().cast("int64"), slot_kind=ibis.literal("hour_of_day")
    )
    keys = ["entity", "slot_kind", "slot"]
    profiles = robust_profile(by_week, keys).union(robust_profile(by_day, keys))
    return profiles.mutate(history_end=ibis.literal(end, "timestamp('UTC')"))


def _floor_hour(ts: dt.datetime) -> dt.datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _recompute_from(ws: Workspace, rebuild: bool) -> dt.datetime | None:
    """Earliest hour touched by input loaded since the last update (None: everything)."""
    last_update = ws.meta(_META_KEY)
    last_hour = ws.scalar("SELECT max(hour) FROM edge_hours")
    if rebuild or last_update is None or last_hour is None:
        return None
    earliest_new = ws.scalar(
        "SELECT min(first_ts) FROM ingest_runs WHERE started_at > ?::TIMESTAMPTZ "
        "AND target_table = 'flows'",
        [last_update],
    )
    start: dt.datetime = last_hour
    if earliest_new is not None:
        start = min(start, _floor_hour(earliest_new))
    return start


def _store(ws: Workspace, name: str, table: pa.Table, where: str = "", params: Any = None) -> int:
    """Replace rows of ``name`` (all, or those matching ``where``) with ``table``, atomically."""
    with ws.transaction():
        ws.con.execute(f'DELETE FROM "{name}" {where}', params or [])
        return int(ws.append(name, table))


def update_flow_baselines(
    ws: Workspace,
    config: Config,
    now: dt.datetime | None = None,
    *,
    rebuild: bool = False,
) -> dict[str, int]:
    """Bring ``edge_hours``, ``peer_contacts`` and ``edge_baselines`` up to date.

    ``now`` is the end of the data to judge (default: the latest flow); the training period is
    the :data:`MAX_HISTORY` before the :data:`DETECTION_WINDOW` that ends at ``now``. Only the
    hours touched by input loaded since the last update are recomputed, unless ``rebuild``
    (needed after changing the edge assets of the config). Returns rows written per table.
    """
    from orbwatch.engines.duckdb_engine import DuckDBEngine

    engine = DuckDBEngine(ws)
    written_at = dt.datetime.now(dt.UTC)
    since = _recompute_from(ws, rebuild)
    counts: dict[str, int] = {}

    edge = edge_flows(engine, config)
    if since is not None:
        edge = edge.filter(edge.ts >= since)
    hours = engine.execute(hourly(edge).mutate(updated_at=ibis.literal(written_at)))
    micros = pc.multiply(hours["hour_index"], pa.scalar(3_600_000_000, pa.int64()))
    hours = hours.append_column("hour", pc.cast(micros, pa.timestamp("us", tz="UTC")))
    hours = hours.drop_columns(["hour_index", "first_ts", "last_ts"])
    where, params = ("WHERE hour >= ?", [since]) if since is not None else ("", [])
    counts["edge_hours"] = _store(ws, "edge_hours", hours, where, params)

    peers = peer_flows(engine)
    if since is not None:
        peers = peers.filter(peers.ts >= since)
    fresh = engine.execute(contacts(peers))
    counts["peer_contacts"] = _merge_contacts(ws, fresh, replace=since is None)

    end_of_data = now or ws.scalar("SELECT max(ts_start) FROM flows")
    if end_of_data is None:
        counts["edge_baselines"] = _store(ws, "edge_baselines", pa.table({}))
    else:
        end = _floor_hour(end_of_data - DETECTION_WINDOW)
        profiles = baseline_profiles(engine, end - MAX_HISTORY, end)
        table = engine.execute(profiles.mutate(updated_at=ibis.literal(written_at)))
        counts["edge_baselines"] = _store(ws, "edge_baselines", table)
    ws.con.execute(
        "INSERT OR REPLACE INTO orbwatch_meta VALUES (?, ?)", [_META_KEY, written_at.isoformat()]
    )
    return counts


def _merge_contacts(ws: Workspace, fresh: pa.Table, replace: bool) -> int:
    """Fold newly computed contacts into ``peer_contacts`` (earliest first, latest last seen)."""
    if replace:
        return _store(ws, "peer_contacts", fresh)
    ws.con.register("_fresh_contacts", fresh)
    try:
        with ws.transaction():
            ws.con.execute(
                "CREATE OR REPLACE TEMP TABLE _merged_contacts AS "
                "SELECT local_key, kind, value, min(first_seen) AS first_seen, "
                "max(last_seen) AS last_seen FROM (SELECT * FROM peer_contacts "
                "UNION ALL SELECT * FROM _fresh_contacts) GROUP BY ALL"
            )
            ws.con.execute("DELETE FROM peer_contacts")
            ws.con.execute("INSERT INTO peer_contacts SELECT * FROM _merged_contacts")
            ws.con.execute("DROP TABLE _merged_contacts")
    finally:
        ws.con.unregister("_fresh_contacts")
    return int(fresh.num_rows)
