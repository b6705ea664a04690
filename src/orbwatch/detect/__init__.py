"""Detectors: one module each, all written as relational expressions (see ``base``)."""

from orbwatch.detect.base import DetectContext, Detector, Finding
from orbwatch.detect.registry import detectors

__all__ = ["DetectContext", "Detector", "Finding", "detectors"]
