"""The DAG files import cleanly on both targets, and each DAG's graph, schedule and run
policy are what the operators rely on."""

from __future__ import annotations

import json

import pytest

from tests.dags.conftest import DAGS, ROOT

DEPLOYMENT = {
    "EmrApplicationId": "00fabc123",
    "EmrJobRoleArn": "arn:aws:iam::123456789012:role/cdclake-dev-emr-job",
    "EmrLogUri": "s3://example-logs/emr/",
    "JobEntryPoint": "s3://example-artifacts/jobs/cdc_merge.py",
    "JobConfigUri": "s3://example-artifacts/conf/pipeline.yaml",
    "SparkSubmitParameters": "--py-files s3://example-artifacts/jobs/cdclake.zip",
    "DmsTaskArn": "arn:aws:dms:eu-west-1:123456789012:task:EXAMPLE",
    "AthenaWorkGroup": "cdclake-dev",
    "GlueDatabase": "cdc_lake",
    "AlarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:cdclake-dev-alarms",
}
TABLES = ["travel_details", "ticket_sales"]
EDGES = {
    "cdclake_hourly": {
        ("check_source", "wait_for_hour"),
        ("wait_for_hour", "plan"),
        ("plan", "merge"),
        ("plan", "register_catalog"),
        ("merge", "register_catalog"),
    },
    "cdclake_maintenance": {
        ("plan", "maintain"),
        ("plan", "register_catalog"),
        ("maintain", "register_catalog"),
    },
}


def load_dagbag(monkeypatch, tmp_path, target: str):
    from airflow.models.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__CDCLAKE__TARGET", target)
    monkeypatch.setenv("AIRFLOW__CDCLAKE__PIPELINE_CONFIG", str(ROOT / "conf" / "pipeline.yaml"))
    if target == "aws":
        dep = tmp_path / "deployment.json"
        dep.write_text(json.dumps(DEPLOYMENT))
        monkeypatch.setenv("AIRFLOW__CDCLAKE__DEPLOYMENT_FILE", str(dep))
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag


def edges(dag) -> set[tuple[str, str]]:
    return {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}


@pytest.mark.parametrize("target", ["local", "aws"])
def test_dagbag_imports_three_dags(monkeypatch, tmp_path, target):
    bag = load_dagbag(monkeypatch, tmp_path, target)
    assert sorted(bag.dag_ids) == ["cdclake_full_load", "cdclake_hourly", "cdclake_maintenance"]
    for dag in bag.dags.values():
        assert dag.catchup is False
        assert dag.max_active_runs == 1
        assert "cdclake" in dag.tags and target in dag.tags
        for task in dag.tasks:
            assert task.retries == 3, task.task_id
            assert task.retry_exponential_backoff
        assert edges(dag) >= EDGES.get(dag.dag_id, set())
        checks = [t for t in dag.tasks if t.task_id.startswith("validate.")]
        if dag.dag_id != "cdclake_maintenance":
            # One check task per table at least, each after the catalog step.
            assert {t for t in TABLES if any(c.task_id.startswith(f"validate.{t}") for c in checks)}
            assert all(c.upstream_task_ids == {"register_catalog"} for c in checks)


@pytest.mark.parametrize("target", ["local", "aws"])
def test_schedules(monkeypatch, tmp_path, target):
    from airflow.timetables.interval import CronDataIntervalTimetable
    from airflow.timetables.simple import NullTimetable

    bag = load_dagbag(monkeypatch, tmp_path, target)
    hourly = bag.dags["cdclake_hourly"].timetable
    assert isinstance(hourly, CronDataIntervalTimetable)  # a real [start, end) hour
    assert hourly.summary == "0 * * * *"
    assert str(hourly._timezone) in ("UTC", "Timezone('UTC')")
    assert isinstance(bag.dags["cdclake_full_load"].timetable, NullTimetable)  # manual only
    daily = bag.dags["cdclake_maintenance"].timetable
    assert isinstance(daily, CronDataIntervalTimetable) and daily.summary == "30 3 * * *"


