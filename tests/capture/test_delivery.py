"""Where files go and what survives a crash: hour folders, kill -9, a crash between the files
and the position, a lost slot, changes committed while the full load copies, and the command
line's contract."""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import datetime

import pytest

from capture.pgoutput import parse_lsn
from capture.stream import CRASH_AFTER_WRITE_ENV
from cdclake.core.dms import CDC, classify, hour_folder
from cdclake.core.hours import floor_hour
from tests.capture.lake_model import raw_files, read_rows

pytestmark = pytest.mark.postgres

COUNTS = {"schema": "s", "name": "counts", "primary_key": ["id"]}


def make_counts(source) -> None:
    source.sql(
        "CREATE SCHEMA s; CREATE TABLE s.counts (id int PRIMARY KEY, n bigint);"
        "INSERT INTO s.counts SELECT g, 0 FROM generate_series(1, 50) g"
    )


def churn(source, transactions: int, start: int = 1000) -> int:
    """Transactions of inserts, updates and deletes; returns the number of row changes."""
    conn = source.connect(autocommit=False)
    cur = conn.cursor()
    changes = 0
    for i in range(transactions):
        base = start + 10 * i
        cur.execute("INSERT INTO s.counts SELECT g, g FROM generate_series(%s, %s) g",
                    (base, base + 4))  # fmt: skip
        cur.execute("UPDATE s.counts SET n = n + 1 WHERE id IN (%s, %s)", (base, 1 + i % 50))
        cur.execute("DELETE FROM s.counts WHERE id = %s", (base + 4,))
        conn.commit()
        changes += 8
    conn.close()
    return changes


def distinct_changes(source) -> dict[tuple[str, str], list]:
    """Change (commit time, sequence) -> every copy of it in the files."""
    out: dict[tuple[str, str], list] = {}
    for r in read_rows(source.table_dir("s.counts"), source.cfg.dms):
        if r.seq:
            out.setdefault((r.ts, r.seq), []).append((r.op, r.values))
    return out


@pytest.mark.parametrize("delimiter", ["SLASH", "DASH"])
def test_cdc_files_go_to_the_commit_hour_folder(source, delimiter):
    make_counts(source)
    cfg = source.configure([COUNTS], date_partition_delimiter=delimiter)
    assert source.capture("init") == 0
    churn(source, 3)
    assert source.capture("stream", "--until-idle") == 0

    folder = source.table_dir("s.counts")
    cdc = [rel for rel, kind in raw_files(folder, cfg.dms) if kind == CDC]
    assert cdc
    for rel in cdc:
        commit_hours = {
            floor_hour(datetime.fromisoformat(r.ts + "+00:00"))
            for r in read_rows(folder, cfg.dms)
            if r.relative == rel
        }
        (hour,) = commit_hours
        assert rel.rsplit("/", 1)[0] == hour_folder(hour, cfg.dms)
        assert classify(rel, cfg.dms) == (CDC, hour)
        name_time = datetime.strptime(rel.rsplit("/", 1)[1], "%Y%m%d-%H%M%S%f.parquet")
        assert name_time.replace(tzinfo=hour.tzinfo) >= hour  # named by flush time, after


def test_kill_9_mid_stream_then_restart_loses_nothing(source):
    make_counts(source)
    source.configure([COUNTS])
    assert source.capture("init") == 0
    proc = source.spawn("stream", "--flush-seconds", "0.05", "--flush-rows", "40")
    try:
        made = churn(source, 60)
        deadline = time.monotonic() + 20
        while not distinct_changes(source) and time.monotonic() < deadline:
            time.sleep(0.05)
        made += churn(source, 60, start=5000)  # still streaming while these commit
        assert proc.poll() is None, proc.stdout.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    seen_before_restart = len(distinct_changes(source))
    assert 0 < seen_before_restart
    made += churn(source, 20, start=9000)
    assert source.capture("stream", "--until-idle") == 0

    changes = distinct_changes(source)
    assert len(changes) == made  # no change lost
    assert all(c == copies[0] for copies in changes.values() for c in copies)  # copies identical
    source.assert_lake_equals_db("s.counts")


