"""Guarantees "Idempotent, order-insensitive" and "Nothing half-done": same files twice, hours
in any order, crashes and reruns all converge."""

import pytest
from chispa import assert_df_equality

from cdclake.job import apply
from tests.integration.conftest import Lake, ts

HOURS = {
    "2026-11-22T10": [
        {"Op": "U", "ts": ts(1), "seq": "01", "id": 1, "p": "a", "v": "h10"},
        {"Op": "I", "ts": ts(2), "seq": "02", "id": 3, "p": "b", "v": "h10"},
        {"Op": "D", "ts": ts(3), "seq": "03", "id": 2},
    ],
    "2026-11-22T11": [
        {"Op": "U", "ts": ts(1, hour=11), "seq": "11", "id": 3, "p": "a", "v": "h11"},
        {"Op": "I", "ts": ts(2, hour=11), "seq": "12", "id": 2, "p": "c", "v": "back"},
        {"Op": "D", "ts": ts(3, hour=11), "seq": "13", "id": 1},
    ],
    "2026-11-22T12": [
        {"Op": "U", "ts": ts(1, hour=12), "seq": "21", "id": 2, "p": "a", "v": "h12"},
        {"Op": "I", "ts": ts(2, hour=12), "seq": "22", "id": 4, "p": "b", "v": "h12"},
    ],
}


def write(lake, hour):
    """Same file name for an hour in every lake, as DMS would have written it once."""
    name = f"{hour[:10].replace('-', '')}-{hour[11:]}0500000.parquet"
    lake.w.cdc(hour, HOURS[hour], name=name)


FINAL = [(2, "a", "h12"), (3, "a", "h11"), (4, "b", "h12")]


def seeded(spark, root):
    lake = Lake(spark, root)
    lake.w.load([{"id": 1, "p": "a", "v": "x"}, {"id": 2, "p": "b", "v": "y"}])
    lake.full()
    return lake


def test_in_order_hourly_runs_then_twice_more_is_a_noop(spark, tmp_path):
    lake = seeded(spark, tmp_path)
    for i, (hour, changes) in enumerate(HOURS.items()):
        lake.w.cdc(hour, changes)
        lake.inc(f"2026-11-22T{11 + i}")
    lake.assert_rows(FINAL)
    version = lake.version()
    assert lake.inc("2026-11-22T13")["status"] == "noop"
    rec = lake.inc("2026-11-22T13", since="2026-11-22T10")  # backfill: re-applies everything
    assert rec["files"] == 3 and rec["stale_skipped"] > 0
    assert (rec["rows_inserted"], rec["rows_updated"], rec["rows_deleted"]) == (0, 0, 0)
    lake.assert_rows(FINAL)
    assert lake.version() <= version + 1  # at most one (empty) commit for the backfill


def test_hours_in_reverse_order_and_in_one_batch_give_the_same_table(spark, tmp_path):
    reverse = seeded(spark, tmp_path / "reverse")
    for hour in reversed(list(HOURS)):
        write(reverse, hour)
        reverse.inc("2026-11-22T13")  # each run sees only the newly landed (older) hour
    batch = seeded(spark, tmp_path / "batch")
    for hour in HOURS:
        write(batch, hour)
    batch.inc("2026-11-22T13")
    reverse.assert_rows(FINAL)
    batch.assert_rows(FINAL)
    # Bookkeeping included: identical tables, whatever the order.
    assert_df_equality(
        reverse.df(bookkeeping=True), batch.df(bookkeeping=True), ignore_row_order=True
    )


def test_duplicate_delivery_in_a_new_file_changes_nothing(spark, tmp_path):
    lake = seeded(spark, tmp_path)
    lake.w.cdc("2026-11-22T10", HOURS["2026-11-22T10"], name="20261122-100500000.parquet")
    lake.inc("2026-11-22T11")
    before = lake.df(bookkeeping=True)
    before = spark.createDataFrame(before.collect(), before.schema)
    # DMS restarted and delivered the same changes again, in a later file.
    lake.w.cdc("2026-11-22T10", HOURS["2026-11-22T10"], name="20261122-100900000.parquet")
    rec = lake.inc("2026-11-22T11")
    assert rec["files"] == 1
    lake.assert_rows([(1, "a", "h10"), (3, "b", "h10")])
    # Only the tie-breaking file name differs; the data does not.
    cols = [c for c in before.columns if c != "_cdc_source_file"]
    assert_df_equality(lake.df(True).select(cols), before.select(cols), ignore_row_order=True)


class CrashError(Exception):
    pass


@pytest.mark.parametrize(
    ("owner", "step"),
    [
        # before anything is written
        (apply, "tombstones"),
        # tombstones committed, data not
        (apply, "merge"),
        # data committed, ledger not
        (apply, "ledger"),
    ],
)
def test_crash_then_rerun_reaches_the_same_state(spark, tmp_path, monkeypatch, owner, step):
    lake = seeded(spark, tmp_path)
    for hour, changes in HOURS.items():
        lake.w.cdc(hour, changes)

    def crash(*args, **kwargs):
        raise CrashError(step)

    monkeypatch.setattr(owner, step, crash)
    assert lake.run("--load", "incremental", "--until", "2026-11-22T13") == 1
    assert lake.last_summary()["status"] == "failed"
    assert "CrashError" in lake.last_summary()["error"]
    monkeypatch.undo()
    rec = lake.inc("2026-11-22T13")
    assert rec["files"] == 3  # nothing was ledgered, everything is re-read
    lake.assert_rows(FINAL)
    assert lake.inc("2026-11-22T13")["status"] == "noop"


def test_each_run_is_one_data_commit(spark, tmp_path):
    lake = seeded(spark, tmp_path)
    v0 = lake.version()
    for hour, changes in HOURS.items():
        lake.w.cdc(hour, changes)
    lake.inc("2026-11-22T13")
    from delta.tables import DeltaTable

    history = DeltaTable.forPath(spark, lake.path).history().collect()
    new = [h for h in history if h["version"] > v0]
    assert [h["operation"] for h in new] == ["MERGE"]
    assert '"cdclake_run"' in new[0]["userMetadata"]


def test_full_load_rerun_replaces_the_table(spark, tmp_path):
    lake = seeded(spark, tmp_path)
    lake.full()
    lake.full()
    lake.assert_rows([(1, "a", "x"), (2, "b", "y")])
