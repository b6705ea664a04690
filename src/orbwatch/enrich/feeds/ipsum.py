"""IPsum (stamparm/ipsum): ``address<TAB>count`` where count is how many blocklists name it.

The count is kept as the indicator's ``score`` and turned into a confidence, which is the base
of the decay score: ``confidence = min(100, 50 + 10 * count)``. One list gives 60, three lists
(IPsum's own "level 3" threshold) give 80, the base of MISP's NIDS decay model, five or more
give 100. This mapping is orbwatch's choice: IPsum publishes counts, not confidences.
"""

from __future__ import annotations

import re
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.enrich.feeds.plain import PlainListReader

_COUNTED = re.compile(rb"^\s*[0-9a-fA-F:.]+\t\d+\s*$", re.MULTILINE)


def confidence_of_count(count: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``min(100, 50 + 10 * count)``; null where there is no count."""
    return pc.min_element_wise(pc.add(pc.multiply(count, 10.0), 50.0), 100.0, skip_nulls=False)


class IpsumReader(PlainListReader):
    """IPsum's ``ipsum.txt`` (address and count) and its ``levels/N.txt`` files."""

    name: ClassVar[str] = "ipsum"
    source_format: ClassVar[str] = "intel_ipsum"
    description: ClassVar[str] = "IPsum: address and number of blocklists naming it"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return b"IPsum" in head[:4096] or bool(_COUNTED.search(head))

    def annotate(self, indicators: pa.Table) -> pa.Table:
        index = indicators.schema.get_field_index("confidence")
        return indicators.set_column(index, "confidence", confidence_of_count(indicators["score"]))
