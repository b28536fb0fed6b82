"""The PostgreSQL source of ``make run``: a throwaway cluster (:mod:`capture.pgcluster`) whose
clock the demo sets, holding the original blog's ``travel_details`` and the composite-key
``ticket_sales``.

**Time.** PostgreSQL stamps every commit with its own clock, so to spread a workload over
several hours in a few minutes the *server's* clock is moved. The server runs under
libfaketime, which reads a clock offset from a file at every clock call
(``FAKETIME_TIMESTAMP_FILE`` + ``FAKETIME_NO_CACHE``): every server process sees real time plus
that offset, the same in all of them. :meth:`PgSource.advance_to` moves the offset forward to
the moment the next transaction is scheduled for, never backward; between two moves the clock
ticks at real speed (so a DAG run that takes 90 s advances the source by 90 s). Everything that
needs "now" (the capture's file names, the load timestamp) reads ``clock_timestamp()`` from
the server, never the local clock. (A start-at spec, ``@2026-11-22 08:00:00``, would restart each
process's clock when it next reads the file, so processes would drift apart: offsets do not.)

**Tables.** ``travel_details`` keeps ``REPLICA IDENTITY DEFAULT`` (deletes carry the key only),
which the capture allows because its short ``varchar`` columns are stored ``PLAIN`` (never
TOASTed); ``ticket_sales`` has ``REPLICA IDENTITY FULL`` (deletes carry the whole old row).
"""

from __future__ import annotations

import io
import logging
import os
import random
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

from capture.pgcluster import Cluster, start_cluster
from cdclake.core.config import ConfigError, PipelineConfig, TableConfig
from demo.scenario import CHANNELS, CITIES, ROUTES, SAFE_CITIES

log = logging.getLogger(__name__)

DATABASE = "cdclake_demo"
FAKETIME_GLOB = "*/faketime/libfaketime.so.1"
TRAVEL, SALES = "travel_details", "ticket_sales"
# Keys the workload's deliberate cases use; seeded with destinations the blog's statements do
# not touch, and never picked by background traffic (so each case ends as described).
RESERVED_TRIPS = 100
SEATS_PER_TRIP = 20
RESERVED_SALE_TRIPS = 6  # trip ids 1..6 of ticket_sales: 120 rows
MIN_TRAVEL_ROWS = 200
MIN_SALES_ROWS = 150
SERVER_SETTINGS = {
    # The clock jumps ahead between transactions: a walsender would count the jump as a
    # silent client and drop the capture's connection.
    "wal_sender_timeout": "0",
}

_TRAVEL_DDL = """
CREATE TABLE {t} (
    trip_id integer PRIMARY KEY,
    tstamp timestamp,
    route_id varchar(2),
    destination varchar(50),
    source_location varchar(50)
);
-- Short bounded strings never leave the row: PLAIN storage says so, and the capture then
-- lets the table keep REPLICA IDENTITY DEFAULT (key-only deletes).
ALTER TABLE {t}
    ALTER COLUMN route_id SET STORAGE PLAIN,
    ALTER COLUMN destination SET STORAGE PLAIN,
    ALTER COLUMN source_location SET STORAGE PLAIN;
"""
_SALES_DDL = """
CREATE TABLE {t} (
    trip_id integer,
    seat_no integer,
    sale_date date,
    price numeric(10, 2),
    channel varchar(10),
    card_number varchar(19),
    PRIMARY KEY (trip_id, seat_no)
);
ALTER TABLE {t} REPLICA IDENTITY FULL;
"""


class SourceSetupError(RuntimeError):
    """The demo's PostgreSQL source cannot be set up; the message says how to fix it."""


def faketime_library() -> Path:
    """libfaketime's preload library (Debian package ``libfaketime``)."""
    found = sorted(Path("/usr/lib").glob(FAKETIME_GLOB))
    if not found:
        raise SourceSetupError(
            f"libfaketime is not installed (no /usr/lib/{FAKETIME_GLOB}): run "
            "tools/ensure_postgres.sh (or apt-get install libfaketime)"
        )
    return found[0]


class SourceClock:
    """The server's clock: real time plus an offset kept in a file libfaketime reads."""

    def __init__(self, path: Path, start: datetime) -> None:
        self.path = path
        self._write(start.timestamp() - time.time())

    def server_env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(faketime_library()),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
        }

    def jump_to(self, when: datetime) -> None:
        """From now on the server's clock reads ``when`` (then ticks on)."""
        self._write(when.timestamp() - time.time())

    def _write(self, offset: float) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(f"{offset:+.6f}\n")
        tmp.chmod(0o644)  # the server's OS user reads it
        os.replace(tmp, self.path)  # a reader sees the old offset or the new one


