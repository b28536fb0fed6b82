"""Tasks of the ``local`` target (the embedded default): the same steps as on AWS, with local
stand-ins. The source steps stand in for DMS, depending on the setting ``local_source``:
``postgres``, the PostgreSQL capture (``capture/``) writes what the database committed;
``demo``, the synthetic generator writes the files it says have landed; ``none``, something
else delivers them. The compute steps run the same entry scripts with the same arguments
through a local ``spark-submit``; the catalog and checks run on the local tables without a JVM
(:mod:`cdclake.catalog.embedded`). Implements
:class:`cdclake_dags.target.Target`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.exceptions import AirflowFailException
from airflow.sdk import TaskGroup, task

from cdclake.core.uris import local_dir
from cdclake_dags.plan import CHECK_TIME_XCOM
from cdclake_dags.settings import REPO_DIR, DagSettings

log = logging.getLogger(__name__)
JOBS_DIR = REPO_DIR / "jobs"
EXIT_USAGE = 2
LOG_TAIL = 60
CAPTURE_DSN_ENV = "CDCLAKE_CAPTURE_DSN"  # the capture CLI reads the same variable


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
    from cdclake.session import INTERPRETED_CONF, local_jars, local_java_options

    java_options = local_java_options(short_lived=True)
    small = [a for k, v in INTERPRETED_CONF.items() for a in ("--conf", f"{k}={v}")]
    return [
        s.spark_submit,
        "--master",
        os.environ.get("CDCLAKE_SPARK_MASTER", "local[2]"),
        "--driver-memory",
        os.environ.get("CDCLAKE_DRIVER_MEMORY", "2g"),
        *(["--driver-java-options", java_options] if java_options else []),
        "--jars",
        ",".join(local_jars()),
        "--conf",
        "spark.ui.enabled=false",
        *small,  # small local data, one run per JVM: interpreted, not compiled
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


# ---- the local source (stands in for DMS) ----------------------------------------------------
def demo_source(s: DagSettings) -> Any:
    from demo.generator import DemoSource

    options = dict(s.demo_options)
    if "start" in options:
        options["start"] = datetime.fromisoformat(options["start"])
    return DemoSource(s.pipeline, **options)


def land(s: DagSettings, until: datetime) -> dict[str, Any]:
    """Make the source's files for everything up to ``until`` land in the raw layer."""
    if s.local_source == "postgres":
        return capture_flush(s, until)
    if s.local_source != "demo":
        log.info("local_source=%s: files are delivered by something else", s.local_source)
        return {}
    written = demo_source(s).write_landed(until, skip_existing=True)
    kinds = dict(Counter(d.kind for d in written))
    log.info("demo source: %d file(s) landed by %s %s", len(written), until.isoformat(), kinds)
    return kinds


def capture_options(s: DagSettings) -> Any:
    """The capture's options: the database from ``CDCLAKE_CAPTURE_DSN`` (or libpq's ``PG*``
    variables when it is empty), its state under ``<raw_root>/_capture``."""
    from capture.options import Options, default_state_dir

    return Options(dsn=os.environ.get(CAPTURE_DSN_ENV, ""), state_dir=default_state_dir(s.pipeline))


def _capture_call(what: str, call: Any) -> Any:
    """Run a capture step; errors a retry cannot fix fail the task at once, with their message
    (a connection error or a busy slot is retried)."""
    from capture.errors import (
        CaptureUsageError,
        NotInitializedError,
        SlotLostError,
        StateError,
        UnchangedToastError,
        UnsupportedTableError,
    )

    try:
        return call()
    except NotInitializedError as exc:
        raise AirflowFailException(
            f"{what}: the capture is not set up ({exc}); trigger cdclake_full_load first"
        ) from exc
    except (
        SlotLostError,
        StateError,
        UnsupportedTableError,
        UnchangedToastError,
        CaptureUsageError,
    ) as exc:
        raise AirflowFailException(f"{what}: {type(exc).__name__}: {exc}") from exc


def capture_flush(s: DagSettings, until: datetime) -> dict[str, Any]:
    """PostgreSQL source: the capture is healthy (state, slot present and not lost) and has
    written everything the database committed, which covers the hour when the database's clock
    has passed ``until`` (the hour's end + grace)."""
    from capture.status import status
    from capture.stream import stream

    opts = capture_options(s)
    health = _capture_call("check_source", lambda: status(s.pipeline, opts))
    source_time = datetime.fromisoformat(health["server_time"])
    if source_time < until:
        log.warning(
            "the source's clock (%s) has not reached the end of the hour + grace (%s): what it "
            "still commits in the hour will land late and be applied by a later run",
            source_time.isoformat(),
            until.isoformat(),
        )
    summary = _capture_call("check_source", lambda: stream(s.pipeline, opts, until_idle=True))
    log.info(
        "capture flushed %d change(s) of %d transaction(s) into %d file(s); source clock %s",
        summary["rows"],
        summary["transactions"],
        summary["files"],
        source_time.isoformat(),
    )
    return {k: summary[k] for k in ("rows", "transactions", "files", "position")} | {
        "source_time": health["server_time"]
    }


