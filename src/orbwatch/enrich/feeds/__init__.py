"""Threat-intelligence feed readers: one module per format, one shared loader.

Each reader (:class:`orbwatch.enrich.feeds.base.FeedReader`) turns an input into an Arrow
table of raw indicators plus rejects; :mod:`orbwatch.enrich.intel` does the rest (keys,
buckets, quarantine, refresh). :func:`detect` picks the reader from the first bytes, most
specific format first.
"""

from __future__ import annotations

from orbwatch.enrich.feeds.base import FeedBatch, FeedOptions, FeedReader
from orbwatch.enrich.feeds.ipsum import IpsumReader
from orbwatch.enrich.feeds.misp import MispReader
from orbwatch.enrich.feeds.plain import PlainListReader
from orbwatch.enrich.feeds.stix import StixReader
from orbwatch.enrich.feeds.tabular import TabularReader
from orbwatch.errors import InputError

#: Readers in detection order: structured JSON first, then tabular, then line lists.
READERS: dict[str, type[FeedReader]] = {
    cls.name: cls for cls in (StixReader, MispReader, TabularReader, IpsumReader, PlainListReader)
}

__all__ = ["READERS", "FeedBatch", "FeedOptions", "FeedReader", "detect", "reader"]


def reader(name: str) -> FeedReader:
    """The reader called ``name`` (``--kind``)."""
    if name not in READERS:
        raise InputError(f"unknown feed kind {name!r}: use one of {', '.join(READERS)}")
    return READERS[name]()


def detect(head: bytes) -> FeedReader:
    """The reader for an input whose first bytes are ``head``.

    A plain list is the fallback: any text file can be read as one, and its lines that are not
    addresses end up in quarantine with the reason, which says more than "unknown format".
    """
    for cls in READERS.values():
        if cls.sniff(head):
            return cls()
    return PlainListReader()
