"""The capture's throughput measurement runs and reports what the benchmark needs."""

from __future__ import annotations

import pytest

from capture.bench import measure

pytestmark = pytest.mark.postgres


def test_measure_reports_load_and_stream_rates(pg, tmp_path):
    figures = measure(pg.dsn, changes=2_000, transactions=10, load_rows=1_000, work_dir=tmp_path)

    assert figures["load_rows"] == 1_000
    assert figures["changes"] == 2_000
    assert figures["transactions"] == 10
    assert figures["load_rows_per_s"] > 0 and figures["changes_per_s"] > 0
    assert not [db for (db,) in _databases(pg) if db.startswith("cdclake_bench_")]


def _databases(pg):
    import psycopg2

    conn = psycopg2.connect(pg.dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database")
            return cur.fetchall()
    finally:
        conn.close()
