"""The three DAGs, built from the settings (one structure, two targets: the task factories of
:class:`cdclake_dags.target.Target`).

Task graph (same ids on both targets; each DAG's ``chain(...)`` below)::

    hourly:      check_source >> wait_for_hour >> plan >> merge >> register_catalog >> validate
    full load:   plan >> start_source >> wait_full_load >> merge >> register_catalog >> validate
    maintenance: plan >> maintain >> register_catalog [>> reconcile, when reconcile_extract is set]

The ``validate`` checks judge freshness at the run's own time, which ``plan`` pushes as the XCom
``as_of`` (:func:`cdclake_dags.plan.check_time`: the data interval's end; for a full load
triggered without a logical date, when it was triggered).

Every task that writes lake tables (``merge``, ``maintain``) runs in the one pool
:data:`cdclake_dags.pools.WRITERS_POOL` (one slot, shared by the three DAGs and by backfills);
on the ``aws`` target every task failure is published to the stack's SNS topic.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.sensors.date_time import DateTimeSensor
from airflow.sdk import DAG, Param, XComArg, chain, task
from airflow.timetables.interval import CronDataIntervalTimetable

from cdclake_dags import plan
from cdclake_dags.pools import WRITER_TASKS, WRITERS_POOL
from cdclake_dags.settings import DagSettings
from cdclake_dags.target import Target, target_for

HOURLY_DAG_ID = "cdclake_hourly"
FULL_LOAD_DAG_ID = "cdclake_full_load"
MAINTENANCE_DAG_ID = "cdclake_maintenance"
TAGS = ["cdclake"]
MAX_RETRY_DELAY = timedelta(hours=1)


def default_args(s: DagSettings) -> dict[str, Any]:
    args: dict[str, Any] = {
        "owner": "data-platform",
        "retries": s.retries,
        "retry_delay": s.retry_delay,
        "retry_exponential_backoff": True,
        "max_retry_delay": MAX_RETRY_DELAY,
    }
    if s.target == "aws":
        from cdclake_dags.aws import failure_notifier

        # After the last retry: DAG, task, run, try, log link and error to the alarm topic.
        args["on_failure_callback"] = [failure_notifier(s)]
    return args


def use_writers_pool(dag: DAG) -> DAG:
    """Put every task that writes lake tables into the one writers' pool."""
    for task_id in WRITER_TASKS:
        if task_id in dag.task_dict:
            dag.task_dict[task_id].pool = WRITERS_POOL
    return dag


def _tables_param(s: DagSettings) -> Param:
    return Param(
        [],
        type="array",
        items={"type": "string", "enum": s.table_names},
        description="schema.table names to process (empty: every configured table)",
    )


def build_hourly_dag(s: DagSettings, dag_id: str = HOURLY_DAG_ID) -> DAG:
    """Hourly incremental merge of the data interval ``[start, end)``."""
    t = target_for(s)
    with DAG(
        dag_id,
        description="Hourly CDC merge: DMS files of the closed hour -> Delta tables",
        schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
        start_date=s.start_date,
        # A run applies every unapplied file before its end, so missed hours are caught up by
        # the next run; a backlog of runs would add nothing. Backfills are explicit.
        catchup=False,
        # The job is the tables' only writer (Delta's S3 log store is single-writer).
        max_active_runs=1,
        default_args=default_args(s),
        params={
            "tables": _tables_param(s),
            "reprocess": Param(
                False,
                type="boolean",
                description="re-apply every file of the interval (as a backfill run does)",
            ),
        },
        tags=[*TAGS, "hourly", s.target],
        doc_md=__doc__,
    ) as dag:
        planned = hourly_plan(s, t, dag_id)
        chain(
            t.check_source(s),
            wait_for_hour(s),
            planned,
            t.merge(s, planned),
            t.register_catalog(s, planned),
            t.validate(s),
        )
    return use_writers_pool(dag)


def build_full_load_dag(s: DagSettings, dag_id: str = FULL_LOAD_DAG_ID) -> DAG:
    """Manual: (re)load tables from DMS's full load, then replace them in the lake."""
    t = target_for(s)
    with DAG(
        dag_id,
        description="Full load / reload: DMS full load -> replace the Delta tables",
        schedule=None,
        start_date=s.start_date,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(s),
        params={
            "tables": _tables_param(s),
            "reload": Param(
                False,
                type="boolean",
                description="reload from the source (DMS reload) instead of a first start",
            ),
        },
        tags=[*TAGS, "full-load", s.target],
        doc_md=__doc__,
    ) as dag:
        planned = full_load_plan(s, t, dag_id)
        chain(
            planned,
            t.start_source(s, planned),
            t.wait_full_load(s, planned),
            t.merge(s, planned),
            t.register_catalog(s, planned),
            t.validate(s),
        )
    return use_writers_pool(dag)


