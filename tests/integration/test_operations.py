"""Operating the pipeline never loses data silently: one writer per table (the lease), scratch
files of live runs left alone, reloads from the newest load only, backfills past the
tombstones refused unless overridden, full loads that fail or die half-way, the audit of every
table written right after it, a dropped partition column, and capped catch-ups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from delta.tables import DeltaTable

from cdclake.job import apply
from cdclake.lake import lease
from cdclake.lake.bookkeeping import TableState
from tests.dms import write_config
from tests.integration.conftest import Lake, ts

REPO = Path(__file__).resolve().parents[2]


def seeded(spark, root, **kwargs) -> Lake:
    lake = Lake(spark, root, **kwargs)
    lake.w.load([{"id": i, "p": "a", "v": "x"} for i in (1, 2, 3)])
    lake.full()
    return lake


def ledger_files(lake: Lake) -> list[str]:
    path = lake.cfg.state_location(lake.cfg.table(lake.name), "ledger")
    rows = lake.spark.read.format("delta").load(path).where("kind = 'cdc'").collect()
    return sorted(r["file"] for r in rows)


# ---- one writer per table ----------------------------------------------------------------
def test_a_held_lease_refuses_a_second_run_until_released_or_expired(spark, tmp_path):
    lake = seeded(spark, tmp_path)
    state = TableState(spark, lake.cfg, lake.cfg.table(lake.name))
    seq = lease.acquire(state, "run-a.1", 180, lake.name)
    with pytest.raises(lease.TableBusyError, match="another run holds this table"):
        lease.acquire(state, "run-b.1", 180, lake.name)
    # A merge run meanwhile fails that table (exit 1) and writes nothing.
    lake.w.cdc("2026-11-22T10", [{"Op": "U", "ts": ts(1), "seq": "1", "id": 1, "p": "a", "v": "n"}])
    rec = lake.inc("2026-11-22T11", expect=1)
    assert rec["status"] == "failed" and "TableBusyError" in rec["error"]
    assert ledger_files(lake) == []
    lease.release(state, "run-a.1", seq)
    assert lake.inc("2026-11-22T11")["rows_updated"] == 1  # a plain rerun converges
    # A claim older than the lease belongs to a dead run: it does not block.
    lease.acquire(state, "run-dead.1", 180, lake.name)
    assert lease.acquire(state, "run-c.1", 0, lake.name) > seq


def test_maintenance_waits_for_the_table_too(spark, tmp_path):
    from cdclake.cli.maintenance import main as maintain

    lake = seeded(spark, tmp_path)
    state = TableState(spark, lake.cfg, lake.cfg.table(lake.name))
    seq = lease.acquire(state, "hourly-run.1", 180, lake.name)
    config = str(write_config(lake.cfg))
    summary = tmp_path / "maintenance.json"
    assert maintain(["--config", config, "--summary-json", str(summary)], spark=spark) == 1
    assert "another run holds this table" in json.loads(summary.read_text())[0]["error"]
    lease.release(state, "hourly-run.1", seq)
    assert maintain(["--config", config], spark=spark) == 0


def test_two_claims_at_the_same_moment_only_one_wins(spark, tmp_path, monkeypatch):
    lake = seeded(spark, tmp_path)
    state = TableState(spark, lake.cfg, lake.cfg.table(lake.name))
    before = lease.holders(state, datetime.now(UTC), 180)
    lease.acquire(state, "run-a.1", 180, lake.name)
    # B looked before A's claim landed, so it claims the same sequence number: Delta lets
    # only one commit with that transaction version, and B finds A holding the table.
    real, answers = lease.holders, iter([before])
    monkeypatch.setattr(lease, "holders", lambda *a: next(answers, None) or real(*a))
    with pytest.raises(lease.TableBusyError, match="same moment"):
        lease.acquire(state, "run-b.1", 180, lake.name)
    live, _ = real(state, datetime.now(UTC), 180)
    assert [c.attempt for c in live] == ["run-a.1"]


def test_two_job_processes_on_one_window_then_a_rerun(spark, tmp_path):
    lake = seeded(spark, tmp_path)
    changes = [
        [
            {
                "Op": "U",
                "ts": ts(m, hour=h),
                "seq": f"{h}{m}",
                "id": 1 + m % 3,
                "p": "a",
                "v": f"{h}:{m}",
            }
        ]
        for h in (10, 11)
        for m in (1, 2, 3)
    ]
    for i, rows in enumerate(changes):
        lake.w.cdc(f"2026-11-22T{10 + i // 3}", rows)
    config = write_config(lake.cfg)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "jobs"), str(REPO)]))
    env["CDCLAKE_SPARK_MASTER"] = "local[1]"

    def start(n: int) -> subprocess.Popen:
        cmd = [sys.executable, str(REPO / "jobs" / "cdc_merge.py"), "--config", str(config)]
        cmd += ["--load", "incremental", "--until", "2026-11-22T12"]
        cmd += ["--summary-json", str(tmp_path / f"run{n}.json")]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    procs = [start(1), start(2)]
    codes = [p.wait(timeout=900) for p in procs]
    records = [json.loads((tmp_path / f"run{n}.json").read_text())[0] for n in (1, 2)]
    assert set(codes) <= {0, 1}, [p.stdout.read().decode()[-3000:] for p in procs if p.stdout]
    for code, rec in zip(codes, records, strict=True):
        if code == 1:  # the loser says why and wrote nothing of its own
            assert "another run holds this table" in rec["error"]
    assert any(r["status"] == "succeeded" and r["files"] == 6 for r in records)
    rerun = lake.inc("2026-11-22T12")
    assert rerun["status"] == "noop"
    lake.assert_rows([(1, "a", "11:3"), (2, "a", "11:1"), (3, "a", "11:2")])
    files = ledger_files(lake)
    assert len(files) == 6 and len(set(files)) == 6  # every file ledgered exactly once


def test_a_run_never_removes_scratch_files_of_a_run_that_may_be_alive(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    staging = Path(lake.cfg.state_location(lake.cfg.table(lake.name), "staging"))
    alive, dead = staging / "other-run.live", staging / "other-run.dead"
    for folder in (alive, dead):
        folder.mkdir(parents=True)
        (folder / "part-0.parquet").write_text("scratch")
    long_ago = time.time() - 4 * 3600  # older than the 180-minute lease: that run is dead
    os.utime(dead, (long_ago, long_ago))
    lake.w.cdc("2026-11-22T10", [{"Op": "U", "ts": ts(1), "seq": "1", "id": 1, "p": "a", "v": "n"}])
    lake.inc("2026-11-22T11")
    assert (alive / "part-0.parquet").exists() and not dead.exists()


# ---- reloads and backfills --------------------------------------------------------------
def test_a_reload_uses_the_newest_load_only(spark, tmp_path):
    lake = Lake(spark, tmp_path)
    first = "2026-11-20 08:00:00.000000"
    for n in (1, 2, 3):  # the first load: three files
        lake.w.load([{"id": n, "p": "a", "v": "first"}], ts=first, number=n)
    lake.full()
    lake.w.cdc("2026-11-20T10", [{"Op": "D", "ts": "2026-11-20 10:01:00", "seq": "1", "id": 3}])
    lake.inc("2026-11-20T11")
    # The tombstone has expired long since (maintenance): nothing but the load files decide.
    tombstones = lake.cfg.state_location(lake.cfg.table(lake.name), "tombstones")
    DeltaTable.forPath(spark, tombstones).delete()
    # reload-target: DMS writes one file over LOAD00000001 and leaves 2 and 3 in place.
    lake.w.load(
        [{"id": 1, "p": "a", "v": "reloaded"}, {"id": 2, "p": "a", "v": "reloaded"}],
        ts="2026-11-22 08:00:00.000000",
        number=1,
    )
    rec = lake.full()
    assert rec["files"] == 1
    lake.assert_rows([(1, "a", "reloaded"), (2, "a", "reloaded")])  # id 3 stays deleted


def test_a_backfill_past_the_tombstones_needs_the_override_and_the_audit_says_so(spark, tmp_path):
    lake = seeded(spark, tmp_path)
    old = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=40)
    until, since = f"{old + timedelta(hours=1):%Y-%m-%dT%H}", f"{old:%Y-%m-%dT%H}"
    assert lake.run("--load", "incremental", "--until", until, "--since", since) == 2
    assert (
        lake.run(
            "--load",
            "incremental",
            "--until",
            until,
            "--since",
            since,
            "--past-tombstone-retention",
        )
        == 0
    )
    audit = spark.read.format("delta").load(lake.cfg.audit_location)
    overrides = [r["overrides"] for r in audit.where("mode = 'incremental'").collect()]
    assert overrides == [["past_tombstone_retention"]]


# ---- full loads that fail or die ---------------------------------------------------------
class CrashError(Exception):
    pass


def pending_then_reload(spark, root) -> Lake:
    """A loaded table, a change at 09:30 not applied yet, and a reload stamped 10:00."""
    lake = Lake(spark, root)
    lake.w.load([{"id": 1, "p": "a", "v": "x"}, {"id": 2, "p": "a", "v": "x"}])
    lake.full()
    lake.w.cdc(
        "2026-11-22T09",
        [{"Op": "U", "ts": ts(30, hour=9), "seq": "1", "id": 2, "p": "a", "v": "9:30"}],
    )
    lake.w.load(
        [{"id": 1, "p": "a", "v": "x"}, {"id": 2, "p": "a", "v": "x"}],
        ts="2026-11-22 10:00:00.000000",
        number=1,
    )
    return lake


def test_a_failed_full_load_does_not_switch_the_generation(spark, tmp_path, monkeypatch):
    lake = pending_then_reload(spark, tmp_path)

    def crash(*args, **kwargs):
        raise CrashError("overwrite")

    monkeypatch.setattr(apply, "overwrite", crash)
    assert lake.run("--load", "full") == 1
    monkeypatch.undo()
    # The old generation still holds: the pending 09:30 change is applied, not skipped.
    lake.inc("2026-11-22T10")
    lake.assert_rows([(1, "a", "x"), (2, "a", "9:30")])


def test_a_full_load_that_dies_after_its_data_commit_is_recovered(spark, tmp_path, monkeypatch):
    lake = pending_then_reload(spark, tmp_path)

    def crash(*args, **kwargs):
        raise CrashError("generation")

    monkeypatch.setattr(apply, "generation", crash)
    assert lake.run("--load", "full") == 1
    monkeypatch.undo()
    # The data holds the 10:00 snapshot; the next run records its generation from the commit,
    # so the 09:30 change (already in the snapshot, older than it) is not applied on top.
    lake.w.cdc(
        "2026-11-22T10", [{"Op": "U", "ts": ts(5), "seq": "2", "id": 1, "p": "a", "v": "10:05"}]
    )
    rec = lake.inc("2026-11-22T11")
    assert rec["files"] == 1  # the 09:00 hour lies wholly before the recovered watermark
    lake.assert_rows([(1, "a", "10:05"), (2, "a", "x")])


# ---- audit, drift, catch-ups -------------------------------------------------------------
def test_each_tables_audit_is_written_right_after_it(spark, tmp_path, monkeypatch):
    tables = [
        {"schema": "s", "name": n, "primary_key": ["id"], "partition_by": ["p"]} for n in ("t", "u")
    ]
    lake = Lake(spark, tmp_path, tables)
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    from cdclake.job import run as job_run

    real = job_run.run_table

    def die_on_u(spark_, cfg, table, run_id, window):
        if table.name == "u":
            raise KeyboardInterrupt  # the process dies: nothing after this runs
        return real(spark_, cfg, table, run_id, window)

    monkeypatch.setattr(job_run, "run_table", die_on_u)
    with pytest.raises(KeyboardInterrupt):
        lake.run("--load", "full")
    audit = spark.read.format("delta").load(lake.cfg.audit_location).collect()
    assert [(r["table"], r["status"]) for r in audit] == [("s.t", "succeeded")]


def test_a_dropped_partition_column_fails_the_table_and_commits_nothing(lake):
    lake.w.load([{"id": 1, "p": "a", "v": "x"}])
    lake.full()
    version = lake.version()
    lake.w.cdc("2026-11-22T10", [{"Op": "U", "ts": ts(1), "seq": "1", "id": 1, "v": "no p"}])
    rec = lake.inc("2026-11-22T11", expect=1)
    assert "partition column(s) ['p'] not in the files" in rec["error"]
    assert lake.version() == version
    lake.assert_rows([(1, "a", "x")])


def test_a_catch_up_is_capped_per_run_oldest_first(spark, tmp_path):
    lake = seeded(spark, tmp_path, merge={"max_files_per_run": 2})
    for h in (10, 11, 12):
        for m in (1, 2):
            lake.w.cdc(
                f"2026-11-22T{h}",
                [
                    {
                        "Op": "U",
                        "ts": ts(m, hour=h),
                        "seq": f"{h}{m}",
                        "id": m,
                        "p": "a",
                        "v": f"{h}:{m}",
                    }
                ],
            )
    recs = [lake.inc("2026-11-22T13") for _ in range(4)]
    assert [(r["files"], r["deferred_files"]) for r in recs] == [(2, 4), (2, 2), (2, 0), (0, 0)]
    assert recs[0]["hours"] == ["2026-11-22T10"]
    lake.assert_rows([(1, "a", "12:1"), (2, "a", "12:2"), (3, "a", "x")])
