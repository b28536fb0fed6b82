"""``status``: healthy after init, and a clear error (exit 1) before init or once the slot is
gone. It reads only: the saved position and the server's slot are left as they were."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.postgres

COUNTS = {"schema": "s", "name": "counts", "primary_key": ["id"]}


@pytest.fixture
def counts(source):
    source.sql(
        "CREATE SCHEMA s; CREATE TABLE s.counts (id int PRIMARY KEY, n bigint);"
        "INSERT INTO s.counts SELECT g, 0 FROM generate_series(1, 5) g"
    )
    source.configure([COUNTS])
    return source


def test_status_of_a_healthy_capture(counts):
    assert counts.capture("init") == 0
    position = counts.summary()["start_lsn"]
    counts.sql("UPDATE s.counts SET n = 1")

    assert counts.capture("status") == 0
    status = counts.summary()
    assert status["slot"] == counts.name
    assert status["wal_status"] == "reserved"
    assert status["active"] is False
    assert status["position"] == position  # nothing streamed, nothing moved
    assert status["retained_wal_bytes"] > 0
    assert status["server_time"].endswith("+00:00")


def test_status_before_init_says_to_run_init(counts, caplog):
    assert counts.capture("status") == 1
    assert "run 'python -m capture init' first" in caplog.text


def test_status_of_a_dropped_slot_says_to_reload(counts, caplog):
    assert counts.capture("init") == 0
    counts.sql("SELECT pg_drop_replication_slot(%s)", counts.name)

    assert counts.capture("status") == 1
    assert "SlotLostError" in caplog.text and "init --force" in caplog.text
