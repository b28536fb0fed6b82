"""The local target's PostgreSQL source steps (``local_source = postgres``) against a real
server: ``start_source`` runs the capture's full load (once; a reload loads every table again
after flushing the old slot), ``check_source`` fails at once when the capture is not set up or
its slot is gone, and otherwise flushes everything the database committed."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow.exceptions import AirflowFailException

from capture.options import DEFAULT_NAME

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dags"))
from cdclake_dags.local import capture_flush, start_capture  # noqa: E402
from cdclake_dags.settings import load_settings  # noqa: E402

pytestmark = pytest.mark.postgres

TRIPS = {"schema": "s", "name": "trips", "primary_key": ["id"]}
SEATS = {"schema": "s", "name": "seats", "primary_key": ["trip_id", "seat_no"]}
ALL = ["s.trips", "s.seats"]
PAST = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
def settings(source, monkeypatch):
    source.sql(
        "CREATE SCHEMA s; CREATE TABLE s.trips (id int PRIMARY KEY, n bigint);"
        "CREATE TABLE s.seats (trip_id int, seat_no int, n bigint, PRIMARY KEY (trip_id, seat_no));"
        "INSERT INTO s.trips SELECT g, 0 FROM generate_series(1, 20) g;"
        "INSERT INTO s.seats SELECT g, 1, 0 FROM generate_series(1, 5) g"
    )
    source.configure([TRIPS, SEATS])
    monkeypatch.setenv("CDCLAKE_CAPTURE_DSN", source.dsn)
    values = {"pipeline_config": str(source.config_path), "local_source": "postgres"}
    return load_settings(values.get)


def change(source) -> None:
    source.sql(
        "UPDATE s.trips SET n = n + 1 WHERE id < 5; DELETE FROM s.trips WHERE id = 7;"
        "INSERT INTO s.seats VALUES (9, 2, 1); UPDATE s.trips SET id = 100 WHERE id = 8"
    )


def test_full_load_once_then_each_check_flushes(source, settings):
    assert start_capture(settings, ALL, reload=False) == {"s.trips": 20, "s.seats": 5}
    change(source)
    assert start_capture(settings, ALL, reload=False) == {}  # set up already: load kept

    flushed = capture_flush(settings, PAST)
    assert flushed["transactions"] == 1 and flushed["rows"] == 4 + 1 + 1 + 2
    assert capture_flush(settings, PAST)["rows"] == 0
    for table in ALL:
        source.assert_lake_equals_db(table)


def test_check_warns_while_the_source_clock_is_inside_the_hour(source, settings, caplog):
    start_capture(settings, ALL, reload=False)
    with caplog.at_level(logging.WARNING):
        capture_flush(settings, datetime.now(UTC) + timedelta(hours=1))
    assert "has not reached the end of the hour + grace" in caplog.text


def test_check_fails_at_once_before_the_full_load(settings):
    with pytest.raises(AirflowFailException, match="trigger cdclake_full_load first"):
        capture_flush(settings, PAST)


def test_check_fails_at_once_when_the_slot_is_gone(source, settings):
    start_capture(settings, ALL, reload=False)
    source.sql("SELECT pg_drop_replication_slot(%s)", DEFAULT_NAME)
    with pytest.raises(AirflowFailException, match="SlotLostError.*init --force"):
        capture_flush(settings, PAST)


def test_reload_flushes_the_old_slot_then_loads_every_table_again(source, settings):
    start_capture(settings, ALL, reload=False)
    change(source)
    with pytest.raises(AirflowFailException, match="reloads every table at once"):
        start_capture(settings, ["s.trips"], reload=True)

    assert start_capture(settings, ALL, reload=True) == {"s.trips": 19, "s.seats": 6}
    # The changes before the reload were flushed from the old slot (as CDC files) and are in
    # the new LOAD files too; the new slot goes on from the new snapshot.
    source.sql("DELETE FROM s.seats WHERE trip_id = 9")
    assert capture_flush(settings, PAST)["rows"] == 1
    for table in ALL:
        source.assert_lake_equals_db(table)
