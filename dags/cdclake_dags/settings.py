"""DAG settings: which target, which pipeline config, timings. Read once at parse time from
Airflow's own configuration (section ``[cdclake]``, i.e. ``AIRFLOW__CDCLAKE__<KEY>`` environment
variables or MWAA "Airflow configuration options" ``cdclake.<key>``) and from files shipped next
to the DAGs. No network, database or AWS call happens here.

Keys (all optional):

==================  ==========================================================================
target              ``local`` (default: the embedded demo) or ``aws`` (MWAA)
pipeline_config     pipeline YAML read for table names (default: ``cdclake_conf/pipeline.yaml``
                    beside the DAGs when present, else the repository's ``conf/pipeline.yaml``)
deployment_file     stack outputs JSON (aws; default ``cdclake_conf/deployment.json``)
aws_conn_id         Airflow connection for AWS calls (default ``aws_default``)
grace_minutes       wait this long after the hour closes before merging it (default 5)
start_date          first data interval of the hourly DAG (default 2026-11-01T00:00:00+00:00)
retries             task retries (default 3), with exponential backoff from
retry_delay_minutes (default 5) up to 60 minutes
emr_timeout_minutes longest the task waits for its job run (default 120, at least 15); the
                    job run itself gets ``executionTimeoutMinutes`` 10 minutes shorter, so
                    EMR stops it before the task gives up (no writer outlives its task)
deferrable          run the EMR wait in the triggerer (default true)
full_load_timeout_hours  longest the full load may take (default 12)
spark_submit        local: the spark-submit to use (default: the one beside this Python)
local_source        local: ``postgres`` (the PostgreSQL capture, ``capture/``, writes what the
                    database committed; it reads ``CDCLAKE_CAPTURE_DSN`` or libpq's ``PG*``
                    variables), ``demo`` (the synthetic generator writes the hour's DMS files)
                    or ``none`` (files are delivered by something else); default ``demo``
demo_options        local: JSON options of the demo generator (seed, hours, rows, ...)
runs_dir            local: where job summaries/logs go (default ``<curated_root>/_runs``)
reconcile_extract   a source extract (URI; ``<extract>/<schema>/<table>/`` Parquet, e.g. a DMS
                    full-load-only task's output): when set, the maintenance DAG ends with
                    ``reconcile`` (``cdc_reconcile.py``: lake vs extract, fails on a mismatch)
==================  ==========================================================================
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cdclake.core.config import PipelineConfig, load_config
from cdclake.core.uris import local_path

DAGS_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = DAGS_DIR.parent
SECTION = "cdclake"
TARGETS = ("local", "aws")
LOCAL_SOURCES = ("postgres", "demo", "none")
# Stack outputs the aws target needs (written by `make deploy`, see infra/layout.py).
DEPLOYMENT_KEYS = (
    "EmrApplicationId",
    "EmrJobRoleArn",
    "EmrLogUri",
    "JobEntryPoint",
    "JobConfigUri",
    "SparkSubmitParameters",
    "DmsTaskArn",
    "AthenaWorkGroup",
    "GlueDatabase",
    "AlarmTopicArn",
)
# StartJobRun's executionTimeoutMinutes is the task's wait minus this margin: EMR cancels a job
# run before Airflow stops waiting for it (emr-7.11+: at most 7 days, never 0).
EMR_TIMEOUT_MARGIN = timedelta(minutes=10)
MIN_EMR_TIMEOUT = timedelta(minutes=15)
MAX_JOB_RUN_TIMEOUT = timedelta(days=7)


class SettingsError(ValueError):
    """A DAG setting is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class DagSettings:
    target: str
    config_path: Path
    pipeline: PipelineConfig
    deployment: dict[str, str] = field(default_factory=dict)
    aws_conn_id: str = "aws_default"
    grace: timedelta = timedelta(minutes=5)
    start_date: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    retries: int = 3
    retry_delay: timedelta = timedelta(minutes=5)
    emr_timeout: timedelta = timedelta(minutes=120)
    deferrable: bool = True
    full_load_timeout: timedelta = timedelta(hours=12)
    spark_submit: str = str(Path(sys.executable).parent / "spark-submit")
    local_source: str = "demo"
    demo_options: dict[str, Any] = field(default_factory=dict)
    runs_dir: Path | None = None
    reconcile_extract: str = ""  # "": no reconcile task

    @property
    def table_names(self) -> list[str]:
        return [t.qualified_name for t in self.pipeline.tables]

    @property
    def local_runs_dir(self) -> Path:
        if self.runs_dir is not None:
            return self.runs_dir
        return Path(local_path(self.pipeline.curated_root)) / "_runs"

    def summary_path(self, dag_id: str, run_id: str, task_id: str) -> Path:
        """Local target: where a job task writes its ``--summary-json`` (and log beside it)."""
        return self.local_runs_dir / _safe(dag_id) / f"{_safe(run_id)}.{task_id}.json"

    @property
    def job_run_timeout_minutes(self) -> int:
        """``executionTimeoutMinutes`` of every StartJobRun: shorter than the task's wait, so
        a job whose task timed out does not keep writing beside the next run."""
        return int((self.emr_timeout - EMR_TIMEOUT_MARGIN).total_seconds() // 60)

    def need(self, key: str) -> str:
        """A deployment output (aws target), with a message saying where it comes from."""
        try:
            return self.deployment[key]
        except KeyError:
            raise SettingsError(
                f"deployment output {key} missing: run `make deploy` (it uploads "
                "cdclake_conf/deployment.json beside the DAGs) or set [cdclake] deployment_file"
            ) from None


def _airflow_get(key: str) -> str | None:
    """``[cdclake] <key>`` from Airflow's configuration (env vars included), or None."""
    try:
        from airflow.configuration import conf
    except ImportError:  # pragma: no cover - tools that read settings without Airflow
        return os.environ.get(f"AIRFLOW__{SECTION.upper()}__{key.upper()}")
    value = conf.get(SECTION, key, fallback=None)
    return None if value in (None, "") else str(value)


def _bool(key: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"[{SECTION}] {key}: expected true/false, got {raw!r}")


def _number(key: str, raw: str, minimum: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"[{SECTION}] {key}: expected a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"[{SECTION}] {key}: must be >= {minimum}, got {raw}")
    return value


def default_config_path() -> Path:
    bundled = DAGS_DIR / "cdclake_conf" / "pipeline.yaml"
    return bundled if bundled.is_file() else REPO_DIR / "conf" / "pipeline.yaml"


def load_settings(get: Any = _airflow_get) -> DagSettings:
    """Settings from ``get(key) -> str | None`` (Airflow's config by default)."""
    target = (get("target") or "local").strip().lower()
    if target not in TARGETS:
        raise SettingsError(f"[{SECTION}] target: expected one of {TARGETS}, got {target!r}")
    raw_path = get("pipeline_config") or str(default_config_path())
    if "://" in raw_path:
        raise SettingsError(
            f"[{SECTION}] pipeline_config must be a local file (DAGs do no I/O at parse time); "
            f"got {raw_path}"
        )
    config_path = Path(raw_path)
    pipeline = load_config(config_path)
    kwargs: dict[str, Any] = {}
    if (v := get("aws_conn_id")) is not None:
        kwargs["aws_conn_id"] = v
    if (v := get("grace_minutes")) is not None:
        kwargs["grace"] = timedelta(minutes=_number("grace_minutes", v, 0))
    if (v := get("start_date")) is not None:
        try:
            start = datetime.fromisoformat(v)
        except ValueError:
            raise SettingsError(f"[{SECTION}] start_date: not an ISO date-time: {v!r}") from None
        kwargs["start_date"] = start if start.tzinfo else start.replace(tzinfo=UTC)
    if (v := get("retries")) is not None:
        kwargs["retries"] = int(_number("retries", v, 0))
    if (v := get("retry_delay_minutes")) is not None:
        kwargs["retry_delay"] = timedelta(minutes=_number("retry_delay_minutes", v, 0))
    if (v := get("emr_timeout_minutes")) is not None:
        minimum = MIN_EMR_TIMEOUT.total_seconds() / 60
        kwargs["emr_timeout"] = timedelta(minutes=_number("emr_timeout_minutes", v, minimum))
        if kwargs["emr_timeout"] - EMR_TIMEOUT_MARGIN > MAX_JOB_RUN_TIMEOUT:
            raise SettingsError(
                f"[{SECTION}] emr_timeout_minutes: at most "
                f"{int((MAX_JOB_RUN_TIMEOUT + EMR_TIMEOUT_MARGIN).total_seconds() // 60)} "
                "(EMR Serverless job runs last at most 7 days)"
            )
    if (v := get("deferrable")) is not None:
        kwargs["deferrable"] = _bool("deferrable", v)
    if (v := get("full_load_timeout_hours")) is not None:
        kwargs["full_load_timeout"] = timedelta(hours=_number("full_load_timeout_hours", v, 0.1))
    if (v := get("spark_submit")) is not None:
        kwargs["spark_submit"] = v
    if (v := get("local_source")) is not None:
        if v not in LOCAL_SOURCES:
            raise SettingsError(
                f"[{SECTION}] local_source: expected one of {LOCAL_SOURCES}, got {v!r}"
            )
        kwargs["local_source"] = v
    if (v := get("demo_options")) is not None:
        try:
            options = json.loads(v)
        except ValueError:
            raise SettingsError(f"[{SECTION}] demo_options: not JSON: {v!r}") from None
        if not isinstance(options, dict):
            raise SettingsError(f"[{SECTION}] demo_options: expected a JSON object")
        kwargs["demo_options"] = options
    if (v := get("runs_dir")) is not None:
        kwargs["runs_dir"] = Path(v)
    if v := (get("reconcile_extract") or "").strip():
        kwargs["reconcile_extract"] = v
    if target == "aws":
        dep_path = Path(get("deployment_file") or DAGS_DIR / "cdclake_conf" / "deployment.json")
        kwargs["deployment"] = load_deployment(dep_path)
    return DagSettings(target=target, config_path=config_path, pipeline=pipeline, **kwargs)


def load_deployment(path: Path) -> dict[str, str]:
    """The stack outputs; every key the DAGs use must be present."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SettingsError(
            f"{path} not found: the aws target needs the stack outputs (`make deploy ENV=...` "
            "uploads them beside the DAGs)"
        ) from None
    except ValueError as exc:
        raise SettingsError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a JSON object of stack outputs")
    missing = [k for k in DEPLOYMENT_KEYS if not data.get(k)]
    if missing:
        raise SettingsError(f"{path}: missing stack outputs {', '.join(missing)}")
    return {str(k): str(v) for k, v in data.items()}


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)