def test_crash_after_files_before_position_redelivers_identical_rows(source):
    make_counts(source)
    source.configure([COUNTS])
    assert source.capture("init") == 0
    state_file = source.root / "raw" / "_capture" / "state.json"
    position = json.loads(state_file.read_text())["lsn"]
    made = churn(source, 30)
    proc = source.spawn("stream", "--until-idle", env={CRASH_AFTER_WRITE_ENV: "1"})
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert json.loads(state_file.read_text())["lsn"] == position  # files written, not saved
    first = {k: len(v) for k, v in distinct_changes(source).items()}
    assert len(first) == made
    assert source.capture("stream", "--until-idle") == 0

    changes = distinct_changes(source)
    assert len(changes) == made
    assert all(len(copies) == 2 for copies in changes.values())  # delivered again ...
    assert all(copies[0] == copies[1] for copies in changes.values())  # ... identically
    assert parse_lsn(json.loads(state_file.read_text())["lsn"]) > parse_lsn(position)
    source.assert_lake_equals_db("s.counts")


def test_restart_skips_transactions_already_written(source):
    make_counts(source)
    source.configure([COUNTS])
    assert source.capture("init") == 0
    made = churn(source, 5)
    assert source.capture("stream", "--until-idle") == 0
    assert source.capture("stream", "--until-idle") == 0
    assert source.summary()["rows"] == 0
    assert len(distinct_changes(source)) == made
    saved = json.loads((source.root / "raw" / "_capture" / "state.json").read_text())["lsn"]
    ((confirmed,),) = source.sql(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
        source.name,
    )
    assert parse_lsn(confirmed) >= parse_lsn(saved)  # the server may recycle the WAL


