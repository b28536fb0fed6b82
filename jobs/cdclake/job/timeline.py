"""The history's transforms, pure ``DataFrame -> DataFrame`` (no I/O): a set of changes as
every key's timeline of versions (:func:`timeline`), and what of it to write given the versions
the history holds (:func:`worklist`). :mod:`cdclake.job.history` reads and writes around them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.core.columns import (
    BOOKKEEPING_COLUMNS,
    COMMIT_TS,
    HISTORY_COLUMNS,
    IS_CURRENT,
    OP,
    ORDER_COLUMNS,
    VALID_FROM,
    VALID_TO,
)
from cdclake.lake.history import history_columns

# Where a change came from; of copies of one change (same order) the highest counts, so a
# change the log already holds is not logged again.
ORIGIN = "_cdc_origin"
BATCH, HELD, LOGGED = 0, 1, 2
VERSION = "_cdc_version"  # the newest change of a version (a history row)
ACTION = "_cdc_history_action"  # upsert | delete (MERGE source) | moved | log
UPSERT, DELETE, MOVED, LOG = "upsert", "delete", "moved", "log"
JOIN_ON = "_cdc_join_from"  # a version's _valid_from; null on a change that is not a version


def conform(df: DataFrame, fields: Sequence[T.StructField], extra: Sequence[str]) -> DataFrame:
    """``df`` as the source ``fields`` (cast; null where it lacks one), the bookkeeping
    columns and ``extra`` (kept as they are)."""
    cols = [
        (F.col(f.name) if f.name in df.columns else F.lit(None)).cast(f.dataType).alias(f.name)
        for f in fields
    ]
    return df.select(*cols, *BOOKKEEPING_COLUMNS, *extra)


def timeline(changes: DataFrame, keys: Sequence[str], tracked: Sequence[str]) -> DataFrame:
    """Every key's timeline from its changes (source columns, ``_cdc_*``, ``_cdc_origin``):
    one row per key and commit time (the last change of that instant), with its version's
    ``_valid_from``/``_valid_to``/``_is_current`` and ``_cdc_version`` true on the row that
    is a version's newest change (the history row). One shuffle by key, one sort."""
    w = Window.partitionBy(*keys).orderBy(*ORDER_COLUMNS, ORIGIN)
    collapsed = changes.withColumn("_cdc_next_ts", F.lead(COMMIT_TS).over(w)).where(
        F.col("_cdc_next_ts").isNull() | (F.col("_cdc_next_ts") != F.col(COMMIT_TS))
    )
    prev = F.lag(F.struct(F.col(OP), *(F.col(c).alias(f"c{i}") for i, c in enumerate(tracked))))
    prev = prev.over(w)
    same = functools.reduce(
        Column.__and__,
        (prev[f"c{i}"].eqNullSafe(F.col(c)) for i, c in enumerate(tracked)),
        F.lit(True),
    )
    deleted = F.col(OP) == "D"
    opens = ~deleted & (prev.isNull() | (prev[OP] == "D") | ~same)
    marked = collapsed.withColumn("_cdc_starts", opens | deleted)
    start_ts = F.when(F.col("_cdc_starts"), F.col(COMMIT_TS))
    before = w.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    after = w.rowsBetween(1, Window.unboundedFollowing)
    out = marked.select(
        *changes.columns,
        F.last(start_ts, ignorenulls=True).over(before).alias(VALID_FROM),
        F.first(start_ts, ignorenulls=True).over(after).alias(VALID_TO),
        (~deleted & F.coalesce(F.lead("_cdc_starts").over(w), F.lit(True))).alias(VERSION),
    )
    return out.withColumn(IS_CURRENT, F.col(VALID_TO).isNull())


def worklist(
    tl: DataFrame, old: DataFrame | None, keys: Sequence[str], data: Sequence[str]
) -> DataFrame:
    """What to write: the recomputed versions that the history lacks or holds otherwise
    (``upsert``), the history's versions that are no more (``delete``) or whose row changes
    (``moved``: only their partition matters, for pruning), and the changes to log.

    One pass over ``tl``: each of its rows becomes at most one version to write and one
    change to log (a union of two filters of it would compute the timeline twice)."""
    cols = history_columns(data)
    version = F.col(VERSION)

    def tagged(row: Column, action: Column) -> Column:
        return F.struct(*(row[c].alias(c) for c in cols), action.alias(ACTION))

    # A change to log keeps its values and order, not a version's interval (null).
    blank = {c: F.lit(None).cast(tl.schema[c].dataType) for c in HISTORY_COLUMNS}
    logged = F.struct(*(blank.get(c, F.col(c)).alias(c) for c in cols), F.lit(LOG).alias(ACTION))
    to_log = F.when(~version & (F.col(ORIGIN) != LOGGED), logged).alias("_cdc_log")
    if old is None:
        rows = tl.select(
            F.when(version, tagged(F.struct(*cols), F.lit(UPSERT))).alias("_up"), to_log
        )
        items = [F.col("_up"), F.col("_cdc_log")]
    else:
        # One full outer join on key and _valid_from instead of two set differences: each
        # side is shuffled once (a version equal to the one held writes nothing). Changes to
        # log join nothing: their join column is null.
        ids = [*keys, JOIN_ON]
        new = tl.select(
            *keys,
            F.when(version, F.col(VALID_FROM)).alias(JOIN_ON),
            F.when(version, F.struct(*cols)).alias("_cdc_new"),
            to_log,
        )
        held = old.select(
            *keys, F.col(VALID_FROM).alias(JOIN_ON), F.struct(*cols).alias("_cdc_held")
        )
        rows = new.join(held, ids, "full_outer")
        now, was = F.col("_cdc_new"), F.col("_cdc_held")
        differ = ~now.eqNullSafe(was)
        upsert = F.when(now.isNotNull() & differ, tagged(now, F.lit(UPSERT)))
        gone_or_moved = F.when(now.isNull(), F.lit(DELETE)).otherwise(F.lit(MOVED))
        replaced = F.when(was.isNotNull() & differ, tagged(was, gone_or_moved))
        items = [upsert, replaced, F.col("_cdc_log")]
    work = rows.select(F.explode(F.array(*items)).alias("_cdc_work"))
    return work.where(F.col("_cdc_work").isNotNull()).select("_cdc_work.*")
