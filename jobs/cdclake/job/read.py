"""Step 2, read + validate: the batch's raw DMS files as one DataFrame of changes, each row
with its change order and, when it cannot be applied, the reason it is quarantined.

One pass over the batch (:func:`measure`) counts it and proves every file readable; a read
error names the file (or the column whose type differs across files).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.core.columns import (
    BAD_TIMESTAMP,
    BOOKKEEPING_PREFIX,
    CHANGE_SEQ,
    COMMIT_TS,
    NULL_KEY,
    OP,
    REASON,
    RECORD,
    ROW_POS,
    SEQ_WIDTH,
    SOURCE_FILE,
    UNKNOWN_OP,
)
from cdclake.core.config import DmsLayout, TableConfig
from cdclake.core.dms import LOAD, RawFile
from cdclake.core.hours import as_utc

log = logging.getLogger(__name__)
VALID_OPS = {"load": ("I",), "cdc": ("I", "U", "D")}


class InputColumnError(ValueError):
    """A DMS file lacks a column the job needs, or has a reserved one."""


class UnreadableInputError(RuntimeError):
    """A raw file cannot be read (corrupt, truncated, not Parquet). Names the file."""


class IncompatibleFilesError(RuntimeError):
    """Files of one batch disagree on a column's type. Names column, types and files."""


@dataclass(frozen=True)
class ReadStats:
    """What the one pass over a batch found."""

    records: int
    records_by_op: dict[str, int]
    quarantined: int
    reasons: tuple[str, ...]  # quarantine reasons seen
    valid: int
    min_ts: datetime | None  # oldest valid change
    newest_ts: datetime | None  # newest valid change
    key_range: tuple[Any, Any]  # min/max of the first key column among valid rows


@dataclass(frozen=True)
class Batch:
    """The batch's changes (normalised, persisted while the run uses them) and its stats."""

    changes: DataFrame
    stats: ReadStats

    @property
    def good(self) -> DataFrame:
        return split_valid(self.changes)[0]

    @property
    def bad(self) -> DataFrame:
        return split_valid(self.changes)[1]


@contextmanager
def read_batch(
    spark: SparkSession, table: TableConfig, layout: DmsLayout, files: Sequence[RawFile]
) -> Iterator[Batch]:
    """Read, normalise and measure the files (all LOAD or all CDC) as one :class:`Batch`."""
    kind = files[0].kind
    changes = normalize_changes(read_raw(spark, files), table, layout, kind=kind)
    changes = changes.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        stats = measure(spark, changes, files, table.primary_key[0])
        if stats.quarantined:
            log.warning(
                "%s: %d row(s) quarantined (%s)",
                table.qualified_name,
                stats.quarantined,
                ", ".join(stats.reasons),
            )
        yield Batch(changes, stats)
    finally:
        changes.unpersist()


def read_raw(spark: SparkSession, files: Sequence[RawFile]) -> DataFrame:
    """Read the files as one DataFrame (columns unioned by name) with Spark's ``_metadata``.

    Files written before a source ``ADD COLUMN`` simply lack the column (read as null).
    """
    paths = [f.path for f in files]
    try:
        df = spark.read.option("mergeSchema", "true").parquet(*paths)
        return df.select("*", "_metadata")
    except Exception as exc:  # noqa: BLE001 - re-raised with the offending file named
        raise diagnose(spark, files, exc) from exc


def diagnose(spark: SparkSession, files: Sequence[RawFile], exc: Exception) -> Exception:
    """Find which file (or which column across files) made a read fail."""
    schemas = {}
    for f in files:
        try:
            schemas[f.relative] = spark.read.parquet(f.path).schema
            spark.read.parquet(f.path).write.format("noop").mode("overwrite").save()
        except Exception as inner:  # noqa: BLE001
            first = str(inner).strip().splitlines()[0][:300]
            return UnreadableInputError(f"cannot read raw file {f.path}: {first}")
    types: dict[str, dict[str, list[str]]] = {}
    for rel, schema in schemas.items():
        for field in schema.fields:
            types.setdefault(field.name, {}).setdefault(field.dataType.simpleString(), []).append(
                rel
            )
    for col, by_type in types.items():
        if len(by_type) > 1:
            detail = "; ".join(f"{t} in {', '.join(fs[:3])}" for t, fs in sorted(by_type.items()))
            return IncompatibleFilesError(
                f"column '{col}' has different types across files ({detail}); nothing committed"
            )
    first = str(exc).strip().splitlines()[0][:500]
    return UnreadableInputError(f"cannot read the batch's raw files: {first}")


def source_columns(columns: Sequence[str], table: TableConfig, layout: DmsLayout) -> list[str]:
    """The source's own columns in a raw file: everything but DMS's and the dropped ones."""
    skip = set(layout.dms_columns) | set(table.drop_columns)
    cols = [c for c in columns if c not in skip and not c.startswith("_metadata")]
    reserved = [c for c in cols if c.startswith(BOOKKEEPING_PREFIX)]
    if reserved:
        raise InputColumnError(f"source column(s) {reserved} use the reserved prefix '_cdc_'")
    return cols


