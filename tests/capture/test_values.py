"""Column values: TOASTed values left out of updates, and the type mapping, checked against
the database (and LOAD files against CDC files: one value reads the same in both)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.capture.lake_model import lake_schema, read_rows

pytestmark = pytest.mark.postgres

DOCS = {"schema": "s", "name": "docs", "primary_key": ["id"]}


def big_text() -> str:
    """Incompressible and > 2 kB, so PostgreSQL stores it out of line (TOAST)."""
    return os.urandom(4000).hex()


def test_unchanged_toasted_value_is_taken_from_the_old_row(source):
    source.sql(
        "CREATE SCHEMA s; CREATE TABLE s.docs (id int PRIMARY KEY, body text, n int);"
        "ALTER TABLE s.docs REPLICA IDENTITY FULL"
    )
    body = big_text()
    source.sql("INSERT INTO s.docs VALUES (1, %s, 0), (2, %s, 0)", body, body)
    source.configure([DOCS])
    assert source.capture("init") == 0
    source.sql("UPDATE s.docs SET n = 1 WHERE id = 1")  # body not updated: sent as unchanged
    source.sql("UPDATE s.docs SET n = 2, id = 20 WHERE id = 2")
    assert source.capture("stream", "--until-idle") == 0

    rows = [r for r in read_rows(source.table_dir("s.docs"), source.cfg.dms) if r.seq]
    assert [(r.op, r.values["id"], r.values["n"]) for r in rows] == [
        ("U", 1, 1), ("D", 2, 0), ("I", 20, 2),
    ]  # fmt: skip
    assert all(r.values["body"] == body for r in rows)
    source.assert_lake_equals_db("s.docs")


def test_toastable_table_without_replica_identity_full_is_refused(source, caplog):
    source.sql("CREATE SCHEMA s; CREATE TABLE s.docs (id int PRIMARY KEY, body text, n int)")
    source.configure([DOCS])
    assert source.capture("init") == 1
    assert "['body'] can be TOASTed" in caplog.text
    assert "ALTER TABLE s.docs REPLICA IDENTITY FULL" in caplog.text
    assert not source.sql("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", source.name)


def test_table_without_key_for_deletes_is_refused(source, caplog):
    source.sql("CREATE SCHEMA s; CREATE TABLE s.docs (id int, n int)")
    source.configure([DOCS])
    assert source.capture("init") == 1
    assert "deletes would carry no key" in caplog.text


def test_column_named_like_a_dms_column_is_refused(source, caplog):
    source.sql('CREATE SCHEMA s; CREATE TABLE s.docs (id int PRIMARY KEY, "Op" int)')
    source.configure([DOCS])
    assert source.capture("init") == 1
    assert "['Op'] have the names of DMS's columns" in caplog.text


TYPES_DDL = """
CREATE SCHEMA s;
CREATE TYPE s.mood AS ENUM ('sad', 'happy');
CREATE DOMAIN s.positive AS integer CHECK (VALUE > 0);
CREATE TABLE s.types (
    id int PRIMARY KEY, i2 smallint, i8 bigint, f4 real, f8 double precision,
    dec numeric(12,3), dec38 numeric(38,0), wide numeric(50,10), free numeric,
    d date, ts timestamp, tstz timestamptz, ok boolean, raw bytea,
    j json, jb jsonb, u uuid, arr int[], vc varchar(10), ch char(4), t text,
    tm time, iv interval, ip inet, mood s.mood, pos s.positive);
ALTER TABLE s.types REPLICA IDENTITY FULL;
"""
TYPES_ROW = """
(%s, -32768, 9223372036854775807, 0.1, 1e-300,
 -123456789.125, 12345678901234567890123456789012345678,
 1234567890123456789012345678901234567890.0123456789,
 3.14159265358979323846264338327950288419716939937510,
 '2026-11-22', '2026-11-22 10:11:12.123456', '2026-11-22 10:11:12.5+05:30', true, '\\x00ff10',
 '{"b": 1,  "a": [1, 2]}', '{"b": 1,  "a": [1, 2]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
 '{1,NULL,3}', 'varchar', 'ab', 'héllo ☃ "quoted"\ttab',
 '10:11:12', '1 day 02:03:04', '10.0.0.1/32', 'happy', 7)
