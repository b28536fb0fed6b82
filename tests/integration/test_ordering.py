"""Guarantees "Total order of changes", "Latest change per key wins" and "Stale changes are
ignored" (tombstones included)."""

from tests.integration.conftest import ts


def test_ties_on_timestamp_are_broken_by_change_sequence(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "load"}])
    lake.full()
    # One transaction: three changes share the commit time; the sequence orders them, not the
    # row position (the file lists them out of order on purpose).
    lake.w.cdc(
        "2026-11-22T10",
        [
            {
                "Op": "U",
                "ts": ts(5),
                "seq": "00000000000000000000000000000000003",
                "id": 1,
                "p": "a",
                "v": "third",
            },
            {
                "Op": "U",
                "ts": ts(5),
                "seq": "00000000000000000000000000000000001",
                "id": 1,
                "p": "a",
                "v": "first",
            },
            {
                "Op": "U",
                "ts": ts(5),
                "seq": "00000000000000000000000000000000002",
                "id": 1,
                "p": "a",
                "v": "second",
            },
        ],
    )
    rec = lake.inc("2026-11-22T11")
    lake.assert_rows([(1, "a", "third")])
    assert rec["duplicates_collapsed"] == 2


def test_without_sequence_file_name_then_row_position_break_ties(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "load"}, {"id": 2, "p": "a", "v": "load"}])
    lake.full()
    same = ts(5)
    lake.w.cdc(
        "2026-11-22T10",
        [
            {"Op": "U", "ts": same, "id": 1, "p": "a", "v": "f2-row0"},
            {"Op": "U", "ts": same, "id": 2, "p": "a", "v": "f2-row0"},
            {"Op": "U", "ts": same, "id": 2, "p": "a", "v": "f2-row1"},
        ],
        name="20261122-100600000.parquet",
    )
    lake.w.cdc(
        "2026-11-22T10",
        [
            {"Op": "U", "ts": same, "id": 1, "p": "a", "v": "f1-row0"},
        ],
        name="20261122-100500000.parquet",
    )
    lake.inc("2026-11-22T11")
    lake.assert_rows([(1, "a", "f2-row0"), (2, "a", "f2-row1")])


def test_full_load_rows_are_older_than_cached_changes_at_the_same_time(lake):
    start = "2026-11-22 09:59:00.000000"
    lake.w.load(
        [{"id": 1, "p": "a", "v": "snapshot"}, {"id": 2, "p": "a", "v": "snapshot"}], ts=start
    )
    lake.w.cdc(
        "2026-11-22T09",
        [
            # committed at the task start instant, delivered as a cached change
            {"Op": "U", "ts": start, "seq": "1", "id": 1, "p": "a", "v": "cached"},
            {"Op": "D", "ts": "2026-11-22 09:59:30.000000", "seq": "2", "id": 2},
        ],
    )
    lake.full()
    lake.inc("2026-11-22T10")
    lake.assert_rows([(1, "a", "cached")])


def test_update_for_missing_key_inserts_and_delete_for_missing_key_changes_nothing(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    lake.w.cdc(
        "2026-11-22T10",
        [
            {"Op": "U", "ts": ts(1), "seq": "1", "id": 7, "p": "b", "v": "upsert"},
            {"Op": "D", "ts": ts(2), "seq": "2", "id": 8},
        ],
    )
    rec = lake.inc("2026-11-22T11")
    lake.assert_rows([(1, "a", "x"), (7, "b", "upsert")])
    assert (rec["rows_inserted"], rec["rows_deleted"], rec["deletes_of_absent_keys"]) == (1, 0, 1)


def test_latest_change_per_key_wins_insert_delete_insert(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    lake.w.cdc(
        "2026-11-22T10",
        [
            {"Op": "I", "ts": ts(1), "seq": "1", "id": 5, "p": "a", "v": "one"},
            {"Op": "D", "ts": ts(2), "seq": "2", "id": 5},
            {"Op": "I", "ts": ts(3), "seq": "3", "id": 5, "p": "b", "v": "two"},
            {"Op": "D", "ts": ts(4), "seq": "4", "id": 1},
        ],
    )
    lake.inc("2026-11-22T11")
    lake.assert_rows([(5, "b", "two")])


def test_stale_change_is_ignored_and_tombstone_blocks_resurrection(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}, {"id": 2, "p": "a", "v": "y"}])
    lake.full()
    # Hour 11 arrives (and is applied) before hour 10, whose changes are older.
    lake.w.cdc(
        "2026-11-22T11",
        [
            {"Op": "U", "ts": ts(5, hour=11), "seq": "20", "id": 1, "p": "a", "v": "new"},
            {"Op": "D", "ts": ts(6, hour=11), "seq": "21", "id": 2},
        ],
    )
    lake.inc("2026-11-22T12")
    lake.w.cdc(
        "2026-11-22T10",
        [
            {"Op": "U", "ts": ts(5), "seq": "10", "id": 1, "p": "a", "v": "old"},
            {"Op": "U", "ts": ts(6), "seq": "11", "id": 2, "p": "a", "v": "resurrected?"},
        ],
    )
    rec = lake.inc("2026-11-22T12")
    lake.assert_rows([(1, "a", "new")])
    assert rec["stale_skipped"] == 2
    tombs = lake.spark.read.format("delta").load(
        lake.cfg.state_location(lake.cfg.table("s.t"), "tombstones")
    )
    assert [r["id"] for r in tombs.collect()] == [2]
    assert lake.df(bookkeeping=True).columns[-5:] == [
        "_cdc_op",
        "_cdc_commit_ts",
        "_cdc_change_seq",
        "_cdc_source_file",
        "_cdc_row_pos",
    ]


def test_insert_newer_than_tombstone_brings_key_back_and_old_tombstone_stays_harmless(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    lake.w.cdc("2026-11-22T10", [{"Op": "D", "ts": ts(1), "seq": "1", "id": 1}])
    lake.inc("2026-11-22T11")
    lake.w.cdc(
        "2026-11-22T11",
        [{"Op": "I", "ts": ts(1, hour=11), "seq": "2", "id": 1, "p": "c", "v": "back"}],
    )
    lake.inc("2026-11-22T12")
    lake.assert_rows([(1, "c", "back")])
    # Tombstones are append-only: the superseded one stays (maintenance expires it) ...
    tombs = lake.spark.read.format("delta").load(
        lake.cfg.state_location(lake.cfg.table("s.t"), "tombstones")
    )
    assert [(r["id"], r["_cdc_change_seq"][-1]) for r in tombs.collect()] == [(1, "1")]
    # ... and changes nothing: a late update between the delete and the re-insert is stale
    # (the live row is newer); after a second delete the newest tombstone is the one that counts.
    lake.w.cdc(
        "2026-11-22T12",
        [{"Op": "U", "ts": ts(30), "seq": "3", "id": 1, "p": "a", "v": "stale"}],
    )
    assert lake.inc("2026-11-22T13")["stale_skipped"] == 1
    lake.assert_rows([(1, "c", "back")])
    lake.w.cdc("2026-11-22T13", [{"Op": "D", "ts": ts(3, hour=13), "seq": "5", "id": 1}])
    lake.inc("2026-11-22T14")
    lake.assert_rows([])
    lake.w.cdc(
        "2026-11-22T14",
        [{"Op": "U", "ts": ts(2, hour=13), "seq": "4", "id": 1, "p": "c", "v": "resurrected?"}],
    )
    assert lake.inc("2026-11-22T15")["stale_skipped"] == 1
    lake.assert_rows([])
