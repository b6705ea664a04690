"""``orbwatch collect netflow``: a live NetFlow v5/v9/IPFIX collector over UDP.

Each datagram is one export message, decoded with the same
:class:`~orbwatch.sources.netflow.decode.Decoder` as captures and raw files, so live and
file-based ingest give the same rows. Templates are kept per exporter: the cache key is the
datagram's source address, the protocol version and the observation domain (v9 source id), so
two routers that both use template 256 never decode each other's data. Data that arrives
before its template is held (bounded per exporter) across micro-batches until the template
comes; when the collector stops, whatever is still held goes to ``quarantine`` with the reason.

Provenance: ``source_file`` is the listener (``udp://127.0.0.1:2055``), ``source_offset`` the
datagram's sequence number in the session, ``exporter`` the sender's address.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from orbwatch.collect.base import Collector, CollectSettings, Handler, Output, Received
from orbwatch.collect.net import ListenAddress, UdpListener, parse_listen
from orbwatch.config import Config
from orbwatch.sources.base import Parsed
from orbwatch.sources.netflow import flow_columns, reject_table
from orbwatch.sources.netflow.decode import (
    MAX_HELD_SETS,
    DecodedBatch,
    Decoder,
    TemplateCache,
    batches_to_flows,
)
from orbwatch.store.workspace import Workspace

DEFAULT_PORT = 2055
FORMAT = "netflow_udp"


class NetflowHandler(Handler):
    """Decodes datagrams as they come; hands over flow rows and rejects per listener.

    One decoder per listener address (held data stays with the listener its exporter sends
    to), all sharing one template cache keyed by exporter address, version and domain.
    """

    table = "flows"

    def __init__(self, cache: TemplateCache | None = None, max_held_sets: int = MAX_HELD_SETS):
        self.cache = TemplateCache() if cache is None else cache
        self.max_held_sets = max_held_sets
        self.decoders: dict[str, Decoder] = {}
        self._batches: dict[str, list[DecodedBatch]] = {}
        self._pending = 0

    def add(self, items: Sequence[Received]) -> int:
        """Feed datagrams to the decoder and decode what their templates allow, in bulk."""
        for item in items:
            decoder = self.decoders.get(item.source)
            if decoder is None:
                decoder = self.decoders[item.source] = Decoder(self.cache, self.max_held_sets)
            # A datagram cut to the listener's bound fails the length checks: a reject, not a loss.
            decoder.feed(item.data, item.peer, item.seq, set_offsets=False)
        for source in {item.source for item in items}:
            batches = self.decoders[source].flush()
            self._batches.setdefault(source, []).extend(batches)
            self._pending += sum(b.num_records for b in batches if not b.template.options)
        return self._pending

    def drain(self, final: bool) -> list[Output]:
        out = []
        for source, decoder in self.decoders.items():
            if final:
                decoder.finish()  # data still waiting for its template becomes rejects
            rows = flow_columns(batches_to_flows(self._batches.pop(source, []), self.cache))
            found = sorted(decoder.take_rejects(), key=lambda r: r.offset)
            reasons = Counter(r.kind for r in found)
            parsed = Parsed(rows, reject_table(found), decoder.take_skipped())
            out.append(Output(source, FORMAT, parsed, reasons))
        self._pending = 0
        return out

    @property
    def held_sets(self) -> int:
        """Data sets waiting for their template, over all listeners."""
        return sum(d.held_sets for d in self.decoders.values())


def netflow_collector(
    ws: Workspace,
    config: Config,
    listen: Sequence[ListenAddress | str] = ("127.0.0.1",),
    settings: CollectSettings | None = None,
) -> Collector:
    """A collector for UDP export traffic on each ``listen`` address (default 127.0.0.1:2055)."""
    listeners = [
        UdpListener(a if isinstance(a, ListenAddress) else parse_listen(a, DEFAULT_PORT))
        for a in listen
    ]
    return Collector(ws, config, NetflowHandler(), listeners, settings)
