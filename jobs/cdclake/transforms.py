"""Pure DataFrame transforms of one batch of DMS changes. No I/O here.

The order of a change is the tuple ``(commit timestamp, change sequence, source file, row
position)``, stored on every live row as the ``_cdc_*`` bookkeeping columns so later batches can
tell whether they are newer. The change sequence is normalised so that string order is change
order and an empty sequence (full load) sorts before every real one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.config import BOOKKEEPING_PREFIX, DmsLayout, TableConfig

OP = "_cdc_op"
COMMIT_TS = "_cdc_commit_ts"
CHANGE_SEQ = "_cdc_change_seq"
SOURCE_FILE = "_cdc_source_file"
ROW_POS = "_cdc_row_pos"
ORDER_COLUMNS = (COMMIT_TS, CHANGE_SEQ, SOURCE_FILE, ROW_POS)
ORDER_FIELDS = (
    T.StructField(COMMIT_TS, T.TimestampType()),
    T.StructField(CHANGE_SEQ, T.StringType()),
    T.StructField(SOURCE_FILE, T.StringType()),
    T.StructField(ROW_POS, T.LongType()),
)
# Columns every lake table carries after the source's own columns.
BOOKKEEPING_COLUMNS = (OP, *ORDER_COLUMNS)
REASON = "_cdc_reason"
RECORD = "_cdc_record"
SEQ_WIDTH = 35  # $AR_H_CHANGE_SEQ: 16-digit timestamp + 19-digit counter
VALID_OPS = {"load": ("I",), "cdc": ("I", "U", "D")}

# Reasons a row is quarantined instead of applied.
NULL_KEY = "null_key"
UNKNOWN_OP = "unknown_op"
BAD_TIMESTAMP = "unparseable_timestamp"


class InputColumnError(ValueError):
    """A DMS file lacks a column the job needs, or has a reserved one."""


def order_key(prefix: str = "") -> Column:
    """The change order as one comparable struct (Spark compares structs field by field)."""
    return F.struct(*(F.col(f"{prefix}{c}") for c in ORDER_COLUMNS))


def data_columns(columns: Sequence[str], table: TableConfig, layout: DmsLayout) -> list[str]:
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
    data = data_columns(cols, table, layout)
    missing_keys = [k for k in table.primary_key if k not in cols]
    if missing_keys:
        raise InputColumnError(f"primary key column(s) {missing_keys} not found in the files")
    if layout.timestamp_column not in cols:
        raise InputColumnError(f"timestamp column '{layout.timestamp_column}' not in the files")
    if layout.op_column in cols:
        op = F.upper(F.trim(F.col(layout.op_column).cast("string")))
    elif kind == "load":
        op = F.lit("I")
    else:
        raise InputColumnError(f"op column '{layout.op_column}' not in the CDC files")

    ts_col = F.col(layout.timestamp_column)
    ts_type = raw.schema[layout.timestamp_column].dataType
    commit_ts = ts_col if isinstance(ts_type, T.TimestampType) else _parse_dms_timestamp(ts_col)

    seq_name = layout.change_sequence_column
    if seq_name and seq_name in cols:
        seq = F.coalesce(F.trim(F.col(seq_name).cast("string")), F.lit(""))
        # Pad short values so string order is numeric order; never truncate long ones.
        seq = F.when(F.length(seq) >= SEQ_WIDTH, seq).otherwise(F.lpad(seq, SEQ_WIDTH, "0"))
    else:
        seq = F.lit("0" * SEQ_WIDTH)

    key_null = F.lit(False)
    for k in table.primary_key:
        key_null = key_null | F.col(k).isNull()
    reason = (
        F.when(key_null, F.lit(NULL_KEY))
        .when(~op.isin(*VALID_OPS[kind]) | op.isNull(), F.lit(UNKNOWN_OP))
        .when(commit_ts.isNull(), F.lit(BAD_TIMESTAMP))
    )
    raw_record = F.to_json(F.struct(*(F.col(c) for c in cols if not c.startswith("_metadata"))))
    return raw.select(
        *(F.col(c) for c in data),
        op.alias(OP),
        commit_ts.alias(COMMIT_TS),
        seq.alias(CHANGE_SEQ),
        _relative_file(table).alias(SOURCE_FILE),
        F.col("_metadata.row_index").cast("long").alias(ROW_POS),
        reason.alias(REASON),
        F.when(reason.isNotNull(), raw_record).alias(RECORD),
    )


def _parse_dms_timestamp(col: Column) -> Column:
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


def latest_per_key(changes: DataFrame, keys: Sequence[str]) -> DataFrame:
    """Keep only the newest change of each key (by the full change order)."""
    w = Window.partitionBy(*keys).orderBy(*(F.col(c).desc() for c in ORDER_COLUMNS))
    return (
        changes.withColumn("_cdc_rank", F.row_number().over(w))
        .where(F.col("_cdc_rank") == 1)
        .drop("_cdc_rank")
    )


# Status of each winning change against what the lake already holds.
INSERT, UPDATE, DELETE, DELETE_ABSENT, STALE = (
    "insert",
    "update",
    "delete",
    "delete_absent",
    "stale",
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
        *(F.col(p).alias(f"_cdc_t_{p}") for p in partitions),
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
    return joined.select(*keep, status.alias("_cdc_status"))


def merge_condition(
    keys: Sequence[str],
    partitions: Sequence[str],
    partition_values: Sequence[tuple],
    key_range: tuple[object, object] | None = None,
) -> Column:
    """The MERGE ON condition: key equality plus constant predicates on the target, so Delta
    prunes partitions (``t.p IN (...)``) and files (min/max of the first key column).

    >>> str(merge_condition(["id"], ["p"], [("a",), ("b",)]))  # doctest: +ELLIPSIS
    "Column<'((t.id = s.id) AND ((t.p IN (a, b)) ...
    """
    cond = F.lit(True)
    first = True
    for k in keys:
        eq = F.col(f"t.{k}") == F.col(f"s.{k}")
        cond = eq if first else cond & eq
        first = False
    if partitions:
        cond = cond & partition_predicate(partitions, partition_values, prefix="t.")
    if key_range is not None and key_range[0] is not None:
        lo, hi = key_range
        cond = cond & F.col(f"t.{keys[0]}").between(F.lit(lo), F.lit(hi))
    return cond


def partition_predicate(
    partitions: Sequence[str], values: Sequence[tuple], prefix: str = ""
) -> Column:
    """A constant predicate selecting exactly the given partition value tuples."""
    if not values:
        return F.lit(False)
    if len(partitions) == 1:
        col = F.col(f"{prefix}{partitions[0]}")
        present = sorted({v[0] for v in values if v[0] is not None}, key=str)
        pred = col.isin(present) if present else F.lit(False)
        if any(v[0] is None for v in values):
            pred = pred | col.isNull()
        return pred
    pred = F.lit(False)
    for tup in sorted(set(values), key=str):
        term = F.lit(True)
        for p, v in zip(partitions, tup, strict=True):
            term = term & F.col(f"{prefix}{p}").eqNullSafe(F.lit(v))
        pred = pred | term
    return pred


def newer_than_target() -> Column:
    """Sequence guard used inside the MERGE: the source change is strictly newer."""
    return order_key("s.") > order_key("t.")
