"""Which files a run applies (late files, missed hours, backfill, layouts) and the audit record
every run writes (README, "How a run works")."""

from pathlib import Path

from tests.integration.conftest import Lake, ts


def test_late_files_and_missed_hours_are_applied_and_audited(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    lake.w.cdc(
        "2026-11-22T10", [{"Op": "I", "ts": ts(1), "seq": "1", "id": 2, "p": "a", "v": "h10"}]
    )
    lake.w.cdc(
        "2026-11-22T12",
        [{"Op": "I", "ts": ts(1, hour=12), "seq": "3", "id": 4, "p": "a", "v": "future"}],
    )
    rec = lake.inc("2026-11-22T11")
    assert rec["hours"] == ["2026-11-22T10"]  # hour 12 is not before --until
    # hour 10 gets a late file; hour 11's scheduled run never happened
    lake.w.cdc(
        "2026-11-22T10", [{"Op": "U", "ts": ts(59, 30), "seq": "2", "id": 2, "p": "a", "v": "late"}]
    )
    lake.w.cdc(
        "2026-11-22T11",
        [{"Op": "I", "ts": ts(5, hour=11), "seq": "2a", "id": 3, "p": "b", "v": "h11"}],
    )
    rec = lake.inc("2026-11-22T13")
    assert rec["files"] == 3
    assert rec["hours"] == ["2026-11-22T10", "2026-11-22T11", "2026-11-22T12"]
    lake.assert_rows([(1, "a", "x"), (2, "a", "late"), (3, "b", "h11"), (4, "a", "future")])

    audit = lake.spark.read.format("delta").load(lake.cfg.audit_location)
    last = audit.where(f"run_id = '{rec['run_id']}'").first().asDict()
    assert (
        last["table"] == "s.t" and last["mode"] == "incremental" and last["status"] == "succeeded"
    )
    assert last["records"] == 3 and last["records_by_op"] == {"I": 2, "U": 1}
    assert (last["rows_inserted"], last["rows_updated"], last["rows_deleted"]) == (2, 1, 0)
    assert last["quarantined"] == 0 and last["duplicates_collapsed"] == 0
    assert last["delta_version"] == lake.version()
    assert last["newest_change_ts"].hour == 12
    assert set(last["timings"]) >= {"list", "read", "dedupe", "merge", "ledger"}
    assert audit.count() == 3  # full + two incremental runs


def test_dash_layout_and_no_change_sequence_column(spark, tmp_path):
    lake = Lake(
        spark,
        tmp_path,
        date_partition_delimiter="DASH",
        change_sequence_column=None,
        full_load_has_op=False,
    )
    lake.w.load([{"id": 1, "p": "a", "v": "x"}], with_op=False)
    lake.full()
    lake.w.cdc("2026-11-22T10", [{"Op": "U", "ts": ts(1), "id": 1, "p": "a", "v": "dash"}])
    assert (lake.w.folder / "2026-11-22-10").is_dir()
    lake.inc("2026-11-22T11")
    lake.assert_rows([(1, "a", "dash")])


def test_noop_when_nothing_new_and_incremental_without_full_load(spark, tmp_path):
    tables = [{"schema": "s", "name": "t", "primary_key": ["id"], "partition_by": ["p"]}]
    lake = Lake(spark, tmp_path, [{**tables[0], "start_from": "cdc"}])  # starts from CDC on purpose
    lake.w.cdc(
        "2026-11-22T10", [{"Op": "I", "ts": ts(1), "seq": "1", "id": 1, "p": "a", "v": "cdc only"}]
    )
    assert lake.inc("2026-11-22T10")["status"] == "noop"  # the only hour is not before --until
    rec = lake.inc("2026-11-22T11")
    assert rec["status"] == "succeeded" and rec["rows_inserted"] == 1
    lake.assert_rows([(1, "a", "cdc only")])


def test_incremental_before_any_full_load_fails_the_table_and_names_the_fix(lake):
    lake.w.cdc(
        "2026-11-22T10", [{"Op": "I", "ts": ts(1), "seq": "1", "id": 1, "p": "a", "v": "cdc only"}]
    )
    rec = lake.inc("2026-11-22T11", expect=1)
    assert rec["status"] == "failed" and rec["error"].startswith("NotLoadedError: s.t has never")
    assert "cdclake_full_load" in rec["error"] and "--load full --tables s.t" in rec["error"]
    assert "start_from: cdc" in rec["error"]
    assert not Path(lake.path).exists()  # nothing was written


def test_full_load_after_cdc_resets_what_is_reapplied(lake):
    """A reload: the new snapshot is newer than the old changes; changes after it re-apply."""
    lake.w.load([{"id": 1, "p": "a", "v": "old"}], ts="2026-11-22 08:00:00.000000")
    lake.full()
    lake.w.cdc(
        "2026-11-22T09",
        [{"Op": "U", "ts": ts(1, hour=9), "seq": "1", "id": 1, "p": "a", "v": "h9"}],
    )
    lake.w.cdc(
        "2026-11-22T10",
        [{"Op": "I", "ts": ts(30), "seq": "3", "id": 9, "p": "a", "v": "after reload"}],
    )
    lake.inc("2026-11-22T11")
    # reload-target at 10:00: new LOAD files (same names), cached change at 10:30 applied above
    lake.w.load([{"id": 1, "p": "a", "v": "reloaded"}], ts="2026-11-22 10:00:00.000000", number=1)
    lake.full()
    lake.assert_rows([(1, "a", "reloaded")])
    rec = lake.inc("2026-11-22T11")
    assert rec["hours"] == ["2026-11-22T10"]  # hour 9 is older than the reload: skipped
    lake.assert_rows([(1, "a", "reloaded"), (9, "a", "after reload")])
    # an old change replayed by a backfill cannot overwrite the reloaded row
    lake.inc("2026-11-22T11", since="2026-11-22T09")
    lake.assert_rows([(1, "a", "reloaded"), (9, "a", "after reload")])


def test_small_runs_interpret_expressions_and_others_keep_the_sessions_settings(
    spark, tmp_path, monkeypatch
):
    """merge.interpreted_max_mb: a run of a small table switches Spark to interpreted
    expressions for its reads and writes, and back after; 0 leaves the session as it is."""
    from cdclake.job import apply
    from cdclake.session import INTERPRETED_CONF, settings

    mode = "spark.sql.codegen.factoryMode"
    seen: list[tuple[str, str]] = []

    def spy(name):
        real = getattr(apply, name)

        def call(ctx, *args, **kwargs):
            seen.append((name, ctx.spark.conf.get(mode)))
            return real(ctx, *args, **kwargs)

        monkeypatch.setattr(apply, name, call)

    spy("overwrite")
    spy("merge")
    row = {"Op": "U", "ts": ts(1), "seq": "1", "id": 1, "p": "a", "v": "y"}
    # The tests' session interprets everything (tests/conftest.py): Spark's defaults here.
    with settings(spark, dict.fromkeys(INTERPRETED_CONF)):
        default = spark.conf.get(mode)
        for limit, inside in ((64, INTERPRETED_CONF[mode]), (0, default)):
            seen.clear()
            lake = Lake(spark, tmp_path / str(limit), merge={"interpreted_max_mb": limit})
            lake.w.load([{"id": 1, "p": "a", "v": "x"}])
            lake.full()
            lake.w.cdc("2026-11-22T10", [row])
            lake.inc("2026-11-22T11")
            lake.assert_rows([(1, "a", "y")])
            assert seen == [("overwrite", inside), ("merge", inside)]
            assert spark.conf.get(mode) == default  # restored after each run


def test_tables_side_by_side_each_run_on_their_own_active_session(spark, tmp_path, monkeypatch):
    """With table_concurrency > 1 every table's run gets a session of its own (its runtime
    settings), and that session is the thread's active one, so Delta's own queries outside
    an action (snapshots, file listings) read its settings too."""
    import pyarrow as pa

    from cdclake.job import run as job_run
    from tests.dms import DmsTable

    seen: dict[str, tuple[bool, bool]] = {}
    real = job_run.run_table

    def spy(session, cfg, table, run_id, window):
        active = session._jvm.org.apache.spark.sql.SparkSession.active()
        seen[table.qualified_name] = (
            session._jsparkSession.equals(active),
            session._jsparkSession.equals(spark._jsparkSession),
        )
        return real(session, cfg, table, run_id, window)

    monkeypatch.setattr(job_run, "run_table", spy)
    tables = [
        {"schema": "s", "name": "t", "primary_key": ["id"], "partition_by": ["p"]},
        {"schema": "s", "name": "u", "primary_key": ["id"]},
    ]
    lake = Lake(spark, tmp_path, tables=tables, merge={"table_concurrency": 2})
    other = DmsTable(lake.cfg, "s.u", {"id": pa.int32(), "v": pa.string()})
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    other.load([{"id": 2, "v": "y"}])
    assert lake.run("--load", "full") == 0
    assert seen == {"s.t": (True, False), "s.u": (True, False)}
    lake.assert_rows([(1, "a", "x")])
    assert [tuple(r) for r in lake.df(name="s.u").collect()] == [(2, "y")]