@pytest.fixture
def wal_cap(source):
    """Let a lagging slot lose its WAL after one segment (restored afterwards)."""
    source.sql("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
    source.sql("SELECT pg_reload_conf()")
    yield
    source.sql("ALTER SYSTEM RESET max_slot_wal_keep_size")
    source.sql("SELECT pg_reload_conf()")


def test_lost_slot_is_a_clear_error_and_a_forced_init_recovers(source, wal_cap, caplog):
    make_counts(source)
    source.configure([COUNTS])
    assert source.capture("init") == 0
    for i in range(3):
        churn(source, 2, start=1000 + 100 * i)
        source.sql("SELECT pg_switch_wal()")
    source.sql("CHECKPOINT")
    status = source.sql("SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s",
                        source.name)  # fmt: skip
    assert status == [("lost",)]

    assert source.capture("stream", "--until-idle") == 1
    assert "SlotLostError" in caplog.text and "is lost" in caplog.text
    assert "init --force" in caplog.text
    assert source.capture("init", "--force") == 0
    churn(source, 2, start=7000)
    assert source.capture("stream", "--until-idle") == 0
    source.assert_lake_equals_db("s.counts")


def test_missing_slot_is_a_clear_error(source, caplog):
    make_counts(source)
    source.configure([COUNTS])
    assert source.capture("init") == 0
    source.sql("SELECT pg_drop_replication_slot(%s)", source.name)
    assert source.capture("stream", "--until-idle") == 1
    assert f"replication slot '{source.name}' does not exist" in caplog.text


def test_drop_removes_slot_publication_and_state(source):
    make_counts(source)
    source.configure([COUNTS])
    assert source.capture("init") == 0
    assert source.capture("drop") == 0
    assert not source.sql("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", source.name)
    assert not source.sql("SELECT 1 FROM pg_publication WHERE pubname = %s", source.name)
    assert not (source.root / "raw" / "_capture" / "state.json").exists()
    assert source.capture("stream", "--until-idle") == 1  # not initialized


def test_command_line_contract(source, caplog):
    make_counts(source)
    source.configure([COUNTS])
    assert source.capture("stream", "--until-idle") == 1
    assert "NotInitializedError" in caplog.text and "capture init" in caplog.text
    assert source.capture("stream", "--no-such-option") == 2
    assert source.capture("init", "--slot", "Bad-Name") == 2
    assert source.capture("init", "--config", str(source.root / "missing.yaml")) == 2
    source.configure([{**COUNTS, "name": "absent"}])
    assert source.capture("init") == 1
    assert "s.absent does not exist" in caplog.text


def test_changes_committed_during_the_full_load_are_neither_missed_nor_doubled(source):
    source.sql(
        "CREATE SCHEMA s; CREATE TABLE s.counts (id int PRIMARY KEY, n bigint);"
        "INSERT INTO s.counts SELECT g, 0 FROM generate_series(1, 20000) g"
    )
    source.configure([COUNTS])
    stop, made = threading.Event(), []

    def write() -> None:  # before, while and after init copies the table
        conn = source.connect(autocommit=False)
        i = 0
        while not stop.is_set() or i < 20:
            with conn, conn.cursor() as cur:
                cur.execute("UPDATE s.counts SET n = n + 1 WHERE id = %s", (1 + i % 50,))
                cur.execute("INSERT INTO s.counts VALUES (%s, %s)", (100_000 + i, i))
                cur.execute("DELETE FROM s.counts WHERE id = %s", (19_000 + i,))
            made.append(i)
            i += 1
        conn.close()

    writer = threading.Thread(target=write)
    writer.start()
    while len(made) < 10:
        time.sleep(0.01)
    try:
        assert source.capture("init", "--load-file-mb", "0.1") == 0
    finally:
        stop.set()
        writer.join()
    load_ts = source.summary()["load_timestamp"]
    assert source.capture("stream", "--until-idle") == 0

    rows = read_rows(source.table_dir("s.counts"), source.cfg.dms)
    cdc = [r for r in rows if r.seq]
    assert 0 < len(cdc) < 3 * len(made)  # the first transactions are in the LOAD files only
    assert all(r.ts > load_ts for r in cdc)  # every streamed change sorts after the load
    assert len({(r.ts, r.seq) for r in cdc}) == len(cdc)  # none delivered twice
    source.assert_lake_equals_db("s.counts")


def test_drop_refuses_a_slot_a_running_stream_holds_and_waits_for_one_just_closed(
    source, monkeypatch
):
    import capture.source

    make_counts(source)
    source.configure([COUNTS])
    assert source.capture("init") == 0
    proc = source.spawn("stream", "--flush-seconds", "0.05")
    try:
        active = "SELECT active FROM pg_replication_slots WHERE slot_name = %s"
        deadline = time.monotonic() + 20
        while source.sql(active, source.name) != [(True,)] and time.monotonic() < deadline:
            time.sleep(0.05)
        monkeypatch.setattr(capture.source, "SLOT_RELEASE_WAIT", 0.5)
        assert source.capture("drop") == 1  # a running capture's slot is never dropped
        assert source.sql(active, source.name) == [(True,)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    monkeypatch.setattr(capture.source, "SLOT_RELEASE_WAIT", 10.0)
    # A flush right before a reload: the client has closed, its server process may not have
    # exited yet; the drop waits for it instead of failing the reload.
    for _ in range(5):
        assert source.capture("stream", "--until-idle") == 0
        assert source.capture("init", "--force") == 0
    assert source.capture("stream", "--until-idle") == 0
    assert source.capture("drop") == 0


def test_streams_back_to_back_wait_for_the_previous_connection_to_let_go(source):
    make_counts(source)
    source.configure([COUNTS])
    assert source.capture("init") == 0
    made = 0
    for i in range(5):
        made += churn(source, 2, start=1000 + 100 * i)
        assert source.capture("stream", "--until-idle") == 0
    assert len(distinct_changes(source)) == made
    source.assert_lake_equals_db("s.counts")
