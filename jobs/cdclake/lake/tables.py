"""A lake table as a Delta table: created with the properties Spectrum's manifests need,
checked before every run, and its commits tagged with the run that made them."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import Row, SparkSession
from pyspark.sql import types as T

from cdclake.session import LAKE_TABLE_PROPERTIES, setting

log = logging.getLogger(__name__)
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
MANIFEST_PROPERTY = "delta.compatibility.symlinkFormatManifest.enabled"


class LakeTableError(RuntimeError):
    """A lake table cannot be written as it is (wrong properties, no history, ...)."""


@dataclass(frozen=True)
class Commit:
    """A data commit: its version and Delta's operation metrics (as strings)."""

    version: int
    metrics: dict[str, Any]

    def metric(self, name: str) -> int:
        return int(self.metrics.get(name, 0))


def exists(spark: SparkSession, path: str) -> bool:
    return bool(DeltaTable.isDeltaTable(spark, path))


def create(spark: SparkSession, path: str, schema: T.StructType, parts: Sequence[str]) -> None:
    """Create the table (if absent) with the lake's table properties."""
    builder = (
        DeltaTable.createIfNotExists(spark).location(path).addColumns(schema).partitionedBy(*parts)
    )
    for key, value in LAKE_TABLE_PROPERTIES.items():
        builder = builder.property(key, value)
    builder.execute()


def check_properties(spark: SparkSession, path: str, name: str) -> None:
    """Refuse a table Spectrum's manifests cannot serve; turn manifests on where they are off."""
    props = {
        r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()
    }
    problems = []
    if props.get("delta.enableDeletionVectors", "false").lower() == "true":
        problems.append("deletion vectors are enabled")
    if props.get("delta.columnMapping.mode", "none") != "none":
        problems.append("column mapping is enabled")
    if problems:
        raise LakeTableError(
            f"{name}: {' and '.join(problems)} on {path}; "
            "Redshift Spectrum's symlink manifest needs both off"
        )
    if props.get(MANIFEST_PROPERTY, "false") != "true":
        # A table created by an older version or by hand: turn manifests on (and build
        # them once, as Delta only maintains them from the next commit on).
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('{MANIFEST_PROPERTY}' = 'true')")
        DeltaTable.forPath(spark, path).generate("symlink_format_manifest")


def repair_manifest(spark: SparkSession, path: str, name: str, run: str, version: int) -> None:
    """The last data commit (``version``) was ``run``'s, but that run never reached the ledger:
    the process may have died before Delta refreshed the manifest, so regenerate it."""
    log.warning(
        "%s: previous run %s committed version %s but did not finish; "
        "regenerating the symlink manifest",
        name,
        run,
        version,
    )
    DeltaTable.forPath(spark, path).generate("symlink_format_manifest")


def commit_metadata(
    spark: SparkSession, run_id: str, n_files: int, **extra: Any
) -> AbstractContextManager:
    """Tag the commits made inside with the run (how a rerun finds what a dead run left)."""
    meta = {"cdclake_run": run_id, "files": n_files, **extra}
    return setting(spark, USER_METADATA, json.dumps(meta, default=str))


def history_head(spark: SparkSession, path: str) -> Row:
    row = DeltaTable.forPath(spark, path).history(1).first()
    if row is None:  # a Delta table always has at least one commit
        raise LakeTableError(f"{path}: Delta table has no history")
    return row


def last_commit(spark: SparkSession, path: str) -> Commit:
    row = history_head(spark, path)
    return Commit(int(row["version"]), dict(row["operationMetrics"] or {}))
