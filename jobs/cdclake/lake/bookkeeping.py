"""Bookkeeping Delta tables kept beside each lake table (never queried by analysts).

- ledger (:mod:`cdclake.lake.ledger`): which raw files have been applied, per full-load
  generation; lease (:mod:`cdclake.lake.lease`): which run may write the table now;
- tombstones: key and change order of deleted rows, so an older change replayed later cannot
  bring a row back (append-only; the newest per key counts);
- quarantine: rows that could not be applied, with the reason and source file;
- audit: one row per table per run (shared by all tables).

All writes are idempotent (MERGE on natural keys, or appends whose readers ignore repeats) or
append-only records of a run, so a crash between any two of them followed by a rerun converges
to the same state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.core.columns import OP, ORDER_COLUMNS
from cdclake.core.config import PipelineConfig, TableConfig
from cdclake.core.records import AuditRecord, spark_schema
from cdclake.lake import tables
from cdclake.lake.order import ORDER_FIELDS, order_key
from cdclake.session import setting

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("reason", T.StringType(), False),
        T.StructField("source_file", T.StringType(), False),
        T.StructField("row_pos", T.LongType(), True),
        T.StructField("record", T.StringType(), True),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("quarantined_at", T.TimestampType(), False),
    ]
)

# The audit table's columns are the fields of the record (one definition).
AUDIT_SCHEMA = spark_schema(AuditRecord)


# A plain Parquet read of more than this many files lists them with a Spark job (Spark's
# default threshold: 32); a bookkeeping table has at most COMPACT_AT_FILES, which the driver
# lists faster.
_LIST_ON_DRIVER = "spark.sql.sources.parallelPartitionDiscovery.threshold"


def read_delta(spark: SparkSession, path: str, schema: T.StructType) -> DataFrame:
    """A bookkeeping table's newest version (see :func:`read_counted`)."""
    return read_counted(spark, path, schema)[0]


def read_counted(spark: SparkSession, path: str, schema: T.StructType) -> tuple[DataFrame, int]:
    """A bookkeeping table's newest version and how many data files it has (for the
    compaction threshold), or an empty frame of ``schema`` and 0 when it does not exist yet.
    Read as plain Parquet when that version's checksum lists its files (see
    :func:`cdclake.lake.tables.checksum_files`: no state rebuild, ~1 s less per read), else
    through Delta."""
    version = tables.head_version(spark, path)
    if version < 0:
        return spark.createDataFrame([], schema), 0
    files = tables.checksum_files(spark, path, version)
    if files is None:
        return spark.read.format("delta").load(path), tables.files_now(spark, path)
    if not files.uris:
        return spark.createDataFrame([], files.schema), 0
    with setting(spark, _LIST_ON_DRIVER, str(max(32, len(files.uris) + 1))):
        return spark.read.schema(files.schema).parquet(*files.uris), len(files.uris)


# Every run appends a small file to the ledger (and often the tombstones), and the job reads
# both on every run: it compacts them itself once they reach this many files, so its reads stay
# flat between the daily maintenance runs. (Delta's auto-compaction would do the same, but its
# post-commit check rebuilds the table state after every append: ~1 s per table per run.)
COMPACT_AT_FILES = 50


def append(df: DataFrame, path: str) -> None:
    df.write.format("delta").mode("append").save(path)


def compact(spark: SparkSession, path: str) -> int:
    """Rewrite a small bookkeeping table's files into one (the old ones stay until VACUUM);
    returns how many files it replaced."""
    row = DeltaTable.forPath(spark, path).optimize().executeCompaction().first()
    metrics = row["metrics"] if row is not None else None
    return int(metrics["numFilesRemoved"] or 0) if metrics is not None else 0


def local_frame(spark: SparkSession, rows: Sequence[tuple], schema: T.StructType) -> DataFrame:
    """A one-partition DataFrame of a few driver-side rows, built in the JVM.

    ``spark.createDataFrame(list)`` ships pickled rows to Python workers and splits them over
    ``spark.default.parallelism`` partitions: ~1 s and up to 8 tiny files per bookkeeping
    append. Here the rows travel as JSON strings and are parsed against ``schema`` (FAILFAST:
    a value that does not fit fails instead of becoming null). Naive datetimes are local time,
    as in ``createDataFrame``; ints are accepted for double columns.
    """
    names = schema.fieldNames()
    jvm: Any = spark.sparkContext._jvm
    # One JSON array for all rows (Spark's JSON reader makes a row of each element): a py4j
    # round trip per row (a run records ~60 files an hour per table) cost more than the append.
    lines = jvm.java.util.ArrayList()
    if rows:
        lines.add(json.dumps([dict(zip(names, row)) for row in rows], default=_json_value))
    jspark = spark._jsparkSession
    encoders = jvm.org.apache.spark.sql.Encoders
    jschema = jspark.parseDataType(schema.json())
    parsed = (
        jspark.read()
        .schema(jschema)
        .option("mode", "FAILFAST")
        .json(jspark.createDataset(lines, encoders.STRING()))
        .coalesce(1)
    )
    # JSON makes every column nullable; re-apply the schema so NOT NULL columns stay so.
    return DataFrame(jspark.createDataFrame(parsed.rdd(), jschema), spark)


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.astimezone()).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} to a bookkeeping table")


