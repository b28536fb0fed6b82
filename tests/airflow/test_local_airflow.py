"""``make airflow`` for real: the local Airflow 3.0.6 components (API server on 127.0.0.1,
scheduler with the LocalExecutor, dag-processor, triggerer; PostgreSQL metadata database) run
the DAGs of ``dags/`` on the local target against a throwaway PostgreSQL source.

Through the REST API, as an operator would: log in (SimpleAuthManager), unpause and trigger the
full load without a logical date (the README's first start: its checks judge freshness at the
run's own time), commit changes in two hours of the source's clock, trigger one hourly run per
hour (logical date X covers ``[X - 1h, X)``), unpause the hourly DAG, wait for success, and
check that the lake (its Delta tables, read with delta-rs) equals ``SELECT *`` of the source
and that each hourly run applied its own hour. ``make airflow-stop``'s code then leaves no
process behind.

The source's clock runs two hours behind (libfaketime) so that both hours are closed when the
hourly runs start: nothing waits for the wall clock. Few rows, so the runs are short; the
test's time goes to starting the components and three spark-submit merges.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml

from cdclake.core.config import load_config
from demo.localairflow import AirflowApi, Home, LocalAirflowError, api_for, running_components

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.postgres, pytest.mark.spark]

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 900
TRAVEL = "delta_emr_source.travel_details"
SALES = "delta_emr_source.ticket_sales"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(config: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "jobs"), str(ROOT)])
    return subprocess.run(
        [sys.executable, "-m", "demo.localairflow", "--config", str(config), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def hour() -> datetime:
    """H: the current hour. The source's hours are H-2 and H-1, both closed."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def local_airflow(tmp_path_factory, hour):
    tmp = tmp_path_factory.mktemp("local-airflow")
    doc = yaml.safe_load((ROOT / "conf" / "pipeline.yaml").read_text())
    doc["raw_root"], doc["curated_root"] = str(tmp / "lake" / "raw"), str(tmp / "lake" / "curated")
    config = tmp / "pipeline.yaml"
    config.write_text(yaml.safe_dump(doc))
    home = Home.for_config(load_config(config))
    start = [
        "start",
        *("--port", str(_free_port())),
        *("--source-clock", (hour - timedelta(hours=2) + timedelta(minutes=30)).isoformat()),
        *("--grace-minutes", "0", "--retries", "0", "--workload-interval", "0"),
        *("--travel-rows", "200", "--sales-rows", "150"),
    ]
    proc = _cli(config, *start)
    sessions = [int(p.read_text().split()[0]) for p in home.pids.glob("*.pid")]
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr[-6000:]
        yield config, home
    finally:
        stopped = _cli(config, "stop", timeout=300)
        from demo.localairflow import _session

        left = {sid: _session(sid) for sid in sessions if _session(sid)}
        for members in left.values():  # the test must not leave anything running
            for pid in members:
                os.kill(pid, 9)
        assert stopped.returncode == 0, stopped.stderr[-3000:]
        assert not left, f"processes left after stop: {left}"
        assert not (home.source_cluster / "data").exists()


def wait_for_run(api: AirflowApi, dag_id: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        run = api.get(f"/dags/{dag_id}/dagRuns/{run_id}")
        if run["state"] in ("success", "failed"):
            tis = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
            states = {ti["task_id"]: ti["state"] for ti in tis}
            assert run["state"] == "success", f"{dag_id} {run_id}: {states}"
            return run
        time.sleep(3)
    raise AssertionError(f"{dag_id} {run_id} did not finish in {RUN_TIMEOUT_S} s")


def commit(dsn: str, statements: list[tuple[str, tuple]]) -> None:
    conn = psycopg2.connect(dsn, options="-c timezone=UTC")
    try:
        with conn, conn.cursor() as cur:
            for query, args in statements:
                cur.execute(query, args)
    finally:
        conn.close()


def hour_of_changes(dsn: str, new_trip: int) -> None:
    """One transaction per kind of change on each table (key-only delete on travel_details)."""
    t, s = TRAVEL, SALES
    commit(
        dsn, [(f"UPDATE {t} SET destination = 'Tucson' WHERE trip_id = %s", (new_trip % 50 + 1,))]
    )
    commit(dsn, [(f"INSERT INTO {t} VALUES (%s, now(), 'AZ', 'Boston', 'Denver')", (new_trip,))])
    commit(dsn, [(f"DELETE FROM {t} WHERE trip_id = %s", (new_trip % 50 + 60,))])
    seat = new_trip % 7 + 1
    commit(
        dsn,
        [
            (f"UPDATE {s} SET price = price + 1 WHERE trip_id = 1 AND seat_no = %s", (seat,)),
            (
                f"INSERT INTO {s} VALUES (%s, 1, DATE '2026-12-01', 9.99, 'web', '4111')",
                (new_trip,),
            ),
            (f"DELETE FROM {s} WHERE trip_id = 2 AND seat_no = %s", (seat,)),
        ],
    )


def normalise(value: Any) -> Any:
    if isinstance(value, datetime):  # the source's timestamp (no zone) is UTC wall time
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, Decimal | date | int | str) or value is None:
        return value
    return str(value)


