"""Scale-out: the same detector expressions on Apache Spark, over Parquet table exports.

``orbwatch export-tables DIR`` writes ``DIR/<table>.parquet`` for every workspace table; this
engine registers each as a Spark view of the same name. A local session (``local[*]``) is
started when no master is configured, which is also how the engine-parity test runs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import ibis

from orbwatch.engines.base import Engine
from orbwatch.errors import OrbwatchError
from orbwatch.store.schema import TABLES


def spark_session(master: str | None = None) -> Any:
    """A Spark session in UTC, quiet, with Arrow transfer on (raises a clear error without Java)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise OrbwatchError(
            "the Spark engine needs PySpark: pip install 'orbwatch[spark]'"
        ) from None
    if not (os.environ.get("JAVA_HOME") or _which("java")):
        raise OrbwatchError("the Spark engine needs a Java runtime (java not found on PATH)")
    builder = (
        SparkSession.builder.master(master or os.environ.get("ORBWATCH_SPARK_MASTER", "local[2]"))
        .appName("orbwatch")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _which(cmd: str) -> str | None:
    import shutil

    return shutil.which(cmd)


class SparkEngine(Engine):
    """Runs expressions on Spark over ``DIR/<table>.parquet`` files."""

    name: ClassVar[str] = "spark"

    def __init__(self, input_dir: Path, session: Any | None = None) -> None:
        missing = [n for n in TABLES if not (input_dir / f"{n}.parquet").exists()]
        if missing:
            raise OrbwatchError(
                f"{input_dir}: missing {', '.join(f'{m}.parquet' for m in missing)} "
                "(write them with `orbwatch export-tables`)"
            )
        self.session = session or spark_session()
        backend = ibis.pyspark.connect(self.session)
        for name in TABLES:
            backend.read_parquet(str(input_dir / f"{name}.parquet"), table_name=name)
        super().__init__(backend)

    def close(self) -> None:
        """Leave the session running: a process may run several detections on it."""
