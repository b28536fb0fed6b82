"""The MERGE condition (cdclake.job.apply.merge_condition) and the partition predicate it
shares with maintenance: which target rows each selects, null partition values and two
partition columns included (evaluated on inline DataFrames)."""

from __future__ import annotations

from datetime import date

from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.core.sql import partition_predicate
from cdclake.job.apply import merge_condition

TARGET = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("d", T.DateType()),
        T.StructField("r", T.StringType()),
    ]
)
D1, D2 = date(2026, 11, 21), date(2026, 11, 22)
ROWS = [(1, D1, "a"), (2, D1, None), (3, D2, "a"), (4, None, "b"), (5, D2, "b")]


def selected(spark, predicate: str) -> list[int]:
    df = spark.createDataFrame(ROWS, TARGET).alias("t")
    return sorted(r["id"] for r in df.where(F.expr(predicate)).collect())


def test_one_partition_column_with_a_null_value(spark):
    pred = partition_predicate(["d"], [{"d": D2}, {"d": None}], "t.")
    assert pred == "(t.`d` = DATE '2026-11-22') OR (t.`d` IS NULL)"
    assert selected(spark, pred) == [3, 4, 5]


def test_two_partition_columns_select_exact_pairs(spark):
    pred = partition_predicate(["d", "r"], [{"d": D1, "r": None}, {"d": D2, "r": "a"}], "t.")
    assert selected(spark, pred) == [2, 3]


def test_merge_condition_joins_on_keys_and_prunes_by_partition_and_key_range(spark):
    target = spark.createDataFrame(ROWS, TARGET).alias("t")
    source = spark.createDataFrame([(i,) for i in range(1, 6)], "id int").alias("s")
    cond = merge_condition(["id"], ["d", "r"], [{"d": D2, "r": "a"}, {"d": D2, "r": "b"}], (1, 4))
    got = target.join(source, cond, "inner").select("t.id")
    expected = spark.createDataFrame([(3,)], "id int")
    assert_df_equality(got, expected, ignore_nullable=True)


def test_merge_condition_with_composite_key_and_no_partitions(spark):
    target = spark.createDataFrame([(1, "x"), (1, "y"), (2, "x")], "a int, b string").alias("t")
    source = spark.createDataFrame([(1, "y"), (2, "y")], "a int, b string").alias("s")
    got = target.join(source, merge_condition(["a", "b"], [], [], None), "inner").select("t.a")
    assert_df_equality(got, spark.createDataFrame([(1,)], "a int"), ignore_nullable=True)


def test_no_partition_values_match_nothing(spark):
    target = spark.createDataFrame(ROWS, TARGET).alias("t")
    source = spark.createDataFrame([(1,)], "id int").alias("s")
    assert target.join(source, merge_condition(["id"], ["d"], [], None)).count() == 0


def test_the_merge_lists_one_partition_column_as_an_in_list(spark):
    pred = partition_predicate(["d"], [{"d": D2}, {"d": None}, {"d": D1}], "t.", in_list=True)
    assert pred == "t.`d` IN (DATE '2026-11-21', DATE '2026-11-22') OR t.`d` IS NULL"
    assert selected(spark, pred) == [1, 2, 3, 4, 5]
