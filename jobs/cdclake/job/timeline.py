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
    (``moved``: only their partition matters, for pruning), and the changes to log."""
    cols = history_columns(data)
    versions = tl.where(F.col(VERSION)).select(*cols)
    to_log = tl.where(~F.col(VERSION) & (F.col(ORIGIN) != LOGGED))
    to_log = to_log.select(*data, *BOOKKEEPING_COLUMNS, F.lit(LOG).alias(ACTION))
    if old is None:
        ups = versions.withColumn(ACTION, F.lit(UPSERT))
        return ups.unionByName(to_log, allowMissingColumns=True)
    # One full outer join on key and _valid_from instead of two set differences: each side
    # is shuffled once (a version equal to the one held writes nothing).
    ids = [*keys, VALID_FROM]
    new = versions.select(*ids, F.struct(*cols).alias("_cdc_new"))
    held = old.select(*ids, F.struct(*cols).alias("_cdc_held"))
    both = new.join(held, ids, "full_outer")
    now, was = F.col("_cdc_new"), F.col("_cdc_held")
    differ = ~now.eqNullSafe(was)

    def tagged(row: Column, action: Column) -> Column:
        return F.struct(*(row[c].alias(c) for c in cols), action.alias(ACTION))

    upsert = F.when(now.isNotNull() & differ, tagged(now, F.lit(UPSERT)))
    gone_or_moved = F.when(now.isNull(), F.lit(DELETE)).otherwise(F.lit(MOVED))
    replaced = F.when(was.isNotNull() & differ, tagged(was, gone_or_moved))
    rows = both.select(F.explode(F.array(upsert, replaced)).alias("_cdc_work"))
    rows = rows.where(F.col("_cdc_work").isNotNull()).select("_cdc_work.*")
    return rows.unionByName(to_log, allowMissingColumns=True)
