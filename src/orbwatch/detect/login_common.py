"""What the login detectors share: evidence references, source descriptions and plain words.

Every login detector ends its expression the same way (a bounded list of the login records
behind each finding, as ``source_file:source_offset``) and explains its findings with the same
vocabulary ("AS4134 (residential, CN)"), so both live here once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ibis
import ibis.expr.types as ir

#: Login records listed as evidence per finding (the count of all of them is in the alert).
MAX_EVIDENCE_ROWS = 20
#: Network classes where covert-network exit nodes live (hijacked SOHO routers, leased VPS,
#: anonymisers); field notes: "the kind of network the sources sit in" persists when IPs rotate.
RISKY_CLASSES = ("residential", "hosting", "mobile", "vpn", "tor")
#: Classes that rent addresses to anyone: a login from them is suspicious on its own.
RENTED_CLASSES = ("hosting", "vpn", "tor")
GAP_FILL = "-"


def evidence_refs(rows: ir.Table, group: Sequence[str], limit: int = MAX_EVIDENCE_ROWS) -> ir.Table:
    """Per group of ``rows``: the first ``limit`` records as ``source_file:source_offset``.

    The order (time, file, offset) is total, so every engine picks the same records; the list
    is bounded whatever the size of the group. Group columns must not be null (fill them).
    """
    order = ibis.window(
        group_by=[rows[c] for c in group],
        order_by=[rows.ts, rows.source_file, rows.source_offset],
    )
    ranked = rows.mutate(_rank=ibis.row_number().over(order))
    ranked = ranked.filter(ranked._rank < limit)
    ref = ranked.source_file.fill_null("?").concat(
        ":", ranked.source_offset.cast("string").fill_null("?")
    )
    ranked = ranked.mutate(_ref=ref)
    return ranked.group_by(list(group)).aggregate(evidence_rows=ranked._ref.collect())


def refs(row: dict[str, Any]) -> list[str]:
    """The evidence references of a candidate row, in a stable order."""
    return sorted(row.get("evidence_rows") or [], key=_ref_order)


def _ref_order(ref: str) -> tuple[str, int]:
    name, _, offset = ref.rpartition(":")
    return (name, int(offset) if offset.isdigit() else -1)


def asn_text(asn: Any) -> str:
    """``AS4134``, or ``an unknown network`` when the source was not enriched."""
    return f"AS{asn}" if asn not in (None, "") else "an unknown network"


def describe_source(asn: Any, net_class: Any, country: Any) -> str:
    """``AS4134 (residential, CN)``: what an analyst needs to judge a login source."""
    details = [str(net_class or "unknown")]
    if country:
        details.append(str(country))
    return f"{asn_text(asn)} ({', '.join(details)})"


def words(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def log_points(value: float, per_decade: float) -> float:
    """Score points growing with the order of magnitude of a count (0 for 1 or less)."""
    return per_decade * math.log10(max(1.0, value))


def capped(score: float) -> float:
    """A 0-100 score rounded the same way for every engine's rows."""
    return round(max(0.0, min(100.0, score)), 1)
