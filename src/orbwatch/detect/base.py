"""What a detector is: a relational expression plus the words that explain its findings.

A detector has two halves, so that it is written once and runs on every engine:

* :meth:`Detector.candidates` builds an Ibis expression over the normalised tables (and small
  in-memory tables derived from the config). The engine executes it; nothing in it may depend
  on the engine.
* :meth:`Detector.explain` turns the (few, already aggregated) candidate rows into alert
  fields: severity, score, title, explanation and evidence. It runs in Python after the engine
  returns, on the same rows whichever engine produced them, so alerts are identical across
  engines.

Every candidate expression returns at least :data:`CANDIDATE_COLUMNS`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import ibis.expr.types as ir

from orbwatch.config import Config
from orbwatch.engines.base import Engine

SEVERITIES = ("info", "low", "medium", "high", "critical")
CANDIDATE_COLUMNS = ("entity", "first_seen", "last_seen", "event_count")


@dataclass
class DetectContext:
    """What a detection run knows besides the tables."""

    config: Config
    engine: Engine
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass
class Finding:
    """The explained part of one alert, produced by :meth:`Detector.explain`."""

    entity: str
    severity: str
    score: float
    title: str
    explanation: str
    evidence: dict[str, Any]
    src_ip: str | None = None
    dst_ip: str | None = None
    user: str | None = None
    bytes: int | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")


class Detector(ABC):
    """Base of every detector. Subclasses are dataclasses whose fields are their parameters."""

    #: Stable identifier, used in alert ids, suppressions and ``--detector``.
    id: ClassVar[str]
    #: One line saying what it finds.
    summary: ClassVar[str]
    #: MITRE ATT&CK technique ids.
    techniques: ClassVar[tuple[str, ...]]
    #: Workspace tables it reads.
    requires: ClassVar[tuple[str, ...]]

    @abstractmethod
    def candidates(self, ctx: DetectContext) -> ir.Table:
        """The relational part, over ``ctx.engine.table(...)``."""

    @abstractmethod
    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        """Severity, score and words for one candidate row."""

    @abstractmethod
    def key(self, row: dict[str, Any]) -> str:
        """What identifies the finding of one candidate row (the alert id derives from it)."""

    def alert_id(self, key: str) -> str:
        """Stable alert id: the same finding keeps its id (and triage state) across runs."""
        digest = hashlib.sha1(f"{self.id}|{key}".encode(), usedforsecurity=False).hexdigest()
        return digest[:16]