def normalize_changes(
    raw: DataFrame, table: TableConfig, layout: DmsLayout, *, kind: str
) -> DataFrame:
    """Raw DMS rows (with ``_metadata``) -> source columns + op + order columns + quarantine
    reason (null when the row is good) + the raw record as JSON for quarantined rows.

    ``kind`` is ``"load"`` (full-load files, ``Op`` optional) or ``"cdc"``.
    """
    cols = raw.columns
    data = source_columns(cols, table, layout)
    missing_keys = [k for k in table.primary_key if k not in cols]
    if missing_keys:
        raise InputColumnError(f"primary key column(s) {missing_keys} not found in the files")
    commit_ts = _commit_ts(raw, layout)
    op = _op(raw, layout, kind)
    reason = _reason(table, op, commit_ts, kind)
    raw_record = F.to_json(F.struct(*(F.col(c) for c in cols if not c.startswith("_metadata"))))
    return raw.select(
        *(F.col(c) for c in data),
        op.alias(OP),
        commit_ts.alias(COMMIT_TS),
        _change_seq(raw, layout).alias(CHANGE_SEQ),
        _relative_file(table).alias(SOURCE_FILE),
        F.col("_metadata.row_index").cast("long").alias(ROW_POS),
        reason.alias(REASON),
        F.when(reason.isNotNull(), raw_record).alias(RECORD),
    )


def _op(raw: DataFrame, layout: DmsLayout, kind: str) -> Column:
    if layout.op_column in raw.columns:
        return F.upper(F.trim(F.col(layout.op_column).cast("string")))
    if kind == LOAD:
        return F.lit("I")
    raise InputColumnError(f"op column '{layout.op_column}' not in the CDC files")


def _commit_ts(raw: DataFrame, layout: DmsLayout) -> Column:
    if layout.timestamp_column not in raw.columns:
        raise InputColumnError(f"timestamp column '{layout.timestamp_column}' not in the files")
    col = F.col(layout.timestamp_column)
    if isinstance(raw.schema[layout.timestamp_column].dataType, T.TimestampType):
        return col
    return parse_dms_timestamp(col)


def _change_seq(raw: DataFrame, layout: DmsLayout) -> Column:
    name = layout.change_sequence_column
    if not name or name not in raw.columns:
        return F.lit("0" * SEQ_WIDTH)
    seq = F.coalesce(F.trim(F.col(name).cast("string")), F.lit(""))
    # Pad short values so string order is numeric order; never truncate long ones.
    return F.when(F.length(seq) >= SEQ_WIDTH, seq).otherwise(F.lpad(seq, SEQ_WIDTH, "0"))


def _reason(table: TableConfig, op: Column, commit_ts: Column, kind: str) -> Column:
    key_null = F.lit(False)
    for k in table.primary_key:
        key_null = key_null | F.col(k).isNull()
    return (
        F.when(key_null, F.lit(NULL_KEY))
        .when(~op.isin(*VALID_OPS[kind]) | op.isNull(), F.lit(UNKNOWN_OP))
        .when(commit_ts.isNull(), F.lit(BAD_TIMESTAMP))
    )


def parse_dms_timestamp(col: Column) -> Column:
    """``yyyy-MM-dd HH:mm:ss[.ffffff]`` (UTC session) -> timestamp; anything else -> null."""
    text = F.trim(col.cast("string"))
    pattern = r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,9})?$"
    return F.when(text.rlike(pattern), text.cast("timestamp"))


def _relative_file(table: TableConfig) -> Column:
    """Path of the file below the table's raw folder, e.g. ``2026/11/22/10/2026...parquet``."""
    marker = re.escape(f"/{table.schema}/{table.name}/")
    return F.regexp_extract(F.col("_metadata.file_path"), rf".*{marker}(.*)$", 1)


def split_valid(changes: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(good rows without the quarantine columns, quarantined rows)."""
    good = changes.where(F.col(REASON).isNull()).drop(REASON, RECORD)
    bad = changes.where(F.col(REASON).isNotNull()).select(
        F.col(REASON).alias("reason"),
        F.col(SOURCE_FILE).alias("source_file"),
        F.col(ROW_POS).alias("row_pos"),
        F.col(RECORD).alias("record"),
    )
    return good, bad


def measure(
    spark: SparkSession, changes: DataFrame, files: Sequence[RawFile], first_key: str
) -> ReadStats:
    """One pass over the batch (which also proves every file is readable)."""
    try:
        rows = (
            changes.groupBy(REASON, OP)
            .agg(
                F.count(F.lit(1)).alias("n"),
                F.max(COMMIT_TS).alias("max_ts"),
                F.min(COMMIT_TS).alias("min_ts"),
                F.min(first_key).alias("min_key"),
                F.max(first_key).alias("max_key"),
            )
            .collect()
        )
    except Exception as exc:  # noqa: BLE001 - re-raised naming the file
        raise diagnose(spark, files, exc) from exc
    good = [r for r in rows if r[REASON] is None]
    by_op: dict[str, int] = {}
    for r in rows:
        by_op[r[OP] or "null"] = by_op.get(r[OP] or "null", 0) + r["n"]
    return ReadStats(
        records=sum(r["n"] for r in rows),
        records_by_op=by_op,
        quarantined=sum(r["n"] for r in rows if r[REASON] is not None),
        reasons=tuple(sorted({r[REASON] for r in rows if r[REASON]})),
        valid=sum(r["n"] for r in good),
        min_ts=as_utc(min((r["min_ts"] for r in good), default=None)),
        newest_ts=as_utc(max((r["max_ts"] for r in good), default=None)),
        key_range=(
            min((r["min_key"] for r in good), default=None),
            max((r["max_key"] for r in good), default=None),
        ),
    )
