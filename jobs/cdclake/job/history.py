"""History (SCD type 2) for tables that keep one, written by the run that changes the live
table: alongside its decide and data commit, on a thread of its own, before the ledger
(:func:`alongside`; the first run with history on, and a full load, after the data commit).

The batch's changes (all of them, not only the newest per key), the versions the history holds
for the batch's keys and the change log's rows of those keys (:mod:`cdclake.lake.history`) are
taken as one set of changes, and the keys' timelines are rebuilt from it (:func:`timeline`):

- per key and commit time, the last change by the full change order counts (one transaction);
- walked in order, a change opens a version when the key has none (its first change, or the
  first after a delete) or when a tracked column differs from the previous change; any other
  change updates the version it falls in; a delete closes it;
- a version holds the values and ``_cdc_*`` columns of its newest change, ``_valid_from`` = the
  commit time of its first change, ``_valid_to`` = the next version's or the delete's (null
  while current).

Only rows that differ from what the history holds are written (:func:`worklist`): one MERGE on
key and ``_valid_from``, pruned to the partitions and key range of those rows, so a rerun, a
duplicate delivery or a backfill commits nothing, and a late change re-closes its neighbours.
The changes that are not the newest of a version go to the change log first (append-only), so
after a crash between the two the next run still finds every change.

A full load's rows are changes at the load's time: the first load opens each key's first
version; a reload opens one only where the row differs, and closes the current version of a
key the reload no longer has. The first run with history on starts it from the live table
(each row's version opens at the time of the change that wrote it) and the tombstones.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.core.columns import (
    BOOKKEEPING_COLUMNS,
    CHANGE_SEQ,
    COMMIT_TS,
    HISTORY_COLUMNS,
    IS_CURRENT,
    OP,
    ROW_POS,
    SEQ_WIDTH,
    SOURCE_FILE,
    VALID_FROM,
)
from cdclake.core.dms import LOAD, RawFile
from cdclake.job.apply import MATERIALIZE_SOURCE, merge_condition
from cdclake.job.beside import beside
from cdclake.job.context import RunContext, Target
from cdclake.job.decide import key_schema, staged
from cdclake.job.drift import fit_to_table
from cdclake.job.read import Batch
from cdclake.job.timeline import (
    ACTION,
    BATCH,
    DELETE,
    HELD,
    LOG,
    LOGGED,
    ORIGIN,
    UPSERT,
    conform,
    timeline,
    worklist,
)
from cdclake.lake import tables
from cdclake.lake.history import HistoryTable, history_columns
from cdclake.session import setting

log = logging.getLogger(__name__)


class HistoryColumnError(ValueError):
    """The table's columns do not fit its history settings (names the columns)."""


@contextmanager
def alongside(
    ctx: RunContext, target: Target, batch: Batch, files: Sequence[RawFile]
) -> Iterator[None]:
    """Bring the history up to date with the batch while the statements inside (the live
    table's decide and data commit) run, and wait for it however they end.

    The two are independent: the history is rebuilt from the batch's changes and what the
    history holds, not from the live table, and each commit is idempotent, so either may
    land first (the ledger, after both, is what makes the batch done). The history runs on
    a thread of its own with a clone of the run's session, so that neither changes settings
    the other reads (commit metadata, MERGE options). A history that has not started yet
    starts from the live table as this run leaves it: then it runs after the statements.
    An error of the history is raised once the statements have ended; theirs comes first.
    """
    if not HistoryTable.of(ctx.spark, ctx.cfg, ctx.table).started():
        yield
        apply(ctx, target, batch, files, started=False)
        return

    def run(spark: SparkSession) -> None:
        t0 = time.monotonic()
        apply(ctx.on(spark), target, batch, files, started=True)
        log.info("%s: history brought up to date in %.1f s", ctx.name, time.monotonic() - t0)

    with beside(ctx.spark, f"history {ctx.name}", run):
        yield


