"""The timed arms. Each applies one hourly batch to a fresh copy of the base table and returns
its wall time per phase (seconds). Nothing here checks results: see :mod:`bench.measure`.

Phases: ``startup`` (opening the table and bookkeeping), ``read`` (the batch's files),
``dedupe`` (latest change per key, classification), ``merge`` (the data commit, and for this
job the tombstones), ``manifest`` (symlink manifest for Redshift Spectrum), ``audit`` (ledger
and audit records). Lazy Spark steps are materialised (cached + counted) at the end of their
phase so the split is real; for the job the split is its own audit ``timings``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from bench.data import BATCH_HOUR, SOURCE_COLUMNS

log = logging.getLogger(__name__)
HOUR = timedelta(hours=1)
PHASES = ("startup", "read", "dedupe", "merge", "manifest", "audit")


class Laps:
    """Wall time per phase, in the order phases end."""

    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.phases = dict.fromkeys(PHASES, 0.0)

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] += now - self.t
        self.t = now


def ours(
    spark, config_path: Path, summary_path: Path, until: datetime = BATCH_HOUR + HOUR
) -> dict[str, float]:
    """This project's job, through its CLI entry point (audit included), warm session."""
    from cdclake.cli.merge import main

    args = [
        "--config",
        str(config_path),
        "--load",
        "incremental",
        "--until",
        f"{until:%Y-%m-%dT%H}",
    ]
    args += ["--summary-json", str(summary_path), "--log-level", "WARNING"]
    t0 = time.perf_counter()
    status = main(args, spark=spark)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"job exited {status}")
    rec = json.loads(summary_path.read_text())[0]
    tm = rec["timings"]
    phases = {
        "startup": tm.get("list", 0.0),
        "read": tm.get("read", 0.0),
        "dedupe": tm.get("dedupe", 0.0),
        # Delta refreshes the touched partitions' manifests inside the MERGE commit.
        "merge": tm.get("tombstones", 0.0) + tm.get("merge", 0.0),
        "manifest": 0.0,
        "audit": tm.get("ledger", 0.0) + max(0.0, wall - rec["duration_s"]),
    }
    return phases


def _latest(df, order: list[str]):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy("id").orderBy(*(F.col(c).desc() for c in order))
    return df.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")


def blog(spark, table: str, hour_folder: Path) -> dict[str, float]:
    """The original post: latest row per key by the DMS timestamp, MERGE joined on the key
    only (no sequence guard, no pruning), then a full symlink manifest regeneration."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    laps = Laps()
    dt = DeltaTable.forPath(spark, table)
    laps.lap("startup")
    raw = spark.read.parquet(str(hour_folder)).cache()
    raw.count()
    laps.lap("read")
    latest = _latest(raw, ["dms_commit_ts"]).cache()
    latest.count()
    laps.lap("dedupe")
    cols = {c: F.col(f"s.{c}") for c in SOURCE_COLUMNS}
    (
        dt.alias("t")
        .merge(latest.alias("s"), "t.id = s.id")
        .whenMatchedUpdate(condition="s.Op = 'U'", set=cols)
        .whenMatchedDelete(condition="s.Op = 'D'")
        .whenNotMatchedInsert(condition="s.Op = 'I'", values=cols)
        .execute()
    )
    laps.lap("merge")
    dt.generate("symlink_format_manifest")
    laps.lap("manifest")
    latest.unpersist()
    raw.unpersist()
    return laps.phases


def _bookkeeping(df):
    """Source columns + the job's bookkeeping columns, from raw DMS rows."""
    from pyspark.sql import functions as F

    return df.select(
        *SOURCE_COLUMNS,
        F.col("Op").alias("_cdc_op"),
        F.to_timestamp("dms_commit_ts").alias("_cdc_commit_ts"),
        F.col("dms_change_seq").alias("_cdc_change_seq"),
        F.regexp_extract(F.input_file_name(), r".*/bench/orders/(.*)$", 1).alias(
            "_cdc_source_file"
        ),
        F.lit(0).cast("long").alias("_cdc_row_pos"),
    )


def rewrite(spark, table: str, hour_folder: Path) -> dict[str, float]:
    """Full rewrite: every live row not changed by the batch, plus the batch's winners,
    overwrite the whole table (no manifest)."""
    laps = Laps()
    target = spark.read.format("delta").load(table)
    laps.lap("startup")
    raw = _bookkeeping(spark.read.parquet(str(hour_folder))).cache()
    raw.count()
    laps.lap("read")
    latest = _latest(raw, ["_cdc_commit_ts", "_cdc_change_seq"]).cache()
    latest.count()
    laps.lap("dedupe")
    kept = target.join(latest.select("id"), "id", "left_anti")
    new = latest.where("_cdc_op != 'D'").select(*target.columns)
    (
        kept.select(*target.columns)
        .unionByName(new)
        .write.format("delta")
        .mode("overwrite")
        .partitionBy("event_date")
        .save(table)
    )
    laps.lap("merge")
    latest.unpersist()
    raw.unpersist()
    return laps.phases


def delta_rs(table: str, files: list[Path]) -> dict[str, float]:
    """delta-rs (Rust, single process): the same deduplication and the same guarded, pruned
    MERGE as the job, then a full manifest regeneration (delta-rs has no incremental one)."""
    from deltalake import DeltaTable

    laps = Laps()
    dt = DeltaTable(table)
    laps.lap("startup")
    raw = pa.concat_tables(pq.read_table(f) for f in files)
    laps.lap("read")
    con = duckdb.connect()
    con.register("raw", raw)
    src = con.sql(
        f"""
        select {", ".join(SOURCE_COLUMNS)}, Op as _cdc_op,
               cast(dms_commit_ts as timestamp) as _cdc_commit_ts,
               dms_change_seq as _cdc_change_seq, '' as _cdc_source_file,
               cast(0 as bigint) as _cdc_row_pos
        from raw
        qualify row_number() over (partition by id order by dms_commit_ts desc,
                                   dms_change_seq desc) = 1
        """  # noqa: S608 - constant column names
    ).to_arrow_table()
    src = src.set_column(
        src.schema.get_field_index("_cdc_commit_ts"),
        "_cdc_commit_ts",
        src.column("_cdc_commit_ts").cast(pa.timestamp("us", tz="UTC")),
    )
    dates = sorted(set(src.column("event_date").to_pylist()))
    lo, hi = con.execute("select min(id), max(id) from src").fetchone()
    laps.lap("dedupe")
    in_dates = ", ".join(f"'{d}'" for d in dates)
    newer = (
        "(s._cdc_commit_ts > t._cdc_commit_ts OR (s._cdc_commit_ts = t._cdc_commit_ts "
        "AND s._cdc_change_seq > t._cdc_change_seq))"
    )
    (
        dt.merge(
            src,
            f"t.id = s.id AND t.event_date IN ({in_dates}) AND t.id BETWEEN {lo} AND {hi}",
            source_alias="s",
            target_alias="t",
        )
        .when_matched_delete(predicate=f"s._cdc_op = 'D' AND {newer}")
        .when_matched_update_all(predicate=f"s._cdc_op != 'D' AND {newer}")
        .when_not_matched_insert_all(predicate="s._cdc_op != 'D'")
        .execute()
    )
    laps.lap("merge")
    DeltaTable(table).generate()  # the symlink manifest, all partitions
    laps.lap("manifest")
    return laps.phases


Arm = Callable[..., dict[str, float]]
