"""The detectors orbwatch knows: built-in ones, then plugins from ``orbwatch.detectors``."""

from __future__ import annotations

from importlib.metadata import entry_points

from orbwatch.detect.base import Detector
from orbwatch.detect.intel_neighbourhood import IntelNeighbourhood
from orbwatch.detect.known_bad_infrastructure import KnownBadInfrastructure

BUILTIN: tuple[type[Detector], ...] = (KnownBadInfrastructure, IntelNeighbourhood)


def detectors() -> dict[str, type[Detector]]:
    """Every detector class by id."""
    found: dict[str, type[Detector]] = {cls.id: cls for cls in BUILTIN}
    for ep in entry_points(group="orbwatch.detectors"):
        cls = ep.load()
        found.setdefault(cls.id, cls)
    return found
