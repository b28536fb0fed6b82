"""PostgreSQL -> capture -> the real merge job -> Delta equals the database, through a full
load and an incremental run over two streams' files."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality

from cdclake.cli.merge import main as merge

pytestmark = pytest.mark.postgres

TRIPS = {
    "schema": "s",
    "name": "trips",
    "primary_key": ["trip_id"],
    "partition_by": ["route"],
    "drop_columns": ["card"],
}
SEATS = {"schema": "s", "name": "seats", "primary_key": ["trip_id", "seat_no"]}
SETUP = """
CREATE SCHEMA s;
CREATE TABLE s.trips (trip_id int PRIMARY KEY, route text NOT NULL, fare numeric(8,2),
    started timestamptz, day date, paid boolean, card text);
ALTER TABLE s.trips REPLICA IDENTITY FULL;
CREATE TABLE s.seats (trip_id int, seat_no smallint, sold_at timestamp, n bigint,
    PRIMARY KEY (trip_id, seat_no));
INSERT INTO s.trips SELECT g, 'r' || (g % 4), g * 1.5, TIMESTAMPTZ '2026-11-22 08:00+00'
    + g * INTERVAL '1 minute', DATE '2026-11-22', g % 2 = 0, 'card ' || g
    FROM generate_series(1, 200) g;
INSERT INTO s.seats SELECT g % 50, g / 50, TIMESTAMP '2026-11-22 08:00', g
    FROM generate_series(0, 199) g;
"""
FIRST_CHANGES = """
INSERT INTO s.trips VALUES (201, 'r9', 9.99, now(), NULL, NULL, 'card x');
UPDATE s.trips SET fare = fare + 1, paid = true WHERE trip_id BETWEEN 10 AND 30;
UPDATE s.trips SET route = 'r7' WHERE trip_id IN (3, 4);
DELETE FROM s.trips WHERE trip_id IN (5, 6, 201);
UPDATE s.trips SET trip_id = 1000 WHERE trip_id = 7;
INSERT INTO s.seats VALUES (99, 1, NULL, -1);
UPDATE s.seats SET n = n * 10 WHERE seat_no = 1;
DELETE FROM s.seats WHERE seat_no = 2 AND trip_id < 10;
UPDATE s.seats SET seat_no = 9 WHERE trip_id = 49 AND seat_no = 3;
"""
SECOND_CHANGES = """
ALTER TABLE s.trips ADD COLUMN note text;
UPDATE s.trips SET note = 'late' WHERE trip_id IN (1, 2, 1000);
INSERT INTO s.trips VALUES (202, 'r1', 1, now(), DATE '2026-11-23', false, 'card y', 'new');
DELETE FROM s.trips WHERE trip_id = 8;
INSERT INTO s.trips VALUES (5, 'r1', 5, now(), NULL, NULL, NULL, 'back again');
DELETE FROM s.seats WHERE trip_id = 99;
"""


def run_job(source, *args: str) -> None:
    assert merge(["--config", str(source.config_path), *args], spark=source.spark) == 0


def assert_delta_equals_db(source, spark, table: str) -> None:
    cfg = source.cfg
    actual = spark.read.format("delta").load(cfg.table_location(cfg.table(table)))
    actual = actual.select(*[c for c in actual.columns if not c.startswith("_")])
    select = ", ".join(f'"{c}"' for c in actual.columns)
    rows = source.sql(f"SELECT {select} FROM {table}")
    expected = spark.createDataFrame(rows, actual.schema)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_capture_feeds_the_merge_job(source, spark):
    source.spark = spark
    source.sql("SET timezone = 'UTC'")
    source.sql(SETUP)
    source.configure([TRIPS, SEATS])
    assert source.capture("init", "--load-file-mb", "0.005") == 0
    source.sql(FIRST_CHANGES)
    assert source.capture("stream", "--until-idle") == 0
    source.sql(SECOND_CHANGES)
    assert source.capture("stream", "--until-idle") == 0
    until = source.sql(  # the hour after the last commit: every CDC folder is before it
        "SELECT to_char(date_trunc('hour', now() AT TIME ZONE 'UTC') "
        "+ interval '1 hour', 'YYYY-MM-DD\"T\"HH24')"
    )[0][0]

    run_job(source, "--load", "full")
    run_job(source, "--load", "incremental", "--until", until)
    for table in ("s.trips", "s.seats"):
        assert_delta_equals_db(source, spark, table)
