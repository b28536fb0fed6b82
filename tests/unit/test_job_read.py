"""Step 2's pure transforms (cdclake.job.read): normalising raw DMS rows and sorting out the
ones to quarantine. Inline input and expected DataFrames, compared whole (chispa)."""

from __future__ import annotations

from datetime import datetime

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from cdclake.core.columns import BAD_TIMESTAMP, NULL_KEY, UNKNOWN_OP
from cdclake.core.config import DmsLayout, TableConfig
from cdclake.job.read import InputColumnError, normalize_changes, split_valid

TABLE = TableConfig("s", "t", ("id",), ("p",), drop_columns=("secret",))
META = T.StructType(
    [T.StructField("file_path", T.StringType()), T.StructField("row_index", T.LongType())]
)
RAW = T.StructType(
    [
        T.StructField("Op", T.StringType()),
        T.StructField("dms_commit_ts", T.StringType()),
        T.StructField("dms_change_seq", T.StringType()),
        T.StructField("id", T.IntegerType()),
        T.StructField("p", T.StringType()),
        T.StructField("secret", T.StringType()),
        T.StructField("_metadata", META),
    ]
)
FILE = "file:/lake/raw/s/t/2026/11/22/10/20261122-100500000.parquet"
REL = "2026/11/22/10/20261122-100500000.parquet"
NORMALISED = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("p", T.StringType()),
        T.StructField("_cdc_op", T.StringType()),
        T.StructField("_cdc_commit_ts", T.TimestampType()),
        T.StructField("_cdc_change_seq", T.StringType()),
        T.StructField("_cdc_source_file", T.StringType()),
        T.StructField("_cdc_row_pos", T.LongType()),
        T.StructField("_cdc_reason", T.StringType()),
        T.StructField("_cdc_record", T.StringType()),
    ]
)


def at(minute: int) -> datetime:
    return datetime(2026, 11, 22, 10, minute)


def zeros(seq: str) -> str:
    return seq.rjust(35, "0")


def test_normalise_keeps_source_columns_and_adds_the_change_order(spark):
    raw = spark.createDataFrame(
        [
            (" u ", "2026-11-22 10:01:00.000000", "7", 1, "a", "x", (FILE, 0)),
            ("I", "2026-11-22 10:02:00", "", 2, "b", "y", (FILE, 1)),
            ("D", "2026-11-22T10:03:00.5", "1" * 36, 3, None, None, (FILE, 2)),
        ],
        RAW,
    )
    expected = spark.createDataFrame(
        [
            (1, "a", "U", at(1), zeros("7"), REL, 0, None, None),
            (2, "b", "I", at(2), zeros(""), REL, 1, None, None),
            (3, None, "D", at(3).replace(microsecond=500_000), "1" * 36, REL, 2, None, None),
        ],
        NORMALISED,
    )
    got = normalize_changes(raw, TABLE, DmsLayout(), kind="cdc")
    assert_df_equality(got, expected, ignore_nullable=True)


def test_load_files_without_op_or_change_sequence(spark):
    schema = T.StructType([f for f in RAW.fields if f.name not in ("Op", "dms_change_seq")])
    raw = spark.createDataFrame([("2026-11-22 10:00:00", 1, "a", "x", (FILE, 0))], schema)
    got = normalize_changes(raw, TABLE, DmsLayout(), kind="load").select(
        "_cdc_op", "_cdc_change_seq"
    )
    expected = spark.createDataFrame([("I", zeros(""))], got.schema)
    assert_df_equality(got, expected)
    with pytest.raises(InputColumnError, match="op column 'Op'"):
        normalize_changes(raw, TABLE, DmsLayout(), kind="cdc")


@pytest.mark.parametrize(
    ("op", "ts", "key", "reason"),
    [
        ("U", "2026-11-22 10:01:00", None, NULL_KEY),
        ("X", "2026-11-22 10:01:00", 1, UNKNOWN_OP),
        (None, "2026-11-22 10:01:00", 1, UNKNOWN_OP),
        ("U", "yesterday", 1, BAD_TIMESTAMP),
        ("U", None, 1, BAD_TIMESTAMP),
    ],
)
def test_every_quarantine_reason_keeps_the_raw_record(spark, op, ts, key, reason):
    raw = spark.createDataFrame([(op, ts, "1", key, "a", "x", (FILE, 4))], RAW)
    good, bad = split_valid(normalize_changes(raw, TABLE, DmsLayout(), kind="cdc"))
    assert good.count() == 0
    row = bad.first()
    assert (row["reason"], row["source_file"], row["row_pos"]) == (reason, REL, 4)
    assert '"secret":"x"' in row["record"]  # the whole raw row, dropped columns included


def test_an_insert_in_a_load_file_is_the_only_valid_op(spark):
    raw = spark.createDataFrame([("U", "2026-11-22 10:00:00", "", 1, "a", "x", (FILE, 0))], RAW)
    _, bad = split_valid(normalize_changes(raw, TABLE, DmsLayout(), kind="load"))
    assert [r["reason"] for r in bad.collect()] == [UNKNOWN_OP]


def test_reserved_and_missing_columns_are_refused(spark):
    reserved = T.StructType(
        [*RAW.fields[:-1], T.StructField("_cdc_x", T.StringType()), RAW.fields[-1]]
    )
    raw = spark.createDataFrame([], reserved)
    with pytest.raises(InputColumnError, match="reserved prefix"):
        normalize_changes(raw, TABLE, DmsLayout(), kind="cdc")
    no_key = T.StructType([f for f in RAW.fields if f.name != "id"])
    with pytest.raises(InputColumnError, match="primary key"):
        normalize_changes(spark.createDataFrame([], no_key), TABLE, DmsLayout(), kind="cdc")