def test_full_load_graph_aws(monkeypatch, tmp_path):
    dag = load_dagbag(monkeypatch, tmp_path, "aws").dags["cdclake_full_load"]
    e = edges(dag)
    assert {
        ("plan", "start_source.choose"),
        ("start_source.choose", "start_source.start"),
        ("start_source.choose", "start_source.reload_tables"),
        ("start_source.start", "wait_full_load"),
        ("start_source.reload_tables", "wait_full_load"),
        ("wait_full_load", "merge"),
        ("merge", "register_catalog"),
    } <= e
    assert dag.get_task("wait_full_load").trigger_rule == "none_failed_min_one_success"
    assert set(dag.params.keys()) == {"tables", "reload"}


def test_hourly_tasks_per_target(monkeypatch, tmp_path):
    aws = load_dagbag(monkeypatch, tmp_path, "aws").dags["cdclake_hourly"]
    assert type(aws.get_task("check_source")).__name__ == "DmsReplicatingCheckOperator"
    merge = aws.get_task("merge")
    assert type(merge).__name__ == "CdcEmrServerlessStartJobOperator"
    assert merge.deferrable is True
    assert merge.application_id == DEPLOYMENT["EmrApplicationId"]
    assert {type(aws.get_task(f"validate.{t}__key_uniqueness")).__name__ for t in TABLES} == {
        "AthenaCheckOperator"
    }
    local = load_dagbag(monkeypatch, tmp_path, "local").dags["cdclake_hourly"]
    assert sorted(t.task_id for t in local.tasks if not t.task_id.startswith("validate.")) == [
        "check_source",
        "merge",
        "plan",
        "register_catalog",
        "wait_for_hour",
    ]
    assert sorted(aws.params.keys()) == ["reprocess", "tables"]


@pytest.mark.parametrize("dag_id", ["cdclake_hourly", "cdclake_full_load"])
def test_athena_freshness_is_judged_at_the_plans_check_time(monkeypatch, tmp_path, dag_id):
    """Not Athena's clock, not ``data_interval_end`` (None for a full load triggered without a
    logical date): the run's own time, which the plan task pushes as the XCom ``as_of``."""
    dag = load_dagbag(monkeypatch, tmp_path, "aws").dags[dag_id]
    for t in TABLES:
        query = dag.get_task(f"validate.{t}__freshness").query
        assert """from_iso8601_timestamp('{{ ti.xcom_pull(task_ids="plan", key="as_of") }}')""" in (
            query
        )
        assert "current_timestamp" not in query and "data_interval" not in query


@pytest.mark.parametrize("target", ["local", "aws"])
def test_every_table_writer_runs_in_the_one_writers_pool(monkeypatch, tmp_path, target):
    """merge and maintain, in all three DAGs, share one pool; backfill runs are task
    instances of the same tasks, so they queue for the same slot."""
    from cdclake_dags.pools import WRITERS_POOL

    bag = load_dagbag(monkeypatch, tmp_path, target)
    writers = {
        (dag_id, t.task_id): t.pool
        for dag_id, dag in bag.dags.items()
        for t in dag.tasks
        if t.task_id in ("merge", "maintain")
    }
    assert writers == {
        ("cdclake_hourly", "merge"): WRITERS_POOL,
        ("cdclake_full_load", "merge"): WRITERS_POOL,
        ("cdclake_maintenance", "maintain"): WRITERS_POOL,
    }
    others = {
        t.pool
        for dag in bag.dags.values()
        for t in dag.tasks
        if t.task_id not in ("merge", "maintain")
    }
    assert others == {"default_pool"}


def test_pool_holds_its_slot_while_the_emr_wait_is_deferred():
    from cdclake_dags.pools import INCLUDE_DEFERRED, WRITERS_POOL_SLOTS

    assert (WRITERS_POOL_SLOTS, INCLUDE_DEFERRED) == (1, True)


def test_the_project_creates_its_pool(airflow_db):
    """Locally after `airflow db migrate` (MWAA: infra/deploy.py), idempotently."""
    from airflow.models.pool import Pool

    from cdclake_dags.pools import WRITERS_POOL, ensure_local_pool

    ensure_local_pool()
    ensure_local_pool()
    pool = Pool.get_pool(WRITERS_POOL)
    assert (pool.slots, pool.include_deferred) == (1, True)


