"""Step 3, decide: keep the newest change per key, classify it against what the lake holds
(insert, update, delete, delete of an absent key, stale), and summarise the batch as a
:class:`BatchPlan` that the write steps follow.

The classified batch is staged once as Parquet (:func:`staged`): the plan, the tombstones and
the MERGE read those immutable files, so no commit can make Spark recompute the decision.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.core.columns import (
    COMMIT_TS,
    DELETE,
    DELETE_ABSENT,
    EFFECTIVE,
    INSERT,
    OP,
    ORDER_COLUMNS,
    STALE,
    STATUS,
    UPDATE,
    target_column,
)
from cdclake.core.dms import RawFile
from cdclake.job.context import RunContext, Target
from cdclake.job.read import ReadStats
from cdclake.lake.fs import remove_if_empty, remove_tree
from cdclake.lake.order import order_key


@dataclass(frozen=True)
class BatchPlan:
    """Everything the write steps need to know about a batch, decided before any write."""

    files: tuple[RawFile, ...]
    stats: ReadStats
    counts: Mapping[str, int]  # winning changes by status
    partitions: tuple[dict[str, Any], ...] = ()  # partition values the MERGE may touch
    key_range: tuple[Any, Any] | None = None  # first key column of the effective changes

    def count(self, status: str) -> int:
        return int(self.counts.get(status, 0))

    @property
    def hours(self) -> tuple[str, ...]:
        return hours_of(self.files)

    @property
    def deletes(self) -> int:
        """Deletes to record as tombstones (also of keys the table lacks)."""
        return self.count(DELETE) + self.count(DELETE_ABSENT)

    @property
    def changes_table(self) -> bool:
        return any(self.count(s) for s in EFFECTIVE)

    @property
    def duplicates_collapsed(self) -> int:
        return self.stats.valid - sum(self.counts.values())


def hours_of(files: Sequence[RawFile]) -> tuple[str, ...]:
    return tuple(sorted({f"{f.hour:%Y-%m-%dT%H}" for f in files if f.hour is not None}))


def latest_per_key(changes: DataFrame, keys: Sequence[str]) -> DataFrame:
    """Keep only the newest change of each key (by the full change order)."""
    w = Window.partitionBy(*keys).orderBy(*(F.col(c).desc() for c in ORDER_COLUMNS))
    return (
        changes.withColumn("_cdc_rank", F.row_number().over(w))
        .where(F.col("_cdc_rank") == 1)
        .drop("_cdc_rank")
    )


def classify_against_target(
    winners: DataFrame,
    current: DataFrame,
    tombstones: DataFrame,
    keys: Sequence[str],
    partitions: Sequence[str],
    watermark: object | None = None,
) -> DataFrame:
    """Tag each winning change with its effect on the table (a ``_cdc_status`` column).

    ``current``: the target's live rows (keys, partitions, order columns) for the batch's keys;
    ``tombstones``: keys and order of deleted rows (at most one per key: the newest). A change
    is stale when the table or a tombstone already holds a change at least as new, or when it
    is older than the last full load (``watermark``). The target's partition values come back
    as ``_cdc_t_<col>``.
    """
    t = current.select(
        *keys,
        *(F.col(p).alias(target_column(p)) for p in partitions),
        order_key().alias("_cdc_t_order"),
    )
    d = tombstones.select(*keys, order_key().alias("_cdc_d_order"))
    joined = winners.join(t, list(keys), "left").join(d, list(keys), "left")
    newer = order_key()
    # A tombstone equal to the change is that same delete, recorded before the data commit
    # of a run that then crashed: the delete must still be applied, hence the strict ">".
    stale = (F.col("_cdc_t_order").isNotNull() & (F.col("_cdc_t_order") >= newer)) | (
        F.col("_cdc_d_order").isNotNull() & (F.col("_cdc_d_order") > newer)
    )
    if watermark is not None:
        stale = stale | (F.col(COMMIT_TS) < F.lit(watermark))
    exists = F.col("_cdc_t_order").isNotNull()
    status = (
        F.when(stale, F.lit(STALE))
        .when((F.col(OP) == "D") & exists, F.lit(DELETE))
        .when(F.col(OP) == "D", F.lit(DELETE_ABSENT))
        .when(exists, F.lit(UPDATE))
        .otherwise(F.lit(INSERT))
    )
    keep = [c for c in joined.columns if c not in ("_cdc_t_order", "_cdc_d_order")]
    return joined.select(*keep, status.alias(STATUS))


def newer_tombstones(winners: DataFrame, tombs: DataFrame, keys: Sequence[str]) -> DataFrame:
    """The keys of ``winners`` whose newest tombstone is newer than the winning row."""
    return (
        tombs.alias("d")
        .join(winners.alias("w"), list(keys), "inner")
        .where(order_key("d.") > order_key("w."))
        .select(*keys)
    )


def current_rows(
    spark: SparkSession,
    path: str,
    batch_keys: DataFrame,
    keys: Sequence[str],
    parts: Sequence[str],
    key_range: tuple[Any, Any],
) -> DataFrame:
    """The live target rows of the batch's keys (``batch_keys``: the key columns of the
    batch's rows, repeats allowed), where they are today.

    The first key's min/max lets Delta skip files by their statistics before the join.
    """
    target = spark.read.format("delta").load(path)
    if key_range[0] is not None:
        target = target.where(F.col(keys[0]).between(F.lit(key_range[0]), F.lit(key_range[1])))
    return target.select(*keys, *parts, *ORDER_COLUMNS).join(batch_keys, list(keys), "left_semi")


def empty_target(spark: SparkSession, batch: DataFrame, keys: Sequence[str], parts: Sequence[str]):
    """What :func:`current_rows` returns for a table that does not exist yet."""
    fields = [batch.schema[c] for c in [*keys, *parts, *ORDER_COLUMNS]]
    return spark.createDataFrame([], T.StructType(fields))


def key_schema(df: DataFrame, keys: Sequence[str]) -> T.StructType:
    return T.StructType([df.schema[k] for k in keys])


def classify(ctx: RunContext, good: DataFrame, target: Target, stats: ReadStats) -> DataFrame:
    """The batch's winners classified against the table as it is and the tombstones of
    their keys (changes older than the last full load are stale)."""
    winners = latest_per_key(good, ctx.keys)
    # The winners' keys are the batch's keys: taken from the batch (cached), the semi-joins
    # below do not make Spark compute the winners (a shuffle, a sort, a window) a second time.
    batch_keys = good.select(*ctx.keys)
    if target.exists:
        current = current_rows(
            ctx.spark, ctx.path, batch_keys, ctx.keys, ctx.parts, stats.key_range
        )
    else:
        current = empty_target(ctx.spark, good, ctx.keys, ctx.parts)
    tombs = ctx.state.tombstones(key_schema(good, ctx.keys), of=batch_keys)
    watermark = target.ledger.watermark
    return classify_against_target(winners, current, tombs, ctx.keys, ctx.parts, watermark)


def load_winners(ctx: RunContext, good: DataFrame, target: Target) -> tuple[DataFrame, int]:
    """A full load's rows: the newest per key, minus keys whose tombstone is newer (a delete
    committed after the load started, which an earlier generation already applied); with
    how many were dropped for that."""
    winners = latest_per_key(good, ctx.keys)
    if not target.exists:
        return winners, 0
    tombs = ctx.state.tombstones(key_schema(good, ctx.keys), of=good.select(*ctx.keys))
    newer = newer_tombstones(winners, tombs, ctx.keys)
    return winners.join(newer, ctx.keys, "left_anti"), newer.count()


def plan_batch(
    classified: DataFrame,
    files: Sequence[RawFile],
    stats: ReadStats,
    keys: Sequence[str],
    parts: Sequence[str],
) -> BatchPlan:
    """Status counts, the partitions the MERGE may touch and the key range it covers, in
    one pass over the batch (each extra action is a few Spark jobs)."""
    status = F.col(STATUS)
    effective = status.isin(*EFFECTIVE)
    first = F.col(keys[0])
    aggs = [
        F.count(F.lit(1)).alias("n"),
        F.min(F.when(effective, first)).alias("lo"),
        F.max(F.when(effective, first)).alias("hi"),
    ]
    if parts:
        # Where matched keys live today, and where upserts will put them.
        now = F.struct(*(F.col(target_column(p)).alias(p) for p in parts))
        after = F.struct(*(F.col(p) for p in parts))
        aggs += [
            F.collect_set(F.when(status.isin(UPDATE, DELETE), now)).alias("now"),
            F.collect_set(F.when(status.isin(INSERT, UPDATE), after)).alias("next"),
        ]
    rows = classified.groupBy(status).agg(*aggs).collect()
    los = [r["lo"] for r in rows if r["lo"] is not None]
    his = [r["hi"] for r in rows if r["hi"] is not None]
    found: set[tuple] = set()
    for r in rows if parts else []:
        found |= {tuple(v) for v in (*r["now"], *r["next"])}
    return BatchPlan(
        files=tuple(files),
        stats=stats,
        counts={r[STATUS]: r["n"] for r in rows},
        partitions=tuple(dict(zip(parts, v)) for v in sorted(found, key=str)),
        key_range=(min(los), max(his)) if los else None,
    )


@contextmanager
def staged(spark: SparkSession, df: DataFrame, path: str) -> Iterator[DataFrame]:
    """``df`` written once to a scratch folder of this run and read back.

    Everything after it (plan, tombstones, MERGE) reads these immutable files instead of a
    plan that scans the target and the tombstones: a commit to either would otherwise make
    Spark recompute a cached classification against the changed tables, and Delta's MERGE
    would materialize its source a second time. ``path`` is the run attempt's own folder,
    removed when the run ends (a dead run's is removed by a later run that claims the table,
    once the dead run's lease has expired: never a folder a live run may still read).
    """
    df.write.mode("overwrite").parquet(path)
    try:
        # The schema is known: no Spark job to infer it from the files' footers.
        yield spark.read.schema(df.schema).parquet(path)
    finally:
        remove_tree(spark, path)
        remove_if_empty(spark, path.rsplit("/", 1)[0])
