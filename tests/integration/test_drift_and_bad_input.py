"""Guarantees "Schema drift" and "Bad input": drift, quarantine, unreadable files, failure
isolation."""

import pyarrow as pa
from pyspark.sql import types as T

from tests.dms import DmsTable
from tests.integration.conftest import Lake, ts


def test_added_column_is_added_with_nulls_for_older_rows(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}, {"id": 2, "p": "a", "v": "y"}])
    lake.full()
    lake.w.schema["seats"] = pa.int32()
    lake.w.cdc(
        "2026-11-22T10",
        [
            {"Op": "U", "ts": ts(1), "seq": "1", "id": 2, "p": "a", "v": "y2", "seats": 3},
            {"Op": "I", "ts": ts(2), "seq": "2", "id": 3, "p": "b", "v": "z", "seats": None},
        ],
    )
    # an older-format file in the same batch, without the column
    del lake.w.schema["seats"]
    lake.w.cdc("2026-11-22T10", [{"Op": "I", "ts": ts(0), "seq": "0", "id": 4, "p": "b", "v": "w"}])
    lake.inc("2026-11-22T11")
    schema = T.StructType(
        [
            T.StructField("id", T.IntegerType()),
            T.StructField("p", T.StringType()),
            T.StructField("v", T.StringType()),
            T.StructField("seats", T.IntegerType()),
        ]
    )
    actual = lake.df().select("id", "p", "v", "seats")
    from chispa import assert_df_equality

    expected = lake.spark.createDataFrame(
        [(1, "a", "x", None), (2, "a", "y2", 3), (3, "b", "z", None), (4, "b", "w", None)], schema
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_unsafe_type_change_fails_the_table_naming_column_and_types(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    version = lake.version()
    lake.w.schema["v"] = pa.int64()
    lake.w.cdc("2026-11-22T10", [{"Op": "U", "ts": ts(1), "seq": "1", "id": 1, "p": "a", "v": 7}])
    assert lake.run("--load", "incremental", "--until", "2026-11-22T11") == 1
    err = lake.last_summary()["error"]
    assert "SchemaDriftError" in err and "'v'" in err and "string" in err and "bigint" in err
    assert lake.version() == version
    lake.assert_rows([(1, "a", "x")])
    # Nothing was ledgered: the file is retried (and fails again) on the next run.
    assert lake.run("--load", "incremental", "--until", "2026-11-22T11") == 1


def test_narrower_incoming_type_is_cast_up(spark, tmp_path):
    lake = Lake(spark, tmp_path, schema={"id": pa.int64(), "p": pa.string(), "v": pa.string()})
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    lake.w.schema["id"] = pa.int32()
    lake.w.cdc("2026-11-22T10", [{"Op": "U", "ts": ts(1), "seq": "1", "id": 1, "p": "a", "v": "y"}])
    lake.inc("2026-11-22T11")
    assert lake.df().schema["id"].dataType == T.LongType()
    assert [tuple(r) for r in lake.df().collect()] == [(1, "a", "y")]


def test_bad_rows_are_quarantined_with_reason_and_file(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}, {"id": None, "p": "a", "v": "no key"}])
    rec = lake.full()
    assert rec["quarantined"] == 1
    path = lake.w.cdc(
        "2026-11-22T10",
        [
            {"Op": "U", "ts": ts(1), "seq": "1", "id": 1, "p": "a", "v": "ok"},
            {"Op": "X", "ts": ts(2), "seq": "2", "id": 2, "p": "a", "v": "bad op"},
            {"Op": "I", "ts": "22/11/2026 10:03", "seq": "3", "id": 3, "p": "a", "v": "bad ts"},
            {"Op": "I", "ts": ts(4), "seq": "4", "id": None, "p": "a", "v": "null key"},
        ],
    )
    rec = lake.inc("2026-11-22T11")
    assert rec["status"] == "succeeded" and rec["quarantined"] == 3
    lake.assert_rows([(1, "a", "ok")])
    q = lake.spark.read.format("delta").load(
        lake.cfg.state_location(lake.cfg.table("s.t"), "quarantine")
    )
    got = sorted((r["reason"], r["source_file"], r["row_pos"]) for r in q.collect())
    rel = f"2026/11/22/10/{path.name}"
    assert got == sorted(
        [
            ("null_key", "LOAD00000001.parquet", 1),
            ("unknown_op", rel, 1),
            ("unparseable_timestamp", rel, 2),
            ("null_key", rel, 3),
        ]
    )
    assert all(r["record"] for r in q.collect())
    # A rerun over the same files (backfill) does not quarantine them twice.
    lake.inc("2026-11-22T11", since="2026-11-22T10")
    assert q.count() == 4


def test_corrupt_file_fails_its_table_only_and_commits_nothing(spark, tmp_path):
    lake = Lake(
        spark,
        tmp_path,
        tables=[
            {"schema": "s", "name": "t", "primary_key": ["id"], "partition_by": ["p"]},
            {"schema": "s", "name": "u", "primary_key": ["id"]},
        ],
    )
    other = DmsTable(lake.cfg, "s.u", {"id": pa.int32(), "v": pa.string()})
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    other.load([{"id": 1, "v": "x"}])
    assert lake.run("--load", "full") == 0
    version = lake.version()
    lake.w.cdc("2026-11-22T10", [{"Op": "U", "ts": ts(1), "seq": "1", "id": 1, "p": "a", "v": "y"}])
    bad = lake.w.folder / "2026/11/22/10/20261122-100900000.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    other.cdc("2026-11-22T10", [{"Op": "U", "ts": ts(1), "seq": "1", "id": 1, "v": "y"}])
    assert lake.run("--load", "incremental", "--until", "2026-11-22T11") == 1
    failed = lake.last_summary("s.t")
    assert failed["status"] == "failed" and str(bad) in failed["error"]
    assert lake.last_summary("s.u")["status"] == "succeeded"
    assert lake.version() == version
    lake.assert_rows([(1, "a", "x")])
    assert [tuple(r) for r in lake.df(name="s.u").collect()] == [(1, "y")]
