"""The PostgreSQL demo's workload: real transactions, each at a scheduled minute of the source's
clock (:meth:`demo.pgsource.PgSource.advance_to`), hour by hour between the DAG runs.

With ``n`` CDC hours starting at ``T0`` (hour ``i`` = ``T0 + i h``), the blog hour ``B = min(1,
n-2)``, the late hour ``L = n-2`` and the added-column hour ``C = min(2, L)``:

* during the full-load DAG run (from ``T0``): a second connection commits small transactions
  every 0.2 s (updates, an insert then a delete of a new trip, sale price changes), before,
  while and after the capture takes its snapshot (``changes_during_full_load``);
* hour 0: ``ties_in_transaction`` (:10: one transaction updates a key twice, inserts then
  updates a new key, updates then deletes a key; a sale inserted, deleted and inserted again);
  ``insert_delete_insert`` (:12, :14, :16, one transaction each); ``interleaved_transactions``
  (:20, two connections: the one that began first commits last, and its update of a key the
  other changed wins); ``rollbacks`` (:24, a rolled-back transaction and a savepoint rolled
  back inside a committed one); ``key_only_deletes`` (:28, ``travel_details`` under REPLICA
  IDENTITY DEFAULT; a ``ticket_sales`` delete carries its old row);
* hour B, the blog's round: ``update ... set destination='Tucson' where destination='Miami'``
  (:30), 200 new trips in two transactions of 100 (:31, :32), ``delete ... where
  destination='Los Angeles'`` (:33, key-only deletes; some of the new trips go too); then a
  ``primary_key_update`` of each table (:35, written as delete + insert) and
  ``partition_move`` s (:37: ``route_id``, ``sale_date``);
* hour C: ``added_column`` (:38 ``ALTER TABLE travel_details ADD COLUMN distance_km integer``;
  :39 one route gets distances, a new trip carries one);
* every hour, background traffic (:41-:43): small random transactions on keys no case uses;
* hour L's DAG run is made while the source is still at L:46 (the capture lags the scheduler),
  then ``late_file`` transactions commit at L:58: the next hour's flush writes them into hour
  L's folder after L's run, and the last hour's run applies them together with their
  ``late_file_followups`` (last hour :10: a key updated again, the new trip deleted, the
  deleted key inserted again).

Other hours' runs start at ``H+1h`` + grace + 1 s on the source's clock.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg2 import sql

from cdclake.core.config import PipelineConfig
from demo.pgsource import (
    RESERVED_SALE_TRIPS,
    RESERVED_TRIPS,
    SALES,
    SEATS_PER_TRIP,
    TRAVEL,
    PgSource,
    demo_tables,
    sale_key,
)
from demo.scenario import (
    BLOG_DELETED,
    BLOG_NEW,
    BLOG_UPDATED,
    CITIES,
    ROUTES,
    SAFE_CITIES,
    HardCase,
)

log = logging.getLogger(__name__)

MIN_HOURS = 2
NEW_TRIPS_FROM = 100_001  # trips inserted by the workload
LOAD_TIME_TRIPS_FROM = 900_001  # trips inserted while the full load runs
NEW_SEATS_FROM = 61  # seats of sales inserted by the workload
LOAD_TIME_PAUSE_S = 0.2
LATE_RUN_MINUTE = 46  # where the source's clock stands when the late hour's DAG runs
LATE_MINUTE = 58


class Workload:
    """The scheduled transactions of ``hours`` CDC hours from ``start`` (see module doc)."""

    def __init__(
        self,
        src: PgSource,
        cfg: PipelineConfig,
        *,
        start: datetime,
        hours: int,
        grace: timedelta,
        travel_rows: int,
        sales_rows: int,
        seed: int,
    ) -> None:
        if hours < MIN_HOURS:
            raise ValueError(f"hours must be at least {MIN_HOURS} (a late file needs a next run)")
        self.src, self.grace = src, grace
        tables = demo_tables(cfg)
        self.travel = _name(tables[TRAVEL])
        self.sales = _name(tables[SALES])
        self.travel_name = tables[TRAVEL].qualified_name
        self.sales_name = tables[SALES].qualified_name
        self.start, self.n = start, hours
        self.late_hour = hours - 2
        self.blog_hour = min(1, self.late_hour)
        self.column_hour = min(2, self.late_hour)
        self.rng = random.Random(seed)
        self.travel_rows, self.sales_rows = travel_rows, sales_rows
        self.hard_cases: list[HardCase] = []
        self.has_distance = False
        self._trips = iter(range(1, RESERVED_TRIPS + 1))
        self._sales = iter(sale_key(i) for i in range(RESERVED_SALE_TRIPS * SEATS_PER_TRIP))
        self._new_trips = iter(range(NEW_TRIPS_FROM, LOAD_TIME_TRIPS_FROM))
        self._new_seats = iter(range(NEW_SEATS_FROM, 10_000))
        self._late: dict[str, Any] = {}
        self.conn = src.connect()
        self.other = src.connect()  # a second session, for interleaved transactions
        self.transactions = 0

    def close(self) -> None:
        self.conn.close()
        self.other.close()

    def hours(self) -> list[datetime]:
        return [self.start + timedelta(hours=i) for i in range(self.n)]

    # ---- the driver's calls, in order ---------------------------------------------------------
    @contextmanager
    def during_full_load(self) -> Iterator[None]:
        """Commit small transactions from another session until the block ends."""
        trips = [next(self._trips) for _ in range(8)]
        sales = [next(self._sales) for _ in range(8)]
        stop, errors, made = threading.Event(), [], [0]

        def write() -> None:
            conn = self.src.connect()
            try:
                i = 0
                while not stop.is_set():
                    with conn, conn.cursor() as cur:
                        self._load_time_txn(cur, i, trips, sales)
                    made[0] += 1
                    i += 1
                    stop.wait(LOAD_TIME_PAUSE_S)
            except Exception as exc:  # noqa: BLE001 - re-raised in the driver's thread
                errors.append(exc)
            finally:
                conn.close()

        thread = threading.Thread(target=write, name="load-time-writer", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=60)
        if errors:
            raise errors[0]
        self.transactions += made[0]
        hour = (self.start,)
        note = f"{made[0]} transactions while the full-load DAG ran"
        self.case("changes_during_full_load", TRAVEL, hour, [(t,) for t in trips], note)
        self.case("changes_during_full_load", SALES, hour, sales, note)
        log.info("%s (from %s)", note, self.start.isoformat())

    def run_hour(self, i: int) -> None:
        """The transactions of hour ``i`` that commit before its DAG run."""
        if i == 0:
            self.ties_in_transaction(i)
            self.insert_delete_insert(i)
            self.interleaved_transactions(i)
            self.rollbacks(i)
            self.key_only_deletes(i)
        if i == self.blog_hour:
            self.blog_round(i)
            self.primary_key_update(i)
            self.partition_moves(i)
        if i == self.column_hour:
            self.added_column(i)
        if i == self.late_hour + 1:
            self.late_file_followups(i)
        self.background(i)

    def ready_for_run(self, i: int) -> datetime:
        """Set the source's clock where hour ``i``'s DAG run happens; returns it."""
        if i == self.late_hour:
            return self.at(i, LATE_RUN_MINUTE)
        return self.src.advance_to(self.start + timedelta(hours=i + 1) + self.grace
                                   + timedelta(seconds=1))  # fmt: skip

    def after_run(self, i: int) -> None:
        """Transactions of hour ``i`` committed after its DAG run (only the late hour has)."""
        if i == self.late_hour:
            self.late_file(i)

    # ---- the cases ---------------------------------------------------------------------------
    def ties_in_transaction(self, i: int) -> None:
        twice, then_deleted = next(self._trips), next(self._trips)
        new = next(self._new_trips)
        sale, (trip, _) = next(self._sales), next(self._sales)
        new_sale = (trip, next(self._new_seats))
        when = self.at(i, 10)
        with self.txn() as cur:
            self.set_trip(cur, twice, destination="Denver")
            self.set_trip(cur, twice, destination="Boston")
            self.insert_trip(cur, new, when, destination="Austin")
            self.set_trip(cur, new, source_location="Seattle")
            self.set_trip(cur, then_deleted, destination="Phoenix")
            self.delete_trip(cur, then_deleted)
            self.insert_sale(cur, new_sale, when, price="10.00")
            self.delete_sale(cur, new_sale)
            self.insert_sale(cur, new_sale, when, price="12.50")
            self.set_sale(cur, sale, price="99.99")
            self.set_sale(cur, sale, channel="kiosk")
        note = "one transaction changes each key several times: only the sequence orders them"
        self.case("ties_in_transaction", TRAVEL, (when,), [(twice,), (then_deleted,), (new,)], note)
        self.case("ties_in_transaction", SALES, (when,), [sale, new_sale], note)

    def insert_delete_insert(self, i: int) -> None:
        trip = next(self._trips)
        sale = (trip, next(self._new_seats))
        new = next(self._new_trips)
        for minute, step in ((12, "insert"), (14, "delete"), (16, "insert")):
            when = self.at(i, minute)
            with self.txn() as cur:
                if step == "insert":
                    route = ROUTES[minute % len(ROUTES)]
                    self.insert_trip(cur, new, when, route_id=route)
                    self.insert_sale(cur, sale, when, price=f"{minute}.00")
                else:
                    self.delete_trip(cur, new)
                    self.delete_sale(cur, sale)
        note = "I, D, I of one key in three transactions of one hour"
        self.case("insert_delete_insert", TRAVEL, (when,), [(new,)], note)
        self.case("insert_delete_insert", SALES, (when,), [sale], note)

    def interleaved_transactions(self, i: int) -> None:
        first, both = next(self._trips), next(self._trips)
        sale = next(self._sales)
        when = self.at(i, 20)
        a, b = self.conn.cursor(), self.other.cursor()
        self.set_trip(a, first, destination="Chicago")  # A begins first ...
        self.set_trip(b, both, destination="Dallas")
        self.set_sale(b, sale, price="55.55")
        self.other.commit()  # ... B commits first ...
        self.set_trip(a, both, destination="Houston")  # ... and A's later update wins
        self.conn.commit()
        a.close()
        b.close()
        self.transactions += 2
        note = "two sessions; the one that began first commits last and wins on the shared key"
        self.case("interleaved_transactions", TRAVEL, (when,), [(first,), (both,)], note)
        self.case("interleaved_transactions", SALES, (when,), [sale], note)

    def rollbacks(self, i: int) -> None:
        untouched, kept, restored = next(self._trips), next(self._trips), next(self._trips)
        when = self.at(i, 24)
        with self.conn.cursor() as cur:
            self.set_trip(cur, untouched, destination="Rolled back")
            self.delete_trip(cur, kept)
            self.conn.rollback()
        with self.txn() as cur:
            self.set_trip(cur, kept, destination="Kept")
            cur.execute("SAVEPOINT undo")
            self.delete_trip(cur, kept)
            self.set_trip(cur, restored, destination="Rolled back")
            cur.execute("ROLLBACK TO SAVEPOINT undo")
            self.set_trip(cur, restored, source_location="Nashville")
        note = "a rolled-back transaction and a rolled-back savepoint leave no trace"
        keys = [(untouched,), (kept,), (restored,)]
        self.case("rollbacks", TRAVEL, (when,), keys, note)

    def key_only_deletes(self, i: int) -> None:
        trips = [next(self._trips), next(self._trips)]
        sale = next(self._sales)
        when = self.at(i, 28)
        with self.txn() as cur:
            for trip in trips:
                self.delete_trip(cur, trip)
            self.delete_sale(cur, sale)
        note = "travel_details deletes carry trip_id only; ticket_sales deletes the old row"
        self.case("key_only_deletes", TRAVEL, (when,), [(t,) for t in trips], note)
        self.case("key_only_deletes", SALES, (when,), [sale], note)

    def blog_round(self, i: int) -> None:
        when = self.at(i, 30)
        with self.txn() as cur:
            cur.execute(
                sql.SQL("UPDATE {} SET destination = %s WHERE destination = %s").format(
                    self.travel
                ),
                (BLOG_NEW, BLOG_UPDATED),
            )
            updated = cur.rowcount
        new = []
        for minute in (31, 32):
            when = self.at(i, minute)
            with self.txn() as cur:
                for _ in range(100):
                    trip = next(self._new_trips)
                    new.append(trip)
                    self.insert_trip(cur, trip, when, destination=self.rng.choice(CITIES))
        when = self.at(i, 33)
        with self.txn() as cur:
            cur.execute(
                sql.SQL("DELETE FROM {} WHERE destination = %s").format(self.travel),
                (BLOG_DELETED,),
            )
            deleted = cur.rowcount
        log.info("blog round: %d Miami trips updated, 200 inserted, %d deleted", updated, deleted)
        note = f"{updated} updated to Tucson, 200 inserted, {deleted} Los Angeles trips deleted"
        self.case("blog_round", TRAVEL, (when,), [(t,) for t in new], note)

    def primary_key_update(self, i: int) -> None:
        old, new = next(self._trips), next(self._new_trips)
        sale = next(self._sales)
        moved = (sale[0], next(self._new_seats))
        when = self.at(i, 35)
        with self.txn() as cur:
            cur.execute(
                sql.SQL("UPDATE {} SET trip_id = %s WHERE trip_id = %s").format(self.travel),
                (new, old),
            )
            cur.execute(
                sql.SQL("UPDATE {} SET seat_no = %s WHERE trip_id = %s AND seat_no = %s").format(
                    self.sales
                ),
                (moved[1], *sale),
            )
        note = "the key itself changes: written as D (old key) + I (new row)"
        self.case("primary_key_update", TRAVEL, (when,), [(old,), (new,)], note)
        self.case("primary_key_update", SALES, (when,), [sale, moved], note)

    def partition_moves(self, i: int) -> None:
        trip, sale = next(self._trips), next(self._sales)
        when = self.at(i, 37)
        with self.txn() as cur:
            cur.execute(
                sql.SQL("UPDATE {} SET route_id = CASE WHEN route_id = 'AZ' THEN 'TX' "
                        "ELSE 'AZ' END WHERE trip_id = %s").format(self.travel),
                (trip,),
            )  # fmt: skip
            cur.execute(
                sql.SQL("UPDATE {} SET sale_date = sale_date + 30 "
                        "WHERE trip_id = %s AND seat_no = %s").format(self.sales),
                sale,
            )  # fmt: skip
        note = "the partition column changes (route_id, sale_date)"
        self.case("partition_move", TRAVEL, (when,), [(trip,)], note)
        self.case("partition_move", SALES, (when,), [sale], note)

    def added_column(self, i: int) -> None:
        when = self.at(i, 38)
        with self.txn() as cur:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN distance_km integer").format(self.travel)
            )
        self.has_distance = True
        new = next(self._new_trips)
        when = self.at(i, 39)
        with self.txn() as cur:
            cur.execute(
                sql.SQL("UPDATE {} SET distance_km = 100 + trip_id %% 900 "
                        "WHERE route_id = 'AZ' AND trip_id > %s").format(self.travel),
                (RESERVED_TRIPS,),
            )  # fmt: skip
            self.insert_trip(cur, new, when, distance_km=321)
        note = "ALTER TABLE ADD COLUMN mid-stream; one route gets distances, older rows keep null"
        self.case("added_column", TRAVEL, (when,), [(new,)], note)

    def late_file(self, i: int) -> None:
        alone, again, back = next(self._trips), next(self._trips), next(self._trips)
        new = next(self._new_trips)
        sale, gone = next(self._sales), next(self._sales)
        when = self.at(i, LATE_MINUTE)
        if when >= self.start + timedelta(hours=i + 1):
            log.warning("the late hour's DAG run took so long that its 'late' transactions "
                        "commit in the next hour: no late file this time")  # fmt: skip
        distance = {"distance_km": 777} if self.has_distance else {}
        with self.txn() as cur:
            self.set_trip(cur, alone, destination="Portland", **distance)
            self.set_trip(cur, again, destination="Atlanta")
            self.insert_trip(cur, new, when, destination="Boston")
            self.delete_trip(cur, back)
            self.set_sale(cur, sale, price="77.70")
            self.delete_sale(cur, gone)
        self._late = {"again": again, "new": new, "back": back, "sale": sale}
        note = "committed in an hour after its run: written late into that hour's folder"
        keys = [(alone,), (again,), (new,), (back,)]
        self.case("late_file", TRAVEL, (when,), keys, note)
        self.case("late_file", SALES, (when,), [sale, gone], note)

    def late_file_followups(self, i: int) -> None:
        late = self._late
        when = self.at(i, 10)
        with self.txn() as cur:
            self.set_trip(cur, late["again"], destination="Minneapolis")
            self.delete_trip(cur, late["new"])
            self.insert_trip(cur, late["back"], when, destination="San Diego")
            self.set_sale(cur, late["sale"], price="88.80")
        note = "later changes of the late file's keys, applied in the same run"
        keys = [(late["again"],), (late["new"],), (late["back"],)]
        self.case("late_file_followups", TRAVEL, (when,), keys, note)
        self.case("late_file_followups", SALES, (when,), [late["sale"]], note)

    def background(self, i: int) -> None:
        """Three small random transactions on keys no case uses."""
        rng = self.rng
        for minute in (41, 42, 43):
            when = self.at(i, minute)
            with self.txn() as cur:
                for trip in rng.sample(range(RESERVED_TRIPS + 1, self.travel_rows + 1), 3):
                    self.set_trip(cur, trip, destination=rng.choice(CITIES))
                if rng.random() < 0.5:
                    self.insert_trip(cur, next(self._new_trips), when)
                if rng.random() < 0.4:
                    self.delete_trip(cur, rng.randrange(RESERVED_TRIPS + 1, self.travel_rows + 1))
                if rng.random() < 0.3:
                    trip = rng.randrange(RESERVED_TRIPS + 1, self.travel_rows + 1)
                    self.set_trip(cur, trip, route_id=rng.choice(ROUTES))
                first = RESERVED_SALE_TRIPS * SEATS_PER_TRIP
                sale = sale_key(rng.randrange(first, self.sales_rows))
                self.set_sale(cur, sale, price=f"{rng.randrange(100, 90_000) / 100:.2f}")
                if rng.random() < 0.4:
                    new_sale = (rng.randrange(1_000, 2_000), next(self._new_seats))
                    self.insert_sale(cur, new_sale, when, price="42.00")
                if rng.random() < 0.3:
                    self.delete_sale(cur, sale_key(rng.randrange(first, self.sales_rows)))

    # ---- statements ---------------------------------------------------------------------------
    def at(self, i: int, minute: float) -> datetime:
        """Move the source's clock to minute ``minute`` of hour ``i`` (or leave it later)."""
        return self.src.advance_to(self.start + timedelta(hours=i, minutes=minute))

    @contextmanager
    def txn(self) -> Iterator[Any]:
        """One transaction on the main session: committed at the end, rolled back on error."""
        with self.conn, self.conn.cursor() as cur:
            yield cur
        self.transactions += 1

    def case(self, name: str, table: str, hours: tuple[datetime, ...], keys: list, note: str
             ) -> None:  # fmt: skip
        qualified = self.travel_name if table == TRAVEL else self.sales_name
        floor = tuple(h.replace(minute=0, second=0, microsecond=0) for h in hours)
        self.hard_cases.append(HardCase(name, qualified, floor, tuple(map(tuple, keys)), note))

    def set_trip(self, cur: Any, trip: int, **values: Any) -> None:
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = %s").format(sql.Identifier(k)) for k in values
        )
        cur.execute(
            sql.SQL("UPDATE {} SET {} WHERE trip_id = %s").format(self.travel, assignments),
            (*values.values(), trip),
        )

    def insert_trip(self, cur: Any, trip: int, when: datetime, **values: Any) -> None:
        row = {
            "trip_id": trip,
            "tstamp": when.replace(tzinfo=None),
            "route_id": self.rng.choice(ROUTES),
            "destination": self.rng.choice(SAFE_CITIES),
            "source_location": self.rng.choice(CITIES),
            **values,
        }
        self._insert(cur, self.travel, row)

    def delete_trip(self, cur: Any, trip: int) -> None:
        cur.execute(sql.SQL("DELETE FROM {} WHERE trip_id = %s").format(self.travel), (trip,))

    def set_sale(self, cur: Any, key: tuple[int, int], **values: Any) -> None:
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = %s").format(sql.Identifier(k)) for k in values
        )
        cur.execute(
            sql.SQL("UPDATE {} SET {} WHERE trip_id = %s AND seat_no = %s").format(
                self.sales, assignments
            ),
            (*values.values(), *key),
        )

    def insert_sale(self, cur: Any, key: tuple[int, int], when: datetime, price: str) -> None:
        row = {
            "trip_id": key[0],
            "seat_no": key[1],
            "sale_date": when.date(),
            "price": Decimal(price),
            "channel": self.rng.choice(("web", "mobile", "agent", "kiosk")),
            "card_number": "4000" + "".join(self.rng.choice("0123456789") for _ in range(12)),
        }
        self._insert(cur, self.sales, row)

    def delete_sale(self, cur: Any, key: tuple[int, int]) -> None:
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE trip_id = %s AND seat_no = %s").format(self.sales), key
        )

    @staticmethod
    def _insert(cur: Any, table: sql.Composed, row: dict[str, Any]) -> None:
        cur.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                table,
                sql.SQL(", ").join(sql.Identifier(k) for k in row),
                sql.SQL(", ").join(sql.Placeholder() * len(row)),
            ),
            tuple(row.values()),
        )

    def _load_time_txn(self, cur: Any, i: int, trips: list[int], sales: list) -> None:
        self.set_trip(cur, trips[i % len(trips)], source_location=SAFE_CITIES[i % 10])
        new = LOAD_TIME_TRIPS_FROM + i // 2
        if i % 2 == 0:
            cur.execute(
                sql.SQL("INSERT INTO {} (trip_id, tstamp, route_id, destination) "
                        "VALUES (%s, localtimestamp, %s, 'Denver')").format(self.travel),
                (new, ROUTES[i % len(ROUTES)]),
            )  # fmt: skip
        elif i % 4 == 3:
            self.delete_trip(cur, new)
        self.set_sale(cur, sales[i % len(sales)], price=f"{10 + i % 90}.{i % 100:02d}")


def _name(table: Any) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))
