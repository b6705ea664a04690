"""The one interface every engine implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc


class Engine(ABC):
    """Provides the workspace tables as Ibis tables and executes expressions to Arrow."""

    name: ClassVar[str]

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def table(self, name: str) -> ir.Table:
        """The normalised table ``name`` as an Ibis table of this engine."""
        return self.backend.table(name)

    def execute(self, expr: ir.Table) -> pa.Table:
        """Run ``expr`` and return Arrow with timestamps in UTC, whatever the engine returns."""
        return utc_timestamps(self.backend.to_pyarrow(expr))

    @abstractmethod
    def close(self) -> None:
        """Release the engine's resources (not the workspace)."""


def utc_timestamps(table: pa.Table) -> pa.Table:
    """Label naive timestamps (Spark returns them in its session zone, set to UTC) as UTC."""
    for i, fld in enumerate(table.schema):
        if pa.types.is_timestamp(fld.type):
            col = table.column(i)
            if fld.type.tz is None:
                col = pc.assume_timezone(pc.cast(col, pa.timestamp("us")), "UTC")
            table = table.set_column(i, fld.name, pc.cast(col, pa.timestamp("us", tz="UTC")))
    return table


def memtable(data: pa.Table) -> ir.Table:
    """A small in-memory table (config-derived ranges) usable in expressions on any engine."""
    return ibis.memtable(data)
