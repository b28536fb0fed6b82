"""One table's run, top to bottom: choose files -> (claim the table) -> read + validate ->
decide -> apply (quarantine, tombstones, the data commit, ledger) -> (release it); a table that
keeps a history has it written beside decide and the data commit, before the ledger. The audit
record it returns is appended by the command line (:mod:`cdclake.cli.merge`) right after.

Each table's data change is exactly one Delta commit. Bookkeeping writes come after it and are
idempotent, so a crash anywhere followed by a rerun converges to the same table.
"""

from __future__ import annotations

from contextlib import nullcontext

from pyspark.sql import DataFrame, SparkSession

from cdclake.core.columns import DELETE_ABSENT, STALE
from cdclake.core.config import PipelineConfig, TableConfig
from cdclake.core.records import NOOP, SUCCEEDED, AuditRecord, Stopwatch
from cdclake.job import apply, decide, history
from cdclake.job.context import RunContext, Target, expressions, open_target, writing
from cdclake.job.decide import BatchPlan
from cdclake.job.drift import fit_to_table
from cdclake.job.files import (
    Choice,
    Window,
    choose,
    list_cdc_files,
    list_load_files,
    listing_start,
    newest_load,
)
from cdclake.job.read import Batch, read_batch
from cdclake.lake.lease import busy, is_conflict
from cdclake.lake.ledger import applied_files
from cdclake.lake.tables import Commit

FULL, INCREMENTAL = "full", "incremental"


class NoInputError(RuntimeError):
    """A full load found no LOAD files for the table."""


class NotLoadedError(RuntimeError):
    """An incremental run on a table that never had a completed full load."""


def run_table(
    spark: SparkSession,
    cfg: PipelineConfig,
    table: TableConfig,
    run_id: str,
    window: Window | None,
) -> AuditRecord:
    """A full load (``window`` None) or an incremental run of ``window``."""
    ctx = RunContext.of(spark, cfg, table, run_id)
    try:
        return run_full(ctx) if window is None else run_incremental(ctx, window)
    except Exception as exc:
        if is_conflict(exc):
            raise busy(ctx.name, f"Delta: {type(exc).__name__}", cfg.merge.lease_minutes) from exc
        raise


def start_record(run_id: str, table: TableConfig, window: Window | None) -> AuditRecord:
    if window is None:
        return AuditRecord.start(run_id, table.qualified_name, FULL)
    return AuditRecord.start(run_id, table.qualified_name, INCREMENTAL, window.until, window.since)


def run_incremental(ctx: RunContext, window: Window) -> AuditRecord:
    rec, clock = start_record(ctx.run_id, ctx.table, window), Stopwatch()
    target = open_target(ctx)
    require_full_load(ctx, target)
    choice = choose_files(ctx, target, window)
    clock.lap("list")
    if not choice.files:
        return finished(rec.but(status=NOOP, deferred_files=choice.deferred), clock)
    with writing(ctx):
        if target.ledger_changed(ctx):  # another run applied files meanwhile
            choice = choose_files(ctx, target, window)
        with (
            expressions(ctx, target, choice.files),
            read_batch(ctx.spark, ctx.table, ctx.cfg.dms, choice.files) as batch,
        ):
            clock.lap("read")
            keeping = ctx.table.history
            with (
                history.alongside(ctx, target, batch, choice.files) if keeping else nullcontext(),
                decide.staged(ctx.spark, classify(ctx, target, batch), ctx.staging) as staged,
            ):
                plan = decide.plan_batch(staged, choice.files, batch.stats, ctx.keys, ctx.parts)
                clock.lap("dedupe")
                apply.quarantine(ctx, batch.bad, plan)
                apply.tombstones(ctx, staged, plan)
                clock.lap("tombstones")
                commit = apply.merge(ctx, staged, plan, target.exists)
                clock.lap("merge")
            if keeping:  # the time the history took beyond the live table's steps
                clock.lap("history")
        apply.ledger(ctx, target.ledger.generation, plan, commit, choice.frontier)
        clock.lap("ledger")
    return finished(applied(rec, plan, commit).but(deferred_files=choice.deferred), clock)


