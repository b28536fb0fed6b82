"""A small workload on the local source of ``make airflow``: one real transaction every few
seconds on the demo tables, stamped by the server's clock, so the hours the scheduler runs have
changes to apply.

    python -m demo.liveworkload --dsn DSN --config conf/pipeline.yaml [--interval 20] [--seed 1]

Each transaction does two or three of: update a random trip's destination, insert a new trip,
delete a random trip (a key-only delete: ``travel_details`` keeps REPLICA IDENTITY DEFAULT),
change a random sale's price, insert a sale, delete a sale. Keys are drawn from the tables as
they are, so the workload can run for as long as Airflow does. A failed transaction (the source
restarting, say) is logged and the next one tried; SIGTERM ends it between transactions.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg2
from psycopg2 import sql

from cdclake.core.config import load_config
from demo.pgsource import SALES, TRAVEL, demo_tables
from demo.scenario import CHANNELS, CITIES, ROUTES

log = logging.getLogger("cdclake.liveworkload")

NEW_TRIPS_FROM = 5_000_001  # above every key make run's workloads use
NEW_SALE_TRIPS_FROM = 6_000_001


class LiveWorkload:
    """Random small transactions on the two demo tables (see module doc)."""

    def __init__(self, dsn: str, config: str, seed: int | None = None) -> None:
        tables = demo_tables(load_config(config))
        self.travel = _name(tables[TRAVEL])
        self.sales = _name(tables[SALES])
        self.dsn = dsn
        self.rng = random.Random(seed)
        self.transactions = 0
        self._next_trip: int | None = None
        self._next_sale_trip: int | None = None

    def one(self) -> list[str]:
        """Commit one transaction; returns what it did."""
        conn = psycopg2.connect(self.dsn, options="-c timezone=UTC")
        try:
            with conn, conn.cursor() as cur:
                self._init_keys(cur)
                steps = self.rng.sample(STEPS, k=self.rng.choice((2, 3)))
                done = [step(self, cur) for step in steps]
        finally:
            conn.close()
        self.transactions += 1
        return done

    def _init_keys(self, cur: Any) -> None:
        if self._next_trip is None:
            cur.execute(sql.SQL("SELECT coalesce(max(trip_id), 0) FROM {}").format(self.travel))
            self._next_trip = max(NEW_TRIPS_FROM, cur.fetchone()[0] + 1)
            cur.execute(sql.SQL("SELECT coalesce(max(trip_id), 0) FROM {}").format(self.sales))
            self._next_sale_trip = max(NEW_SALE_TRIPS_FROM, cur.fetchone()[0] + 1)

    def _random_key(self, cur: Any, table: sql.Composed, columns: str) -> tuple | None:
        # TABLESAMPLE would skip small tables; a random offset is cheap at these sizes.
        query = sql.SQL(
            "SELECT {} FROM {} OFFSET floor(random() * (SELECT count(*) FROM {})) LIMIT 1"
        ).format(sql.SQL(columns), table, table)
        cur.execute(query)
        row = cur.fetchone()
        return tuple(row) if row else None

    def update_trip(self, cur: Any) -> str:
        key = self._random_key(cur, self.travel, "trip_id")
        if key is None:
            return "no trip to update"
        city = self.rng.choice(CITIES)
        cur.execute(
            sql.SQL("UPDATE {} SET destination = %s WHERE trip_id = %s").format(self.travel),
            (city, key[0]),
        )
        return f"trip {key[0]} -> {city}"

    def insert_trip(self, cur: Any) -> str:
        assert self._next_trip is not None
        trip, self._next_trip = self._next_trip, self._next_trip + 1
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (trip_id, tstamp, route_id, destination, source_location) "
                "VALUES (%s, %s, %s, %s, %s)"
            ).format(self.travel),
            (
                trip,
                datetime.now(UTC).replace(tzinfo=None, microsecond=0),
                self.rng.choice(ROUTES),
                self.rng.choice(CITIES),
                self.rng.choice(CITIES),
            ),
        )
        return f"new trip {trip}"

    def delete_trip(self, cur: Any) -> str:
        key = self._random_key(cur, self.travel, "trip_id")
        if key is None:
            return "no trip to delete"
        cur.execute(sql.SQL("DELETE FROM {} WHERE trip_id = %s").format(self.travel), key)
        return f"trip {key[0]} deleted"

    def update_sale(self, cur: Any) -> str:
        key = self._random_key(cur, self.sales, "trip_id, seat_no")
        if key is None:
            return "no sale to update"
        price = Decimal(self.rng.randrange(1_000, 50_000)) / 100
        cur.execute(
            sql.SQL("UPDATE {} SET price = %s WHERE trip_id = %s AND seat_no = %s").format(
                self.sales
            ),
            (price, *key),
        )
        return f"sale {key} price {price}"

    def insert_sale(self, cur: Any) -> str:
        assert self._next_sale_trip is not None
        trip, self._next_sale_trip = self._next_sale_trip, self._next_sale_trip + 1
        day = datetime.now(UTC).date() + timedelta(days=self.rng.randrange(30))
        card = "".join(self.rng.choice("0123456789") for _ in range(16))
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (trip_id, seat_no, sale_date, price, channel, card_number) "
                "VALUES (%s, 1, %s, %s, %s, %s)"
            ).format(self.sales),
            (
                trip,
                day,
                Decimal(self.rng.randrange(1_000, 50_000)) / 100,
                self.rng.choice(CHANNELS),
                card,
            ),
        )
        return f"new sale ({trip}, 1)"

    def delete_sale(self, cur: Any) -> str:
        key = self._random_key(cur, self.sales, "trip_id, seat_no")
        if key is None:
            return "no sale to delete"
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE trip_id = %s AND seat_no = %s").format(self.sales), key
        )
        return f"sale {key} deleted"


STEPS = [
    LiveWorkload.update_trip,
    LiveWorkload.insert_trip,
    LiveWorkload.delete_trip,
    LiveWorkload.update_sale,
    LiveWorkload.insert_sale,
    LiveWorkload.delete_sale,
]


def run(workload: LiveWorkload, interval: float, stop: threading.Event) -> None:
    """One transaction every ``interval`` seconds until ``stop`` is set."""
    while not stop.is_set():
        try:
            log.info("transaction %d: %s", workload.transactions + 1, "; ".join(workload.one()))
        except psycopg2.Error as exc:
            log.warning("transaction failed, trying again next time: %s", str(exc).strip())
        stop.wait(interval)


def _name(table: Any) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demo.liveworkload", description=__doc__)
    p.add_argument("--dsn", required=True, help="libpq connection string of the source")
    p.add_argument("--config", required=True, help="pipeline config (the two demo tables)")
    p.add_argument("--interval", type=float, default=20.0, help="seconds between transactions")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    workload = LiveWorkload(args.dsn, args.config, args.seed)
    log.info("committing one transaction every %.0f s (SIGTERM stops)", args.interval)
    run(workload, args.interval, stop)
    log.info("stopped after %d transaction(s)", workload.transactions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
