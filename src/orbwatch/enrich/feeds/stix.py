"""STIX 2.1 bundles: indicators with address and domain patterns, and address observables.

Objects are parsed and validated one by one with the ``stix2`` library (an object that does
not validate is quarantined with the library's reason; the rest of the bundle still loads).
What becomes an indicator:

* an ``indicator`` whose STIX pattern compares ``ipv4-addr:value``, ``ipv6-addr:value`` or
  ``domain-name:value`` with ``=`` (or ``ISSUBSET`` for a CIDR): each such comparison gives one
  indicator, so ``[ipv4-addr:value = 'a' OR ipv4-addr:value = 'b']`` gives two. Comparisons are
  read with ``stix2patterns``' pattern inspector, the grammar the STIX 2.1 specification
  defines. A pattern that also compares other objects (``AND network-traffic:dst_port = 80``)
  is matched on the address alone: broader than the pattern, which is what a blocklist needs.
  Its ``valid_from``/``valid_until``, ``confidence`` (STIX 2.1: 0-100), ``created`` (first
  seen), ``modified`` (last seen) and ``id`` are kept; ``indicator_types`` and ``labels``
  become tags and choose the class (see :func:`orbwatch.enrich.feeds.base.class_from_tags`;
  ``anonymization`` means proxy, ``compromised`` a compromised device);
* an ``ipv4-addr``, ``ipv6-addr`` or ``domain-name`` observable (standalone, or referenced by
  ``observed-data``): one indicator, with the class of an ``infrastructure`` object that
  ``consists-of`` it (``command-and-control`` infrastructure gives ``c2``).

Indicators with other patterns (file hashes, URLs) are skipped and counted, not quarantined.
Offsets are 1-based positions of objects in the bundle.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, ClassVar

import stix2
import stix2.exceptions
from stix2patterns.pattern import ParseException, Pattern

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

ADDRESS_TYPES = {"ipv4-addr": None, "ipv6-addr": None, "domain-name": "domain"}
_OPERATORS = {"=", "ISSUBSET"}
Row = dict[str, Any]


def _time(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    stamp: dt.datetime = getattr(value, "datetime", value)
    return stamp.astimezone(dt.UTC)


def _unquote(literal: str) -> str:
    """A STIX pattern string literal without its quotes and escapes."""
    text = literal.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1]
    return text.replace("\\'", "'").replace("\\\\", "\\")


def pattern_values(pattern: str) -> list[tuple[str | None, str]]:
    """(kind, value) of every address or domain equality in a STIX pattern."""
    found: list[tuple[str | None, str]] = []
    comparisons = Pattern(pattern).inspect().comparisons
    for object_type, kind in ADDRESS_TYPES.items():
        for path, operator, literal in comparisons.get(object_type, []):
            if path == ["value"] and operator in _OPERATORS:
                found.append((kind, _unquote(literal)))
    return found


def _infrastructure_classes(objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Observable id -> types and labels of the infrastructure that ``consists-of`` it."""
    infra = {
        o["id"]: [*o.get("infrastructure_types", []), *o.get("labels", [])]
        for o in objects
        if o.get("type") == "infrastructure" and "id" in o
    }
    found: dict[str, list[str]] = {}
    for o in objects:
        if o.get("type") == "relationship" and o.get("relationship_type") == "consists-of":
            types = infra.get(o.get("source_ref", ""))
            if types is not None:
                found.setdefault(o.get("target_ref", ""), []).extend(types)
    return found


def _indicator_rows(obj: Any, offset: int) -> list[Row]:
    tags = [*obj.get("indicator_types", []), *obj.get("labels", [])]
    name = obj.get("name") or obj.get("description")
    common: Row = {
        "source_offset": offset,
        "confidence": obj.get("confidence"),
        "intel_class": class_from_tags(tags),
        "tags": join_tags(tags),
        "comment": name[:MAX_COMMENT_CHARS] if name else None,
        "first_seen": _time(obj.get("created")),
        "last_seen": _time(obj.get("modified")),
        "valid_from": _time(obj.get("valid_from")),
        "valid_until": _time(obj.get("valid_until")),
        "external_id": obj["id"],
    }
    return [
        {**common, "indicator": value, "kind": kind} for kind, value in pattern_values(obj.pattern)
    ]


def _count(counts: dict[str, int], reason: str) -> None:
    counts[reason] = counts.get(reason, 0) + 1


def read_bundle(document: Any, display: str) -> FeedBatch:
    """Indicators of a parsed STIX bundle (or a TAXII envelope: any dict with ``objects``)."""
    if not isinstance(document, dict) or not isinstance(document.get("objects"), list):
        raise InputError(f"{display}: not a STIX bundle (no 'objects' list)")
    objects = [o for o in document["objects"][:MAX_RECORDS] if isinstance(o, dict)]
    classes = _infrastructure_classes(objects)
    rows: list[Row] = []
    rejects: list[tuple[int, str, str, int]] = []
    skipped: dict[str, int] = {}
    for offset, raw in enumerate(objects, start=1):
        kind = raw.get("type")
        if kind != "indicator" and kind not in ADDRESS_TYPES:
            continue
        try:
            obj = stix2.parse(raw, allow_custom=True)
            if kind == "indicator":
                if obj.get("pattern_type", "stix") != "stix":
                    _count(skipped, f"indicator pattern type {str(obj.pattern_type)[:40]}")
                    continue
                found = _indicator_rows(obj, offset)
                if not found:
                    _count(skipped, "indicator pattern without an address or domain")
                rows += found
            else:
                labels = classes.get(obj.id, [])
                rows.append(
                    {
                        "indicator": obj.value,
                        "kind": ADDRESS_TYPES[kind],
                        "source_offset": offset,
                        "intel_class": class_from_tags(labels),
                        "tags": join_tags(labels),
                        "external_id": obj.id,
                    }
                )
        except (stix2.exceptions.STIXError, ParseException, ValueError, KeyError) as exc:
            text = json.dumps(raw)
            reason = f"invalid STIX {kind}: {str(exc).splitlines()[0][:300]}"
            rejects.append((offset, reason, text[:RAW_KEEP_CHARS], len(text)))
    return records_batch(rows, rejects, skipped, "STIX")


class StixReader(FeedReader):
    """STIX 2.1 bundles (also what a TAXII 2.1 collection returns)."""

    name: ClassVar[str] = "stix"
    source_format: ClassVar[str] = "intel_stix"
    description: ClassVar[str] = "STIX 2.1 bundle: indicators with ipv4/ipv6/domain patterns"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        text = head[:8192]
        return text.lstrip().startswith(b"{") and (
            b'"bundle"' in text or b'"spec_version"' in text or b'"indicator--' in text
        )

    def read(self, inp: Input, options: FeedOptions) -> FeedBatch:
        del options
        return read_bundle(load_json(inp), inp.display)
