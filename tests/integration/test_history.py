"""History tables (SCD type 2): every semantic of README "History tables", on real Delta tables,
whole tables compared with chispa.

Rows are written ``(id, p, v, _valid_from, _valid_to, _is_current, _cdc_op)`` with times as
minutes of hour 10 (``m(5)`` = 10:05) and ``LOAD`` = the full load's time (08:00).
"""

from __future__ import annotations

import json
from datetime import datetime

import pyarrow as pa
import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import types as T

from cdclake.core.hours import UTC
from tests.integration.conftest import Lake, ts

LOAD = datetime(2026, 11, 22, 8, tzinfo=UTC)
H10, H11 = "2026-11-22T10", "2026-11-22T11"
COLUMNS = ["id", "p", "v", "_valid_from", "_valid_to", "_is_current", "_cdc_op"]
SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("p", T.StringType()),
        T.StructField("v", T.StringType()),
        T.StructField("_valid_from", T.TimestampType()),
        T.StructField("_valid_to", T.TimestampType()),
        T.StructField("_is_current", T.BooleanType()),
        T.StructField("_cdc_op", T.StringType()),
    ]
)


def m(minute: int, hour: int = 10, second: int = 0) -> datetime:
    return datetime(2026, 11, 22, hour, minute, second, tzinfo=UTC)


def table(history: object = True, **extra: object) -> list[dict]:
    return [
        {"schema": "s", "name": "t", "primary_key": ["id"], "partition_by": ["p"]}
        | {"history": history}
        | extra
    ]


@pytest.fixture
def lake(spark, tmp_path):
    return Lake(spark, tmp_path, tables=table())


def history_path(lake: Lake) -> str:
    return lake.cfg.history_location(lake.cfg.table(lake.name))


def history(lake: Lake, *columns: str):
    return lake.spark.read.format("delta").load(history_path(lake)).select(*(columns or COLUMNS))


def assert_history(lake: Lake, rows: list[tuple]) -> None:
    expected = lake.spark.createDataFrame(rows, SCHEMA)
    assert_df_equality(
        history(lake),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
        ignore_column_order=False,
    )


def history_version(lake: Lake) -> int:
    return DeltaTable.forPath(lake.spark, history_path(lake)).history(1).first()["version"]


def U(minute: int, seq: int, id: int, p: str, v: str, op: str = "U", second: int = 0) -> dict:
    return {"Op": op, "ts": ts(minute, second), "seq": str(seq), "id": id, "p": p, "v": v}


def D(minute: int, seq: int, id: int) -> dict:
    return {"Op": "D", "ts": ts(minute), "seq": str(seq), "id": id}


def test_full_load_then_changes_one_version_per_key_and_commit_time(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}, {"id": 2, "p": "a", "v": "y"}])
    lake.full()
    assert_history(
        lake, [(1, "a", "x", LOAD, None, True, "I"), (2, "a", "y", LOAD, None, True, "I")]
    )
    lake.w.cdc(
        H10,
        [
            U(5, 1, 1, "a", "x2"),
            # One transaction: two changes at one commit time make one version (the last),
            # which also moves the row to another partition.
            U(6, 2, 1, "b", "x3"),
            U(6, 3, 1, "b", "x4"),
            # Changes nothing: no version (its change columns are the version's newest).
            U(7, 4, 2, "a", "y"),
            U(8, 5, 3, "c", "z", op="I"),
        ],
    )
    lake.inc(H11)
    assert_history(
        lake,
        [
            (1, "a", "x", LOAD, m(5), False, "I"),
            (1, "a", "x2", m(5), m(6), False, "U"),
            (1, "b", "x4", m(6), None, True, "U"),
            (2, "a", "y", LOAD, None, True, "U"),
            (3, "c", "z", m(8), None, True, "I"),
        ],
    )
    # The current versions are the live rows, change columns included.
    current = history(lake, "id", "p", "v", "_cdc_commit_ts", "_cdc_change_seq")
    live = lake.df(bookkeeping=True).select("id", "p", "v", "_cdc_commit_ts", "_cdc_change_seq")
    assert_df_equality(current.where("_is_current"), live, ignore_row_order=True)


