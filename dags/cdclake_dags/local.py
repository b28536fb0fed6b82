"""Tasks of the ``local`` target (the embedded default): the same steps as on AWS, with local
stand-ins. The source steps write the DMS-format files the demo generator says have landed (in
place of DMS); the compute steps run the same entry scripts with the same arguments through a
local ``spark-submit``; the catalog and checks run on the local tables. Implements
:class:`cdclake_dags.target.Target`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.exceptions import AirflowFailException
from airflow.sdk import TaskGroup, task

from cdclake.core.uris import local_dir
from cdclake_dags.settings import REPO_DIR, DagSettings

log = logging.getLogger(__name__)
JOBS_DIR = REPO_DIR / "jobs"
EXIT_USAGE = 2
LOG_TAIL = 60


class LocalJobError(RuntimeError):
    """A local job run exited non-zero; the message carries the table errors and log tail."""


def job_env() -> dict[str, str]:
    """This environment, with the job package importable and Spark on this interpreter."""
    env = dict(os.environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    for needed in (str(JOBS_DIR), str(REPO_DIR)):
        if needed not in parts:
            parts.insert(0, needed)
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    return env


def spark_submit_command(s: DagSettings, entry: str, arguments: list[str]) -> list[str]:
    """``spark-submit`` of ``jobs/<entry>``: the local counterpart of EMR's StartJobRun."""
    from cdclake.session import local_jars

    return [
        s.spark_submit,
        "--master",
        os.environ.get("CDCLAKE_SPARK_MASTER", "local[2]"),
        "--driver-memory",
        os.environ.get("CDCLAKE_DRIVER_MEMORY", "2g"),
        "--jars",
        ",".join(local_jars()),
        "--conf",
        "spark.ui.enabled=false",
        str(JOBS_DIR / entry),
        *arguments,
    ]


def run_job(s: DagSettings, entry: str, arguments: list[str]) -> list[dict[str, Any]]:
    """Run one job to completion; returns its per-table summaries (``--summary-json``)."""
    import json

    summary = Path(arguments[arguments.index("--summary-json") + 1])
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.unlink(missing_ok=True)
    log_path = summary.with_suffix(".log")
    cmd = spark_submit_command(s, entry, arguments)
    log.info("running %s", " ".join(cmd))
    with open(log_path, "w") as out:
        proc = subprocess.run(  # noqa: S603 - our own entry script, arguments from the plan
            cmd, cwd=REPO_DIR, env=job_env(), stdout=out, stderr=subprocess.STDOUT, check=False
        )
    records = json.loads(summary.read_text()) if summary.exists() else []
    for rec in records:
        log.info("summary %s", json.dumps(rec, sort_keys=True, default=str))
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-LOG_TAIL:])
        failed = [f"{r.get('table')}: {r.get('error')}" for r in records if r.get("error")]
        message = (
            f"{entry} exited {proc.returncode}"
            + (f"; failed tables: {'; '.join(failed)}" if failed else "")
            + f"\nlast lines of {log_path}:\n{tail}"
        )
        if proc.returncode == EXIT_USAGE:  # bad arguments/config: a retry cannot help
            raise AirflowFailException(message)
        raise LocalJobError(message)
    return records


def job_config_uri(s: DagSettings) -> str:
    return str(s.config_path)


def job_extra_args(s: DagSettings, dag_id: str, run_id: str, task_id: str) -> list[str]:
    return ["--summary-json", str(s.summary_path(dag_id, run_id, task_id))]


# ---- the demo source (stands in for DMS) -----------------------------------------------------
def demo_source(s: DagSettings) -> Any:
    from demo.generator import DemoSource

    options = dict(s.demo_options)
    if "start" in options:
        options["start"] = datetime.fromisoformat(options["start"])
    return DemoSource(s.pipeline, **options)