def source_rows(dsn: str, table: str, drop: tuple[str, ...]) -> tuple[list[str], set[tuple]]:
    conn = psycopg2.connect(dsn, options="-c timezone=UTC")
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table}")  # noqa: S608 - the config's table names
            names = [d.name for d in cur.description]
            keep = [i for i, n in enumerate(names) if n not in drop]
            return [names[i] for i in keep], {
                tuple(normalise(r[i]) for i in keep) for r in cur.fetchall()
            }
    finally:
        conn.close()


def test_operate_the_local_target_with_a_real_airflow(local_airflow, hour):
    config, home = local_airflow
    cfg = load_config(config)
    assert set(running_components(home)) == {
        "api-server",
        "scheduler",
        "dag-processor",
        "triggerer",
    }
    api = api_for(home)
    # Login through the REST API: a JWT for the public API (HTTP 500 with a newer PyJWT).
    assert api.login().count(".") == 2
    with pytest.raises(LocalAirflowError, match="HTTP 401"):
        AirflowApi(api.url, "admin", "not-the-password").login()
    dags = api.get("/dags?dag_id_pattern=cdclake")["dags"]
    assert {d["dag_id"]: d["is_paused"] for d in dags} == {
        "cdclake_full_load": True,
        "cdclake_hourly": True,
        "cdclake_maintenance": True,
    }
    pools = {p["name"]: p for p in api.get("/pools")["pools"]}
    assert pools["cdclake_table_writers"]["slots"] == 1

    # First start: unpause and trigger the full load (no logical date, no data interval).
    api.patch("/dags/cdclake_full_load", {"is_paused": False})
    full = api.post("/dags/cdclake_full_load/dagRuns", {"logical_date": None})
    assert full["data_interval_end"] is None
    wait_for_run(api, "cdclake_full_load", full["dag_run_id"])

    # Hour H-2 (the source's clock is there), then move the clock to H-1 for the next hour.
    dsn = home.state()["source_dsn"]
    hour_of_changes(dsn, 700_001)
    from demo.localairflow import set_source_clock

    set_source_clock(home, hour - timedelta(hours=1) + timedelta(minutes=10))
    hour_of_changes(dsn, 700_002)

    # One run per hour: logical date X covers [X - 1h, X). Queued first, started on unpause.
    runs = []
    for end in (hour - timedelta(hours=1), hour):
        run = api.post("/dags/cdclake_hourly/dagRuns", {"logical_date": end.isoformat()})
        assert (run["data_interval_start"], run["data_interval_end"]) == (
            (end - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            end.isoformat().replace("+00:00", "Z"),
        )
        runs.append(run["dag_run_id"])
    api.patch("/dags/cdclake_hourly", {"is_paused": False})
    for run_id in runs:
        wait_for_run(api, "cdclake_hourly", run_id)

    # The lake (its Delta tables, read with delta-rs) equals the source.
    from deltalake import DeltaTable

    for table in cfg.tables:
        names, expected = source_rows(dsn, table.qualified_name, table.drop_columns)
        lake = DeltaTable(cfg.table_location(table)).to_pyarrow_table(columns=names)
        rows = [tuple(normalise(r[n]) for n in names) for r in lake.to_pylist()]
        assert len(rows) == len(set(rows)) and set(rows) == expected, table.qualified_name
    # Each hourly run applied the files of its own hour, on both tables.
    from cdclake_dags.settings import load_settings

    settings = load_settings({"pipeline_config": str(config), "local_source": "none"}.get)
    for run_id, h in zip(runs, (hour - timedelta(hours=2), hour - timedelta(hours=1)), strict=True):
        path = settings.summary_path("cdclake_hourly", run_id, "merge")
        records = json.loads(path.read_text())
        assert {r["table"]: (r["status"], r["hours"]) for r in records} == {
            t.qualified_name: ("succeeded", [f"{h:%Y-%m-%dT%H}"]) for t in cfg.tables
        }