def test_aws_tasks_notify_the_alarm_topic_on_failure(monkeypatch, tmp_path):
    from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

    bag = load_dagbag(monkeypatch, tmp_path, "aws")
    for dag in bag.dags.values():
        for task in dag.tasks:
            (notifier,) = task.on_failure_callback
            assert isinstance(notifier, SnsNotifier), (dag.dag_id, task.task_id)
            assert notifier.target_arn == DEPLOYMENT["AlarmTopicArn"]
    local = load_dagbag(monkeypatch, tmp_path, "local")
    assert all(not t.on_failure_callback for d in local.dags.values() for t in d.tasks)


def test_job_runs_stop_before_their_task_gives_up(monkeypatch, tmp_path):
    dag = load_dagbag(monkeypatch, tmp_path, "aws").dags["cdclake_maintenance"]
    op = dag.get_task("maintain")
    waited_minutes = op.waiter_max_attempts * op.waiter_delay / 60
    assert op.config == {"executionTimeoutMinutes": 110}
    assert op.config["executionTimeoutMinutes"] < waited_minutes == 120


def test_no_network_at_parse_time(monkeypatch, tmp_path):
    """Parsing the DAGs (aws target) opens no socket: no AWS call, no database query."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("network access at parse time")

    load_dagbag(monkeypatch, tmp_path, "local")  # warm imports first
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    bag = load_dagbag(monkeypatch, tmp_path, "aws")
    assert len(bag.dags) == 3


def test_aws_target_without_deployment_is_a_clear_import_error(monkeypatch, tmp_path):
    from airflow.models.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__CDCLAKE__TARGET", "aws")
    monkeypatch.setenv("AIRFLOW__CDCLAKE__DEPLOYMENT_FILE", str(tmp_path / "missing.json"))
    bag = DagBag(dag_folder=str(DAGS))
    assert len(bag.import_errors) == 3
    assert all("make deploy" in err for err in bag.import_errors.values())


@pytest.mark.parametrize("target", ["local", "aws"])
def test_maintenance_ends_with_reconcile_only_when_an_extract_is_set(monkeypatch, tmp_path, target):
    assert (
        "reconcile"
        not in load_dagbag(monkeypatch, tmp_path, target).dags["cdclake_maintenance"].task_dict
    )
    monkeypatch.setenv("AIRFLOW__CDCLAKE__RECONCILE_EXTRACT", "s3://example-raw/reconcile")
    dag = load_dagbag(monkeypatch, tmp_path, target).dags["cdclake_maintenance"]
    assert edges(dag) == EDGES["cdclake_maintenance"] | {
        ("register_catalog", "reconcile"),
        ("plan", "reconcile"),
    }
    from cdclake_dags.pools import WRITERS_POOL

    # It only reads the lake: not in the writers' pool, so it never waits for a merge.
    assert dag.get_task("reconcile").pool != WRITERS_POOL
    if target == "aws":
        driver = dag.get_task("reconcile").job_driver["sparkSubmit"]
        assert driver["entryPoint"] == "s3://example-artifacts/jobs/cdc_reconcile.py"


def test_local_spark_submit_interprets_and_the_job_session_leaves_it_to_each_run(
    monkeypatch, tmp_path
):
    from types import SimpleNamespace

    from cdclake.session import INTERPRETED_CONF, session_conf
    from cdclake_dags.local import spark_submit_command

    (tmp_path / "delta-spark_2.12-3.3.2.jar").touch()
    monkeypatch.setenv("CDCLAKE_JARS_DIR", str(tmp_path))
    cmd = spark_submit_command(SimpleNamespace(spark_submit="spark-submit"), "cdc_merge.py", [])
    confs = {cmd[i + 1] for i, a in enumerate(cmd) if a == "--conf"}
    assert {f"{k}={v}" for k, v in INTERPRETED_CONF.items()} <= confs
    script = cmd.index(str(ROOT / "jobs" / "cdc_merge.py"))  # what follows is the job's
    assert all(i < script for i, a in enumerate(cmd) if a == "--conf")
    # The job's own session keeps Spark's defaults (EMR, the bench): each table's run chooses
    # (merge.interpreted_max_mb, tests/integration/test_runs_and_audit.py).
    for profile in ("emr", "local"):
        conf = session_conf(profile, jars_dir=tmp_path)
        assert not set(INTERPRETED_CONF) & set(conf)
