"""Bookkeeping mechanics: JVM-built rows, one file per append, auto-compaction, scratch files."""

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import types as T

import cdclake.runner
from cdclake.state import BOOKKEEPING_PROPERTIES, local_frame
from tests.integration.conftest import ts

SCHEMA = T.StructType(
    [
        T.StructField("s", T.StringType(), False),
        T.StructField("n", T.LongType(), True),
        T.StructField("x", T.DoubleType(), True),
        T.StructField("at", T.TimestampType(), True),
        T.StructField("day", T.DateType(), True),
        T.StructField("tags", T.ArrayType(T.StringType()), True),
        T.StructField("by", T.MapType(T.StringType(), T.LongType()), True),
    ]
)


def test_local_frame_equals_create_dataframe(spark):
    rows = [
        ("quote \" and \\ and é", 2**40, 1.5, datetime(2026, 11, 22, 10, 1, 2, 345678, tzinfo=UTC),
         date(2026, 11, 22), ["a", "b"], {"I": 2, "U": 1}),
        # an offset and a naive (local) time must land on the same instants as createDataFrame
        ("offset", None, 3.0, datetime(2026, 11, 22, 12, 0, tzinfo=timezone(timedelta(hours=2))),
         None, [], {}),
        ("naive", -1, None, datetime(2026, 11, 22, 10, 0), None, None, None),
    ]  # fmt: skip
    got = local_frame(spark, rows, SCHEMA)
    assert got.rdd.getNumPartitions() == 1
    assert_df_equality(got, spark.createDataFrame(rows, SCHEMA))  # same order: rows as given


def test_local_frame_fails_on_a_value_that_does_not_fit(spark):
    with pytest.raises(Exception, match="(?i)malformed|parse|FAILFAST"):
        local_frame(spark, [("x", "not a number", None, None, None, None, None)], SCHEMA).collect()


def _files(path: str) -> int:
    return len(list(Path(path).glob("*.parquet")))


def test_bookkeeping_tables_get_auto_compaction_one_file_per_append_and_no_scratch_left(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}, {"id": 2, "p": "a", "v": "y"}])
    lake.full()
    lake.w.cdc(
        "2026-11-22T10",
        [
            {"Op": "U", "ts": ts(1), "seq": "1", "id": 1, "p": "a", "v": "new"},
            {"Op": "D", "ts": ts(2), "seq": "2", "id": 2},
        ],
    )
    lake.inc("2026-11-22T11")
    table = lake.cfg.table(lake.name)
    for path in (
        lake.cfg.state_location(table, "ledger"),
        lake.cfg.state_location(table, "tombstones"),
        lake.cfg.audit_location,
    ):
        props = DeltaTable.forPath(lake.spark, path).detail().first()["properties"]
        assert {k: props.get(k) for k in BOOKKEEPING_PROPERTIES} == BOOKKEEPING_PROPERTIES, path
    # One file per append (not one per default partition): the full load ledgers its
    # generation and its files, the incremental run its files; one audit record per run.
    assert _files(lake.cfg.state_location(table, "ledger")) == 3
    assert _files(lake.cfg.audit_location) == 2
    assert not Path(lake.cfg.state_location(table, "staging")).exists()
    # The data table itself is never auto-compacted behind the operator's back.
    props = DeltaTable.forPath(lake.spark, lake.path).detail().first()["properties"]
    assert "delta.autoOptimize.autoCompact" not in props


def test_a_failed_run_leaves_no_scratch_files(lake, monkeypatch):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    lake.w.cdc("2026-11-22T10", [{"Op": "U", "ts": ts(1), "seq": "1", "id": 1, "p": "a", "v": "n"}])
    staging = Path(lake.cfg.state_location(lake.cfg.table(lake.name), "staging"))
    seen = []

    def crash(self, *args, **kwargs):
        seen.append(sorted(p.name for p in staging.iterdir()))
        raise RuntimeError("boom")

    monkeypatch.setattr(cdclake.runner.TableRun, "_merge", crash)
    assert lake.run("--load", "incremental", "--until", "2026-11-22T11") == 1
    assert seen == [[lake.last_summary()["run_id"]]]  # the MERGE would have read the staged batch
    assert not staging.exists()
    monkeypatch.undo()
    lake.inc("2026-11-22T11")
    lake.assert_rows([(1, "a", "n")])
