"""The Delta operations of daily maintenance, one table at a time: OPTIMIZE of the partitions
written recently, VACUUM with Delta's retention check on, expiry of old bookkeeping rows, and
compaction of the bookkeeping tables. Each is idempotent and reports what it did."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.core.config import PipelineConfig, TableConfig
from cdclake.core.sql import partition_predicate, table_sql
from cdclake.lake.bookkeeping import compact as compact_whole
from cdclake.lake.history import CHANGES as HISTORY_CHANGES
from cdclake.session import setting

log = logging.getLogger(__name__)

# The part of a Delta log commit that says which files a commit added, and where.
_ADD_SCHEMA = T.StructType(
    [
        T.StructField(
            "add",
            T.StructType(
                [
                    T.StructField("path", T.StringType()),
                    T.StructField("partitionValues", T.MapType(T.StringType(), T.StringType())),
                    T.StructField("modificationTime", T.LongType()),
                    T.StructField("dataChange", T.BooleanType()),
                ]
            ),
        )
    ]
)
# Delta lists and deletes with this many tasks (default 10000: sized for clusters). On a local
# master that is minutes of task overhead for a handful of folders.
_LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


@contextmanager
def _local_listing_parallelism(spark: SparkSession) -> Iterator[None]:
    """On a local master, list and delete with as many tasks as there are cores."""
    if not (spark.sparkContext.master or "").startswith("local"):
        yield
        return
    with setting(spark, _LISTING_PARALLELISM, str(max(spark.sparkContext.defaultParallelism, 1))):
        yield


def recent_partitions(
    spark: SparkSession, path: str, columns: Sequence[str], since: datetime
) -> list[dict[str, str | None]] | None:
    """Partitions that got data files (``dataChange``: not OPTIMIZE's rewrites) since ``since``,
    read from the add actions of the Delta log commits made since then.

    Returns None when nothing was written since (for an unpartitioned table: ``[{}]`` when
    something was). Reads only the recent commits, not the table's files.
    """
    versions = [
        r["version"]
        for r in DeltaTable.forPath(spark, path)
        .history()
        .where(F.col("timestamp") >= F.lit(since))
        .select("version")
        .collect()
    ]
    if not versions:
        return None
    log_dir = path.rstrip("/") + "/_delta_log"
    adds = (
        spark.read.schema(_ADD_SCHEMA)
        .json([f"{log_dir}/{v:020d}.json" for v in versions])
        .where(
            F.col("add.path").isNotNull()
            & F.col("add.dataChange")
            & (F.col("add.modificationTime") >= int(since.timestamp() * 1000))
        )
        .select(*(F.col("add.partitionValues").getItem(c).alias(c) for c in columns))
        .distinct()
    )
    if not columns:
        return [{}] if adds.limit(1).count() else None
    found = [r.asDict() for r in adds.collect()]
    return found or None


def compact(
    spark: SparkSession, path: str, columns: Sequence[str], since: datetime, dry_run: bool
) -> dict[str, Any]:
    """OPTIMIZE the partitions written since ``since``; nothing when none were."""
    out: dict[str, Any] = {
        "partitions_considered": 0,
        "files_compacted": 0,
        "bytes_compacted": 0,
        "files_written": 0,
        "bytes_written": 0,
    }
    parts = recent_partitions(spark, path, columns, since)
    if parts is None:
        log.info("%s: no data written since %s; nothing to compact", path, since.isoformat())
        return out
    out["partitions_considered"] = len(parts)
    predicate = partition_predicate(columns, parts) if columns else None
    if dry_run:
        log.info("%s: dry run: would OPTIMIZE WHERE %s", path, predicate or "<whole table>")
        return out
    builder = DeltaTable.forPath(spark, path).optimize()
    if predicate:
        builder = builder.where(predicate)
    row = builder.executeCompaction().select("metrics").first()
    m = row["metrics"] if row else None
    if m is not None:
        out.update(
            files_compacted=m["numFilesRemoved"] or 0,
            files_written=m["numFilesAdded"] or 0,
            bytes_compacted=(m["filesRemoved"]["totalSize"] if m["filesRemoved"] else 0) or 0,
            bytes_written=(m["filesAdded"]["totalSize"] if m["filesAdded"] else 0) or 0,
        )
    return out


def vacuum(spark: SparkSession, path: str, retain_hours: int, dry_run: bool) -> dict[str, Any]:
    """VACUUM with Delta's retention check on. Counts come from the VACUUM START/END commits
    Delta logs (None when vacuum logging is off)."""
    out: dict[str, Any] = {"files_vacuumed": None, "bytes_vacuumed": None}
    with _local_listing_parallelism(spark):
        if dry_run:
            sql = f"VACUUM {table_sql(path)} RETAIN {retain_hours} HOURS DRY RUN"
            out["files_vacuumed"] = spark.sql(sql).count()
            return out
        table = DeltaTable.forPath(spark, path)
        before = _head_version(table)
        table.vacuum(float(retain_hours))
    for r in table.history(4).where(F.col("version") > before).collect():
        metrics = r["operationMetrics"] or {}
        if r["operation"] == "VACUUM END":
            out["files_vacuumed"] = int(metrics.get("numDeletedFiles", 0))
        elif r["operation"] == "VACUUM START":
            out["bytes_vacuumed"] = int(metrics.get("sizeOfDataToDelete", 0))
    return out


def _head_version(table: DeltaTable) -> int:
    row = table.history(1).select("version").first()
    return row["version"] if row else -1


def expire(spark: SparkSession, path: str, column: str, before: datetime, dry_run: bool) -> int:
    """Delete the rows of a bookkeeping table whose ``column`` is before ``before``; returns
    how many. Deletes nothing (and commits nothing) when no row is that old."""
    if not DeltaTable.isDeltaTable(spark, path):
        return 0
    old: Column = F.col(column) < F.lit(before)
    n = spark.read.format("delta").load(path).where(old).count()
    if n and not dry_run:
        DeltaTable.forPath(spark, path).delete(old)
    return n


def housekeep_bookkeeping(
    spark: SparkSession, cfg: PipelineConfig, table: TableConfig, retain_hours: int, dry_run: bool
) -> dict[str, int]:
    """Compact and vacuum the table's ledger, tombstones, quarantine and history change log:
    every hourly run appends a small file to the ledger (and often to tombstones), and the job
    reads them on every run. Small and unpartitioned, so always compacted whole."""
    out = {"bookkeeping_files_compacted": 0, "bookkeeping_files_vacuumed": 0}
    if dry_run:
        return out
    # The lease is left alone: its own appends compact it (and this run holds it).
    for kind in ("ledger", "tombstones", "quarantine", HISTORY_CHANGES):
        compacted, vacuumed = compact_small(spark, cfg.state_location(table, kind), retain_hours)
        out["bookkeeping_files_compacted"] += compacted
        out["bookkeeping_files_vacuumed"] += vacuumed
    return out


def compact_small(spark: SparkSession, path: str, retain_hours: int) -> tuple[int, int]:
    """Compact a small unpartitioned table whole and vacuum it: (files compacted, files
    vacuumed), (0, 0) when there is no table at ``path``."""
    if not DeltaTable.isDeltaTable(spark, path):
        return 0, 0
    compacted = compact_whole(spark, path)
    return compacted, vacuum(spark, path, retain_hours, False)["files_vacuumed"] or 0
