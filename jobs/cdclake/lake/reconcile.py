"""Reconciliation: does the lake hold what the source held at one moment?

Some source changes never reach the lake as changes: PostgreSQL's TRUNCATE is not captured by
DMS, DMS ignores primary-key updates from PostgreSQL, and a task stopped at the wrong moment
can skip rows. This check compares a table's live rows with an **extract** of the source: a
folder of Parquet files per table (``<extract>/<schema>/<table>/``, read recursively), for
example a DMS full-load-only task writing to another prefix, or ``python -m capture init``
into another folder locally. Its moment (``as_of``) is given, or read from the newest DMS
timestamp column in the files (a DMS full load stamps every row with the task's start).

Per key, on the columns both sides have (minus ``drop_columns`` and DMS's columns), compared
by a SHA-256 of the row's values as text: equal, different, missing in the lake, extra in the
lake, or changed since (the lake's row or tombstone is newer than ``as_of``: not comparable,
counted apart). Nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cdclake.core.columns import COMMIT_TS
from cdclake.core.config import PipelineConfig, TableConfig
from cdclake.core.records import FAILED, SUCCEEDED, ReconcileRecord, Stopwatch
from cdclake.core.uris import join_uri
from cdclake.job.read import parse_dms_timestamp, source_columns
from cdclake.lake import tables
from cdclake.lake.bookkeeping import TableState

EQUAL, DIFFERENT, MISSING, EXTRA, CHANGED = (
    "equal",
    "different",
    "missing_in_lake",
    "extra_in_lake",
    "changed_since",
)
SAMPLES = 20


class ReconcileError(RuntimeError):
    """The extract cannot be compared (missing, no moment, no common columns)."""


@dataclass(frozen=True)
class Comparison:
    counts: dict[str, int]  # keys per status
    source_rows: int
    lake_rows: int
    samples: tuple[str, ...]


def row_hash(columns: Sequence[str]) -> Column:
    """SHA-256 of the values as text, in order; a null differs from every value."""
    parts = [F.coalesce(F.col(c).cast("string"), F.lit("\u0000")) for c in columns]
    return F.sha2(F.concat_ws("\u0001", *parts), 256)


def classify(
    source: DataFrame,
    lake: DataFrame,
    tombstones: DataFrame,
    keys: Sequence[str],
    columns: Sequence[str],
    as_of: datetime,
) -> DataFrame:
    """One row per key of either side: the key and its ``_status`` (see the module doc).
    ``lake`` holds live rows with ``_cdc_commit_ts``; ``tombstones`` the newest per key."""
    s = source.select(*keys, row_hash(columns).alias("_s"))
    lk = lake.select(*keys, row_hash(columns).alias("_l"), F.col(COMMIT_TS).alias("_lt"))
    t = tombstones.select(*keys, F.col(COMMIT_TS).alias("_tt"))
    joined = s.join(lk, list(keys), "full_outer").join(t, list(keys), "left")
    moment = F.lit(as_of).cast("timestamp")
    status = (
        F.when((F.col("_lt") > moment) | (F.col("_tt") > moment), F.lit(CHANGED))
        .when(F.col("_l").isNull(), F.lit(MISSING))
        .when(F.col("_s").isNull(), F.lit(EXTRA))
        .when(F.col("_s") != F.col("_l"), F.lit(DIFFERENT))
        .otherwise(F.lit(EQUAL))
    )
    present = (F.col("_s").isNotNull().cast("int"), F.col("_l").isNotNull().cast("int"))
    return joined.select(
        *keys, status.alias("_status"), present[0].alias("_in_s"), present[1].alias("_in_l")
    )


def compare(classified: DataFrame, keys: Sequence[str]) -> Comparison:
    """Counts per status and rows per side (one Spark job), up to 20 mismatched keys."""
    rows = (
        classified.groupBy("_status")
        .agg(F.count(F.lit(1)).alias("n"), F.sum("_in_s").alias("s"), F.sum("_in_l").alias("l"))
        .collect()
    )
    bad = classified.filter(F.col("_status").isin(DIFFERENT, MISSING, EXTRA))
    samples = tuple(
        json.dumps({**{k: r[k] for k in keys}, "status": r["_status"]}, default=str)
        for r in bad.orderBy(*keys).limit(SAMPLES).collect()
    )
    return Comparison(
        {r["_status"]: int(r["n"]) for r in rows},
        sum(int(r["s"] or 0) for r in rows),
        sum(int(r["l"] or 0) for r in rows),
        samples,
    )


def extract_moment(raw: DataFrame, timestamp_column: str) -> datetime:
    """The extract's moment: its newest DMS timestamp (a full load's task start)."""
    if timestamp_column not in raw.columns:
        raise ReconcileError(
            f"the extract has no '{timestamp_column}' column to take its moment from: give --as-of"
        )
    newest = raw.select(F.max(parse_dms_timestamp(F.col(timestamp_column)))).first()
    if newest is None or newest[0] is None:
        raise ReconcileError("the extract is empty or its timestamps unreadable: give --as-of")
    return newest[0]


def reconcile_table(
    spark: SparkSession,
    cfg: PipelineConfig,
    table: TableConfig,
    extract: str,
    as_of: datetime | None,
    run_id: str,
) -> ReconcileRecord:
    clock = Stopwatch()
    rec = ReconcileRecord(run_id, table.qualified_name, "reconcile", "running")
    folder = join_uri(extract, table.schema, table.name)
    try:
        raw = spark.read.option("recursiveFileLookup", "true").parquet(folder)
    except Exception as exc:  # noqa: BLE001 - Spark's AnalysisException: say which folder
        raise ReconcileError(f"cannot read the extract at {folder}: {exc}") from exc
    moment = as_of or extract_moment(raw, cfg.dms.timestamp_column)
    path = cfg.table_location(table)
    if not tables.exists(spark, path):
        raise ReconcileError(f"no lake table at {path}: load it first")
    lake = spark.read.format("delta").load(path)
    columns = [c for c in source_columns(raw.columns, table, cfg.dms) if c in lake.columns]
    if not columns:
        raise ReconcileError("the extract and the lake table have no column in common")
    keys = list(table.primary_key)
    key_schema = lake.select(*keys).schema
    tombs = TableState(spark, cfg, table).tombstones(key_schema)
    classified = classify(raw, lake, tombs, keys, columns, moment)
    result = compare(classified, keys)
    c = result.counts
    rec = rec.but(
        as_of=moment.isoformat(),
        columns_compared=tuple(columns),
        source_rows=result.source_rows,
        lake_rows=result.lake_rows,
        equal=c.get(EQUAL, 0),
        different=c.get(DIFFERENT, 0),
        missing_in_lake=c.get(MISSING, 0),
        extra_in_lake=c.get(EXTRA, 0),
        changed_since=c.get(CHANGED, 0),
        sample_keys=result.samples,
        duration_s=clock.elapsed,
    )
    if rec.mismatches:
        return rec.but(
            status=FAILED,
            error=f"{table.qualified_name}: the lake differs from the source as of "
            f"{moment.isoformat()}: {rec.missing_in_lake} key(s) missing in the lake, "
            f"{rec.extra_in_lake} extra, {rec.different} with other values (first: "
            f"{', '.join(result.samples[:3])}); see the README's source caveats",
        )
    return rec.but(status=SUCCEEDED)
