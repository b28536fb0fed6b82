"""A lake table as a Delta table: created with the properties Spectrum's manifests need,
checked before every run, and its commits tagged with the run that made them."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from cdclake.lake import manifest
from cdclake.lake.fs import log_read
from cdclake.session import LAKE_TABLE_PROPERTIES, setting

log = logging.getLogger(__name__)
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
MANIFEST_PROPERTY = "delta.compatibility.symlinkFormatManifest.enabled"


class LakeTableError(RuntimeError):
    """A lake table cannot be written as it is (wrong properties, no history, ...)."""


@dataclass(frozen=True)
class Commit:
    """A data commit: its version, Delta's operation metrics (as strings), its commitInfo and
    all its actions (what it added and removed)."""

    version: int
    metrics: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    actions: list[dict[str, Any]] = field(default_factory=list)

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
    if props.get(MANIFEST_PROPERTY) != "false":
        # The job keeps the manifests itself (cdclake.lake.manifest): Delta's own hook would
        # rebuild them after every commit at a dozen Spark jobs a time. A table whose
        # manifests Delta kept has them current; one created by hand gets them built once.
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('{MANIFEST_PROPERTY}' = 'false')")
        if props.get(MANIFEST_PROPERTY) != "true":
            manifest.regenerate(spark, path)


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
    manifest.regenerate(spark, path)


def commit_metadata(
    spark: SparkSession, run_id: str, n_files: int, **extra: Any
) -> AbstractContextManager:
    """Tag the commits made inside with the run (how a rerun finds what a dead run left)."""
    meta = {"cdclake_run": run_id, "files": n_files, **extra}
    return setting(spark, USER_METADATA, json.dumps(meta, default=str))


def head_version(spark: SparkSession, path: str) -> int:
    """The table's newest version (Delta lists its log: no Spark job)."""
    jvm: Any = spark.sparkContext._jvm
    log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    none = jvm.scala.Option.empty()
    return int(log.update(False, none, none).version())


def commit(spark: SparkSession, path: str, version: int) -> Commit:
    """A commit read from its log entry: version, Delta's operation metrics, actions."""
    lines = log_read(spark, f"{path.rstrip('/')}/_delta_log/{version:020d}.json")
    actions = [json.loads(line) for line in lines if line.strip()]
    info: dict[str, Any] = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
    return Commit(version, dict(info.get("operationMetrics") or {}), info, actions)


def file_count(spark: SparkSession, path: str) -> int | None:
    """How many data files the table's newest version has, from the checksum (``.crc``) Delta
    writes after each commit (no Spark job); None when that file is absent or unreadable
    (Delta writes it best effort); 0 when there is no table."""
    version = head_version(spark, path)
    if version < 0:
        return 0
    try:
        lines = log_read(spark, f"{path.rstrip('/')}/_delta_log/{version:020d}.crc")
        return int(json.loads("".join(lines))["numFiles"])
    except Exception:  # noqa: BLE001 - a missing or odd checksum only costs the slow count
        return None


def files_now(spark: SparkSession, path: str) -> int:
    """How many data files the table has now: :func:`file_count`, else Delta's file list of
    the snapshot (``inputFiles``: a Spark job); 0 when there is no table."""
    files = file_count(spark, path)
    if files is None:
        files = len(spark.read.format("delta").load(path).inputFiles())
    return files


def last_commit(spark: SparkSession, path: str) -> Commit:
    """The newest commit (ours, right after we made it: the lease keeps others out)."""
    return commit(spark, path, head_version(spark, path))