def build_maintenance_dag(s: DagSettings, dag_id: str = MAINTENANCE_DAG_ID) -> DAG:
    """Daily: compact recent partitions, vacuum, refresh manifests, expire bookkeeping."""
    t = target_for(s)
    with DAG(
        dag_id,
        description="Daily Delta maintenance: OPTIMIZE recent partitions, VACUUM, manifests",
        schedule=CronDataIntervalTimetable("30 3 * * *", timezone="UTC"),
        start_date=s.start_date,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(s),
        params={"tables": _tables_param(s)},
        tags=[*TAGS, "maintenance", s.target],
        doc_md=__doc__,
    ) as dag:
        planned = maintenance_plan(s, t, dag_id)
        steps = [planned, t.maintain(s, planned), t.register_catalog(s, planned)]
        if s.reconcile_extract:  # the lake against a source extract (reads only)
            steps.append(t.reconcile(s, planned))
        chain(*steps)
    return use_writers_pool(dag)


# ---- tasks shared by both targets -----------------------------------------------------------
def wait_for_hour(s: DagSettings) -> DateTimeSensor:
    return DateTimeSensor(
        task_id="wait_for_hour",
        # DMS flushes about once a minute: give the hour's last files time to land.
        target_time=(
            "{{ (data_interval_end + macros.timedelta(seconds=%s)).isoformat() }}"
        ).replace("%s", str(int(s.grace.total_seconds()))),
        poke_interval=60,
        mode="reschedule",
    )


# The plan tasks: the pure plan of cdclake_dags.plan, with this target's job arguments.
def hourly_plan(s: DagSettings, t: Target, dag_id: str) -> XComArg:
    @task(task_id="plan", multiple_outputs=True)
    def plan_run(
        run_id: Any = None,
        data_interval_start: Any = None,
        data_interval_end: Any = None,
        dag_run: Any = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        as_of = _check_time(data_interval_end, dag_run)
        p = plan.plan_hourly(
            dag_id=dag_id,
            run_id=run_id,
            start=data_interval_start,
            end=data_interval_end,
            run_type=str(getattr(dag_run, "run_type", "")),
            params=params or {},
            known_tables=s.table_names,
        )
        extra = t.job_extra_args(s, dag_id, run_id, "merge")
        return _plan_output(p, t.job_config_uri(s), extra, s, as_of)

    return plan_run()


def full_load_plan(s: DagSettings, t: Target, dag_id: str) -> XComArg:
    @task(task_id="plan", multiple_outputs=True)
    def plan_run(
        run_id: Any = None,
        data_interval_end: Any = None,
        dag_run: Any = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        as_of = _check_time(data_interval_end, dag_run)
        p = plan.plan_full_load(
            dag_id=dag_id, run_id=run_id, params=params or {}, known_tables=s.table_names
        )
        extra = t.job_extra_args(s, dag_id, run_id, "merge")
        return _plan_output(p, t.job_config_uri(s), extra, s, as_of)

    return plan_run()


def _check_time(data_interval_end: Any, dag_run: Any) -> str:
    """The run's own time (ISO, UTC) for its checks: see :func:`cdclake_dags.plan.check_time`."""
    return plan.check_time(
        data_interval_end=data_interval_end,
        logical_date=getattr(dag_run, "logical_date", None),
        run_after=getattr(dag_run, "run_after", None),
    ).isoformat()


def maintenance_plan(s: DagSettings, t: Target, dag_id: str) -> XComArg:
    @task(task_id="plan", multiple_outputs=True)
    def plan_run(
        run_id: Any = None, data_interval_end: Any = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        p = plan.plan_maintenance(
            dag_id=dag_id,
            run_id=run_id,
            now=data_interval_end,
            params=params or {},
            known_tables=s.table_names,
        )
        extra = t.job_extra_args(s, dag_id, run_id, "maintain")
        out = {
            "args": p.arguments(t.job_config_uri(s), *extra),
            "tables": p.tables or s.table_names,
        }
        if s.reconcile_extract:
            checks = t.job_extra_args(s, dag_id, run_id, "reconcile")
            out["reconcile_args"] = plan.reconcile_arguments(
                p, t.job_config_uri(s), s.reconcile_extract, *checks
            )
        return out

    return plan_run()


def _plan_output(
    p: plan.MergePlan, config_uri: str, extra: list[str], s: DagSettings, as_of: str
) -> dict:
    # No None values: the task SDK cannot push a None XCom ("Field required").
    return {
        "args": p.arguments(config_uri, *extra),
        "tables": p.tables or s.table_names,
        "until": p.until or "",
        "since": p.since or "",
        "run_id": p.run_id,
        plan.CHECK_TIME_XCOM: as_of,
    }
