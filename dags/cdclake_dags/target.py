"""What a target is: the task factories the DAG factory calls (:class:`Target`), and the choice
of the configured one (:func:`target_for`). The modules :mod:`cdclake_dags.aws` (MWAA, DMS, EMR
Serverless, Athena) and :mod:`cdclake_dags.local` (demo source, local ``spark-submit``, Spark
SQL) implement it; mypy checks each module against the Protocol."""

from __future__ import annotations

from typing import Protocol, TypeAlias

from airflow.sdk import BaseOperator, TaskGroup, XComArg

from cdclake_dags.settings import DagSettings

# What a task factory returns: an operator, a decorated task's output or a group of tasks, each
# of which chain() can order.
Step: TypeAlias = BaseOperator | XComArg | TaskGroup


class Target(Protocol):
    """Task factories of one target; ``planned`` is the plan task (XComs ``args``, ``tables``)."""

    def check_source(self, s: DagSettings) -> Step:
        """Hourly: fail at once unless the source captures changes (local: land the hour)."""

    def merge(self, s: DagSettings, planned: XComArg) -> Step:
        """The merge job with ``planned["args"]``, waited for (task id ``merge``)."""

    def start_source(self, s: DagSettings, planned: XComArg) -> Step:
        """Full load: start the source's full load of ``planned["tables"]`` (``start_source``)."""

    def wait_full_load(self, s: DagSettings, planned: XComArg) -> Step:
        """Full load: wait until every table of ``planned["tables"]`` is loaded."""

    def maintain(self, s: DagSettings, planned: XComArg) -> Step:
        """The maintenance job with ``planned["args"]``, waited for (task id ``maintain``)."""

    def reconcile(self, s: DagSettings, planned: XComArg) -> Step:
        """The reconciliation check with ``planned["reconcile_args"]`` (task id ``reconcile``)."""

    def register_catalog(self, s: DagSettings, planned: XComArg) -> Step:
        """Register ``planned["tables"]`` in the query engine's catalog."""

    def validate(self, s: DagSettings) -> Step:
        """The ``validate`` group: every table's validation queries; any returned row fails."""

    def job_config_uri(self, s: DagSettings) -> str:
        """The jobs' ``--config``: the pipeline config where the job reads it."""

    def job_extra_args(self, s: DagSettings, dag_id: str, run_id: str, task_id: str) -> list[str]:
        """Job arguments of this target, after the plan's (profile, metrics, summary file)."""


def target_for(s: DagSettings) -> Target:
    """The configured target (a setting, never an edit of the DAGs)."""
    if s.target == "aws":
        from cdclake_dags import aws

        return aws
    from cdclake_dags import local

    return local