@dataclass
class PgSource:
    """A running throwaway cluster with the demo database (``dsn``) and its clock."""

    cluster: Cluster
    clock: SourceClock
    dsn: str

    @classmethod
    def start(cls, at: datetime) -> PgSource:
        """initdb + start a cluster in a new temp folder with its clock at ``at``, and create
        the demo database."""
        base = Path(tempfile.mkdtemp(prefix="cdclake-demo-pg-"))
        clock = SourceClock(base / "faketime", at)
        cluster = start_cluster(base, settings=SERVER_SETTINGS, server_env=clock.server_env())
        admin = psycopg2.connect(cluster.dsn)
        try:
            admin.autocommit = True
            admin.cursor().execute(f"CREATE DATABASE {DATABASE}")
        finally:
            admin.close()
        src = cls(cluster, clock, cluster.dsn_for(DATABASE))
        log.info("source database %s, clock at %s", src.dsn, src.now().isoformat())
        return src

    def stop(self) -> None:
        self.cluster.stop()

    def connect(self, *, autocommit: bool = False) -> Any:
        conn = psycopg2.connect(self.dsn, options="-c timezone=UTC")
        conn.autocommit = autocommit
        return conn

    def now(self) -> datetime:
        """The server's clock."""
        conn = self.connect(autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT clock_timestamp()")
                return cur.fetchone()[0].astimezone(UTC)
        finally:
            conn.close()

    def advance_to(self, when: datetime) -> datetime:
        """Move the server's clock forward to ``when`` (never back: if it is already later,
        it stays). Returns the server's time afterwards."""
        now = self.now()
        if when > now:
            self.clock.jump_to(when)
            now = self.now()
        else:
            log.info("source clock already at %s (wanted %s)", now.isoformat(), when.isoformat())
        return now

    def select_all(self, table: TableConfig) -> tuple[list[str], list[tuple[Any, ...]]]:
        """``SELECT * FROM`` the table: column names and rows (Python values)."""
        conn = self.connect(autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("SELECT * FROM {}").format(_qualified(table)))
                return [d.name for d in cur.description], cur.fetchall()
        finally:
            conn.close()


def demo_tables(cfg: PipelineConfig) -> dict[str, TableConfig]:
    """The config's two demo tables by bare name (the demo knows their columns)."""
    by_name = {t.name: t for t in cfg.tables}
    keys = {TRAVEL: ("trip_id",), SALES: ("trip_id", "seat_no")}
    if sorted(by_name) != sorted(keys) or len(cfg.tables) != len(keys):
        raise ConfigError(
            f"the PostgreSQL demo knows tables {sorted(keys)}; the config has "
            f"{[t.qualified_name for t in cfg.tables]}"
        )
    for name, key in keys.items():
        if by_name[name].primary_key != key:
            raise ConfigError(f"{by_name[name].qualified_name}: the demo's key is {key}")
    return by_name


def create_tables(src: PgSource, cfg: PipelineConfig, travel_rows: int, sales_rows: int,
                  seed: int) -> None:  # fmt: skip
    """The two tables and their initial rows (``travel_rows`` trips, ``sales_rows`` sales)."""
    if travel_rows < MIN_TRAVEL_ROWS or sales_rows < MIN_SALES_ROWS:
        raise ValueError(f"need travel_rows >= {MIN_TRAVEL_ROWS}, sales_rows >= {MIN_SALES_ROWS}")
    tables = demo_tables(cfg)
    travel, sales = tables[TRAVEL], tables[SALES]
    rng = random.Random(seed)
    conn = src.connect()
    try:
        with conn, conn.cursor() as cur:
            for schema in sorted({travel.schema, sales.schema}):
                cur.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                )
            cur.execute(sql.SQL(_TRAVEL_DDL).format(t=_qualified(travel)))
            cur.execute(sql.SQL(_SALES_DDL).format(t=_qualified(sales)))
            _copy(cur, travel, (_trip(rng, i) for i in range(1, travel_rows + 1)))
            _copy(cur, sales, (_sale(rng, i) for i in range(sales_rows)))
    finally:
        conn.close()
    log.info("source tables created: %d trips, %d sales", travel_rows, sales_rows)


def sale_key(index: int) -> tuple[int, int]:
    """The key of the ``index``-th initial sale: 20 seats per trip."""
    return 1 + index // SEATS_PER_TRIP, 1 + index % SEATS_PER_TRIP


def _trip(rng: random.Random, trip_id: int) -> tuple[Any, ...]:
    cities = SAFE_CITIES if trip_id <= RESERVED_TRIPS else CITIES
    when = datetime(2026, 1, 1) + timedelta(minutes=rng.randrange(460_000))
    return (trip_id, when, rng.choice(ROUTES), rng.choice(cities), rng.choice(CITIES))


def _sale(rng: random.Random, index: int) -> tuple[Any, ...]:
    trip_id, seat = sale_key(index)
    day = date(2026, 10, 1) + timedelta(days=rng.randrange(52))
    price = Decimal(rng.randrange(1_000, 50_000)) / 100
    card = "".join(rng.choice("0123456789") for _ in range(16))
    return (trip_id, seat, day, price, rng.choice(CHANNELS), card)


def _copy(cur: Any, table: TableConfig, rows: Any) -> None:
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join(r"\N" if v is None else str(v) for v in row) + "\n")
    buf.seek(0)
    cur.copy_expert(sql.SQL("COPY {} FROM STDIN").format(_qualified(table)), buf)


def _qualified(table: TableConfig) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))
