"""What happens at the source: the initial rows, the blog's round, background traffic and every
deliberate hard case, on a fixed timeline relative to the DMS task start ``T0`` (on the hour).

Hour ``h`` below means ``T0 + h hours``; with the defaults hour 0 is 2026-11-22 08:00 UTC.
Keys picked for hard cases are *reserved*: background traffic and the bulk statements never touch
them (they are chosen so that ``destination`` is neither Miami nor Los Angeles), so each case
ends exactly as described.

Hour 0, full load and cached changes (DMS reads the tables in key-range chunks, ``travel_details``
at T0+0:40 ... T0+3:10, ``ticket_sales`` at T0+0:50 ... T0+3:20):

* ``cached_load_after``: changes committed before their chunk was read; the LOAD file already
  shows them (travel: U at +0:15 and key-only D at +0:30 in the last chunk, I of a new trip at
  +0:20; sales: U +0:25, D +0:35, I +0:45).
* ``cached_load_before``: changes committed after their chunk was read but before the load ends;
  the LOAD file shows the old row (travel: U +2:00, D +3:00 in the first chunk, I of a new trip
  at +3:12; sales: U +2:30, D +3:05, I +3:00). All of them arrive again as CDC files written right
  after the load.
* ``tie_in_transaction`` (0:12 travel, 0:20 sales): one transaction changes the same key twice
  (U then U), inserts then updates a new key, updates then deletes a key: equal commit times,
  only the change sequence (or the row position) says which change is last.
* ``update_then_delete_later_hour``: a trip updated to Los Angeles at 0:40, removed by the
  blog's delete in hour 1.

Hour 1, the blog's round and more:

* ``blog_update``: ``update set destination='Tucson' where destination='Miami'`` (one txn, 1:10).
* ``blog_inserts``: 200 new trips (two txns of 100 at 1:20 and 1:21).
* ``blog_delete``: ``delete where destination='Los Angeles'`` (one txn, 1:30, key-only deletes,
  on the table partitioned by ``route_id``), which also removes some of the 200 new trips
  (insert and delete in the same hour).
* ``insert_delete_insert_same_hour`` (sales): I 1:05, D 1:15, I 1:35 of one composite key.
* ``partition_move``: sales ``sale_date`` moved at 1:25; travel ``route_id`` moved at 1:45.
* ``update_then_delete_later_hour``: travel U at 1:40, key-only D at 3:15; sales U at 1:51,
  D (full before image) at 2:15.
* ``late_file_next_hour``: the travel file of minute 1:44 lands at 2:25 (after hour 1's run).
  It holds a U of a key nothing else touches, an I of a new trip and a U superseded at 1:48.
* ``duplicate_delivery``: the task restarts at 2:07:30 and resumes from 1:50: every change
  committed in [1:50, 2:07:30) of both tables is delivered again, in new files in the folders of
  their commit hours (hour 1's land an hour late; hour 2's land in the same batch). Keys changed
  twice inside the window: travel 1:52 and 2:03, sales 1:56 and 2:04.

Hour 2:

* ``insert_delete_insert_same_hour`` (travel): I 2:05, D 2:20, I 2:40 of a new trip.
* ``reinsert_after_delete``: a trip updated at 0:30 is deleted at 2:10 and inserted again 3:30.
* ``added_column``: ``ALTER TABLE travel_details ADD COLUMN distance_km int`` at 2:30; at 2:35 a
  backfill sets it for one route (``trip_id % 5 = 0``); new trips carry it; rows never changed
  afterwards keep NULL. Files of changes committed after 2:30 carry the column.
* ``partition_move`` (sales): a sale moved into the new day's partition at 2:45.
* ``late_file_after_next_run``: the travel file of minute 2:52 lands at 4:20, after the run for
  hour 3. It holds: U of a key deleted at 3:15 (``stale_change_after_delete``), I of a new trip
  updated at 3:10 (``upsert_unknown_key``: hour 3's run sees an update for a key it has never
  seen), U of a key nothing else touches (sets ``distance_km``), and a key-only D of a key
  inserted again at 3:20 (``reinsert_after_delete``).

Hour 3:

* ``late_file_after_final_run``: the sales file of minute 3:42 lands 30 minutes after the last
  hour ends, so only a final catch-up run sees it: U of a key nothing else touches, U of a key
  updated again at 3:55 (stale when it lands), D with full image of a key nothing else touches.

Every hour also gets 3-5 minutes of random background traffic per table (small transactions of
updates, some inserts and deletes, sometimes a partition move) on unreserved keys.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pyarrow as pa

from demo.sourcedb import Key, Row, SourceDb, TableSpec, Txn

TRAVEL = "travel_details"
SALES = "ticket_sales"
ADDED_COLUMN = "distance_km"
ADDED_TYPE = pa.int32()
MIN_HOURS = 4
MIN_TRAVEL_ROWS = 200
MIN_SALES_ROWS = 100
SEATS = 60  # seats 1..60 in the initial data; deliberate new sales use seats above

CITIES = (
    "New York",
    "Los Angeles",
    "Chicago",
    "Houston",
    "Phoenix",
    "Philadelphia",
    "San Antonio",
    "San Diego",
    "Dallas",
    "Austin",
    "Seattle",
    "Denver",
    "Boston",
    "Miami",
    "Atlanta",
    "Portland",
    "Las Vegas",
    "Nashville",
    "Tucson",
    "Minneapolis",
)
BLOG_UPDATED, BLOG_NEW, BLOG_DELETED = "Miami", "Tucson", "Los Angeles"
SAFE_CITIES = tuple(c for c in CITIES if c not in (BLOG_UPDATED, BLOG_DELETED))
ROUTES = ("AZ", "BX", "CL", "DN", "EW", "FL", "GA", "HT", "NY", "TX")
CHANNELS = ("web", "mobile", "agent", "kiosk")

TRAVEL_SPEC = TableSpec(
    TRAVEL,
    (
        ("trip_id", pa.int32()),
        ("tstamp", pa.timestamp("us", tz="UTC")),
        ("route_id", pa.string()),
        ("destination", pa.string()),
        ("source_location", pa.string()),
    ),
    key=("trip_id",),
    key_only_deletes=True,  # no REPLICA IDENTITY FULL: D rows carry only trip_id
)
SALES_SPEC = TableSpec(
    SALES,
    (
        ("trip_id", pa.int32()),
        ("seat_no", pa.int32()),
        ("sale_date", pa.date32()),
        ("price", pa.decimal128(10, 2)),
        ("channel", pa.string()),
        ("card_number", pa.string()),
    ),
    key=("trip_id", "seat_no"),
    key_only_deletes=False,  # REPLICA IDENTITY FULL: D rows carry the before image
)

_TRIPS_FROM = datetime(2026, 1, 1, tzinfo=UTC)
_SALES_FROM = date(2026, 10, 1)
_SALES_DAYS = 52  # initial sale dates 2026-10-01 .. 2026-11-21


@dataclass(frozen=True)
class HardCase:
    """One deliberate situation in the stream: which table, commit hours and keys."""

    name: str
    table: str
    hours: tuple[datetime, ...]
    keys: tuple[Key, ...]
    note: str


@dataclass(frozen=True)
class LoadPlan:
    """How DMS reads one table during the full load: key-range chunks, each at its own time."""

    boundaries: tuple[Key, ...]  # first key of each chunk (one LOAD file per chunk)
    read_at: tuple[datetime, ...]
    done: datetime  # the table's full load is complete; cached changes are written after

    def chunk_of(self, key: Key) -> int:
        return max(0, bisect_right(self.boundaries, key) - 1)


@dataclass
class _Event:
    when: datetime
    order: int
    run: Callable[[datetime], object]
    is_txn: bool


@dataclass
class Timeline:
    """Events run in time order; transactions get strictly increasing commit times."""

    events: list[_Event] = field(default_factory=list)

    def add(self, when: datetime, run: Callable[[datetime], object], *, is_txn: bool) -> None:
        self.events.append(_Event(when, len(self.events), run, is_txn))

    def run(self) -> None:
        last: datetime | None = None
        for ev in sorted(self.events, key=lambda e: (e.when, e.order)):
            when = ev.when
            if ev.is_txn:
                # Two random commit times can only collide by chance: nudge by 1 us.
                if last is not None and when <= last:
                    when = last + timedelta(microseconds=1)
                last = when
            ev.run(when)


T, S = TRAVEL, SALES  # short aliases for the hour-by-hour scripts below


def minute_of(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


class Scenario:
    """Builds the whole source history. After :meth:`run`, ``db`` holds the final state and the
    change log, ``snapshots`` the rows of each LOAD chunk, ``cases`` the hard cases."""

    def __init__(
        self,
        rng: random.Random,
        start: datetime,
        hours: int,
        travel_rows: int,
        sales_rows: int,
        load_files: int,
    ) -> None:
        self.rng, self.start, self.n_hours = rng, start, hours
        self.travel_rows, self.sales_rows, self.load_files = travel_rows, sales_rows, load_files
        self.db = SourceDb([TRAVEL_SPEC, SALES_SPEC])
        self.timeline = Timeline()
        self.cases: list[HardCase] = []
        self.reserved: dict[str, set[Key]] = {TRAVEL: set(), SALES: set()}
        self.loads: dict[str, LoadPlan] = {}
        self.snapshots: dict[str, list[list[Row]]] = {}
        # (table, minute) -> when DMS writes that minute's file (late files only)
        self.late_windows: dict[tuple[str, datetime], datetime] = {}
        self.restart_from = self._at(1, 50, 0, 0)
        self.restart_at = self._at(2, 7, 30, 0)
        self.alter_at = self._at(2, 30, 0, 250_000)
        self._busy: set[tuple[str, datetime]] = set()
        self._next_trip = travel_rows + 1
        self._sales_seen: set[Key] = set()
        self._next_seat: dict[int, int] = {}
        self._later_deletes: list[Key] = []

    # --- building blocks ---------------------------------------------------------------------
    def _at(self, hour: int, minute: int, second: int, micro: int | None = None) -> datetime:
        us = self.rng.randrange(1, 1_000_000) if micro is None else micro
        return self.start + timedelta(hours=hour, minutes=minute, seconds=second, microseconds=us)

    def hour(self, h: int) -> datetime:
        return self.start + timedelta(hours=h)

    def _txn(self, when: datetime, tables: tuple[str, ...], body: Callable[[Txn], object]) -> None:
        for t in tables:
            self._busy.add((t, minute_of(when)))
        self.timeline.add(when, lambda w: body(self.db.begin(w)), is_txn=True)

    def _case(
        self, name: str, table: str, hours: tuple[int, ...], keys: list[Key], note: str
    ) -> None:
        self.cases.append(
            HardCase(name, table, tuple(self.hour(h) for h in hours), tuple(keys), note)
        )

    def _reserve(self, table: str, key: Key) -> Key:
        self.reserved[table].add(key)
        return key

    def _pick_trip(self, where: str) -> Key:
        """An existing, unreserved trip whose destination no bulk statement touches."""
        n = self.travel_rows
        order = {
            "first": range(1, n + 1),
            "last": range(n, 0, -1),
            "middle": range(n // 2, n + 1),
        }[where]
        for i in order:
            key = (i,)
            row = self.db.get(TRAVEL, key)
            if row and row["destination"] in SAFE_CITIES and key not in self.reserved[TRAVEL]:
                return self._reserve(TRAVEL, key)
        raise RuntimeError("no trip left to pick")  # pragma: no cover

    def _pick_sale(self, where: str) -> Key:
        keys = self.db.keys(SALES)
        order = {"first": keys, "last": keys[::-1], "middle": keys[len(keys) // 2 :]}[where]
        for key in order:
            if key not in self.reserved[SALES]:
                return self._reserve(SALES, key)
        raise RuntimeError("no sale left to pick")  # pragma: no cover

    def _new_trip_id(self) -> Key:
        key = (self._next_trip,)
        self._next_trip += 1
        return key

    def _new_sale_key(self, trip_id: int) -> Key:
        """A sale key no initial or background row uses (seat numbers above SEATS)."""
        seat = self._next_seat.get(trip_id, SEATS + 1)
        self._next_seat[trip_id] = seat + 1
        key = (trip_id, seat)
        self._sales_seen.add(key)
        return self._reserve(SALES, key)

    def _has_added(self) -> bool:
        return ADDED_COLUMN in self.db.column_names(TRAVEL)

    def _city(self, *exclude: str, safe: bool = True) -> str:
        pool = [c for c in (SAFE_CITIES if safe else CITIES) if c not in exclude]
        return self.rng.choice(pool)

    def _trip_row(self, key: Key, when: datetime, *, safe: bool = True) -> Row:
        src = self._city(safe=False)
        row: Row = {
            "trip_id": key[0],
            "tstamp": when + timedelta(seconds=self.rng.randrange(3_600, 30 * 86_400)),
            "route_id": self.rng.choice(ROUTES),
            "destination": self._city(src, safe=safe),
            "source_location": src,
        }
        row["tstamp"] = row["tstamp"].replace(microsecond=self.rng.randrange(1_000_000))
        if self._has_added():
            row[ADDED_COLUMN] = self.rng.randrange(50, 4_500)
        return row

    def _trip_changes(self, row: Row, *, safe: bool = True) -> dict[str, Any]:
        r = self.rng.random()
        if r < 0.5:
            values: dict[str, Any] = {
                "destination": self._city(row["source_location"], row["destination"], safe=safe)
            }
        elif r < 0.8:
            shift = timedelta(minutes=self.rng.randrange(-600, 600) or 30)
            values = {"tstamp": row["tstamp"] + shift}
        elif r < 0.9:
            values = {"route_id": self.rng.choice([x for x in ROUTES if x != row["route_id"]])}
        else:
            values = {
                "source_location": self._city(
                    row["destination"], row["source_location"], safe=False
                )
            }
        if self._has_added() and self.rng.random() < 0.5:
            values[ADDED_COLUMN] = self.rng.randrange(50, 4_500)
        return values

    def _price(self) -> Decimal:
        return Decimal(self.rng.randrange(1_900, 50_000)) / 100

    def _card(self) -> str:
        return self.rng.choice("45") + "".join(self.rng.choice("0123456789") for _ in range(15))

    def _sale_row(self, key: Key, when: datetime) -> Row:
        return {
            "trip_id": key[0],
            "seat_no": key[1],
            "sale_date": when.date(),
            "price": self._price(),
            "channel": self.rng.choice(CHANNELS),
            "card_number": self._card(),
        }

    def _sale_changes(self, row: Row) -> dict[str, Any]:
        r = self.rng.random()
        if r < 0.6:
            price = self._price()
            while price == row["price"]:
                price = self._price()
            return {"price": price}
        if r < 0.85:
            return {"channel": self.rng.choice([c for c in CHANNELS if c != row["channel"]])}
        return {"sale_date": row["sale_date"] + timedelta(days=self.rng.choice((-2, -1, 1, 2)))}

    # --- the whole history -------------------------------------------------------------------
    def run(self) -> None:
        self._initial_rows()
        self._plan_full_load()
        self._hour0()
        self._hour1()
        self._hour2()
        self._hour3()
        self._restart()
        self._background()
        self.timeline.run()

    def _initial_rows(self) -> None:
        rng = self.rng
        trips = []
        for trip_id in range(1, self.travel_rows + 1):
            src = rng.choice(CITIES)
            trips.append(
                {
                    "trip_id": trip_id,
                    "tstamp": _TRIPS_FROM
                    + timedelta(
                        seconds=rng.randrange(325 * 86_400), microseconds=rng.randrange(10**6)
                    ),
                    "route_id": rng.choice(ROUTES),
                    "destination": rng.choice([c for c in CITIES if c != src]),
                    "source_location": src,
                }
            )
        self.db.seed(TRAVEL, trips)
        codes = sorted(rng.sample(range(self.travel_rows * SEATS), self.sales_rows))
        sales = []
        for code in codes:
            key = (code // SEATS + 1, code % SEATS + 1)
            self._sales_seen.add(key)
            sales.append(
                {
                    "trip_id": key[0],
                    "seat_no": key[1],
                    "sale_date": _SALES_FROM + timedelta(days=rng.randrange(_SALES_DAYS)),
                    "price": self._price(),
                    "channel": rng.choice(CHANNELS),
                    "card_number": self._card(),
                }
            )
        self.db.seed(SALES, sales)

    def _plan_full_load(self) -> None:
        """Each table is read in ``load_files`` key-range chunks spread over 2.5 minutes."""
        for table, first_read in ((TRAVEL, 40), (SALES, 50)):
            keys = self.db.keys(table)
            n = max(1, min(self.load_files, len(keys)))
            size = math.ceil(len(keys) / n)
            bounds = tuple(keys[i * size] for i in range(n) if i * size < len(keys))
            n = len(bounds)
            step = 150 / (n - 1) if n > 1 else 0
            reads = tuple(
                self.start + timedelta(seconds=first_read + i * step, microseconds=500_000)
                for i in range(n)
            )
            plan = LoadPlan(bounds, reads, reads[-1] + timedelta(seconds=5))
            self.loads[table] = plan
            self.snapshots[table] = [[] for _ in range(n)]
            for i, when in enumerate(reads):
                self.timeline.add(when, self._snapshot(table, plan, i), is_txn=False)

    def _snapshot(self, table: str, plan: LoadPlan, chunk: int) -> Callable[[datetime], None]:
        def read(_when: datetime) -> None:
            spec = self.db.specs[table]
            self.snapshots[table][chunk] = [
                r for r in self.db.rows(table) if plan.chunk_of(spec.key_of(r)) == chunk
            ]

        return read

    # --- hour 0: full load, cached changes, ties ------------------------------------------------
    def _hour0(self) -> None:
        for table in (T, S):  # the load minutes carry only the deliberate cached changes
            for m in range(6):
                self._busy.add((table, self.start + timedelta(minutes=m)))

        a, c = self._pick_trip("last"), self._pick_trip("last")
        b, d = self._pick_trip("first"), self._pick_trip("first")
        n1, n2 = self._reserve(T, self._new_trip_id()), self._reserve(T, self._new_trip_id())
        self._update(T, self._at(0, 0, 15), a)
        self._insert(T, self._at(0, 0, 20), n1)
        self._delete(T, self._at(0, 0, 30), c)
        self._update(T, self._at(0, 2, 0), b)
        self._delete(T, self._at(0, 3, 0), d)
        self._insert(T, self._at(0, 3, 12), n2)
        self._case(
            "cached_load_after",
            T,
            (0,),
            [a, n1, c],
            "U +0:15, I +0:20, key-only D +0:30 committed before their LOAD chunk was read",
        )
        self._case(
            "cached_load_before",
            T,
            (0,),
            [b, d, n2],
            "U +2:00, D +3:00, I +3:12 committed after their LOAD chunk was read",
        )

        sa, sd = self._pick_sale("last"), self._pick_sale("last")
        sb, sc = self._pick_sale("first"), self._pick_sale("first")
        sn1 = self._new_sale_key(self.travel_rows)  # sorts after every initial key: last chunk
        sn2 = self._new_sale_key(1)  # sorts into the first chunk
        self._update(S, self._at(0, 0, 25), sa)
        self._delete(S, self._at(0, 0, 35), sd)
        self._insert(S, self._at(0, 0, 45), sn1)
        self._update(S, self._at(0, 2, 30), sb)
        self._insert(S, self._at(0, 3, 0), sn2)
        self._delete(S, self._at(0, 3, 5), sc)
        self._case(
            "cached_load_after",
            S,
            (0,),
            [sa, sd, sn1],
            "U +0:25, D +0:35, I +0:45 committed before their LOAD chunk was read",
        )
        self._case(
            "cached_load_before",
            S,
            (0,),
            [sb, sn2, sc],
            "U +2:30, I +3:00, D +3:05 committed after their LOAD chunk was read",
        )

        # Ties: one transaction, one commit time, several changes of the same key.
        e, e2, e3 = self._pick_trip("middle"), self._pick_trip("middle"), self._pick_trip("middle")
        n_tie = self._reserve(T, self._new_trip_id())

        def travel_tie(x: Txn) -> None:
            row = self.db.get(T, e) or {}
            first = self._city(row["source_location"], row["destination"])
            x.update(T, e, destination=first)
            x.update(T, e2, tstamp=(self.db.get(T, e2) or {})["tstamp"] + timedelta(hours=2))
            x.update(T, e, destination=self._city(row["source_location"], first))
            new = x.insert(T, self._trip_row(n_tie, x.commit))
            x.update(T, n_tie, destination=self._city(new["source_location"], new["destination"]))
            x.update(T, e3, destination=self._city((self.db.get(T, e3) or {})["source_location"]))
            x.delete(T, e3)

        self._txn(self._at(0, 12, 7), (T,), travel_tie)
        self._case(
            "tie_in_transaction",
            T,
            (0,),
            [e, e2, n_tie, e3],
            "0:12 one txn: U e, U e2, U e again; I n then U n; U e3 then D e3",
        )

        st = self._pick_sale("middle")
        st_new = self._new_sale_key(self.travel_rows // 2)

        def sales_tie(x: Txn) -> None:
            first = x.update(S, st, price=self._price())
            x.update(S, st, price=first["price"] + 1, channel="agent")  # last one wins
            x.insert(S, self._sale_row(st_new, x.commit))
            x.delete(S, st_new)

        self._txn(self._at(0, 20, 41), (S,), sales_tie)
        self._case(
            "tie_in_transaction",
            S,
            (0,),
            [st, st_new],
            "0:20 one txn: U k twice; I k2 then D k2 (must end absent)",
        )

        e4 = self._pick_trip("middle")
        self._txn(self._at(0, 40, 9), (T,), lambda x: x.update(T, e4, destination=BLOG_DELETED))
        self._case(
            "update_then_delete_later_hour",
            T,
            (0, 1),
            [e4],
            "U to Los Angeles at 0:40, removed by the blog's key-only delete at 1:30",
        )

    # --- hour 1: the blog's round and more ----------------------------------------------------
    def _hour1(self) -> None:
        k1 = self._new_sale_key(self.travel_rows // 3)
        self._insert(S, self._at(1, 5, 12), k1)
        self._delete(S, self._at(1, 15, 3), k1)
        self._insert(S, self._at(1, 35, 44), k1)
        self._case(
            "insert_delete_insert_same_hour",
            S,
            (1,),
            [k1],
            "I 1:05, D 1:15 (full image), I 1:35 with new values",
        )

        def blog_update(x: Txn) -> None:
            for key in self.db.keys(T):
                row = self.db.get(T, key)
                if row and row["destination"] == BLOG_UPDATED:
                    x.update(T, key, destination=BLOG_NEW)

        self._txn(self._at(1, 10, 2), (T,), blog_update)

        def blog_insert(x: Txn) -> None:
            for _ in range(100):
                x.insert(T, self._trip_row(self._new_trip_id(), x.commit, safe=False))

        self._txn(self._at(1, 20, 30), (T,), blog_insert)
        self._txn(self._at(1, 21, 5), (T,), blog_insert)

        def blog_delete(x: Txn) -> None:
            for key in self.db.keys(T):
                row = self.db.get(T, key)
                if row and row["destination"] == BLOG_DELETED:
                    x.delete(T, key)

        self._txn(self._at(1, 30, 17), (T,), blog_delete)
        self._case(
            "blog_round",
            T,
            (1,),
            [],
            "1:10 update Miami->Tucson (one txn), 1:20/1:21 200 inserts, "
            "1:30 delete Los Angeles (one txn, key-only deletes, partitioned table)",
        )

        sp = self._pick_sale("middle")
        self._txn(
            self._at(1, 25, 50),
            (S,),
            lambda x: x.update(
                S, sp, sale_date=(self.db.get(S, sp) or {})["sale_date"] + timedelta(days=9)
            ),
        )
        self._case("partition_move", S, (1,), [sp], "1:25 U moves sale_date by 9 days")

        f = self._pick_trip("middle")
        self._update(T, self._at(1, 40, 33), f)
        self._later_deletes = [f]  # deleted at 3:15 in one txn with a key of hour 2 (below)
        self._case("update_then_delete_later_hour", T, (1, 3), [f], "U 1:40, key-only D 3:15")

        # The late file of minute 1:44 (written and landing at 2:25).
        h1, j1, n3 = self._pick_trip("middle"), self._pick_trip("middle"), self._new_trip_id()
        self._reserve(T, n3)
        late1 = self._at(1, 44, 6)

        def late_body(x: Txn) -> None:
            x.update(T, h1, **self._trip_changes(self.db.get(T, h1) or {}))
            x.insert(T, self._trip_row(n3, x.commit))
            x.update(T, j1, **self._trip_changes(self.db.get(T, j1) or {}))

        self._txn(late1, (T,), late_body)
        self._update(T, self._at(1, 48, 11), j1)
        self.late_windows[(T, minute_of(late1))] = self._at(2, 25, 0)
        self._case(
            "late_file_next_hour",
            T,
            (1,),
            [h1, n3, j1],
            "minute 1:44 file lands 2:25: U h (final), I n (final), U j (superseded 1:48)",
        )

        g = self._pick_trip("middle")

        def move_route(x: Txn) -> None:
            row = self.db.get(T, g) or {}
            x.update(T, g, route_id=next(r for r in ROUTES if r != row["route_id"]))

        self._txn(self._at(1, 45, 27), (T,), move_route)
        self._case("partition_move", T, (1,), [g], "1:45 U changes route_id")

        sx = self._pick_sale("middle")
        self._update(S, self._at(1, 51, 8), sx)
        self._delete(S, self._at(2, 15, 40), sx)
        self._case(
            "update_then_delete_later_hour",
            S,
            (1, 2),
            [sx],
            "U 1:51 (also re-delivered by the restart), D with before image 2:15",
        )

    # --- hour 2: restart duplicates, insert-delete-insert, ALTER, late file -------------------
    def _hour2(self) -> None:
        n4 = self._reserve(T, self._new_trip_id())
        self._insert(T, self._at(2, 5, 14), n4)
        self._delete(T, self._at(2, 20, 26), n4)
        self._insert(T, self._at(2, 40, 2), n4)  # after the ALTER: carries distance_km
        self._case(
            "insert_delete_insert_same_hour",
            T,
            (2,),
            [n4],
            "I 2:05, key-only D 2:20, I 2:40 (with distance_km)",
        )

        r = self._pick_trip("middle")
        self._update(T, self._at(0, 30, 55), r)
        self._delete(T, self._at(2, 10, 19), r)
        self._insert(T, self._at(3, 30, 48), r)
        self._case("reinsert_after_delete", T, (0, 2, 3), [r], "U 0:30, D 2:10, I again 3:30")

        self._busy.add((T, minute_of(self.alter_at)))
        self.timeline.add(
            self.alter_at,
            lambda w: self.db.add_column(T, ADDED_COLUMN, ADDED_TYPE, w),
            is_txn=True,
        )

        def backfill(x: Txn) -> None:
            for key in self.db.keys(T):
                row = self.db.get(T, key)
                if row and row["route_id"] == ROUTES[0] and key[0] % 5 == 0:
                    if key not in self.reserved[T]:
                        x.update(T, key, **{ADDED_COLUMN: self.rng.randrange(50, 4_500)})

        self._txn(self._at(2, 35, 9), (T,), backfill)
        self._case(
            "added_column",
            T,
            (2,),
            [],
            f"ALTER TABLE ADD COLUMN {ADDED_COLUMN} int at 2:30:00.25; backfill 2:35 "
            f"for route {ROUTES[0]} and trip_id % 5 = 0; new trips carry it",
        )

        sm = self._pick_sale("middle")
        self._txn(self._at(2, 45, 31), (S,), lambda x: x.update(S, sm, sale_date=x.commit.date()))
        self._case("partition_move", S, (2,), [sm], "2:45 U moves the sale into today's partition")

        m, o, p = self._pick_trip("middle"), self._pick_trip("middle"), self._pick_trip("middle")
        n5 = self._reserve(T, self._new_trip_id())
        late2 = self._at(2, 52, 36)

        def late_body(x: Txn) -> None:
            x.update(T, m, **self._trip_changes(self.db.get(T, m) or {}))
            x.insert(T, self._trip_row(n5, x.commit))
            row = self.db.get(T, o) or {}
            dest = self._city(row["source_location"], row["destination"])
            x.update(T, o, **{ADDED_COLUMN: 1234, "destination": dest})
            x.delete(T, p)

        self._txn(late2, (T,), late_body)
        self.late_windows[(T, minute_of(late2))] = self._at(4, 20, 0)
        self._update(T, self._at(3, 10, 44), n5)
        gone = [*self._later_deletes, m]

        def delete_both(x: Txn) -> None:
            for key in gone:
                x.delete(T, key)

        self._txn(self._at(3, 15, 21), (T,), delete_both)
        self._insert(T, self._at(3, 20, 37), p)
        self._case(
            "late_file_after_next_run",
            T,
            (2,),
            [m, n5, o, p],
            "minute 2:52 file lands 4:20 (after hour 3's run): U m, I n, U o, D p",
        )
        self._case(
            "stale_change_after_delete",
            T,
            (2, 3),
            [m],
            "U 2:52 arrives (late) after the key-only D of 3:15 was applied",
        )
        self._case(
            "upsert_unknown_key",
            T,
            (2, 3),
            [n5],
            "U 3:10 is applied before the late I of 2:52 arrives",
        )
        self._case(
            "reinsert_after_delete",
            T,
            (2, 3),
            [p],
            "late key-only D 2:52 arrives after the re-insert of 3:20",
        )

    # --- hour 3: a late file only a final catch-up run sees -----------------------------------
    def _hour3(self) -> None:
        ty, tz, tw = self._pick_sale("middle"), self._pick_sale("middle"), self._pick_sale("middle")
        late3 = self._at(3, 42, 18)

        def late_body(x: Txn) -> None:
            x.update(S, ty, price=self._price())
            x.update(S, tz, price=self._price())
            x.delete(S, tw)

        self._txn(late3, (S,), late_body)
        self._update(S, self._at(3, 55, 12), tz)
        self.late_windows[(S, minute_of(late3))] = self._at(self.n_hours, 30, 0)
        self._case(
            "late_file_after_final_run",
            S,
            (3,),
            [ty, tz, tw],
            "minute 3:42 file lands 30 min after the last hour: U y (final), "
            "U z (superseded 3:55), D w (final)",
        )

    # --- the task restart ----------------------------------------------------------------------
    def _restart(self) -> None:
        for table in (T, S):  # nothing commits in the restart minute
            self._busy.add((table, minute_of(self.restart_at)))
        i1 = self._pick_trip("middle")
        self._update(T, self._at(1, 52, 40), i1)
        self._update(T, self._at(2, 3, 2), i1)
        sy = self._pick_sale("middle")
        self._update(S, self._at(1, 56, 29), sy)
        self._update(S, self._at(2, 4, 51), sy)
        self._case(
            "duplicate_delivery",
            T,
            (1, 2),
            [i1],
            "restart at 2:07:30 resumes from 1:50: all changes in between delivered "
            "again (U 1:52 and 2:03 of this key among them)",
        )
        self._case(
            "duplicate_delivery",
            S,
            (1, 2),
            [sy],
            "restart re-delivery; U 1:56 and 2:04 of this key among them",
        )

    # --- random background traffic ---------------------------------------------------------------
    def _background(self) -> None:
        for h in range(self.n_hours):
            for table in (TRAVEL, SALES):
                base = self.hour(h)
                free = [
                    m for m in range(60) if (table, base + timedelta(minutes=m)) not in self._busy
                ]
                for m in sorted(self.rng.sample(free, self.rng.randint(3, 5))):
                    for s in sorted(self.rng.sample(range(1, 58), self.rng.randint(1, 2))):
                        when = self._at(h, m, s)
                        n_ops = self.rng.randint(1, 4)
                        body = self._bg_travel if table == TRAVEL else self._bg_sales
                        self._txn(when, (table,), partial(body, n_ops=n_ops))

    def _random_trip(self) -> Key:
        while True:
            key = (self.rng.randrange(1, self._next_trip),)
            if self.db.has(TRAVEL, key) and key not in self.reserved[TRAVEL]:
                return key

    def _random_sale(self) -> Key:
        keys = [k for k in self.db.keys(SALES) if k not in self.reserved[SALES]]
        return self.rng.choice(keys)

    def _bg_travel(self, x: Txn, n_ops: int) -> None:
        for _ in range(n_ops):
            r = self.rng.random()
            if r < 0.7:
                key = self._random_trip()
                x.update(
                    TRAVEL, key, **self._trip_changes(self.db.get(TRAVEL, key) or {}, safe=False)
                )
            elif r < 0.85:
                x.insert(TRAVEL, self._trip_row(self._new_trip_id(), x.commit, safe=False))
            else:
                x.delete(TRAVEL, self._random_trip())

    def _bg_sales(self, x: Txn, n_ops: int) -> None:
        for _ in range(n_ops):
            r = self.rng.random()
            if r < 0.7:
                key = self._random_sale()
                x.update(SALES, key, **self._sale_changes(self.db.get(SALES, key) or {}))
            elif r < 0.85:
                while True:
                    key = (self.rng.randrange(1, self.travel_rows + 1), self.rng.randint(1, SEATS))
                    if key not in self._sales_seen:
                        break
                self._sales_seen.add(key)
                x.insert(SALES, self._sale_row(key, x.commit))
            else:
                x.delete(SALES, self._random_sale())

    # --- single-statement helpers for deliberate changes ---------------------------------------
    def _insert(self, table: str, when: datetime, key: Key) -> None:
        def body(x: Txn) -> None:
            if table == TRAVEL:
                x.insert(table, self._trip_row(key, x.commit))
            else:
                x.insert(table, self._sale_row(key, x.commit))

        self._txn(when, (table,), body)

    def _update(self, table: str, when: datetime, key: Key) -> None:
        def body(x: Txn) -> None:
            row = self.db.get(table, key) or {}
            values = self._trip_changes(row) if table == TRAVEL else self._sale_changes(row)
            x.update(table, key, **values)

        self._txn(when, (table,), body)

    def _delete(self, table: str, when: datetime, key: Key) -> None:
        self._txn(when, (table,), lambda x: x.delete(table, key))