"""
EXPECTED_TYPES = {
    "id": pa.int32(), "i2": pa.int16(), "i8": pa.int64(), "f4": pa.float32(),
    "f8": pa.float64(), "dec": pa.decimal128(12, 3), "dec38": pa.decimal128(38, 0),
    "wide": pa.string(), "free": pa.string(), "d": pa.date32(),
    "ts": pa.timestamp("us", tz="UTC"), "tstz": pa.timestamp("us", tz="UTC"),
    "ok": pa.bool_(), "raw": pa.binary(), "j": pa.string(), "jb": pa.string(),
    "u": pa.string(), "arr": pa.string(), "vc": pa.string(), "ch": pa.string(),
    "t": pa.string(), "tm": pa.string(), "iv": pa.string(), "ip": pa.string(),
    "mood": pa.string(), "pos": pa.int32(),
}  # fmt: skip


def test_types_are_mapped_as_dms_maps_them(source):
    source.sql(TYPES_DDL)
    source.sql("INSERT INTO s.types VALUES " + TYPES_ROW + ", (2, NULL, NULL, NULL, NULL, NULL,"
               " NULL, NULL, NULL, NULL, NULL, NULL, false, NULL, NULL, NULL, NULL, NULL, NULL,"
               " NULL, NULL, NULL, NULL, NULL, NULL, NULL)", 1)  # fmt: skip
    source.configure([{"schema": "s", "name": "types", "primary_key": ["id"]}])
    assert source.capture("init") == 0
    source.sql("INSERT INTO s.types VALUES " + TYPES_ROW, 3)
    source.sql("UPDATE s.types SET ok = NULL, f4 = 'NaN', f8 = '-Infinity' WHERE id = 2")
    assert source.capture("stream", "--until-idle") == 0

    folder = source.table_dir("s.types")
    assert lake_schema(folder, source.cfg.dms) == EXPECTED_TYPES
    source.assert_lake_equals_db("s.types")
    rows = {(r.seq == "", r.values["id"]): r.values for r in read_rows(folder, source.cfg.dms)}
    load_row, cdc_row = rows[(True, 1)], rows[(False, 3)]
    assert {**load_row, "id": 3} == cdc_row  # LOAD and CDC values read the same
    assert cdc_row["tstz"] == datetime(2026, 11, 22, 4, 41, 12, 500000, tzinfo=UTC)
    assert cdc_row["ts"] == datetime(2026, 11, 22, 10, 11, 12, 123456, tzinfo=UTC)
    assert cdc_row["dec"] == Decimal("-123456789.125")
    assert cdc_row["raw"] == b"\x00\xff\x10"
    assert cdc_row["jb"] == '{"a": [1, 2], "b": 1}'
    assert cdc_row["ip"] == "10.0.0.1" and cdc_row["ok"] is True


def test_values_arrow_cannot_hold_are_null_and_counted(source, caplog):
    source.sql(
        "CREATE SCHEMA s; CREATE TABLE s.odd (id int PRIMARY KEY, dec numeric(10,2), d date);"
        "ALTER TABLE s.odd REPLICA IDENTITY FULL"
    )
    source.configure([{"schema": "s", "name": "odd", "primary_key": ["id"]}])
    assert source.capture("init") == 0
    source.sql("INSERT INTO s.odd VALUES (1, 'NaN', 'infinity'), (2, 1.5, '2026-11-22')")
    assert source.capture("stream", "--until-idle") == 0

    assert source.summary()["unrepresentable"] == 2
    assert "column dec: 1 value(s) cannot be represented" in caplog.text
    lake = source.lake("s.odd")
    assert lake[(1,)] == {"id": 1, "dec": None, "d": None}
    assert lake[(2,)]["dec"] == Decimal("1.50")


def test_load_files_hold_the_snapshot_split_by_size_and_named_in_hex(source):
    source.sql(
        "CREATE SCHEMA s; CREATE TABLE s.big (id int PRIMARY KEY, n int);"
        "INSERT INTO s.big SELECT g, g FROM generate_series(1, 3000) g"
    )
    source.configure(
        [{"schema": "s", "name": "big", "primary_key": ["id"]}], full_load_has_op=False
    )
    assert source.capture("init", "--load-file-mb", "0.004") == 0

    folder = source.table_dir("s.big")
    names = sorted(p.name for p in folder.glob("LOAD*.parquet"))
    assert len(names) >= 11
    assert names == [f"LOAD{i:08X}.parquet" for i in range(1, len(names) + 1)]
    assert "LOAD0000000A.parquet" in names
    load_ts = source.summary()["load_timestamp"]
    tables = [pq.read_table(folder / n) for n in names]
    assert all(t.column_names == ["dms_commit_ts", "dms_change_seq", "id", "n"] for t in tables)
    assert {v for t in tables for v in t.column("dms_commit_ts").to_pylist()} == {load_ts}
    assert {v for t in tables for v in t.column("dms_change_seq").to_pylist()} == {""}
    assert sum(t.num_rows for t in tables) == 3000
    source.assert_lake_equals_db("s.big")


def test_reinit_with_force_replaces_the_load_files(source, caplog):
    source.sql(
        "CREATE SCHEMA s; CREATE TABLE s.big (id int PRIMARY KEY, n int);"
        "INSERT INTO s.big SELECT g, g FROM generate_series(1, 3000) g"
    )
    source.configure([{"schema": "s", "name": "big", "primary_key": ["id"]}])
    assert source.capture("init", "--load-file-mb", "0.004") == 0
    assert source.capture("init") == 1
    assert "already set up" in caplog.text
    source.sql("DELETE FROM s.big WHERE id > 10")
    assert source.capture("init", "--force") == 0

    assert [p.name for p in source.table_dir("s.big").glob("LOAD*")] == ["LOAD00000001.parquet"]
    source.assert_lake_equals_db("s.big")
