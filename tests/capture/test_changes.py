"""Row changes against a real PostgreSQL: what the files say, applied as the job applies them,
equals the table; and the rows DMS would write for each hard case."""

from __future__ import annotations

import pytest

from tests.capture.lake_model import read_rows

pytestmark = pytest.mark.postgres

ORDERS = {"schema": "s", "name": "orders", "primary_key": ["id"]}
COUNTS = {"schema": "s", "name": "counts", "primary_key": ["id"]}


def make_orders(source, rows: int = 5) -> None:
    """A table with text columns, so REPLICA IDENTITY FULL (see test_toast)."""
    source.sql(
        "CREATE SCHEMA IF NOT EXISTS s;"
        "CREATE TABLE s.orders (id int PRIMARY KEY, status text, amount numeric(10,2));"
        "ALTER TABLE s.orders REPLICA IDENTITY FULL;"
        "INSERT INTO s.orders SELECT g, 'new', g * 1.25 FROM generate_series(1, %s) g",
        rows,
    )


def make_counts(source, rows: int = 5) -> None:
    """No TOASTable column: REPLICA IDENTITY DEFAULT is accepted (key-only deletes)."""
    source.sql(
        "CREATE SCHEMA IF NOT EXISTS s;"
        "CREATE TABLE s.counts (id int PRIMARY KEY, n bigint, seen date);"
        "INSERT INTO s.counts SELECT g, g * 10, DATE '2026-11-22' FROM generate_series(1, %s) g",
        rows,
    )


def cdc_rows(source, table: str):
    return [r for r in read_rows(source.table_dir(table), source.cfg.dms) if r.seq]


def test_inserts_updates_deletes(source):
    make_orders(source)
    source.configure([ORDERS])
    assert source.capture("init") == 0
    source.sql("INSERT INTO s.orders VALUES (6, 'new', 9.99), (7, 'new', 1)")
    source.sql("UPDATE s.orders SET status = 'paid' WHERE id IN (1, 6)")
    source.sql("DELETE FROM s.orders WHERE id IN (2, 7)")
    assert source.capture("stream", "--until-idle") == 0

    assert [(r.op, r.values["id"]) for r in cdc_rows(source, "s.orders")] == [
        ("I", 6), ("I", 7), ("U", 1), ("U", 6), ("D", 2), ("D", 7),
    ]  # fmt: skip
    source.assert_lake_equals_db("s.orders")
    summary = source.summary()
    assert summary["tables"]["s.orders"] == {
        "inserts": 2, "updates": 2, "deletes": 2, "key_updates": 0, "truncates": 0,
    }  # fmt: skip
    assert summary["transactions"] == 3


def test_change_sequence_increases_in_commit_order_for_interleaved_transactions(source):
    make_orders(source)
    source.configure([ORDERS])
    assert source.capture("init") == 0
    first, second = source.connect(autocommit=False), source.connect(autocommit=False)
    first.cursor().execute("INSERT INTO s.orders VALUES (10, 'first', 1)")  # first change ...
    second.cursor().execute("INSERT INTO s.orders VALUES (20, 'second', 2)")
    second.cursor().execute("UPDATE s.orders SET status = 'second' WHERE id = 3")
    second.commit()  # ... but commits first
    first.cursor().execute("UPDATE s.orders SET status = 'first' WHERE id = 3")
    first.commit()
    assert source.capture("stream", "--until-idle") == 0

    rows = cdc_rows(source, "s.orders")
    by_txn = {r.values["status"]: [] for r in rows}
    for r in rows:
        by_txn[r.values["status"]].append(r.seq)
    assert max(by_txn["second"]) < min(by_txn["first"])
    assert [r.seq for r in sorted(rows, key=lambda r: r.ts)] == sorted(r.seq for r in rows)
    assert all(len(r.seq) == 35 and r.seq.isdigit() for r in rows)
    source.assert_lake_equals_db("s.orders")


def test_rolled_back_work_is_not_written(source):
    make_orders(source)
    source.configure([ORDERS])
    assert source.capture("init") == 0
    conn = source.connect(autocommit=False)
    conn.cursor().execute("INSERT INTO s.orders VALUES (30, 'rolled back', 1)")
    conn.rollback()
    cur = conn.cursor()
    cur.execute("INSERT INTO s.orders VALUES (31, 'kept', 1)")
    cur.execute("SAVEPOINT sp; INSERT INTO s.orders VALUES (32, 'undone', 1); ROLLBACK TO sp")
    conn.commit()
    assert source.capture("stream", "--until-idle") == 0

    assert [(r.op, r.values["id"]) for r in cdc_rows(source, "s.orders")] == [("I", 31)]
    source.assert_lake_equals_db("s.orders")


def test_several_changes_of_one_key_in_one_transaction_keep_their_order(source):
    make_orders(source)
    source.configure([ORDERS])
    assert source.capture("init") == 0
    conn = source.connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("INSERT INTO s.orders VALUES (40, 'a', 1)")
    cur.execute("UPDATE s.orders SET status = 'b' WHERE id = 40")
    cur.execute("DELETE FROM s.orders WHERE id = 40")
    cur.execute("INSERT INTO s.orders VALUES (40, 'c', 3)")
    cur.execute("UPDATE s.orders SET status = 'd' WHERE id = 40")
    conn.commit()
    assert source.capture("stream", "--until-idle") == 0

    rows = cdc_rows(source, "s.orders")
    assert [(r.op, r.values["status"]) for r in rows] == [
        ("I", "a"), ("U", "b"), ("D", "b"), ("I", "c"), ("U", "d"),
    ]  # fmt: skip
    assert len({r.ts for r in rows}) == 1  # one commit time
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    assert len({r.seq for r in rows}) == len(rows)
    source.assert_lake_equals_db("s.orders")


