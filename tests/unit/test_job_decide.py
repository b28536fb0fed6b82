"""Step 3's pure transforms (cdclake.job.decide): the newest change per key, and each winner's
status against the table and the tombstones. Inline DataFrames, compared whole (chispa)."""

from __future__ import annotations

from datetime import datetime

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from cdclake.core.columns import DELETE, DELETE_ABSENT, INSERT, STALE, UPDATE
from cdclake.job.decide import classify_against_target, latest_per_key

ORDER = [
    T.StructField("_cdc_commit_ts", T.TimestampType()),
    T.StructField("_cdc_change_seq", T.StringType()),
    T.StructField("_cdc_source_file", T.StringType()),
    T.StructField("_cdc_row_pos", T.LongType()),
]
CHANGES = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("p", T.StringType()),
        T.StructField("_cdc_op", T.StringType()),
        *ORDER,
    ]
)
TARGET = T.StructType(
    [T.StructField("id", T.IntegerType()), T.StructField("p", T.StringType()), *ORDER]
)
TOMBS = T.StructType([T.StructField("id", T.IntegerType()), *ORDER])


def at(minute: int) -> datetime:
    return datetime(2026, 11, 22, 10, minute)


def order(minute: int, seq: str = "1", file: str = "f", pos: int = 0) -> tuple:
    return (at(minute), seq.rjust(35, "0"), file, pos)


def test_latest_per_key_uses_the_whole_change_order(spark):
    changes = spark.createDataFrame(
        [
            (1, "a", "I", *order(1)),
            (1, "b", "U", *order(2)),  # newest by time
            (2, "a", "U", *order(3, "1")),
            (2, "b", "U", *order(3, "2")),  # same time, later change sequence
            (3, "a", "U", *order(4, "1", "f1")),
            (3, "b", "D", *order(4, "1", "f2")),  # same time and sequence, later file
            (4, "a", "U", *order(5, "1", "f", 1)),
            (4, "b", "U", *order(5, "1", "f", 2)),  # later row in the same file
        ],
        CHANGES,
    )
    expected = spark.createDataFrame(
        [
            (1, "b", "U", *order(2)),
            (2, "b", "U", *order(3, "2")),
            (3, "b", "D", *order(4, "1", "f2")),
            (4, "b", "U", *order(5, "1", "f", 2)),
        ],
        CHANGES,
    )
    assert_df_equality(latest_per_key(changes, ["id"]), expected, ignore_row_order=True)


def classify(spark, winners, current, tombs, watermark=None):
    got = classify_against_target(
        spark.createDataFrame(winners, CHANGES),
        spark.createDataFrame(current, TARGET),
        spark.createDataFrame(tombs, TOMBS),
        ["id"],
        ["p"],
        watermark,
    )
    return got.select("id", "_cdc_t_p", "_cdc_status")


STATUS = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("_cdc_t_p", T.StringType()),
        T.StructField("_cdc_status", T.StringType()),
    ]
)


def test_every_status(spark):
    winners = [
        (1, "a", "I", *order(5)),  # key absent everywhere
        (2, "b", "U", *order(5)),  # key in the table, older there: moves from x to b
        (3, "a", "D", *order(5)),  # delete of a live key
        (4, "a", "D", *order(5)),  # delete of a key the table lacks
        (5, "a", "U", *order(5)),  # the table holds a newer change
        (6, "a", "U", *order(5)),  # the table holds this very change
        (7, "a", "I", *order(5)),  # a newer tombstone: deleted after this insert
        (8, "a", "D", *order(5)),  # a tombstone equal to the change: a crashed run's delete
    ]
    current = [
        (2, "x", *order(1)),
        (3, "a", *order(1)),
        (5, "a", *order(9)),
        (6, "a", *order(5)),
        (8, "a", *order(1)),
    ]
    tombs = [(7, *order(6)), (8, *order(5))]
    expected = spark.createDataFrame(
        [
            (1, None, INSERT),
            (2, "x", UPDATE),
            (3, "a", DELETE),
            (4, None, DELETE_ABSENT),
            (5, "a", STALE),
            (6, "a", STALE),
            (7, None, STALE),
            (8, "a", DELETE),
        ],
        STATUS,
    )
    got = classify(spark, winners, current, tombs)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize(("minute", "status"), [(4, STALE), (5, INSERT), (6, INSERT)])
def test_changes_older_than_the_last_full_load_are_stale(spark, minute, status):
    got = classify(spark, [(1, "a", "I", *order(minute))], [], [], watermark=at(5))
    expected = spark.createDataFrame([(1, None, status)], STATUS)
    assert_df_equality(got, expected, ignore_nullable=True)
