"""Flow queries shared by the detectors that judge (source, destination, day) pairs.

Beaconing and the exfiltration detector aggregate millions of outbound flows per pair and UTC
day, but alert on a handful of pairs. What an alert only reports (the addresses as text, the
ports, the protocol, the first and last flow) costs more to aggregate over every pair than the
figures the decision needs (string minima and a distinct count over millions of groups), so
they are gathered here for the chosen pairs alone, from those pairs' own flows.
"""

from __future__ import annotations

import ibis.expr.types as ir

from orbwatch.baseline.flows import day_index, epoch_seconds
from orbwatch.engines.base import Engine

#: A pair and day: source key, destination key and UTC day (days since 1970).
PAIR_DAY = ("src_key", "dst_key", "day")


def outbound_days(engine: Engine) -> ir.Table:
    """Outbound flows (internal initiator, external responder) with their UTC ``day``."""
    flows = engine.table("flows")
    outbound = flows.filter(flows.direction == "outbound")
    return outbound.mutate(day=day_index(epoch_seconds(engine, outbound.ts_start)))


def pair_day_figures(engine: Engine, chosen: ir.Table) -> ir.Table:
    """Per (src_key, dst_key, day) row of ``chosen``: what its outbound flows report.

    ``src_ip``/``dst_ip`` (smallest text of each key), ``flows``, ``first_seen`` (earliest
    start), ``last_start`` and ``last_end`` (latest start and end), ``dst_port`` (smallest),
    ``ports`` (distinct) and ``protocol`` (smallest). A hash join of the flows against the
    chosen pairs, so it costs a scan whatever the number of pairs the detector judged.
    """
    flows = engine.table("flows")
    keys = chosen.select(c_src="src_key", c_dst="dst_key", c_day="day").distinct()
    joined = flows.join(keys, [flows.src_key == keys.c_src, flows.dst_key == keys.c_dst])
    rows = joined.select(flows, "c_day")
    rows = rows.filter(
        (rows.direction == "outbound")
        & (day_index(epoch_seconds(engine, rows.ts_start)) == rows.c_day)
    )
    return rows.group_by(src_key=rows.src_key, dst_key=rows.dst_key, day=rows.c_day).aggregate(
        src_ip=rows.src_ip.min(),
        dst_ip=rows.dst_ip.min(),
        flows=rows.count(),
        first_seen=rows.ts_start.min(),
        last_start=rows.ts_start.max(),
        last_end=rows.ts_end.max(),
        dst_port=rows.dst_port.min(),
        ports=rows.dst_port.nunique(),
        protocol=rows.protocol.min(),
    )


#: The figures every pair alert reports under the same names (alert column: figure).
PAIR_REPORT = {
    "src_ip": "src_ip",
    "dst_ip": "dst_ip",
    "first_seen": "first_seen",
    "dst_port": "dst_port",
    "ports": "ports",
    "protocol": "protocol",
}


def with_pair_day_figures(engine: Engine, chosen: ir.Table, **figures: str) -> ir.Table:
    """``chosen`` plus the :func:`pair_day_figures` named in ``figures`` (new name: figure).

    Meant as a detector's last step, on its final pairs (see the comment below).
    """
    found = pair_day_figures(engine, chosen).rename(f_src="src_key", f_dst="dst_key", f_day="day")
    # Join on keys under their own names, and call this last: Ibis merges consecutive joins
    # into one chain and resolves a column to any column it was joined equal to, so the keys
    # of a result later left-joined on the same names can come from the right side (null).
    joined = chosen.join(
        found,
        [
            chosen.src_key == found.f_src,
            chosen.dst_key == found.f_dst,
            chosen.day == found.f_day,
        ],
    )
    return joined.select(chosen, **{name: found[figure] for name, figure in figures.items()})