class TableState:
    """The bookkeeping of one lake table."""

    def __init__(self, spark: SparkSession, cfg: PipelineConfig, table: TableConfig) -> None:
        self.spark, self.table = spark, table
        self.ledger_path = cfg.state_location(table, "ledger")  # see cdclake.lake.ledger
        self.lease_path = cfg.state_location(table, "writer")  # see cdclake.lake.lease
        self.tombstone_path = cfg.state_location(table, "tombstones")
        self.quarantine_path = cfg.state_location(table, "quarantine")
        # Scratch files of running runs (see cdclake.job.decide.staged); not a Delta table.
        self.staging_path = cfg.state_location(table, "staging")
        # Files in the ledger / tombstones as last read by this run.
        self._files: dict[str, int] = {}

    def read(self, path: str, schema: T.StructType) -> DataFrame:
        """A bookkeeping table (:func:`read_counted`), remembering its file count."""
        df, self._files[path] = read_counted(self.spark, path, schema)
        return df

    def append_rows(self, path: str, df: DataFrame) -> None:
        """Append to a bookkeeping table; compact it when it reaches COMPACT_AT_FILES files."""
        append(df, path)
        files = self._files.get(path)
        if files is not None:
            self._files[path] = files + 1
            if files + 1 >= COMPACT_AT_FILES:
                compact(self.spark, path)
                self._files[path] = 1

    # ---- tombstones ---------------------------------------------------------------------
    def tombstones(self, key_schema: T.StructType, of: DataFrame | None = None) -> DataFrame:
        """The newest tombstone of each deleted key (keys + order columns).

        The table is append-only (one row per applied delete), so a key may hold several
        tombstones, and one older than a later re-insert: only the newest counts, and a
        superseded one is harmless because the live row is newer still. ``of``: restrict to
        the keys of this frame before aggregating (the batch's keys).
        """
        schema = T.StructType([*key_schema.fields, *ORDER_FIELDS])
        keys = list(key_schema.fieldNames())
        tombs = self.read(self.tombstone_path, schema)
        if of is not None:
            tombs = tombs.join(of.select(*keys), keys, "left_semi")
        newest = F.max(order_key()).alias("_cdc_d_order")
        return tombs.groupBy(*keys).agg(newest).select(*keys, "_cdc_d_order.*")

    def apply_tombstones(self, changes: DataFrame, keys: Sequence[str]) -> None:
        """Record the batch's deletes (``_cdc_op = 'D'``) as tombstones: an append, no MERGE.

        ``changes`` holds the batch's non-stale winners: keys, ``_cdc_op`` and order columns.
        A rerun after a crash appends the same rows again; readers take the newest per key, so
        duplicates change nothing, and maintenance compacts and expires them.
        """
        rows = changes.where(F.col(OP) == "D").select(*keys, *ORDER_COLUMNS)
        self.append_rows(self.tombstone_path, rows)

    # ---- quarantine ---------------------------------------------------------------------
    def quarantine(self, bad: DataFrame, run_id: str) -> None:
        """Add quarantined rows once: a rerun over the same files adds nothing."""
        rows = bad.select(
            "reason",
            "source_file",
            "row_pos",
            "record",
            F.lit(run_id).alias("run_id"),
            F.current_timestamp().alias("quarantined_at"),
        )
        if not DeltaTable.isDeltaTable(self.spark, self.quarantine_path):
            append(rows, self.quarantine_path)
            return
        (
            DeltaTable.forPath(self.spark, self.quarantine_path)
            .alias("t")
            .merge(
                rows.alias("s"),
                "t.source_file = s.source_file AND t.row_pos <=> s.row_pos "
                "AND t.record <=> s.record",
            )
            .whenNotMatchedInsertAll()
            .execute()
        )


def prepare_audit(spark: SparkSession, cfg: PipelineConfig) -> None:
    """Create the audit table, or add the record's newer columns to it, before the run's
    tables append to it side by side (appends that change the schema would conflict). Only
    metadata commits: no data file."""
    path = cfg.audit_location
    if not DeltaTable.isDeltaTable(spark, path):
        DeltaTable.createIfNotExists(spark).location(path).addColumns(AUDIT_SCHEMA).execute()
        return
    have = set(spark.read.format("delta").load(path).columns)
    missing = [f for f in AUDIT_SCHEMA.fields if f.name not in have]
    if missing:
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({columns})")


def append_audit(spark: SparkSession, cfg: PipelineConfig, records: Sequence[AuditRecord]) -> None:
    """Append audit records (the command line appends each table's right after its run, after
    :func:`prepare_audit`: the table has every column of the record, so the appends of tables
    side by side are blind appends that never conflict; a schema that still differs fails)."""
    df = local_frame(spark, [r.to_row() for r in records], AUDIT_SCHEMA)
    append(df, cfg.audit_location)
