"""Step 5, apply: the writes of a table's run, each a named step, called in this order (the
crash order the guarantees rely on):

1. :func:`quarantine` the rows that cannot be applied (idempotent MERGE on file and row);
2. :func:`tombstones` for the batch's deletes (append; readers take the newest per key);
3. the data: :func:`merge` (incremental) or :func:`overwrite` (full load, then
   :func:`generation`): exactly one Delta commit;
4. :func:`ledger`: the files applied (only now is the batch "done").

A run holds the table's lease (:func:`cdclake.job.context.writing`) around these steps.

A crash between any two steps followed by a rerun converges: everything before the ledger is
idempotent or guarded by the change order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdclake.core.columns import BOOKKEEPING_COLUMNS, EFFECTIVE, OP, STALE, STATUS, data_columns
from cdclake.core.sql import partition_predicate
from cdclake.job.context import RunContext
from cdclake.job.decide import BatchPlan
from cdclake.lake import manifest, tables
from cdclake.lake.ledger import record_files, record_generation
from cdclake.lake.order import newer_than_target
from cdclake.lake.tables import Commit
from cdclake.session import setting

MATERIALIZE_SOURCE = "spark.databricks.delta.merge.materializeSource"


def quarantine(ctx: RunContext, bad: DataFrame, plan: BatchPlan) -> None:
    """Keep the batch's bad rows, with reason and source file (once, however often rerun)."""
    if plan.stats.quarantined:
        ctx.state.quarantine(bad, ctx.run_id)


def tombstones(ctx: RunContext, classified: DataFrame, plan: BatchPlan) -> None:
    """Record the batch's non-stale deletes. Before the data: a crash between the two is safe
    either way (a delete equal to its tombstone is still applied on rerun)."""
    if plan.deletes:
        live = classified.where(F.col(STATUS) != STALE)
        ctx.state.apply_tombstones(live, ctx.keys)


def merge(ctx: RunContext, classified: DataFrame, plan: BatchPlan, exists: bool) -> Commit | None:
    """The one data commit of an incremental run: a MERGE of the effective changes with the
    sequence guard, pruned to the plan's partitions and key range. Nothing is committed when
    no change is effective (the table's current version is returned, None for no table)."""
    if not plan.changes_table:
        return Commit(tables.last_commit(ctx.spark, ctx.path).version, {}) if exists else None
    source = classified.where(F.col(STATUS).isin(*EFFECTIVE))
    source = source.select(*data_columns(source.columns), *BOOKKEEPING_COLUMNS)
    if not exists:
        tables.create(ctx.spark, ctx.path, source.schema, ctx.parts)
    cond = merge_condition(ctx.keys, ctx.parts, plan.partitions, plan.key_range)
    newer = newer_than_target()
    is_delete = F.col(f"s.{OP}") == "D"
    # The source is the staged batch (immutable files): reading it twice gives the same
    # rows, so Delta need not copy it first.
    with (
        tables.commit_metadata(ctx.spark, ctx.run_id, len(plan.files)),
        setting(ctx.spark, MATERIALIZE_SOURCE, "none"),
    ):
        (
            DeltaTable.forPath(ctx.spark, ctx.path)
            .alias("t")
            .merge(source.alias("s"), cond)
            .whenMatchedDelete(condition=is_delete & newer)
            .whenMatchedUpdateAll(condition=~is_delete & newer)
            .whenNotMatchedInsertAll(condition=~is_delete)
            .execute()
        )
    return committed(ctx)


def overwrite(ctx: RunContext, rows: DataFrame, plan: BatchPlan, exists: bool) -> Commit:
    """The one data commit of a full load: the table replaced by ``rows``. The commit carries
    the load's generation and watermark, so the switch to the new generation is part of it
    (a run that dies before :func:`generation` is recovered from the commit)."""
    rows = rows.select(*data_columns(rows.columns), *BOOKKEEPING_COLUMNS)
    if not exists:
        tables.create(ctx.spark, ctx.path, rows.schema, ctx.parts)
    watermark = plan.stats.min_ts.isoformat() if plan.stats.min_ts else None
    meta = {"generation": ctx.run_id, "watermark": watermark}
    with tables.commit_metadata(ctx.spark, ctx.run_id, len(plan.files), **meta):
        (
            rows.write.format("delta")
            .mode("overwrite")
            .option("overwriteSchema", "true")
            .partitionBy(*ctx.parts)
            .save(ctx.path)
        )
    return committed(ctx)


def committed(ctx: RunContext) -> Commit:
    """The commit just made, with the manifests of the partitions it touched brought up to
    date (Spectrum reads them)."""
    commit = tables.last_commit(ctx.spark, ctx.path)
    manifest.update(ctx.spark, ctx.path, commit.actions)
    return commit


def generation(ctx: RunContext, plan: BatchPlan) -> None:
    """After a full load's data commit: its generation starts in the ledger; its watermark is
    the load's timestamp (changes older than it are already in the load)."""
    record_generation(ctx.state, ctx.run_id, plan.stats.min_ts, ctx.run_id)


def ledger(
    ctx: RunContext,
    generation: str | None,
    plan: BatchPlan,
    commit: Commit | None,
    frontier: datetime | None = None,
) -> None:
    """Record the batch's files as applied (in the current generation), and for an
    incremental run the hour from which the next run must look for unapplied files."""
    version = commit.version if commit else None
    record_files(ctx.state, generation, plan.files, ctx.run_id, version, frontier)


def merge_condition(
    keys: Sequence[str],
    partitions: Sequence[str],
    partition_values: Sequence[dict[str, Any]],
    key_range: tuple[object, object] | None = None,
) -> Column:
    """The MERGE ON condition: key equality plus constant predicates on the target, so Delta
    prunes partitions (``t.p IN (...)``) and files (min/max of the first key column)."""
    cond = F.col(f"t.{keys[0]}") == F.col(f"s.{keys[0]}")
    for k in keys[1:]:
        cond = cond & (F.col(f"t.{k}") == F.col(f"s.{k}"))
    if partitions:
        # No partition cannot match anything (never the case when a change is effective).
        pred = "false"
        if partition_values:
            pred = partition_predicate(partitions, partition_values, "t.", in_list=True)
        cond = cond & F.expr(pred)
    if key_range is not None and key_range[0] is not None:
        lo, hi = key_range
        cond = cond & F.col(f"t.{keys[0]}").between(F.lit(lo), F.lit(hi))
    return cond
