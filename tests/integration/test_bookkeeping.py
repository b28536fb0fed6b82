"""Bookkeeping mechanics: JVM-built rows, one file per append, auto-compaction, scratch files."""

import re
import shutil
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import types as T

import cdclake.lake.bookkeeping
from cdclake.job import apply
from cdclake.lake.bookkeeping import local_frame
from cdclake.session import setting
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


def test_one_file_per_append_compaction_at_the_threshold_and_no_scratch_left(lake, monkeypatch):
    monkeypatch.setattr(cdclake.lake.bookkeeping, "COMPACT_AT_FILES", 4)
    table = lake.cfg.table(lake.name)
    ledger, tombs = (lake.cfg.state_location(table, k) for k in ("ledger", "tombstones"))
    lake.w.load([{"id": i, "p": "a", "v": "x"} for i in range(1, 6)])
    lake.full()
    # One file per append (not one per default partition): the full load ledgers its
    # generation and its files; one audit record per run.
    assert (_files(ledger), _files(lake.cfg.audit_location)) == (2, 1)
    counts = []
    for i in range(1, 5):  # each run deletes one key: one ledger and one tombstone append
        hour = f"2026-11-22T{10 + i:02d}"
        lake.w.cdc(hour, [{"Op": "D", "ts": ts(1, hour=10 + i), "seq": str(i), "id": i}])
        lake.inc(f"2026-11-22T{11 + i:02d}")
        counts.append((_live_files(lake, ledger), _live_files(lake, tombs)))
    # The ledger reaches 4 files at the 2nd run and the tombstones at the 4th: compacted to 1.
    assert counts == [(3, 1), (1, 2), (2, 3), (3, 1)]
    lake.assert_rows([(5, "a", "x")])
    history = DeltaTable.forPath(lake.spark, ledger).history().select("operation").collect()
    assert [r["operation"] for r in history].count("OPTIMIZE") == 1
    assert not Path(lake.cfg.state_location(table, "staging")).exists()
    # The data table itself is never compacted behind the operator's back.
    data_ops = DeltaTable.forPath(lake.spark, lake.path).history().select("operation").collect()
    assert "OPTIMIZE" not in {r["operation"] for r in data_ops}


def _live_files(lake, path: str) -> int:
    return len(lake.spark.read.format("delta").load(path).inputFiles())


def test_a_failed_run_leaves_no_scratch_files(lake, monkeypatch):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    lake.w.cdc("2026-11-22T10", [{"Op": "U", "ts": ts(1), "seq": "1", "id": 1, "p": "a", "v": "n"}])
    staging = Path(lake.cfg.state_location(lake.cfg.table(lake.name), "staging"))
    seen = []

    def crash(*args, **kwargs):
        seen.append(sorted(p.name for p in staging.iterdir()))
        raise RuntimeError("boom")

    monkeypatch.setattr(apply, "merge", crash)
    assert lake.run("--load", "incremental", "--until", "2026-11-22T11") == 1
    # The MERGE would have read the batch staged in this attempt's own folder.
    assert len(seen) == 1 and len(seen[0]) == 1
    assert re.fullmatch(re.escape(lake.last_summary()["run_id"]) + r"\.[0-9a-f]{8}", seen[0][0])
    assert not staging.exists()
    monkeypatch.undo()
    lake.inc("2026-11-22T11")
    lake.assert_rows([(1, "a", "n")])


def test_prepare_audit_creates_or_widens_the_table_without_a_data_file(lake):
    from cdclake.lake.bookkeeping import AUDIT_SCHEMA, prepare_audit

    path = lake.cfg.audit_location
    prepare_audit(lake.spark, lake.cfg)
    created = lake.spark.read.format("delta").load(path)
    assert created.schema.fieldNames() == AUDIT_SCHEMA.fieldNames() and created.count() == 0
    assert _files(path) == 0
    # An audit table written before the record grew two fields: they are added, rows kept.
    shutil.rmtree(path)
    grown = ("overrides", "deferred_files")
    older = T.StructType([f for f in AUDIT_SCHEMA.fields if f.name not in grown])
    lake.spark.createDataFrame([], older).write.format("delta").save(path)
    before = _files(path)
    prepare_audit(lake.spark, lake.cfg)
    widened = lake.spark.read.format("delta").load(path)
    assert set(widened.columns) == set(AUDIT_SCHEMA.fieldNames())
    assert _files(path) == before
    prepare_audit(lake.spark, lake.cfg)  # nothing left to add: no commit
    assert DeltaTable.forPath(lake.spark, path).history().count() == 2


