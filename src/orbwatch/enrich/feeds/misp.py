"""MISP events, in the feed format (``{"Event": {...}}``) and as the REST API returns them.

Accepted documents: one event (``{"Event": ...}`` or the bare event object of
``/events/view``), a list of them, or ``{"response": [...]}`` from ``/events/restSearch``.
Attributes of the event and of its objects (``Object[].Attribute[]``) become indicators when
their type is a network one:

* ``ip-src``, ``ip-dst`` (address or CIDR), ``ip-src|port``, ``ip-dst|port`` (the port is
  dropped), ``domain``, ``hostname``, ``domain|ip`` (both halves).

Attributes with ``to_ids`` false are context, not detection material in MISP's own model (its
IDS exports leave them out): they are skipped and counted, like attributes of other types.
Kept: ``uuid`` (external id), ``first_seen`` and ``last_seen`` when MISP has them, else the
attribute ``timestamp`` as the last sighting, the comment (or the event's ``info``), and the
tag names of the event and the attribute (tags such as ``misp-galaxy:botnet="Quad7"`` or
``kill-chain:command-and-control`` choose the class). Offsets are 1-based attribute positions
in reading order.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any, ClassVar

from orbwatch.enrich.feeds.base import (
    MAX_COMMENT_CHARS,
    MAX_RECORDS,
    FeedBatch,
    FeedOptions,
    FeedReader,
    class_from_tags,
    join_tags,
    records_batch,
)
from orbwatch.enrich.feeds.tabular import load_json
from orbwatch.errors import InputError
from orbwatch.sources.inputs import RAW_KEEP_CHARS, Input

#: Attribute type -> (kind of each ``|``-separated part: None address, "domain", "" dropped).
NETWORK_TYPES: dict[str, tuple[str | None, ...]] = {
    "ip-src": (None,),
    "ip-dst": (None,),
    "ip-src|port": (None, ""),
    "ip-dst|port": (None, ""),
    "domain": ("domain",),
    "hostname": ("domain",),
    "domain|ip": ("domain", None),
}
Row = dict[str, Any]


def _events(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, dict) and isinstance(document.get("response"), list):
        document = document["response"]
    items = document if isinstance(document, list) else [document]
    events = []
    for item in items:
        if isinstance(item, dict):
            event = item.get("Event", item)
            if isinstance(event, dict) and ("Attribute" in event or "Object" in event):
                events.append(event)
    return events


def _attributes(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from (a for a in event.get("Attribute") or [] if isinstance(a, dict))
    for obj in event.get("Object") or []:
        if isinstance(obj, dict):
            yield from (a for a in obj.get("Attribute") or [] if isinstance(a, dict))


def _tag_names(holder: dict[str, Any]) -> list[str]:
    tags = holder.get("Tag") or []
    return [str(t["name"]) for t in tags if isinstance(t, dict) and t.get("name")]


def _epoch(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, str) and not value.strip().isdigit():
        stamp = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(int(value), dt.UTC)


def _to_ids(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _rows(attribute: dict[str, Any], event: dict[str, Any], offset: int) -> list[Row]:
    kinds = NETWORK_TYPES[str(attribute.get("type"))]
    parts = str(attribute.get("value", "")).split("|")
    if len(parts) != len(kinds):
        raise ValueError(f"{attribute.get('type')} value needs {len(kinds)} '|'-separated parts")
    tags = [*_tag_names(event), *_tag_names(attribute)]
    comment = attribute.get("comment") or event.get("info")
    last = _epoch(attribute.get("last_seen")) or _epoch(attribute.get("timestamp"))
    common: Row = {
        "source_offset": offset,
        "intel_class": class_from_tags([*tags, str(attribute.get("category", ""))]),
        "tags": join_tags(tags),
        "comment": str(comment)[:MAX_COMMENT_CHARS] if comment else None,
        "first_seen": _epoch(attribute.get("first_seen")),
        "last_seen": last,
        "external_id": attribute.get("uuid"),
    }
    return [
        {**common, "indicator": part.strip(), "kind": kind}
        for part, kind in zip(parts, kinds, strict=True)
        if kind != ""
    ]


def read_events(document: Any, display: str) -> FeedBatch:
    """Indicators of parsed MISP JSON."""
    events = _events(document)
    if not events:
        raise InputError(f"{display}: no MISP event found (expected 'Event' with 'Attribute')")
    rows: list[Row] = []
    rejects: list[tuple[int, str, str, int]] = []
    skipped: dict[str, int] = {}
    offset = 0
    for event in events:
        for attribute in _attributes(event):
            offset += 1
            if offset > MAX_RECORDS:
                break
            kind = str(attribute.get("type"))
            if kind not in NETWORK_TYPES:
                reason = f"attribute type {kind[:40]} is not a network indicator"
            elif not _to_ids(attribute.get("to_ids")):
                reason = f"{kind} attribute with to_ids false (context, not for detection)"
            else:
                try:
                    rows += _rows(attribute, event, offset)
                except (ValueError, TypeError, OverflowError) as exc:
                    text = json.dumps(attribute)
                    reason = f"invalid MISP {kind} attribute: {exc}"
                    rejects.append((offset, reason, text[:RAW_KEEP_CHARS], len(text)))
                continue
            skipped[reason] = skipped.get(reason, 0) + 1
    return records_batch(rows, rejects, skipped, "MISP")


class MispReader(FeedReader):
    """MISP event JSON (feed format and REST API responses)."""

    name: ClassVar[str] = "misp"
    source_format: ClassVar[str] = "intel_misp"
    description: ClassVar[str] = "MISP events (feed format or API JSON): network attributes"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        text = head[:16384]
        return text.lstrip()[:1] in (b"{", b"[") and (
            b'"Event"' in text or (b'"Attribute"' in text and b'"uuid"' in text)
        )

    def read(self, inp: Input, options: FeedOptions) -> FeedBatch:
        del options
        return read_events(load_json(inp), inp.display)