def run_full(ctx: RunContext) -> AuditRecord:
    rec, clock = start_record(ctx.run_id, ctx.table, None), Stopwatch()
    target = open_target(ctx)
    files = list_load_files(ctx.spark, ctx.raw_location, ctx.cfg.dms)
    if not files:
        raise NoInputError(f"{ctx.name}: no LOAD files under {ctx.raw_location}")
    files = newest_load(ctx.spark, files, ctx.cfg.dms, ctx.name)
    clock.lap("list")
    with (
        writing(ctx),
        expressions(ctx, target, files),
        read_batch(ctx.spark, ctx.table, ctx.cfg.dms, files) as batch,
    ):
        clock.lap("read")
        rows, stale = decide.load_winners(ctx, batch.good, target)
        plan = BatchPlan(tuple(files), batch.stats, counts={STALE: stale})
        clock.lap("dedupe")
        apply.quarantine(ctx, batch.bad, plan)
        commit = apply.overwrite(ctx, rows, plan, target.exists)
        apply.generation(ctx, plan)
        clock.lap("merge")
        if ctx.table.history:
            history.apply(ctx, target, batch, files)
            clock.lap("history")
        apply.ledger(ctx, ctx.run_id, plan, commit)
        clock.lap("ledger")
    return finished(loaded(rec, plan, commit), clock)


def classify(ctx: RunContext, target: Target, batch: Batch) -> DataFrame:
    """The batch's valid changes fitted to the table and classified against it."""
    upserts = any(batch.stats.records_by_op.get(op) for op in ("I", "U"))
    good = fit_to_table(ctx.spark, batch.good, ctx.path, target.exists, ctx.table, upserts)
    return decide.classify(ctx, good, target, batch.stats)


def require_full_load(ctx: RunContext, target: Target) -> None:
    """CDC alone misses every row that existed before replication started: an incremental
    run needs a completed full load first, unless the table is configured to start from CDC."""
    if target.ledger.generation or ctx.table.start_from == "cdc":
        return
    raise NotLoadedError(
        f"{ctx.name} has never had a completed full load, so CDC files alone would leave out "
        "every row that existed before replication started. Load it first: trigger the "
        f'cdclake_full_load DAG with {{"tables": ["{ctx.name}"]}} (or run cdc_merge.py '
        f"--load full --tables {ctx.name}); for a table that starts from CDC on purpose, set "
        "start_from: cdc in its config"
    )


def choose_files(ctx: RunContext, target: Target, window: Window) -> Choice:
    """The window's files from the listing the frontier bounds, minus those applied."""
    ledger, merge = target.ledger, ctx.cfg.merge
    start = listing_start(window, ledger.frontier, ledger.watermark, merge.lookback_hours)
    listed = list_cdc_files(ctx.spark, ctx.raw_location, ctx.cfg.dms, start)
    applied = applied_files(ctx.state, ledger.generation, start)
    caps = (merge.max_files_per_run, merge.max_hours_per_run)
    return choose(window, listed, applied, ledger.watermark, ledger.frontier, caps)


def described(rec: AuditRecord, plan: BatchPlan) -> AuditRecord:
    """The record with what was read."""
    s = plan.stats
    return rec.but(
        files=len(plan.files),
        hours=plan.hours,
        records=s.records,
        records_by_op=s.records_by_op,
        quarantined=s.quarantined,
        newest_change_ts=s.newest_ts,
        stale_skipped=plan.count(STALE),
    )


def applied(rec: AuditRecord, plan: BatchPlan, commit: Commit | None) -> AuditRecord:
    """The record of a successful incremental run (row counts from Delta's metrics)."""
    return described(rec, plan).but(
        status=SUCCEEDED,
        deletes_of_absent_keys=plan.count(DELETE_ABSENT),
        duplicates_collapsed=plan.duplicates_collapsed,
        rows_inserted=commit.metric("numTargetRowsInserted") if commit else 0,
        rows_updated=commit.metric("numTargetRowsUpdated") if commit else 0,
        rows_deleted=commit.metric("numTargetRowsDeleted") if commit else 0,
        delta_version=commit.version if commit else None,
    )


def loaded(rec: AuditRecord, plan: BatchPlan, commit: Commit) -> AuditRecord:
    """The record of a successful full load."""
    inserted = commit.metric("numOutputRows")
    return described(rec, plan).but(
        status=SUCCEEDED,
        rows_inserted=inserted,
        duplicates_collapsed=plan.stats.valid - inserted - plan.count(STALE),
        delta_version=commit.version,
    )


def finished(rec: AuditRecord, clock: Stopwatch) -> AuditRecord:
    return rec.but(duration_s=clock.elapsed, timings=dict(clock.timings))