def start_capture(s: DagSettings, tables: list[str], reload: bool) -> dict[str, Any]:
    """PostgreSQL source, full load: ``capture init`` (publication, slot, LOAD files under the
    slot's snapshot). A capture already set up keeps its full load unless ``reload``; a reload
    first writes what the old slot holds, then loads every table again (one snapshot for all:
    the capture cannot reload a single table)."""
    from capture.errors import SlotLostError
    from capture.load import initialize
    from capture.state import state_path
    from capture.stream import stream

    opts = capture_options(s)
    initialized = state_path(opts.state_dir).exists()
    if initialized and not reload:
        log.info("the capture is set up already (%s): its full load stands", opts.state_dir)
        return {}
    if initialized:
        if sorted(tables) != sorted(s.table_names):
            raise AirflowFailException(
                "the local capture reloads every table at once (one new slot and snapshot); "
                f"trigger the reload for all tables, not {tables}"
            )

        def flush_old_slot() -> None:
            try:
                stream(s.pipeline, opts, until_idle=True)
            except SlotLostError as exc:  # the reason for many a reload
                log.warning("the old slot is lost, nothing to flush: %s", exc)

        _capture_call("start_source", flush_old_slot)
    summary = _capture_call("start_source", lambda: initialize(s.pipeline, opts, force=reload))
    log.info("capture full load stamped %s: %s", summary["load_timestamp"], summary["tables"])
    return {t: info["rows"] for t, info in summary["tables"].items()}


# ---- hourly ---------------------------------------------------------------------------------
def check_source(s: DagSettings) -> Any:
    """Stand-in for "is DMS replicating": the hour's files land (everything the source has
    delivered by the end of the grace period). With the PostgreSQL capture: fail at once unless
    it is healthy, then flush what the database committed."""

    @task(task_id="check_source")
    def check(data_interval_end: Any = None) -> dict[str, Any]:
        return land(s, data_interval_end + s.grace)

    return check()


def merge(s: DagSettings, planned: Any) -> Any:
    @task(task_id="merge")
    def run(args: list[str]) -> list[dict[str, Any]]:
        return run_job(s, "cdc_merge.py", args)

    return run(planned["args"])


# ---- full load ------------------------------------------------------------------------------
def start_source(s: DagSettings, planned: Any) -> Any:
    """Stand-in for starting DMS: the capture's full load (postgres), or the demo's LOAD files
    land."""
    with TaskGroup("start_source") as group:

        @task(task_id="start")
        def start(tables: list[str], params: dict[str, Any] | None = None) -> dict[str, Any]:
            if s.local_source == "postgres":
                return start_capture(s, tables, bool((params or {}).get("reload")))
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
        if pending and s.local_source == "postgres":
            # The capture loads synchronously in start_source: no file now means none coming.
            raise AirflowFailException(
                f"the capture's full load wrote no LOAD file for {pending} (empty tables?): the "
                "job's full load needs one; add a row, or set start_from: cdc for the table"
            )
        return not pending

    return wait(planned["tables"])


# ---- maintenance ----------------------------------------------------------------------------
def maintain(s: DagSettings, planned: Any) -> Any:
    @task(task_id="maintain")
    def run(args: list[str]) -> list[dict[str, Any]]:
        return run_job(s, "cdc_maintenance.py", args)

    return run(planned["args"])


def reconcile(s: DagSettings, planned: Any) -> Any:
    @task(task_id="reconcile")
    def run(args: list[str]) -> list[dict[str, Any]]:
        return run_job(s, "cdc_reconcile.py", args)

    return run(planned["reconcile_args"])


# ---- catalog and checks ---------------------------------------------------------------------
# Glue and Athena's stand-ins, without a JVM (under a real executor every task is its own
# process, so a Spark session per task would start a JVM per task): the catalog is a file of
# the curated root (cdclake.catalog.embedded), registered from the Delta logs as on AWS, and the
# checks run the validation queries in DuckDB over the registered tables (read by delta-rs).
def register_catalog(s: DagSettings, planned: Any) -> Any:
    @task(task_id="register_catalog")
    def register(tables: list[str]) -> list[dict[str, Any]]:
        from cdclake.catalog.embedded import register as register_tables

        return register_tables(s.pipeline, tables)

    return register(planned["tables"])


def validate(s: DagSettings) -> Any:
    """One task per table, as on AWS; each runs the table's validation queries (DuckDB) with
    freshness judged at the run's own time (the plan's ``as_of``)."""
    with TaskGroup("validate") as group:
        for t in s.pipeline.tables:

            @task(task_id=t.name)
            def check(name: str = t.qualified_name, ti: Any = None) -> None:
                from cdclake.catalog.embedded import failed_checks
                from cdclake.cli.query import format_rows

                as_of = ti.xcom_pull(task_ids="plan", key=CHECK_TIME_XCOM)
                failed = failed_checks(s.pipeline, name, as_of)
                for check_name, (columns, rows) in failed.items():
                    log.error("%s: %s failed:\n%s", name, check_name, format_rows(columns, rows))
                if failed:
                    raise AirflowFailException(
                        f"validation of {name} at {as_of} failed: {', '.join(failed)} "
                        "(their rows are logged above)"
                    )
                log.info("validation of %s at %s: every check passed", name, as_of)

            check()
    return group
