"""``make airflow``'s workload on a throwaway PostgreSQL: each call commits one transaction of
two or three changes, new keys above every key of the initial rows, and the loop stops when
told (as SIGTERM tells it)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdclake.core.config import load_config
from demo.liveworkload import NEW_SALE_TRIPS_FROM, NEW_TRIPS_FROM, LiveWorkload, run
from demo.pgsource import PgSource, create_tables

pytestmark = pytest.mark.postgres

CONFIG = Path(__file__).resolve().parents[2] / "conf" / "pipeline.yaml"
TRAVEL = "delta_emr_source.travel_details"
SALES = "delta_emr_source.ticket_sales"


@pytest.fixture(scope="module")
def source():
    src = PgSource.start(datetime.now(UTC))
    try:
        create_tables(src, load_config(CONFIG), 200, 150, seed=3)
        yield src
    finally:
        src.stop()


def snapshot(src: PgSource) -> dict[str, set[tuple]]:
    conn = src.connect()
    try:
        with conn.cursor() as cur:
            out = {}
            for table in (TRAVEL, SALES):
                cur.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed names
                out[table] = set(cur.fetchall())
            return out
    finally:
        conn.close()


def test_each_call_commits_one_small_transaction(source):
    workload = LiveWorkload(source.dsn, str(CONFIG), seed=11)
    before = snapshot(source)
    done = [workload.one() for _ in range(12)]
    after = snapshot(source)
    assert workload.transactions == 12
    assert all(2 <= len(steps) <= 3 for steps in done)
    changed = sum(len(before[t] ^ after[t]) for t in before)
    assert changed > 12  # an update shows as one row gone and one new
    new_trips = {r[0] for r in after[TRAVEL] - before[TRAVEL] if r[0] >= NEW_TRIPS_FROM}
    new_sales = {r[0] for r in after[SALES] - before[SALES] if r[0] >= NEW_SALE_TRIPS_FROM}
    # The new keys the steps say they inserted, minus those a later step deleted (deletes pick
    # their key with the server's random(), so they may pick a new one).
    trips, sales = survivors(step for steps in done for step in steps)
    assert any(step.startswith("new ") for steps in done for step in steps)
    assert (new_trips, new_sales) == (trips, sales)


def survivors(steps) -> tuple[set[int], set[int]]:
    trips: set[int] = set()
    sales: set[int] = set()
    for step in steps:
        if step.startswith("new trip "):
            trips.add(int(step.split()[2]))
        elif step.startswith("trip ") and step.endswith(" deleted"):
            trips.discard(int(step.split()[1]))
        elif step.startswith("new sale ("):
            sales.add(int(step.removeprefix("new sale (").split(",")[0]))
        elif step.startswith("sale (") and step.endswith(" deleted"):
            sales.discard(int(step.removeprefix("sale (").split(",")[0]))
    return trips, sales


def test_the_loop_stops_when_told(source):
    workload = LiveWorkload(source.dsn, str(CONFIG), seed=12)
    stop = threading.Event()
    loop = threading.Thread(target=run, args=(workload, 0.05, stop))
    loop.start()
    deadline = time.monotonic() + 60
    while workload.transactions < 3 and time.monotonic() < deadline:
        loop.join(0.05)
    assert workload.transactions >= 3
    stop.set()
    loop.join(10)
    assert not loop.is_alive()
