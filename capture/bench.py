"""Capture throughput: full-load rows/s and streamed changes/s on a generated workload.

    from capture.bench import measure
    figures = measure(dsn)            # a scratch database is created and dropped on ``dsn``

The changes are committed first (the slot keeps them), then ``stream --until-idle`` is timed:
receiving, decoding, converting and writing fsynced Parquet files, as in production.
``python -m capture.bench`` runs it on a throwaway cluster and logs the figures as JSON.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg2.extensions

from capture.load import drop, initialize
from capture.options import Options
from capture.source import connect
from capture.stream import stream
from cdclake.core.config import parse_config

log = logging.getLogger(__name__)

_TABLE = """
CREATE SCHEMA bench;
CREATE TABLE bench.items (
    id bigint PRIMARY KEY, qty integer NOT NULL, price numeric(10,2), label text,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
ALTER TABLE bench.items REPLICA IDENTITY FULL;
"""
_FILL = """
INSERT INTO bench.items (id, qty, price, label)
SELECT g, g %% 100, (g %% 1000) / 10.0, 'item ' || g FROM generate_series(%s, %s) g
"""


def measure(
    dsn: str,
    *,
    changes: int = 100_000,
    transactions: int = 200,
    load_rows: int = 100_000,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Figures for a full load of ``load_rows`` rows and a stream of about ``changes`` row
    changes in ``transactions`` transactions (inserts, updates, deletes)."""
    db = f"cdclake_bench_{uuid.uuid4().hex[:8]}"
    admin = connect(dsn)
    admin.cursor().execute(f'CREATE DATABASE "{db}"')
    params = psycopg2.extensions.parse_dsn(dsn or "") | {"dbname": db}
    bench_dsn = psycopg2.extensions.make_dsn(**params)
    work = Path(work_dir or tempfile.mkdtemp(prefix="cdclake-capture-bench-"))
    try:
        return _run(bench_dsn, db, work, changes, transactions, load_rows)
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()


def _run(
    dsn: str, db: str, work: Path, changes: int, transactions: int, load_rows: int
) -> dict[str, Any]:
    conn = connect(dsn)
    with conn.cursor() as cur:
        cur.execute(_TABLE)
        cur.execute(_FILL, (1, load_rows))
    cfg = parse_config(
        {
            "raw_root": str(work / "raw"),
            "curated_root": str(work / "curated"),
            "tables": [{"schema": "bench", "name": "items", "primary_key": ["id"]}],
        },
        base_dir=work,
    )
    opts = Options(dsn=dsn, state_dir=work / "state", slot=db, publication=db)
    try:
        loaded = initialize(cfg, opts)
        made = _workload(conn, load_rows, changes, transactions)
        t0 = time.monotonic()
        streamed = stream(cfg, opts, until_idle=True)
        seconds = time.monotonic() - t0
    finally:
        drop(opts)
        conn.close()
    return {
        "load_rows": loaded["rows"],
        "load_seconds": loaded["seconds"],
        "load_rows_per_s": round(loaded["rows"] / max(loaded["seconds"], 1e-9)),
        "changes": made,
        "transactions": streamed["transactions"],
        "stream_seconds": round(seconds, 3),
        "changes_per_s": round(streamed["rows"] / max(seconds, 1e-9)),
        "files": streamed["files"],
    }


def _workload(conn: Any, first_free: int, changes: int, transactions: int) -> int:
    """Per transaction: 30% inserts, 60% updates, 10% deletes (set-based statements)."""
    per_txn = max(10, changes // transactions)
    inserts, deletes = per_txn * 3 // 10, per_txn // 10
    updates = per_txn - inserts - deletes
    next_id, low, made = first_free + 1, 1, 0
    conn.autocommit = False
    with conn.cursor() as cur:
        for _ in range(transactions):
            cur.execute(_FILL, (next_id, next_id + inserts - 1))
            cur.execute(
                "UPDATE bench.items SET qty = qty + 1, updated_at = clock_timestamp() "
                "WHERE id BETWEEN %s AND %s",
                (low + deletes, low + deletes + updates - 1),
            )
            cur.execute(
                "DELETE FROM bench.items WHERE id BETWEEN %s AND %s", (low, low + deletes - 1)
            )
            made += cur.rowcount + inserts + updates
            conn.commit()
            next_id += inserts
            low += deletes
    conn.autocommit = True
    return made


def main() -> int:
    from capture.pgcluster import throwaway_cluster

    logging.basicConfig(level=logging.WARNING)
    with throwaway_cluster() as pg:
        figures = measure(pg.dsn)
    logging.getLogger(__name__).warning("capture bench %s", json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