def apply(
    ctx: RunContext,
    target: Target,
    batch: Batch,
    files: Sequence[RawFile],
    started: bool | None = None,
) -> None:
    """Bring the history up to date with the batch (``started``: whether the history holds
    versions, when the caller knows)."""
    hist = HistoryTable.of(ctx.spark, ctx.cfg, ctx.table)
    hist.repair(target.ledger.finished_runs)
    full = files[0].kind == LOAD
    if started is None:
        started = hist.started()
    changes = fit(ctx, hist, batch, started)
    data = [c for c in changes.columns if c not in (*BOOKKEEPING_COLUMNS, ORIGIN)]
    tracked = tracked_columns(ctx, data)
    fields = [changes.schema[c] for c in data]
    everyone = full or not started
    keys = None if everyone else changes.select(*ctx.keys).distinct()
    old = hist.versions(keys, batch.stats.key_range) if started else None
    logged, log_files = hist.logged(keys, batch.stats.key_range)
    parts: list[DataFrame] = [changes]
    if not started:
        parts += seed(ctx)
    if old is not None:
        old = conform(old, fields, HISTORY_COLUMNS).persist(StorageLevel.MEMORY_AND_DISK)
        parts.append(old.withColumn(ORIGIN, F.lit(HELD)))
        if full:
            parts.append(reload_deletes(old, changes, ctx.keys, batch.stats.min_ts))
    if logged is not None:
        parts.append(logged.withColumn(ORIGIN, F.lit(LOGGED)))
    try:
        everything = functools.reduce(
            DataFrame.unionByName, (conform(p, fields, (ORIGIN,)) for p in parts)
        )
        work = worklist(timeline(everything, ctx.keys, tracked), old, ctx.keys, data)
        with staged(ctx.spark, work, f"{ctx.state.staging_path}/{ctx.attempt}.history") as w:
            write(ctx, hist, w, fields, log_files, len(files))
    finally:
        if old is not None:
            old.unpersist()


def fit(ctx: RunContext, hist: HistoryTable, batch: Batch, started: bool) -> DataFrame:
    """The batch's changes with the history's column types (the live table's before the
    history starts), its columns the files lack as nulls, and new source columns."""
    upserts = any(batch.stats.records_by_op.get(op) for op in ("I", "U"))
    table = dataclasses.replace(ctx.table, partition_by=hist.parts)
    path = hist.path if started else ctx.path
    exists = started or tables.exists(ctx.spark, path)
    good = fit_to_table(ctx.spark, batch.good, path, exists, table, upserts)
    data = [c for c in good.columns if c not in (*BOOKKEEPING_COLUMNS, *HISTORY_COLUMNS)]
    reserved = sorted(set(batch.good.columns) & set(HISTORY_COLUMNS))
    if reserved:
        raise HistoryColumnError(
            f"{ctx.name}: source column(s) {reserved} have the names of the history's own "
            "columns; rename them at the source or turn history off for the table"
        )
    return good.select(*data, *BOOKKEEPING_COLUMNS, F.lit(BATCH).alias(ORIGIN))


def tracked_columns(ctx: RunContext, data: Sequence[str]) -> list[str]:
    settings = ctx.table.history
    assert settings is not None  # run.py calls apply only for tables that keep a history
    unknown = sorted(set(settings.track_columns) - set(data))
    if unknown:
        raise HistoryColumnError(
            f"{ctx.name}: history.track_columns {unknown} are not columns of the table"
        )
    return settings.tracked(data, ctx.keys)


def seed(ctx: RunContext) -> list[DataFrame]:
    """Where a history starts: the live rows (each the change that wrote it) and the newest
    tombstone of each deleted key."""
    if not tables.exists(ctx.spark, ctx.path):  # a first batch that changed nothing
        return []
    live = ctx.spark.read.format("delta").load(ctx.path)
    tombs = ctx.state.tombstones(key_schema(live, ctx.keys)).withColumn(OP, F.lit("D"))
    return [live.withColumn(ORIGIN, F.lit(BATCH)), tombs.withColumn(ORIGIN, F.lit(BATCH))]