def land(s: DagSettings, until: datetime) -> dict[str, int]:
    """Write the demo files that have landed by ``until`` (kinds counted, for the log)."""
    if s.local_source != "demo":
        log.info("local_source=%s: files are delivered by something else", s.local_source)
        return {}
    written = demo_source(s).write_landed(until, skip_existing=True)
    kinds = dict(Counter(d.kind for d in written))
    log.info("demo source: %d file(s) landed by %s %s", len(written), until.isoformat(), kinds)
    return kinds


# ---- hourly ---------------------------------------------------------------------------------
def check_source(s: DagSettings) -> Any:
    """Stand-in for "is DMS replicating": the demo task always is; it lands the hour's files
    (everything DMS would have written by the end of the grace period)."""

    @task(task_id="check_source")
    def check(data_interval_end: Any = None) -> dict[str, int]:
        return land(s, data_interval_end + s.grace)

    return check()


def merge(s: DagSettings, planned: Any) -> Any:
    @task(task_id="merge")
    def run(args: list[str]) -> list[dict[str, Any]]:
        return run_job(s, "cdc_merge.py", args)

    return run(planned["args"])


# ---- full load ------------------------------------------------------------------------------
def start_source(s: DagSettings, planned: Any) -> Any:
    """Stand-in for starting DMS: the demo's full load files land."""
    with TaskGroup("start_source") as group:

        @task(task_id="start")
        def start(tables: list[str]) -> dict[str, int]:
            if s.local_source != "demo":
                return {}
            src = demo_source(s)
            return land(s, src.load_landed_at)

        start(planned["tables"])
    return group


def wait_full_load(s: DagSettings, planned: Any) -> Any:
    """Stand-in for DMS table statistics: every chosen table has LOAD files."""

    @task.sensor(task_id="wait_full_load", poke_interval=5, timeout=300, mode="poke")
    def wait(tables: list[str]) -> bool:
        pending = []
        for name in tables:
            root = local_dir(s.pipeline.raw_location(s.pipeline.table(name)))
            if not any(root.glob("LOAD*.parquet")):
                pending.append(name)
        log.info("full load files present for %d table(s); pending %s", len(tables), pending)
        return not pending

    return wait(planned["tables"])


# ---- maintenance ----------------------------------------------------------------------------
def maintain(s: DagSettings, planned: Any) -> Any:
    @task(task_id="maintain")
    def run(args: list[str]) -> list[dict[str, Any]]:
        return run_job(s, "cdc_maintenance.py", args)

    return run(planned["args"])


# ---- catalog and checks ---------------------------------------------------------------------
# Athena's stand-in is Spark SQL with an in-memory catalog held by a long-lived session in the
# task process (a metastore lives as long as its service does): registration and checks run
# in-process, which costs one JVM start per process instead of one per task.
def _session() -> Any:
    from cdclake.session import build_session

    return build_session("local", app_name="cdclake-local-catalog")


def register_catalog(s: DagSettings, planned: Any) -> Any:
    @task(task_id="register_catalog")
    def register(tables: list[str]) -> list[dict[str, Any]]:
        from cdclake.catalog.register import register_tables

        return register_tables(s.pipeline, tables, target="local", spark=_session())

    return register(planned["tables"])


def validate(s: DagSettings) -> Any:
    """One task per table, as on AWS; each runs the table's Spark SQL validation queries."""
    with TaskGroup("validate") as group:
        for t in s.pipeline.tables:

            @task(task_id=t.name)
            def check(name: str = t.qualified_name, data_interval_end: Any = None) -> None:
                from cdclake.cli import query

                # Freshness is judged at the end of the run's interval (a backfill of an old
                # hour is not "stale"), as the Athena checks do.
                as_of = (data_interval_end or datetime.now(UTC)).isoformat()
                argv = ["--config", str(s.config_path), "--validate", "--tables", name]
                code = query.main([*argv, "--as-of", as_of], spark=_session())
                if code != 0:
                    raise AirflowFailException(
                        f"validation of {name} failed (exit {code}): see the rows logged above"
                    )

            check()
    return group
