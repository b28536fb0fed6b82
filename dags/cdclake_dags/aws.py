"""Tasks of the ``aws`` target (MWAA): DMS, EMR Serverless and Athena through the amazon
provider. Every ARN/id comes from the deployment outputs (settings), credentials from the
Airflow AWS connection; nothing account-specific is written here. Implements
:class:`cdclake_dags.target.Target`."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from typing import Any

from airflow.exceptions import AirflowFailException
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.dms import DmsHook
from airflow.providers.amazon.aws.hooks.emr import EmrServerlessHook
from airflow.providers.amazon.aws.notifications.sns import SnsNotifier
from airflow.providers.amazon.aws.operators.athena import AthenaOperator
from airflow.providers.amazon.aws.operators.dms import (
    DmsDescribeTasksOperator,
    DmsStartTaskOperator,
)
from airflow.providers.amazon.aws.operators.emr import EmrServerlessStartJobOperator
from airflow.sdk import TaskGroup, task

from cdclake_dags import plan
from cdclake_dags.settings import DagSettings

log = logging.getLogger(__name__)
EMR_POLL_SECONDS = 60

# What a failed task publishes to the alarm topic (templated with the task's context).
FAILURE_SUBJECT = "cdclake: {{ dag.dag_id }}.{{ ti.task_id }} failed"
FAILURE_MESSAGE = """\
cdclake task failed (after its retries).
DAG: {{ dag.dag_id }}
Task: {{ ti.task_id }}
Run: {{ run_id }}
Try: {{ ti.try_number }}
Log: {{ log_link }}
Error: {{ exception | default('see the task log') }}
"""


class TaskFailureNotifier(SnsNotifier):
    """The amazon provider's SNS notifier; its templates also see ``log_link``, the failed
    try's log in the Airflow UI (Airflow's ``ti.log_url``, built the same way where the task
    runner did not set it, as under ``dag.test()``).

    One instance serves every task of a DAG (``default_args``): each notification renders a
    copy, since rendering replaces the templates with their values.
    """

    def __call__(self, *args: Any) -> None:
        if len(args) == 1 and isinstance(args[0], dict) and "ti" in args[0]:
            from airflow.sdk.execution_time.task_runner import get_log_url_from_ti

            ti = args[0]["ti"]
            args[0]["log_link"] = getattr(ti, "log_url", None) or get_log_url_from_ti(ti)
        copy.copy(self).notify_once(*args)

    def notify_once(self, *args: Any) -> None:
        SnsNotifier.__call__(self, *args)


def failure_notifier(s: DagSettings) -> SnsNotifier:
    """The notifier every task's ``on_failure_callback`` runs: the alarm topic (stack output
    ``AlarmTopicArn``) gets DAG, task, run, try, log link and error."""
    return TaskFailureNotifier(
        aws_conn_id=s.aws_conn_id,
        target_arn=s.need("AlarmTopicArn"),
        subject=FAILURE_SUBJECT,
        message=FAILURE_MESSAGE,
    )


class DmsReplicatingCheckOperator(DmsDescribeTasksOperator):
    """Describe the DMS task and fail (no retry) unless it is replicating."""

    def __init__(self, *, replication_task_arn: str, **kwargs: Any) -> None:
        super().__init__(
            describe_tasks_kwargs={
                "Filters": [{"Name": "replication-task-arn", "Values": [replication_task_arn]}],
                "WithoutSettings": True,
            },
            **kwargs,
        )
        self.replication_task_arn = replication_task_arn

    def execute(self, context: Any) -> tuple[str | None, list]:
        marker, tasks = super().execute(context)
        task_desc = next(
            (t for t in tasks if t.get("ReplicationTaskArn") == self.replication_task_arn), None
        )
        try:
            plan.check_replicating(task_desc, self.replication_task_arn)
        except plan.SourceNotReplicatingError as exc:
            # Retrying will not start DMS; fail the run at once with the reason.
            raise AirflowFailException(str(exc)) from exc
        return marker, tasks


class CdcEmrServerlessStartJobOperator(EmrServerlessStartJobOperator):
    """StartJobRun with a name and ``clientToken`` derived from the Airflow run.

    A retry while the first job run is still going sends the same token (EMR Serverless then
    returns that run rather than starting a second one); once a run of this name has ended, the
    next attempt gets a new token (see :func:`cdclake_dags.plan.client_token`).
    """

    def execute(self, context: Any, event: dict[str, Any] | None = None) -> str | None:
        self.name = plan.job_run_name(context["dag"].dag_id, self.task_id, context["run_id"])
        self.client_request_token = plan.client_token(self.name, self._earlier_runs())
        log.info("job run %s, clientToken %s", self.name, self.client_request_token)
        return super().execute(context, event)

    def _earlier_runs(self) -> list[dict[str, Any]]:
        conn = EmrServerlessHook(aws_conn_id=self.aws_conn_id).conn
        runs: list[dict[str, Any]] = []
        pages = conn.get_paginator("list_job_runs").paginate(applicationId=self.application_id)
        try:
            for page in pages:
                runs += [r for r in page.get("jobRuns", []) if r.get("name") == self.name]
        except conn.exceptions.ResourceNotFoundException:
            # Nothing to find (moto answers this for an application without runs); a missing
            # application fails StartJobRun next with AWS's own message.
            return []
        return runs


def emr_job(
    s: DagSettings, task_id: str, entry_point: str, arguments: Any, **kwargs: Any
) -> EmrServerlessStartJobOperator:
    """A job run of our entry script on the EMR Serverless application, waited for."""
    return CdcEmrServerlessStartJobOperator(
        task_id=task_id,
        application_id=s.need("EmrApplicationId"),
        execution_role_arn=s.need("EmrJobRoleArn"),
        job_driver={
            "sparkSubmit": {
                "entryPoint": entry_point,
                "entryPointArguments": arguments,
                # The package zip (--py-files), EMR's Delta jars and the Glue catalog setting.
                "sparkSubmitParameters": s.need("SparkSubmitParameters"),
            }
        },
        configuration_overrides={
            "monitoringConfiguration": {
                "s3MonitoringConfiguration": {"logUri": s.need("EmrLogUri")}
            }
        },
        # EMR stops the job run before this task stops waiting for it (see DagSettings).
        config={"executionTimeoutMinutes": s.job_run_timeout_minutes},
        aws_conn_id=s.aws_conn_id,
        deferrable=s.deferrable,
        waiter_delay=EMR_POLL_SECONDS,
        waiter_max_attempts=max(1, int(s.emr_timeout.total_seconds() // EMR_POLL_SECONDS)),
        **kwargs,
    )


# ---- hourly ---------------------------------------------------------------------------------
def check_source(s: DagSettings) -> Any:
    return DmsReplicatingCheckOperator(
        task_id="check_source",
        replication_task_arn=s.need("DmsTaskArn"),
        aws_conn_id=s.aws_conn_id,
    )


def merge(s: DagSettings, planned: Any) -> Any:
    """The merge job; ``planned`` is the plan task (XCom ``args`` without ``--config``)."""
    return emr_job(s, "merge", s.need("JobEntryPoint"), planned["args"])


def job_config_uri(s: DagSettings) -> str:
    return s.need("JobConfigUri")


def job_extra_args(s: DagSettings, dag_id: str, run_id: str, task_id: str) -> list[str]:
    # The job publishes the metrics the stack's alarms watch (freshness, quarantine, failures).
    return ["--profile", "emr", "--metrics", "cloudwatch"]


# ---- full load ------------------------------------------------------------------------------
def start_source(s: DagSettings, planned: Any) -> Any:
    """Start DMS (first start / reload-target / resume) or reload the chosen tables."""
    arn = s.need("DmsTaskArn")
    with TaskGroup("start_source") as group:

        @task.branch(task_id="choose")
        def choose(params: dict[str, Any] | None = None, ti: Any = None) -> str:
            hook = DmsHook(aws_conn_id=s.aws_conn_id)
            desc = hook.find_replication_tasks_by_arn(arn, without_settings=True)
            if not desc:
                raise AirflowFailException(f"DMS task {arn} not found")
            try:
                how = plan.choose_dms_start(desc[0], bool((params or {}).get("reload")))
            except plan.SourceNotReplicatingError as exc:
                raise AirflowFailException(str(exc)) from exc
            ti.xcom_push(key="start_type", value=how)
            ti.xcom_push(key="requested_at", value=datetime.now(UTC).isoformat())
            log.info("DMS task %s is %s: %s", arn, desc[0].get("Status"), how)
            return "start_source.reload_tables" if how == "reload-tables" else "start_source.start"

        start = DmsStartTaskOperator(
            task_id="start",
            replication_task_arn=arn,
            start_replication_task_type=(
                "{{ ti.xcom_pull(task_ids='start_source.choose', key='start_type') }}"
            ),
            aws_conn_id=s.aws_conn_id,
        )

        @task(task_id="reload_tables")
        def reload_tables(tables: list[str]) -> list[str]:
            hook = DmsHook(aws_conn_id=s.aws_conn_id)
            hook.conn.reload_tables(
                ReplicationTaskArn=arn,
                TablesToReload=[
                    {"SchemaName": n.split(".", 1)[0], "TableName": n.split(".", 1)[1]}
                    for n in tables
                ],
                ReloadOption="data-reload",
            )
            return tables

        choose() >> [start, reload_tables(planned["tables"])]
    return group


def wait_full_load(s: DagSettings, planned: Any) -> Any:
    arn = s.need("DmsTaskArn")

    @task.sensor(
        task_id="wait_full_load",
        poke_interval=60,
        timeout=s.full_load_timeout.total_seconds(),
        mode="reschedule",
        trigger_rule="none_failed_min_one_success",
    )
    def wait(tables: list[str], ti: Any = None) -> bool:
        requested = ti.xcom_pull(task_ids="start_source.choose", key="requested_at")
        since = datetime.fromisoformat(requested) if requested else None
        conn = DmsHook(aws_conn_id=s.aws_conn_id).conn
        stats: list[dict[str, Any]] = []
        marker = None
        while True:
            kw = {"ReplicationTaskArn": arn, "MaxRecords": 500}
            resp = conn.describe_table_statistics(**kw, **({"Marker": marker} if marker else {}))
            stats += resp.get("TableStatistics", [])
            marker = resp.get("Marker")
            if not marker:
                break
        try:
            progress = plan.full_load_progress(stats, tables, since)
        except plan.FullLoadFailedError as exc:
            raise AirflowFailException(str(exc)) from exc
        log.info("full load: done %s, pending %s", progress.done, progress.pending)
        return progress.complete

    return wait(planned["tables"])


# ---- maintenance ----------------------------------------------------------------------------
def maintain(s: DagSettings, planned: Any) -> Any:
    entry = s.need("JobEntryPoint").rsplit("/", 1)[0] + "/cdc_maintenance.py"
    return emr_job(s, "maintain", entry, planned["args"])


def reconcile(s: DagSettings, planned: Any) -> Any:
    entry = s.need("JobEntryPoint").rsplit("/", 1)[0] + "/cdc_reconcile.py"
    return emr_job(s, "reconcile", entry, planned["reconcile_args"])


# ---- catalog and checks ---------------------------------------------------------------------


class AthenaCheckOperator(AthenaOperator):
    """Run one validation query; any row it returns is a failed check (no retry)."""

    def execute(self, context: Any) -> str | None:
        query_id = super().execute(context)
        if query_id is None:  # pragma: no cover - AthenaOperator raises on failed queries
            raise AirflowFailException(f"validation {self.task_id}: no query execution id")
        result = self.hook.get_query_results(query_execution_id=query_id) or {}
        rows = result.get("ResultSet", {}).get("Rows", [])[1:]  # first row: column names
        if rows:
            values = [[c.get("VarCharValue") for c in r.get("Data", [])] for r in rows[:20]]
            raise AirflowFailException(
                f"validation {self.task_id} failed: {len(rows)} row(s), e.g. {values}"
            )
        return query_id


def register_catalog(s: DagSettings, planned: Any) -> Any:
    @task(task_id="register_catalog")
    def register(tables: list[str]) -> list[dict[str, Any]]:
        from cdclake.catalog.register import register_tables

        # Clients from the connection (credentials, region, endpoint_url), not a bare session.
        glue = AwsBaseHook(aws_conn_id=s.aws_conn_id, client_type="glue").conn
        s3 = AwsBaseHook(aws_conn_id=s.aws_conn_id, client_type="s3").conn
        return register_tables(s.pipeline, tables, target="glue", glue=glue, s3=s3)

    return register(planned["tables"])


def validate(s: DagSettings) -> Any:
    from cdclake.catalog.validation import validation_queries

    with TaskGroup("validate") as group:
        for t in s.pipeline.tables:
            # Freshness at the run's own time (the plan's check time), not Athena's clock.
            queries = validation_queries(s.pipeline, t, "athena", as_of=plan.CHECK_TIME_TEMPLATE)
            for name, sql in queries.items():
                AthenaCheckOperator(
                    task_id=f"{t.name}__{name}",
                    query=sql,
                    database=s.need("GlueDatabase"),
                    workgroup=s.need("AthenaWorkGroup"),
                    aws_conn_id=s.aws_conn_id,
                    sleep_time=5,
                )
    return group