def test_delete_closes_the_version_and_a_reinsert_opens_one(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    lake.w.cdc(
        H10,
        [
            D(5, 1, 1),  # key-only delete
            U(6, 2, 1, "b", "again", op="I"),
            U(7, 3, 2, "a", "new", op="I"),
            D(9, 4, 2),
            D(9, 5, 3),  # delete of a key the table never had: nothing
            # One transaction inserts and deletes a key: never visible, no version.
            U(10, 6, 4, "a", "blink", op="I"),
            D(10, 7, 4),
        ],
    )
    lake.inc(H11)
    assert_history(
        lake,
        [
            (1, "a", "x", LOAD, m(5), False, "I"),
            (1, "b", "again", m(6), None, True, "I"),
            (2, "a", "new", m(7), m(9), False, "I"),
        ],
    )


def test_a_change_of_untracked_columns_updates_the_version_in_place(spark, tmp_path):
    lake = Lake(spark, tmp_path, tables=table({"track_columns": ["p"]}))
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    lake.w.cdc(H10, [U(5, 1, 1, "a", "x2"), U(6, 2, 1, "b", "x3"), U(7, 3, 1, "b", "x4")])
    lake.inc(H11)
    assert_history(
        lake,
        [(1, "a", "x2", LOAD, m(6), False, "U"), (1, "b", "x4", m(6), None, True, "U")],
    )


def test_late_changes_are_put_in_their_place_and_the_neighbours_reclosed(spark, tmp_path):
    """The key moved from partition a to b at 10:20; a change from 10:10 to partition c
    arrives an hour late: the version in a is re-closed although neither the live row (b) nor
    the late change (c) is there. With only p tracked, the late change also splits a version:
    the v-only change at 10:30 now follows a change of p, so it opens a version again."""
    lake = Lake(spark, tmp_path, tables=table({"except_columns": ["v"]}))
    lake.w.load([{"id": 1, "p": "a", "v": "x"}, {"id": 2, "p": "a", "v": "y"}])
    lake.full()
    lake.w.cdc(H10, [U(20, 1, 1, "b", "x1"), U(30, 2, 2, "a", "y1")])
    lake.inc(H11)
    assert_history(
        lake,
        [
            (1, "a", "x", LOAD, m(20), False, "I"),
            (1, "b", "x1", m(20), None, True, "U"),
            (2, "a", "y1", LOAD, None, True, "U"),
        ],
    )
    lake.w.cdc(H10, [U(10, 0, 1, "c", "late1"), U(10, 0, 2, "c", "late2", second=30)])
    lake.inc(H11)
    assert_history(
        lake,
        [
            (1, "a", "x", LOAD, m(10), False, "I"),
            (1, "c", "late1", m(10), m(20), False, "U"),
            (1, "b", "x1", m(20), None, True, "U"),
            (2, "a", "y", LOAD, m(10, second=30), False, "I"),
            (2, "c", "late2", m(10, second=30), m(30), False, "U"),
            (2, "a", "y1", m(30), None, True, "U"),
        ],
    )
    lake.assert_rows([(1, "b", "x1"), (2, "a", "y1")])


def test_a_late_change_before_a_delete_is_closed_by_it(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    lake.w.cdc(H10, [D(30, 2, 1), D(40, 4, 2)])
    lake.inc(H11)
    # Late: an update before the delete of key 1, and the insert of key 2 (whose delete was
    # applied first, to a key the table did not have).
    lake.w.cdc(H10, [U(10, 1, 1, "b", "x1"), U(20, 3, 2, "a", "y", op="I")])
    lake.inc(H11)
    assert_history(
        lake,
        [
            (1, "a", "x", LOAD, m(10), False, "I"),
            (1, "b", "x1", m(10), m(30), False, "U"),
            (2, "a", "y", m(20), m(40), False, "I"),
        ],
    )
    assert lake.df().count() == 0


def test_duplicate_deliveries_are_not_duplicated_and_reruns_commit_nothing(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    changes = [U(5, 1, 1, "a", "x2"), U(6, 2, 2, "b", "y", op="I"), D(7, 3, 1)]
    lake.w.cdc(H10, changes)
    lake.inc(H11)
    # DMS delivers the rows again in another file (a later name: like the live rows, the
    # versions now carry that copy's file name).
    lake.w.cdc(H10, list(reversed(changes)))
    lake.inc(H11)
    expected = [
        (1, "a", "x", LOAD, m(5), False, "I"),
        (1, "a", "x2", m(5), m(7), False, "U"),
        (2, "b", "y", m(6), None, True, "I"),
    ]
    assert_history(lake, expected)
    live = lake.df(bookkeeping=True).select("id", "_cdc_source_file")
    current = history(lake, "id", "_cdc_source_file", "_is_current").where("_is_current")
    assert_df_equality(current.drop("_is_current"), live, ignore_row_order=True)
    version = history_version(lake)
    lake.inc(H11)  # nothing new
    lake.inc(H11, since=H10)  # backfill of the hour
    assert history_version(lake) == version
    assert_history(lake, expected)


def test_hours_in_any_order_give_the_history_of_in_order_processing(spark, tmp_path):
    hours = {
        "2026-11-22T10": [U(5, 1, 1, "a", "h10"), U(50, 2, 2, "b", "h10", op="I")],
        "2026-11-22T11": [
            {**U(5, 3, 1, "b", "h11"), "ts": ts(5, hour=11)},
            {**D(6, 4, 2), "ts": ts(6, hour=11)},
        ],
        "2026-11-22T12": [
            {**U(5, 5, 2, "c", "h12", op="I"), "ts": ts(5, hour=12)},
            {**U(6, 6, 1, "b", "h11"), "ts": ts(6, hour=12)},  # changes nothing
        ],
    }
    results = []
    for name, order in (("in_order", sorted(hours)), ("reversed", sorted(hours, reverse=True))):
        lake = Lake(spark, tmp_path / name, tables=table())
        lake.w.load([{"id": 1, "p": "a", "v": "x"}])
        lake.full()
        for hour in order:
            lake.w.cdc(hour, hours[hour])
            lake.inc("2026-11-22T13")
        results.append(history(lake))
    assert_df_equality(results[1], results[0], ignore_row_order=True)
    assert_df_equality(
        results[0],
        spark.createDataFrame(
            [
                (1, "a", "x", LOAD, m(5), False, "I"),
                (1, "a", "h10", m(5), m(5, 11), False, "U"),
                (1, "b", "h11", m(5, 11), None, True, "U"),
                (2, "b", "h10", m(50), m(6, 11), False, "I"),
                (2, "c", "h12", m(5, 12), None, True, "I"),
            ],
            SCHEMA,
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_a_reload_opens_versions_only_where_rows_differ(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}, {"id": 2, "p": "a", "v": "y"}])
    lake.full()
    reload_ts = "2026-11-22 09:00:00.000000"
    lake.w.load(
        [
            {"id": 1, "p": "a", "v": "x"},
            {"id": 3, "p": "b", "v": "z"},
            {"id": 4, "p": "a", "v": "w"},
        ],
        ts=reload_ts,
    )
    lake.full()
    at = m(0, hour=9)
    assert_history(
        lake,
        [
            (1, "a", "x", LOAD, None, True, "I"),
            (2, "a", "y", LOAD, at, False, "I"),  # gone from the reloaded table
            (3, "b", "z", at, None, True, "I"),
            (4, "a", "w", at, None, True, "I"),
        ],
    )
    version = history_version(lake)
    lake.full()  # the same load again: nothing changes
    assert history_version(lake) == version


def test_history_switched_on_later_starts_from_the_live_table(spark, tmp_path):
    off = Lake(spark, tmp_path, tables=table(history=False))
    off.w.load([{"id": 1, "p": "a", "v": "x"}, {"id": 2, "p": "a", "v": "y"}])
    off.full()
    off.w.cdc(H10, [U(5, 1, 1, "a", "x2"), D(6, 2, 2)])
    off.inc(H11)
    lake = Lake(spark, tmp_path, tables=table())  # same lake, history on
    lake.w.cdc(H10, [U(30, 3, 3, "b", "z", op="I")], name="20261122-1030.parquet")
    lake.inc(H11)
    assert_history(
        lake,
        [(1, "a", "x2", m(5), None, True, "U"), (3, "b", "z", m(30), None, True, "I")],
    )
    # The delete before history was on is known (from its tombstone): an older change of
    # the key replayed now does not make it current.
    lake.w.cdc(H10, [U(1, 0, 2, "a", "old")], name="20261122-1001.parquet")
    lake.inc(H11)
    assert history(lake).where("id = 2 and _is_current").count() == 0


def test_a_crash_between_the_change_log_and_the_history_merge_converges(lake, monkeypatch):
    from cdclake.lake.history import HistoryTable

    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    lake.w.cdc(H10, [U(5, 1, 1, "a", "x2"), D(6, 2, 1), U(7, 3, 1, "b", "x3", op="I")])
    merge = HistoryTable.merge

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(HistoryTable, "merge", crash)
    assert lake.inc(H11, expect=1)["status"] == "failed"
    monkeypatch.setattr(HistoryTable, "merge", merge)
    lake.inc(H11)
    assert_history(
        lake,
        [
            (1, "a", "x", LOAD, m(5), False, "I"),
            (1, "a", "x2", m(5), m(6), False, "U"),
            (1, "b", "x3", m(7), None, True, "I"),
        ],
    )


def test_a_crash_after_the_history_commit_leaves_manifests_the_next_run_rebuilds(lake, monkeypatch):
    from cdclake.lake.history import HistoryTable
    from tests.integration.test_table_shape import manifest_files, snapshot_files

    lake.w.load([{"id": 1, "p": "a", "v": "x"}, {"id": 2, "p": "b", "v": "y"}])
    lake.full()
    lake.w.cdc(H10, [U(5, 1, 1, "a", "x2"), U(6, 2, 3, "c", "z", op="I")])
    committed = HistoryTable.committed

    def crash(self):  # the MERGE is committed; the process dies before the manifests follow
        raise RuntimeError("killed")

    monkeypatch.setattr(HistoryTable, "committed", crash)
    assert lake.inc(H11, expect=1)["status"] == "failed"
    path = history_path(lake)
    assert manifest_files(path) != snapshot_files(lake.spark, path)  # stale: new files unlisted
    monkeypatch.setattr(HistoryTable, "committed", committed)
    lake.inc(H11)
    assert manifest_files(path) == snapshot_files(lake.spark, path)
    assert_history(
        lake,
        [
            (1, "a", "x", LOAD, m(5), False, "I"),
            (1, "a", "x2", m(5), None, True, "U"),
            (2, "b", "y", LOAD, None, True, "I"),
            (3, "c", "z", m(6), None, True, "I"),
        ],
    )


def test_the_history_is_written_beside_the_live_commit_and_a_crash_of_either_converges(
    lake, monkeypatch
):
    """The history is written on a thread of its own while the live table is decided and
    merged: when the live commit dies, the history has committed (the run waits for it); the
    rerun commits the live table and nothing more to the history. Each commit carries its
    run's metadata (the history's session is a clone: the two do not share settings)."""
    from cdclake.job import apply

    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    lake.w.cdc(H10, [U(5, 1, 1, "a", "x2"), U(6, 2, 2, "b", "y", op="I")])
    merge = apply.merge

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(apply, "merge", crash)
    failed = lake.inc(H11, expect=1)
    assert failed["status"] == "failed" and "killed" in failed["error"]
    written = DeltaTable.forPath(lake.spark, history_path(lake)).history(1).first()
    assert json.loads(written["userMetadata"])["cdclake_run"] == failed["run_id"]
    assert lake.df().where("id = 2").count() == 0  # the live table has not changed
    monkeypatch.setattr(apply, "merge", merge)
    done = lake.inc(H11)
    assert history_version(lake) == written["version"]  # nothing more to write
    live = DeltaTable.forPath(lake.spark, lake.path).history(1).first()
    assert json.loads(live["userMetadata"])["cdclake_run"] == done["run_id"]
    lake.assert_rows([(1, "a", "x2"), (2, "b", "y")])
    assert_history(
        lake,
        [
            (1, "a", "x", LOAD, m(5), False, "I"),
            (1, "a", "x2", m(5), None, True, "U"),
            (2, "b", "y", m(6), None, True, "I"),
        ],
    )


def test_the_history_merge_touches_only_the_partitions_of_the_batchs_keys(lake):
    lake.w.load([{"id": i, "p": p, "v": "x"} for i, p in enumerate("abcabc")])
    lake.full()
    lake.w.cdc(H10, [U(5, 1, 0, "a", "x2"), U(6, 2, 3, "a", "x3")])
    lake.inc(H11)
    detail = DeltaTable.forPath(lake.spark, history_path(lake)).history(1).first()
    removed = (
        lake.spark.read.json(f"{history_path(lake)}/_delta_log/{detail['version']:020d}.json")
        .where("remove is not null")
        .select("remove.partitionValues.p")
        .distinct()
    )
    assert [r["p"] for r in removed.collect()] == ["a"]
    assert detail["operation"] == "MERGE"


def test_new_source_columns_reach_the_history(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    lake.w.schema["w"] = pa.int32()
    lake.w.cdc(H10, [{**U(5, 1, 1, "a", "x"), "w": 7}])
    lake.inc(H11)
    got = history(lake, "id", "v", "w", "_valid_from", "_is_current")
    expected = lake.spark.createDataFrame(
        [(1, "x", None, LOAD, False), (1, "x", 7, m(5), True)],
        "id int, v string, w int, _valid_from timestamp, _is_current boolean",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_the_validation_queries_pass_on_the_history_and_name_what_breaks_it(lake):
    from pyspark.sql import functions as F

    from cdclake.catalog.local import LocalRegistrar
    from cdclake.catalog.validation import validation_queries

    lake.w.load([{"id": 1, "p": "a", "v": "x"}, {"id": 2, "p": "a", "v": "y"}])
    lake.full()
    lake.w.cdc(H10, [U(5, 1, 1, "b", "x2"), D(6, 2, 2), U(7, 3, 2, "a", "y2", op="I")])
    lake.inc(H11)
    t = lake.cfg.table(lake.name)
    LocalRegistrar(lake.cfg, {"spark": lake.spark}).register(t)
    queries = {
        k: sql for k, sql in validation_queries(lake.cfg, t, "spark").items() if "history" in k
    }
    assert set(queries) == {"history_no_overlap", "history_one_current", "history_current_vs_live"}

    def utc(value):  # PySpark hands back naive local times
        return value.astimezone(UTC) if isinstance(value, datetime) else value

    def failing() -> dict[str, list[tuple]]:
        found = {k: lake.spark.sql(q).collect() for k, q in queries.items()}
        return {k: sorted(tuple(map(utc, r)) for r in rows) for k, rows in found.items() if rows}

    assert failing() == {}
    # A second open version of key 1 from 10:03 (what a bug or a manual write could leave).
    bad = (
        lake.spark.read.format("delta")
        .load(history_path(lake))
        .where("id = 1 and _is_current")
        .withColumn("_valid_from", F.lit(m(3)).cast("timestamp"))
        .withColumn("_cdc_commit_ts", F.lit(m(3)).cast("timestamp"))
    )
    bad.write.format("delta").mode("append").save(history_path(lake))
    assert failing() == {
        # key, valid from, valid to, the next version's valid from
        "history_no_overlap": [(1, LOAD, m(5), m(3)), (1, m(3), None, m(5))],
        # key, open versions
        "history_one_current": [(1, 2)],
        # the history's change time, the live row's, key
        "history_current_vs_live": [(m(3), m(5), 1)],
    }


def test_maintenance_compacts_and_re_manifests_the_history_and_compacts_its_change_log(lake):
    import json
    from datetime import timedelta
    from pathlib import Path
    from urllib.parse import urlparse

    import yaml

    from cdclake.cli.maintenance import main as maintain
    from cdclake.lake.history import CHANGES

    lake.w.load([{"id": i, "p": "a", "v": "x"} for i in range(4)])
    lake.full()
    # New keys only (a MERGE rewrites no file then, it adds one), each inserted and then
    # updated to the same row (so the insert goes to the change log).
    for key, hour in ((10, H11), (11, "2026-11-22T12")):
        lake.w.cdc(H10, [U(key, 1, key, "a", "x", op="I"), U(key + 20, 2, key, "a", "x")])
        lake.inc(hour)
    path, changes = history_path(lake), lake.cfg.state_location(lake.cfg.table(lake.name), CHANGES)
    before = lake.spark.createDataFrame(history(lake).collect(), history(lake).schema)

    def files(where: str) -> set[str]:
        return {urlparse(f).path for f in lake.spark.read.format("delta").load(where).inputFiles()}

    assert len(files(path)) > 1 and len(files(changes)) > 1
    doc = yaml.safe_load((Path(lake.cfg.raw_root).parent / "pipeline.yaml").read_text())
    doc["maintenance"] = {"compact_recent_days": 3, "vacuum_retain_hours": 336}
    config = Path(lake.cfg.raw_root).parent / "maintenance.yaml"
    config.write_text(yaml.safe_dump(doc))
    summary = Path(lake.cfg.raw_root).parent / "maintenance.json"
    now = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    args = ["--config", str(config), "--now", now, "--summary-json", str(summary)]
    assert maintain(args, spark=lake.spark) == 0
    (rec,) = json.loads(summary.read_text())
    assert rec["status"] == "succeeded" and "history" in rec["timings"]
    assert len(files(path)) == 1 and len(files(changes)) == 1
    manifest = Path(path, "_symlink_format_manifest", "p=a", "manifest").read_text().split()
    assert {urlparse(line).path for line in manifest} == files(path)
    assert_history(lake, [tuple(r) for r in before.collect()])
