"""Live collectors: listeners that write what they receive into the workspace as it arrives.

:mod:`orbwatch.collect.base` is the mechanism every listener shares (bounded buffer,
micro-batches, clean shutdown); :mod:`orbwatch.collect.netflow` and
:mod:`orbwatch.collect.syslog` are the two collectors built on it.
"""

from orbwatch.collect.base import Collector, CollectSettings, CollectStats, Received

__all__ = ["CollectSettings", "CollectStats", "Collector", "Received"]
