"""A collector run in a background thread, shared by the collector tests."""

from __future__ import annotations

import threading
import time

from orbwatch.collect.base import Collector, CollectStats


class Running:
    """A collector running in a thread; ``finish`` stops it and returns its counters."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.result: CollectStats | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.result = self.collector.run()

    def wait_received(self, count: int, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while self.collector.stats.received < count and time.monotonic() < end:
            time.sleep(0.01)

    def finish(self) -> CollectStats:
        self.collector.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "collector did not stop"
        assert self.result is not None
        return self.result
