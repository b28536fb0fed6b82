"""Pure decisions of the DAGs (no Airflow, no AWS): job arguments from a data interval (merge
and maintenance), the time a run's checks judge freshness at, the idempotency token of a job
run, what the DMS task's state means, and full-load progress."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cdclake.core.hours import hour_arg

# DMS replication task statuses (DescribeReplicationTasks). Only "running" replicates.
DMS_RUNNING = "running"
DMS_STARTABLE = ("ready", "stopped", "failed")
# EMR Serverless job run states that will not change any more.
EMR_TERMINAL = ("SUCCESS", "FAILED", "CANCELLED")
# DescribeTableStatistics TableState values.
TABLE_DONE = "Table completed"
TABLE_BROKEN = ("Table error", "Table cancelled")


class SourceNotReplicatingError(RuntimeError):
    """The DMS task is not replicating: no new changes will land until it is fixed."""


class FullLoadFailedError(RuntimeError):
    """DMS reports a table of the full load in error."""


def job_run_id(dag_id: str, run_id: str) -> str:
    """The job's ``--run-id`` (audit, Delta commit metadata): the Airflow run, retry-stable."""
    return f"{dag_id}__{run_id}"


def selected_tables(requested: Iterable[str] | None, known: Sequence[str]) -> list[str]:
    """The tables a run covers: all when none are requested; unknown names are an error."""
    names = [t.strip() for t in (requested or []) if t and t.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown table(s) {', '.join(unknown)}; configured: {', '.join(known)}")
    return names or list(known)


@dataclass(frozen=True)
class MergePlan:
    """What one merge task runs: the job's arguments (minus ``--config``/target extras)."""

    load: str
    until: str | None
    since: str | None
    tables: list[str]
    run_id: str

    def arguments(self, config_uri: str, *extra: str) -> list[str]:
        args = ["--config", config_uri, "--load", self.load]
        if self.until:
            args += ["--until", self.until]
        if self.since:
            args += ["--since", self.since]
        if self.tables:
            args += ["--tables", ",".join(self.tables)]
        return [*args, "--run-id", self.run_id, *extra]


def plan_hourly(
    *,
    dag_id: str,
    run_id: str,
    start: datetime,
    end: datetime,
    run_type: str,
    params: Mapping[str, Any],
    known_tables: Sequence[str],
) -> MergePlan:
    """The hourly run of ``[start, end)``: apply every unapplied file of hours before ``end``.

    A backfill run (Airflow backfill, or ``reprocess=true`` in a manual run's conf) re-applies
    every file of ``[start, end)`` as well (``--since start``); the job's sequence guard makes
    that converge to what in-order processing gives.
    """
    tables = selected_tables(params.get("tables"), known_tables)
    # DagRunType.BACKFILL_JOB (value "backfill"), however it is rendered.
    reprocess = "backfill" in str(run_type).lower() or bool(params.get("reprocess"))
    return MergePlan(
        load="incremental",
        until=hour_arg(end),
        since=hour_arg(start) if reprocess else None,
        tables=[] if tables == list(known_tables) else tables,
        run_id=job_run_id(dag_id, run_id),
    )


def plan_full_load(
    *, dag_id: str, run_id: str, params: Mapping[str, Any], known_tables: Sequence[str]
) -> MergePlan:
    tables = selected_tables(params.get("tables"), known_tables)
    return MergePlan(
        load="full",
        until=None,
        since=None,
        tables=[] if tables == list(known_tables) else tables,
        run_id=job_run_id(dag_id, run_id),
    )


# The plan task's XCom with the run's check time (ISO, UTC), and its template for operators.
CHECK_TIME_XCOM = "as_of"
CHECK_TIME_TEMPLATE = f'{{{{ ti.xcom_pull(task_ids="plan", key="{CHECK_TIME_XCOM}") }}}}'


def check_time(
    *,
    data_interval_end: datetime | None = None,
    logical_date: datetime | None = None,
    run_after: datetime | None = None,
) -> datetime:
    """The run's own time, in UTC, at which its validation judges freshness: the end of its
    data interval (hourly, backfill, a manual run with a logical date), else its logical date,
    else when it was triggered (``run_after``: a full load triggered from the UI or the REST API
    without a logical date has no data interval). Never the wall clock at check time: a
    backfill of an old hour is not "stale", and a run with no data is not "fresh"."""
    for when in (data_interval_end, logical_date, run_after):
        if when is None:
            continue
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError(f"the run's time {when.isoformat()} has no time zone")
        return when.astimezone(UTC)
    raise ValueError("the run has no time: no data interval, logical date or run_after")


@dataclass(frozen=True)
class MaintenancePlan:
    """What one maintenance task runs: the job's arguments (minus ``--config``/target extras)."""

    now: str
    tables: list[str]
    run_id: str

    def arguments(self, config_uri: str, *extra: str) -> list[str]:
        # The maintenance job publishes no metrics: it has no --metrics option.
        args = ["--config", config_uri, "--now", self.now]
        if self.tables:
            args += ["--tables", ",".join(self.tables)]
        return [*args, "--run-id", self.run_id, *_without_option(extra, "--metrics")]


def reconcile_arguments(
    p: MaintenancePlan, config_uri: str, extract: str, *extra: str
) -> list[str]:
    """The reconciliation check of the maintenance run's tables (``cdc_reconcile.py``): the
    same tables and run id, the extract's own moment (no ``--now``), no metrics."""
    args = ["--config", config_uri, "--extract", extract]
    if p.tables:
        args += ["--tables", ",".join(p.tables)]
    return [*args, "--run-id", p.run_id, *_without_option(extra, "--metrics")]


def plan_maintenance(
    *,
    dag_id: str,
    run_id: str,
    now: datetime,
    params: Mapping[str, Any],
    known_tables: Sequence[str],
) -> MaintenancePlan:
    """The daily maintenance run: cutoffs from ``now`` (the interval's end), so a rerun of a
    day repeats that day."""
    tables = selected_tables(params.get("tables"), known_tables)
    return MaintenancePlan(
        now=now.isoformat(),
        tables=[] if tables == list(known_tables) else tables,
        run_id=job_run_id(dag_id, run_id),
    )


def _without_option(args: Sequence[str], option: str) -> list[str]:
    """``args`` without ``option`` and the value after it."""
    kept: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg == option:
            next(rest, None)
        else:
            kept.append(arg)
    return kept


# ---- EMR Serverless --------------------------------------------------------------------------
_NAME_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def job_run_name(dag_id: str, task_id: str, run_id: str) -> str:
    """Name of the EMR job run of one task of one DAG run (how earlier attempts are found)."""
    return _NAME_BAD.sub("_", f"cdclake.{dag_id}.{task_id}.{run_id}")[:256]


def client_token(name: str, earlier_runs: Iterable[Mapping[str, Any]]) -> str:
    """``clientToken`` of StartJobRun for the job run called ``name``.

    Derived from the run (its name) and the number of earlier job runs of the same name that
    already ended: a retry while the first job is still running sends the same token, so EMR
    Serverless returns that job instead of starting a second one; after a job ended (failed, or
    cleared for a rerun) the next attempt gets a new token and really runs again.
    """
    ended = sum(1 for r in earlier_runs if r.get("name") == name and r.get("state") in EMR_TERMINAL)
    return hashlib.sha256(f"{name}#{ended}".encode()).hexdigest()[:64]


# ---- DMS ------------------------------------------------------------------------------------
def check_replicating(task: Mapping[str, Any] | None, arn: str) -> None:
    """Raise :class:`SourceNotReplicatingError` unless the DMS task is running."""
    if task is None:
        raise SourceNotReplicatingError(f"DMS task {arn} not found: check the DmsTaskArn output")
    status = task.get("Status", "?")
    if status == DMS_RUNNING:
        return
    reason = task.get("StopReason") or task.get("LastFailureMessage") or "no reason given"
    hint = (
        "start it (or resume processing) in the DMS console or with the full-load DAG; "
        "then clear this run"
        if status in DMS_STARTABLE
        else "wait for it to settle, then clear this run"
    )
    raise SourceNotReplicatingError(
        f"DMS task {task.get('ReplicationTaskIdentifier', arn)} is '{status}', not 'running' "
        f"({reason}): no changes are being captured, so this hour cannot be trusted to be "
        f"complete. {hint}"
    )


def choose_dms_start(task: Mapping[str, Any], reload: bool) -> str:
    """How the full-load DAG starts DMS: a StartReplicationTask type, or ``reload-tables``.

    - running task: ``reload-tables`` (ReloadTables on the chosen tables; a running task cannot
      take StartReplicationTask);
    - never started (``ready``): ``start-replication`` (full load, then CDC);
    - stopped/failed: ``reload-target`` when a reload is asked for, else ``resume-processing``
      (the LOAD files already in the raw bucket are merged again).
    """
    status = task.get("Status")
    if status == DMS_RUNNING:
        return "reload-tables"
    if status == "ready" and not task.get("ReplicationTaskStartDate"):
        return "start-replication"
    if status in DMS_STARTABLE:
        return "reload-target" if reload else "resume-processing"
    raise SourceNotReplicatingError(
        f"DMS task {task.get('ReplicationTaskIdentifier', '?')} is '{status}': cannot start a "
        "full load now; wait until it is running, ready or stopped"
    )


@dataclass(frozen=True)
class LoadProgress:
    done: list[str]
    pending: list[str]

    @property
    def complete(self) -> bool:
        return not self.pending


def full_load_progress(
    stats: Iterable[Mapping[str, Any]], tables: Sequence[str], requested_at: datetime | None
) -> LoadProgress:
    """Which of ``tables`` (``schema.table``) DMS has finished loading since ``requested_at``.

    A table counts as loaded when its TableState is "Table completed" with a FullLoadEndTime at
    or after the request (so a completion left over from an earlier load does not count).
    """
    by_name = {f"{s.get('SchemaName')}.{s.get('TableName')}": s for s in stats}
    done: list[str] = []
    pending: list[str] = []
    for name in tables:
        s = by_name.get(name)
        if s is None:
            pending.append(name)
            continue
        state = s.get("TableState", "")
        if state in TABLE_BROKEN:
            raise FullLoadFailedError(
                f"DMS reports {name} as '{state}': see the task's CloudWatch log, fix the "
                "cause, then trigger the full load again for this table"
            )
        ended = s.get("FullLoadEndTime")
        fresh = requested_at is None or (
            isinstance(ended, datetime) and ended.astimezone(UTC) >= requested_at.astimezone(UTC)
        )
        (done if state == TABLE_DONE and ended is not None and fresh else pending).append(name)
    return LoadProgress(done, pending)
