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
5. **compact and vacuum the bookkeeping tables** (ledger, tombstones, quarantine, history
   change log), which grow by a small file per hourly run.

Once per run, after the tables: the run audit table, which all tables share, is compacted and
vacuumed too (:func:`maintain_audit`).

A table that keeps a history gets steps 1-3 for its history table too (counted with the
table's).

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
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from cdclake.core.columns import COMMIT_TS
from cdclake.core.config import MaintenanceConfig, PipelineConfig, TableConfig
from cdclake.core.hours import UTC
from cdclake.core.records import NOOP, SUCCEEDED, MaintenanceRecord, Stopwatch
from cdclake.lake import manifest
from cdclake.lake.bookkeeping import TableState
from cdclake.lake.history import as_table
from cdclake.lake.housekeeping import (
    compact,
    compact_small,
    expire,
    housekeep_bookkeeping,
    vacuum,
)
from cdclake.lake.lease import held

log = logging.getLogger(__name__)


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


def start_record(
    run_id: str, table: TableConfig, now: datetime, dry_run: bool
) -> MaintenanceRecord:
    return MaintenanceRecord(
        run_id=run_id,
        table=table.qualified_name,
        mode="maintenance",
        status=NOOP,
        now=now.isoformat(),
        dry_run=dry_run,
    )


# A run that changed any of these did something (status succeeded, not noop).
_CHANGES = (
    "files_compacted",
    "files_vacuumed",
    "tombstones_expired",
    "quarantine_expired",
    "bookkeeping_files_compacted",
    "bookkeeping_files_vacuumed",
)


def maintain_table(
    spark: SparkSession,
    cfg: PipelineConfig,
    table: TableConfig,
    now: datetime,
    run_id: str,
    dry_run: bool = False,
) -> MaintenanceRecord:
    """Run the steps on one table; returns its record (raises on failure)."""
    wall_clock = datetime.now(UTC)
    if now > wall_clock:
        log.warning(
            "%s: --now %s is in the future; expiry uses the wall clock",
            table.qualified_name,
            now.isoformat(),
        )
    cut = cutoffs(now, cfg.maintenance, wall_clock)
    clock = Stopwatch()
    # OPTIMIZE, VACUUM and expiry write the table and its bookkeeping: one writer at a time.
    state = TableState(spark, cfg, table)
    attempt = f"{run_id}.{uuid.uuid4().hex[:8]}"
    writer = (
        nullcontext()
        if dry_run
        else held(state, attempt, cfg.merge.lease_minutes, table.qualified_name)
    )
    with writer:
        done = maintain_data(spark, cfg, table, cut, dry_run, clock)
        if table.history:
            add_counts(done, maintain_data(spark, cfg, as_table(table), cut, dry_run, Stopwatch()))
            clock.lap("history")
        done.update(expire_bookkeeping(spark, cfg, table, cut, dry_run, clock))
        retain = cfg.maintenance.vacuum_retain_hours
        done.update(housekeep_bookkeeping(spark, cfg, table, retain, dry_run))
        clock.lap("bookkeeping")
    changed = any(done.get(k) for k in _CHANGES)
    return start_record(run_id, table, now, dry_run).but(
        **done,
        status=SUCCEEDED if changed else NOOP,
        duration_s=clock.elapsed,
        timings=dict(clock.timings),
    )


def maintain_audit(spark: SparkSession, cfg: PipelineConfig, dry_run: bool) -> dict[str, int]:
    """Compact and vacuum the run audit table, once per maintenance run: every table shares
    it, and every job run appends a small file to it (analysts read it, and each merge run
    reads its snapshot), so without this it grows by a file an hour forever. Its rows never
    expire. Compaction and the merge's blind appends do not conflict in Delta."""
    compacted, vacuumed = (
        (0, 0)
        if dry_run
        else compact_small(spark, cfg.audit_location, cfg.maintenance.vacuum_retain_hours)
    )
    return {"files_compacted": compacted, "files_vacuumed": vacuumed}


def maintain_data(
    spark: SparkSession,
    cfg: PipelineConfig,
    table: TableConfig,
    cut: Cutoffs,
    dry_run: bool,
    clock: Stopwatch,
) -> dict[str, Any]:
    """Compact, vacuum and re-manifest the lake table itself."""
    path = cfg.table_location(table)
    if not DeltaTable.isDeltaTable(spark, path):
        log.warning(
            "%s: no Delta table at %s yet; only bookkeeping expiry", table.qualified_name, path
        )
        return {}
    done = compact(spark, path, table.partition_by, cut.compact_since, dry_run)
    clock.lap("compact")
    done.update(vacuum(spark, path, cfg.maintenance.vacuum_retain_hours, dry_run))
    clock.lap("vacuum")
    if not dry_run:
        # After both: OPTIMIZE replaced files, and a manifest must never name a file that
        # VACUUM may remove. Generation rewrites it from the snapshot, so it also repairs a
        # manifest a crashed writer left stale.
        manifest.regenerate(spark, path)
        done["manifest_regenerated"] = True
        clock.lap("manifest")
    return done


def add_counts(done: dict[str, Any], more: dict[str, Any]) -> None:
    """The history table's maintenance counted with its table's."""
    for key, value in more.items():
        if isinstance(value, int) and not isinstance(value, bool):
            done[key] = int(done.get(key) or 0) + value


def expire_bookkeeping(
    spark: SparkSession,
    cfg: PipelineConfig,
    table: TableConfig,
    cut: Cutoffs,
    dry_run: bool,
    clock: Stopwatch,
) -> dict[str, Any]:
    """Expire tombstones and quarantine rows past their retention."""
    tombstones = expire(
        spark, cfg.state_location(table, "tombstones"), COMMIT_TS, cut.tombstones_before, dry_run
    )
    clock.lap("tombstones")
    quarantine = expire(
        spark,
        cfg.state_location(table, "quarantine"),
        "quarantined_at",
        cut.quarantine_before,
        dry_run,
    )
    clock.lap("quarantine")
    return {"tombstones_expired": tombstones, "quarantine_expired": quarantine}
