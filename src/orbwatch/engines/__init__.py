"""Execution engines: where the detectors' relational expressions run.

A detector is written once as an Ibis expression over the normalised tables. An
:class:`~orbwatch.engines.base.Engine` provides those tables and executes the expression:
DuckDB on the workspace file (the embedded default) or Apache Spark on Parquet exports.
"""

from orbwatch.engines.base import Engine

__all__ = ["Engine"]
