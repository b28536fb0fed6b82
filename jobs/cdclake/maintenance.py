"""Daily table maintenance: compact, vacuum, refresh manifests, expire bookkeeping rows.

Per lake table, in this order:

1. **compact** the partitions that received data in the last ``compact_recent_days``
   (``OPTIMIZE ... WHERE <those partitions>``; older partitions were compacted on earlier days
   and are left alone, so the cost follows the change, not the table);
2. **vacuum** files no snapshot within ``vacuum_retain_hours`` references. Delta's own safety
   check (``spark.databricks.delta.retentionDurationCheck.enabled``) stays on; the config
   refuses retentions below its 168 h default;
3. **regenerate the symlink manifest** (Redshift Spectrum), after both, from the snapshot;
4. **expire tombstones** whose delete committed before ``now - tombstone_retention_days`` and
   **quarantine rows** quarantined before ``now - quarantine_retention_days``;
5. **compact and vacuum the bookkeeping tables** (ledger, tombstones, quarantine), which grow by
   a small file per hourly run.

Why tombstone retention is a safety setting: a tombstone is what makes a replayed change older
than a delete (a backfill with ``--since``, DMS redelivering after a task restart) stale. Once it
is expired, replaying such a change finds neither a row nor a tombstone and inserts the row
again. Tombstones must therefore outlive every hour that can still be re-applied: keep raw files
(or permitted backfills) for less time than ``tombstone_retention_days``.

Run it when the hourly merge of the same tables is not running: OPTIMIZE and a MERGE that
touch the same partition conflict in Delta's optimistic concurrency, and one of them fails
(safe, but a failed hour must then be retried).

Everything is idempotent: a rerun finds one file per compacted partition (OPTIMIZE commits
nothing), nothing left to vacuum and no rows older than the cutoffs. ``now`` is a parameter, so
a rerun of a scheduled day uses the same cutoffs; only VACUUM uses the wall clock (Delta's).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.config import MaintenanceConfig, PipelineConfig, TableConfig
from cdclake.session import setting
from cdclake.state import compact as compact_whole
from cdclake.transforms import COMMIT_TS

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

Partition = Mapping[str, str | None]


@dataclass(frozen=True)
class Cutoffs:
    """The instants a maintenance run compares against, all derived from one ``now``."""

    compact_since: datetime
    tombstones_before: datetime
    quarantine_before: datetime


def cutoffs(
    now: datetime, settings: MaintenanceConfig, wall_clock: datetime | None = None
) -> Cutoffs:
    """The run's cutoffs; ``now`` must be timezone-aware (UTC).

    Expiry never looks past ``wall_clock``: a ``--now`` in the future (a typo, a wrong
    template) must not delete tombstones that are still inside their retention. Compaction may
    (it only ever narrows what is compacted).
    """
    if now.tzinfo is None:
        raise ValueError("'now' must be timezone-aware")
    expiry_now = min(now, wall_clock) if wall_clock is not None else now
    return Cutoffs(
        compact_since=now - timedelta(days=settings.compact_recent_days),
        tombstones_before=expiry_now - timedelta(days=settings.tombstone_retention_days),
        quarantine_before=expiry_now - timedelta(days=settings.quarantine_retention_days),
    )


def sql_string(value: str) -> str:
    """A Spark SQL string literal (backslash escapes are on by default in Spark SQL)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def partition_predicate(columns: Sequence[str], partitions: Iterable[Partition]) -> str:
    """A WHERE clause selecting exactly ``partitions`` (values as Delta stores them: strings,
    None for null). OPTIMIZE accepts predicates on partition columns only, which this is.

    >>> partition_predicate(["p"], [{"p": "a"}, {"p": None}])
    "(`p` = 'a') OR (`p` IS NULL)"
    """
    if not columns:
        raise ValueError("partition_predicate needs at least one partition column")
    terms = []
    for part in sorted(
        partitions, key=lambda p: tuple((p[c] is None, p[c] or "") for c in columns)
    ):
        conds = []
        for c in columns:
            name = "`" + c.replace("`", "``") + "`"
            v = part[c]
            conds.append(f"{name} IS NULL" if v is None else f"{name} = {sql_string(v)}")
        terms.append("(" + " AND ".join(conds) + ")")
    if not terms:
        raise ValueError("partition_predicate needs at least one partition")
    return " OR ".join(terms)