# ---- reading a bookkeeping table from its checksum's file list ------------------------------
LEDGERISH = T.StructType(
    [
        T.StructField("k", T.StringType(), False),
        T.StructField("n", T.LongType(), True),
        T.StructField("at", T.TimestampType(), True),
    ]
)


def _append(spark, path: str, rows: list[tuple]) -> None:
    cdclake.lake.bookkeeping.append(local_frame(spark, rows, LEDGERISH), path)


def _delta(spark, path: str):
    return spark.read.format("delta").load(path)


def _local(uris: list[str]) -> list[str]:
    return sorted(re.sub(r"^file:/+", "/", u) for u in uris)


def _plan(df) -> str:
    return str(df._jdf.queryExecution().executedPlan().toString())


def _same_as_delta(spark, path: str) -> None:
    got = cdclake.lake.bookkeeping.read_delta(spark, path, LEDGERISH)
    assert_df_equality(got, _delta(spark, path), ignore_row_order=True, ignore_nullable=True)


def test_a_bookkeeping_read_takes_the_checksums_files_and_equals_deltas_read(spark, tmp_path):
    from cdclake.lake import tables

    path = str(tmp_path / "ledger")
    at = datetime(2026, 11, 22, 10, tzinfo=UTC)
    for i in range(3):
        _append(spark, path, [(f"r{i}", i, at + timedelta(hours=i)), (f"s{i}", None, None)])
    DeltaTable.forPath(spark, path).delete("k = 's1'")  # a remove action: the list follows it
    version = tables.head_version(spark, path)
    files = tables.checksum_files(spark, path, version)
    assert files is not None and files.version == version
    got = cdclake.lake.bookkeeping.read_delta(spark, path, LEDGERISH)
    assert len(files.uris) == 3
    assert _local(got.inputFiles()) == _local(_delta(spark, path).inputFiles())
    assert "Location: InMemoryFileIndex" in _plan(got)  # a plain Parquet read: no Delta state
    _same_as_delta(spark, path)
    assert got.count() == 5
    # Compacted by the job (OPTIMIZE): still listed, still the same rows.
    cdclake.lake.bookkeeping.compact(spark, path)
    files = tables.checksum_files(spark, path, tables.head_version(spark, path))
    assert files is not None and len(files.uris) == 1
    _same_as_delta(spark, path)


def test_a_bookkeeping_read_falls_back_to_delta_when_the_checksum_cannot_say(spark, tmp_path):
    from cdclake.lake import tables

    at = datetime(2026, 11, 22, 10, tzinfo=UTC)
    # No table yet: an empty frame of the given schema.
    missing = cdclake.lake.bookkeeping.read_delta(spark, str(tmp_path / "none"), LEDGERISH)
    assert missing.schema == LEDGERISH and missing.count() == 0
    # Checksum gone (Delta writes it best effort).
    gone = str(tmp_path / "gone")
    _append(spark, gone, [("a", 1, at)])
    _append(spark, gone, [("b", 2, at)])
    (Path(gone) / "_delta_log" / f"{1:020d}.crc").unlink()
    # More files than Delta lists in a checksum (50; 2 here).
    many = str(tmp_path / "many")
    with setting(spark, "spark.databricks.delta.allFilesInCrc.thresholdNumFiles", "2"):
        for i in range(3):
            _append(spark, many, [(f"c{i}", i, at)])
    # Deletion vectors (the files hold rows the table no longer has) and partition columns
    # (their values are not in the files).
    dv = str(tmp_path / "dv")
    _append(spark, dv, [("a", 1, at), ("b", 2, at)])
    spark.sql(f"ALTER TABLE delta.`{dv}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = true)")
    DeltaTable.forPath(spark, dv).delete("k = 'a'")
    parted = str(tmp_path / "parted")
    local_frame(spark, [("a", 1, at), ("b", 2, at)], LEDGERISH).write.format("delta").partitionBy(
        "k"
    ).save(parted)
    for path in (gone, many, dv, parted):
        assert tables.checksum_files(spark, path, tables.head_version(spark, path)) is None, path
        _same_as_delta(spark, path)
        got = cdclake.lake.bookkeeping.read_delta(spark, path, LEDGERISH)
        assert "Location: PreparedDeltaFileIndex" in _plan(got), path
    assert cdclake.lake.bookkeeping.read_delta(spark, dv, LEDGERISH).count() == 1
