"""Running the DAGs of ``dags/`` for the demo: Airflow's settings and database, one
``dag.test()`` per run, each run's job summaries, and the per-run table the demo prints."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from demo.compare import TableCheck

log = logging.getLogger("cdclake.demo")

REPO = Path(__file__).resolve().parents[1]
GRACE = timedelta(minutes=2)
HOUR = timedelta(hours=1)
FULL_LOAD_DAG, HOURLY_DAG = "cdclake_full_load", "cdclake_hourly"


@dataclass
class RunResult:
    label: str
    dag_id: str
    run_id: str
    state: str
    seconds: float
    records: list[dict[str, Any]] = field(default_factory=list)
    failed_tasks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state == "success" and all(r.get("status") != "failed" for r in self.records)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


@dataclass
class Outcome:
    """What a demo drive produced: its DAG runs, the backfill run, the final checks, and
    facts about the source to report (JSON-ready)."""

    results: list[RunResult]
    backfill: RunResult
    backfill_hour: datetime
    seconds: float
    checks: list[TableCheck]
    source: dict[str, Any] = field(default_factory=dict)


def airflow_env(
    config_path: Path, airflow_home: Path, local_source: str, options: dict[str, Any]
) -> dict[str, str]:
    """Settings of the local target (set before Airflow is imported: it reads them then)."""
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        # Task logs go to the job log files and summaries; keep the console to the report.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW__CDCLAKE__TARGET": "local",
        "AIRFLOW__CDCLAKE__PIPELINE_CONFIG": str(config_path),
        "AIRFLOW__CDCLAKE__GRACE_MINUTES": str(int(GRACE.total_seconds() // 60)),
        "AIRFLOW__CDCLAKE__LOCAL_SOURCE": local_source,
        "AIRFLOW__CDCLAKE__DEMO_OPTIONS": json.dumps(options, default=str),
        # A failed task fails the demo at once; retries would only repeat the same error.
        "AIRFLOW__CDCLAKE__RETRIES": "0",
    }


def migrate_airflow_db(env: dict[str, str]) -> None:
    airflow = str(Path(sys.executable).parent / "airflow")
    log.info("migrating the demo's Airflow database in %s", env["AIRFLOW_HOME"])
    subprocess.run(  # noqa: S603 - Airflow's own CLI, fixed arguments
        [airflow, "db", "migrate"],
        env={**os.environ, **env},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_airflow(env: dict[str, str]) -> DagRunner:
    """Apply the settings to this process, migrate a fresh database, load the DAGs."""
    import structlog

    os.environ.update(env)
    migrate_airflow_db(env)
    # dag.test()'s in-process task runner logs every message it exchanges (structlog, debug
    # level and up); keep the console to warnings and the demo's report.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    return DagRunner()


class DagRunner:
    """Runs the DAGs of ``dags/`` with ``dag.test()`` and keeps each run's job summaries."""

    def __init__(self) -> None:
        if str(REPO / "dags") not in sys.path:
            sys.path.insert(0, str(REPO / "dags"))
        from airflow.models.dagbag import DagBag

        from cdclake_dags.settings import load_settings

        bag = DagBag(dag_folder=str(REPO / "dags"))
        if bag.import_errors:
            raise RuntimeError(f"DAG import errors: {bag.import_errors}")
        self.dags = bag.dags
        self.settings = load_settings()
        self.results: list[RunResult] = []

    def run(
        self, label: str, dag_id: str, logical_date: datetime, conf: dict | None = None
    ) -> RunResult:
        dag = self.dags[dag_id]
        log.info("DAG run %s: %s at %s %s", label, dag_id, logical_date.isoformat(), conf or "")
        started = time.monotonic()
        dr = dag.test(logical_date=logical_date, run_conf=conf or {})
        seconds = time.monotonic() - started
        tis = dr.get_task_instances()
        failed = sorted(ti.task_id for ti in tis if ti.state not in ("success", "skipped"))
        path = self.settings.summary_path(dag_id, dr.run_id, "merge")
        records = json.loads(path.read_text()) if path.exists() else []
        result = RunResult(label, dag_id, dr.run_id, str(dr.state), seconds, records, failed)
        self.results.append(result)
        for rec in records:
            log.info("  %s", summary_line(rec))
        # One line per DAG run on the console (demo.run_demo shows only these and warnings).
        changed = sum(
            int(r.get("rows_inserted") or 0)
            + int(r.get("rows_updated") or 0)
            + int(r.get("rows_deleted") or 0)
            for r in records
        )
        if result.ok:
            log.info(
                "DAG run %-10s %-22s success in %5.1f s, %d table(s), %d row(s) changed",
                label,
                dag_id,
                seconds,
                len(records),
                changed,
                extra={"progress": True},
            )
        else:
            log.error("DAG run %s: %s; tasks not successful: %s", label, dr.state, failed)
        return result


def summary_line(rec: dict[str, Any]) -> str:
    return (
        f"{rec.get('table')}: {rec.get('status')} files={rec.get('files')} "
        f"records={rec.get('records')} ins={rec.get('rows_inserted')} "
        f"upd={rec.get('rows_updated')} del={rec.get('rows_deleted')} "
        f"stale={rec.get('stale_skipped')} quarantined={rec.get('quarantined')} "
        f"{float(rec.get('duration_s') or 0):.1f}s"
        + (f" error={rec['error']}" if rec.get("error") else "")
    )


COLUMNS = (
    ("run", "label", "<"),
    ("table", "table", "<"),
    ("status", "status", "<"),
    ("files", "files", ">"),
    ("records", "records", ">"),
    ("ins", "rows_inserted", ">"),
    ("upd", "rows_updated", ">"),
    ("del", "rows_deleted", ">"),
    ("stale", "stale_skipped", ">"),
    ("quar", "quarantined", ">"),
    ("secs", "duration_s", ">"),
)


def runs_table(results: Sequence[RunResult]) -> str:
    rows: list[list[str]] = []
    for r in results:
        recs = r.records or [{"table": "-", "status": f"exit {r.exit_code}"}]
        for rec in recs:
            cells = []
            for _, k, _ in COLUMNS:
                if k == "label":
                    cells.append(r.label)
                elif k == "table":
                    cells.append(str(rec.get("table", "-")).split(".")[-1])
                elif k == "duration_s":
                    cells.append(f"{float(rec.get(k) or 0):.1f}")
                else:
                    v = rec.get(k)
                    cells.append("-" if v is None else str(v))
            rows.append(cells)
    heads = [h for h, _, _ in COLUMNS]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if a == "<" else c.rjust(w)
            for c, w, (_, _, a) in zip(cells, widths, COLUMNS, strict=True)
        ).rstrip()

    lines = [fmt(heads), fmt(["-" * w for w in widths])]
    lines += [fmt(row) for row in rows]
    return "\n".join(lines)
