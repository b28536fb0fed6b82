"""A lake table as a Delta table: created with the properties Spectrum's manifests need,
checked before every run, and its commits tagged with the run that made them."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

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


def checksum(spark: SparkSession, path: str, version: int) -> dict[str, Any] | None:
    """The checksum (``.crc``) Delta writes after committing ``version``, best effort: None
    when it is absent or unreadable."""
    try:
        lines = log_read(spark, f"{path.rstrip('/')}/_delta_log/{version:020d}.crc")
        crc = json.loads("".join(lines))
    except Exception:  # noqa: BLE001 - a missing or odd checksum only costs the slow way
        return None
    return crc if isinstance(crc, dict) else None


def file_count(spark: SparkSession, path: str) -> int | None:
    """How many data files the table's newest version has, from its checksum (no Spark job);
    None when that file is absent or unreadable; 0 when there is no table."""
    return _checksum_number(spark, path, "numFiles")


def size_bytes(spark: SparkSession, path: str, version: int | None = None) -> int | None:
    """The bytes of the data files of the table's ``version`` (None: the newest), from its
    checksum (no Spark job); None when that file is absent or unreadable; 0 when there is no
    table."""
    return _checksum_number(spark, path, "tableSizeBytes", version)


def _checksum_number(
    spark: SparkSession, path: str, name: str, version: int | None = None
) -> int | None:
    if version is None:
        version = head_version(spark, path)
    if version < 0:
        return 0
    crc = checksum(spark, path, version)
    try:
        return int(crc[name]) if crc else None
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Files:
    """A version's data files (full URIs) and schema, as its checksum lists them."""

    version: int
    schema: T.StructType
    uris: list[str]


def checksum_files(spark: SparkSession, path: str, version: int) -> Files | None:
    """``version``'s data files and schema from its checksum, when a plain Parquet read of
    them returns what Delta's read would: Delta listed every file there (it does for tables
    of up to 50 files), reader protocol 1 (no deletion vectors, no column mapping) and no
    partition columns (their values are not in the files). None otherwise.

    Delta's own read of a version it has not seen rebuilds the table's state from its log
    first: a shuffle over the checkpoint and commits, ~1 s for even a tiny table. The job
    reads its small bookkeeping tables once per run, each at a version the previous run made.
    """
    crc = checksum(spark, path, version)
    if not crc:
        return None
    try:
        adds = crc.get("allFiles")
        meta, protocol = crc["metadata"], crc["protocol"]
        if (
            not isinstance(adds, list)
            or len(adds) != int(crc["numFiles"])
            or sum(int(a["size"]) for a in adds) != int(crc["tableSizeBytes"])
            or int(protocol["minReaderVersion"]) != 1
            or meta.get("partitionColumns")
            or any(a.get("deletionVector") for a in adds)
        ):
            return None
        schema = T.StructType.fromJson(json.loads(meta["schemaString"]))
        uris = [_file_uri(path, a["path"]) for a in adds]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return Files(version, schema, uris)


def _file_uri(table: str, file: str) -> str:
    """An add action's path as a URI: absolute ones as they are; relative ones are
    URL-encoded and relative to the table's root (Delta protocol, "Add File")."""
    if urlsplit(file).scheme:
        return file
    return f"{table.rstrip('/')}/{unquote(file)}"


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