def _table_sql(path: str) -> str:
    return "delta.`" + path.replace("`", "``") + "`"


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t = time.monotonic()

    def lap(self, step: str) -> None:
        t = time.monotonic()
        self.timings[step] = round(t - self._t, 3)
        self._t = t


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
            sql = f"VACUUM {_table_sql(path)} RETAIN {retain_hours} HOURS DRY RUN"
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
    """Compact and vacuum the table's ledger, tombstones and quarantine: every hourly run
    appends a small file to the ledger (and often to tombstones), and the job reads them whole
    on every run. Small and unpartitioned, so always compacted whole."""
    out = {"bookkeeping_files_compacted": 0, "bookkeeping_files_vacuumed": 0}
    if dry_run:
        return out
    for kind in ("ledger", "tombstones", "quarantine"):
        path = cfg.state_location(table, kind)
        if not DeltaTable.isDeltaTable(spark, path):
            continue
        out["bookkeeping_files_compacted"] += compact_whole(spark, path)
        out["bookkeeping_files_vacuumed"] += (
            vacuum(spark, path, retain_hours, False)["files_vacuumed"] or 0
        )
    return out


def new_record(run_id: str, table: TableConfig, now: datetime, dry_run: bool) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "table": table.qualified_name,
        "mode": "maintenance",
        "status": "noop",
        "now": now.isoformat(),
        "dry_run": dry_run,
        "partitions_considered": 0,
        "files_compacted": 0,
        "bytes_compacted": 0,
        "files_written": 0,
        "bytes_written": 0,
        "files_vacuumed": 0,
        "bytes_vacuumed": 0,
        "manifest_regenerated": False,
        "tombstones_expired": 0,
        "quarantine_expired": 0,
        "bookkeeping_files_compacted": 0,
        "bookkeeping_files_vacuumed": 0,
        "duration_s": 0.0,
        "timings": {},
        "error": None,
    }


def maintain_table(
    spark: SparkSession,
    cfg: PipelineConfig,
    table: TableConfig,
    now: datetime,
    run_id: str,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Run the four steps on one table; returns its summary record (raises on failure)."""
    settings = cfg.maintenance
    wall_clock = datetime.now(UTC)
    if now > wall_clock:
        log.warning(
            "%s: --now %s is in the future; expiry uses the wall clock",
            table.qualified_name,
            now.isoformat(),
        )
    cut = cutoffs(now, settings, wall_clock)
    rec = new_record(run_id, table, now, dry_run)
    clock = _Clock()
    started = time.monotonic()
    path = cfg.table_location(table)
    if DeltaTable.isDeltaTable(spark, path):
        rec.update(compact(spark, path, table.partition_by, cut.compact_since, dry_run))
        clock.lap("compact")
        rec.update(vacuum(spark, path, settings.vacuum_retain_hours, dry_run))
        clock.lap("vacuum")
        if not dry_run:
            # After both: OPTIMIZE replaced files, and a manifest must never name a file that
            # VACUUM may remove. Generation rewrites it from the snapshot, so it also repairs a
            # manifest a crashed writer left stale.
            DeltaTable.forPath(spark, path).generate("symlink_format_manifest")
            rec["manifest_regenerated"] = True
            clock.lap("manifest")
    else:
        log.warning(
            "%s: no Delta table at %s yet; only bookkeeping expiry", table.qualified_name, path
        )
    rec["tombstones_expired"] = expire(
        spark, cfg.state_location(table, "tombstones"), COMMIT_TS, cut.tombstones_before, dry_run
    )
    clock.lap("tombstones")
    rec["quarantine_expired"] = expire(
        spark,
        cfg.state_location(table, "quarantine"),
        "quarantined_at",
        cut.quarantine_before,
        dry_run,
    )
    clock.lap("quarantine")
    rec.update(housekeep_bookkeeping(spark, cfg, table, settings.vacuum_retain_hours, dry_run))
    clock.lap("bookkeeping")
    changed = any(
        rec[k]
        for k in (
            "files_compacted",
            "files_vacuumed",
            "tombstones_expired",
            "quarantine_expired",
            "bookkeeping_files_compacted",
            "bookkeeping_files_vacuumed",
        )
    )
    rec.update(
        status="succeeded" if changed else "noop",
        duration_s=round(time.monotonic() - started, 3),
        timings=clock.timings,
    )
    return rec