def reload_deletes(old: DataFrame, loaded: DataFrame, keys: Sequence[str], at: Any) -> DataFrame:
    """A reload's rows replace the table: a key with a current version that the reload does
    not have is deleted at the reload's time (before any change of that instant)."""
    gone = (
        old.where(F.col(IS_CURRENT))
        .select(*keys)
        .join(loaded.select(*keys), list(keys), "left_anti")
    )
    return gone.select(
        *keys,
        F.lit("D").alias(OP),
        F.lit(at).cast("timestamp").alias(COMMIT_TS),
        F.lit("0" * SEQ_WIDTH).alias(CHANGE_SEQ),
        F.lit("").alias(SOURCE_FILE),
        F.lit(-1).cast("long").alias(ROW_POS),
        F.lit(BATCH).alias(ORIGIN),
    )


@dataclasses.dataclass(frozen=True)
class Work:
    """How much a worklist holds, and where its versions are (for pruning)."""

    counts: dict[str, int]
    partitions: tuple[dict[str, Any], ...]
    key_range: tuple[Any, Any] | None

    @property
    def changes_history(self) -> bool:
        return bool(self.counts.get(UPSERT) or self.counts.get(DELETE))


def summarize(work: DataFrame, keys: Sequence[str], parts: Sequence[str]) -> Work:
    """Counts by action, partitions and key range of the versions written, in one pass."""
    first = F.col(keys[0])
    aggs = [F.count(F.lit(1)).alias("n"), F.min(first).alias("lo"), F.max(first).alias("hi")]
    if parts:
        aggs.append(F.collect_set(F.struct(*(F.col(p) for p in parts))).alias("parts"))
    rows = [r for r in work.groupBy(ACTION).agg(*aggs).collect()]
    versions = [r for r in rows if r[ACTION] != LOG]
    found = {tuple(v) for r in versions for v in r["parts"]} if parts else set()
    return Work(
        counts={r[ACTION]: int(r["n"]) for r in rows},
        partitions=tuple(dict(zip(parts, v)) for v in sorted(found, key=str)),
        key_range=(min(r["lo"] for r in versions), max(r["hi"] for r in versions))
        if versions
        else None,
    )


def write(
    ctx: RunContext,
    hist: HistoryTable,
    work: DataFrame,
    fields: Sequence[T.StructField],
    log_files: int,
    n_files: int,
) -> None:
    """Log the changes, then one MERGE of the versions; nothing when nothing differs."""
    data = [f.name for f in fields]
    todo = summarize(work, ctx.keys, hist.parts)
    with tables.commit_metadata(ctx.spark, ctx.run_id, n_files):
        if todo.counts.get(LOG):
            logged = work.where(F.col(ACTION) == LOG).select(*data, *BOOKKEEPING_COLUMNS)
            hist.append_log(logged, log_files)
        schema = hist.schema()
        if schema is None:  # also when empty: it is registered and validated like the table
            cols = [T.StructField(c, work.schema[c].dataType) for c in history_columns(data)]
            hist.create(T.StructType(cols))
        elif new := [f for f in fields if f.name not in schema.fieldNames()]:
            hist.add_columns(new)
        if todo.changes_history:
            cond = merge_condition(ctx.keys, hist.parts, todo.partitions, todo.key_range)
            cond = cond & (F.col(f"t.{VALID_FROM}") == F.col(f"s.{VALID_FROM}"))
            source = work.where(F.col(ACTION).isin(UPSERT, DELETE))
            with setting(ctx.spark, MATERIALIZE_SOURCE, "none"):
                hist.merge(source, cond, ACTION, history_columns(data))
            hist.committed()
    log.info(
        "%s: history: %d version(s) written, %d removed, %d change(s) logged",
        ctx.name,
        todo.counts.get(UPSERT, 0),
        todo.counts.get(DELETE, 0),
        todo.counts.get(LOG, 0),
    )
