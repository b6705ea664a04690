"""Workspace storage: the normalised tables (``schema``) in a DuckDB file (``workspace``)."""

from orbwatch.store.schema import SCHEMA_VERSION, TABLES
from orbwatch.store.workspace import Workspace, default_path

__all__ = ["SCHEMA_VERSION", "TABLES", "Workspace", "default_path"]