@pytest.mark.parametrize("table", ["orders", "counts"])
def test_key_update_is_a_delete_of_the_old_key_and_an_insert(source, table):
    make_orders(source)
    make_counts(source)
    source.configure([ORDERS, COUNTS])
    assert source.capture("init") == 0
    source.sql(f"UPDATE s.{table} SET id = 100 WHERE id = 2")
    assert source.capture("stream", "--until-idle") == 0

    rows = cdc_rows(source, f"s.{table}")
    assert [(r.op, r.values["id"]) for r in rows] == [("D", 2), ("I", 100)]
    assert rows[0].seq < rows[1].seq
    assert source.summary()["tables"][f"s.{table}"]["key_updates"] == 1
    source.assert_lake_equals_db(f"s.{table}")


def test_delete_under_replica_identity_default_carries_the_key_only(source):
    make_counts(source)
    source.configure([COUNTS])
    assert source.capture("init") == 0
    source.sql("DELETE FROM s.counts WHERE id = 3")
    source.sql("UPDATE s.counts SET n = 0 WHERE id = 4")
    assert source.capture("stream", "--until-idle") == 0

    rows = cdc_rows(source, "s.counts")
    assert [(r.op, r.values) for r in rows] == [
        ("D", {"id": 3, "n": None, "seen": None}),
        ("U", {"id": 4, "n": 0, "seen": rows[1].values["seen"]}),
    ]
    source.assert_lake_equals_db("s.counts")


def test_delete_under_replica_identity_full_carries_the_old_row(source):
    make_orders(source)
    source.configure([ORDERS])
    assert source.capture("init") == 0
    source.sql("DELETE FROM s.orders WHERE id = 3")
    assert source.capture("stream", "--until-idle") == 0

    (row,) = cdc_rows(source, "s.orders")
    assert (row.op, row.values["id"], row.values["status"]) == ("D", 3, "new")


def test_truncate_is_counted_and_logged_not_written(source, caplog):
    make_orders(source)
    source.configure([ORDERS])
    assert source.capture("init") == 0
    source.sql("INSERT INTO s.orders VALUES (50, 'x', 1)")
    source.sql("TRUNCATE s.orders")
    assert source.capture("stream", "--until-idle") == 0

    assert source.summary()["tables"]["s.orders"]["truncates"] == 1
    assert "TRUNCATE of s.orders" in caplog.text
    assert [(r.op, r.values["id"]) for r in cdc_rows(source, "s.orders")] == [("I", 50)]
    assert len(source.lake("s.orders")) == 6  # as with DMS: the lake keeps the rows


def test_column_added_mid_stream_appears_in_later_files(source):
    make_orders(source)
    source.configure([ORDERS])
    assert source.capture("init") == 0
    source.sql("UPDATE s.orders SET status = 'before' WHERE id = 1")
    assert source.capture("stream", "--until-idle") == 0
    source.sql("UPDATE s.orders SET status = 'before too' WHERE id = 2")
    source.sql("ALTER TABLE s.orders ADD COLUMN note text")
    source.sql("UPDATE s.orders SET note = 'after' WHERE id IN (1, 3)")
    source.sql("INSERT INTO s.orders VALUES (60, 'new', 2, 'inserted after')")
    assert source.capture("stream", "--until-idle") == 0

    rows = cdc_rows(source, "s.orders")
    with_note = {r.relative for r in rows if "note" in r.values}
    without = {r.relative for r in rows if "note" not in r.values}
    assert len(without) == 2 and len(with_note) == 1  # the second flush: two files
    assert [r.values.get("note") for r in rows if r.relative in with_note] == [
        "after", "after", "inserted after",
    ]  # fmt: skip
    source.assert_lake_equals_db("s.orders")


def test_drop_columns_never_reach_the_files(source):
    make_orders(source)
    source.configure([{**ORDERS, "drop_columns": ["amount"]}])
    assert source.capture("init") == 0
    source.sql("UPDATE s.orders SET amount = 0, status = 'x' WHERE id = 1")
    assert source.capture("stream", "--until-idle") == 0

    rows = read_rows(source.table_dir("s.orders"), source.cfg.dms)
    assert {tuple(r.values) for r in rows} == {("id", "status")}
    source.assert_lake_equals_db("s.orders")


def test_a_transaction_bigger_than_the_flush_is_written_in_parts(source):
    make_orders(source, rows=0)
    source.configure([ORDERS])
    assert source.capture("init") == 0
    source.sql("INSERT INTO s.orders SELECT g, 'bulk', g FROM generate_series(1, 1000) g")
    assert source.capture("stream", "--until-idle", "--flush-rows", "100") == 0

    rows = cdc_rows(source, "s.orders")
    assert len(rows) == 1000
    assert len({r.relative for r in rows}) == 10
    assert source.summary()["transactions"] == 1
    source.assert_lake_equals_db("s.orders")
