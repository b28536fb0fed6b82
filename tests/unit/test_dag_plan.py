"""Pure decisions of the DAGs: job arguments from the data interval, the EMR client token, what
DMS states mean, full-load progress, and the DAG settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cdclake_dags import plan
from cdclake_dags.settings import SettingsError, load_settings

KNOWN = ["s.a", "s.b"]
START = datetime(2026, 11, 22, 10, tzinfo=UTC)
END = START + timedelta(hours=1)


def hourly(run_type="scheduled", **params):
    return plan.plan_hourly(
        dag_id="d",
        run_id="r1",
        start=START,
        end=END,
        run_type=run_type,
        params=params,
        known_tables=KNOWN,
    )


def test_scheduled_run_applies_everything_before_the_end():
    p = hourly()
    assert p.arguments("s3://b/conf.yaml", "--metrics", "cloudwatch") == [
        "--config",
        "s3://b/conf.yaml",
        "--load",
        "incremental",
        "--until",
        "2026-11-22T11",
        "--run-id",
        "d__r1",
        "--metrics",
        "cloudwatch",
    ]


@pytest.mark.parametrize("run_type", ["backfill", "DagRunType.BACKFILL_JOB"])
def test_backfill_runs_reprocess_their_interval(run_type):
    assert hourly(run_type).since == "2026-11-22T10"


def test_manual_reprocess_and_table_selection():
    p = hourly("manual", reprocess=True, tables=["s.b"])
    assert (p.since, p.until, p.tables) == ("2026-11-22T10", "2026-11-22T11", ["s.b"])
    assert hourly("manual", tables=["s.a", "s.b"]).tables == []  # all = no --tables
    with pytest.raises(ValueError, match="unknown table"):
        hourly(tables=["s.zzz"])


def test_interval_bounds_must_be_whole_hours():
    with pytest.raises(ValueError, match="whole hour"):
        plan.hour_arg(START + timedelta(minutes=5))


def test_full_load_plan():
    p = plan.plan_full_load(dag_id="f", run_id="m", params={"tables": ["s.a"]}, known_tables=KNOWN)
    assert p.arguments("c.yaml") == [
        "--config",
        "c.yaml",
        "--load",
        "full",
        "--tables",
        "s.a",
        "--run-id",
        "f__m",
    ]


def maintenance(**params):
    now = datetime(2026, 11, 23, 3, 30, tzinfo=UTC)
    return plan.plan_maintenance(dag_id="m", run_id="r", now=now, params=params, known_tables=KNOWN)


def test_maintenance_plan_reruns_its_day_without_metrics():
    # --now is the interval's end (a rerun repeats that day); the job has no --metrics option.
    args = maintenance().arguments("c.yaml", "--profile", "emr", "--metrics", "cloudwatch")
    assert args == [
        "--config",
        "c.yaml",
        "--now",
        "2026-11-23T03:30:00+00:00",
        "--run-id",
        "m__r",
        "--profile",
        "emr",
    ]


def test_maintenance_table_selection():
    p = maintenance(tables=["s.b"])
    assert p.arguments("c.yaml", "--summary-json", "/runs/m.json") == [
        "--config",
        "c.yaml",
        "--now",
        "2026-11-23T03:30:00+00:00",
        "--tables",
        "s.b",
        "--run-id",
        "m__r",
        "--summary-json",
        "/runs/m.json",
    ]
    assert maintenance(tables=["s.a", "s.b"]).tables == []  # all = no --tables
    with pytest.raises(ValueError, match="unknown table"):
        maintenance(tables=["s.zzz"])


def test_client_token_is_stable_until_a_run_ended():
    name = plan.job_run_name("d", "merge", "scheduled__2026-11-22T10:00:00+00:00")
    assert name == "cdclake.d.merge.scheduled__2026-11-22T10_00_00_00_00"
    first = plan.client_token(name, [])
    running = [{"name": name, "state": "RUNNING"}, {"name": "other", "state": "FAILED"}]
    # A retry while the first job still runs: same token, so EMR returns that job.
    assert plan.client_token(name, running) == first
    # After it failed (or succeeded and the task was cleared), a new job run is started.
    ended = [{"name": name, "state": "FAILED"}]
    assert plan.client_token(name, ended) != first
    assert plan.client_token(name, ended) == plan.client_token(name, ended)
    assert len(first) == 64


def test_dms_status_checks():
    plan.check_replicating({"Status": "running"}, "arn")
    with pytest.raises(plan.SourceNotReplicatingError, match="'stopped'.*user stop"):
        plan.check_replicating({"Status": "stopped", "StopReason": "user stop"}, "arn")
    with pytest.raises(plan.SourceNotReplicatingError, match="'failed'"):
        plan.check_replicating({"Status": "failed", "LastFailureMessage": "boom"}, "arn")
    with pytest.raises(plan.SourceNotReplicatingError, match="not found"):
        plan.check_replicating(None, "arn")


@pytest.mark.parametrize(
    ("task", "reload", "expected"),
    [
        ({"Status": "ready"}, False, "start-replication"),
        ({"Status": "running"}, True, "reload-tables"),
        ({"Status": "stopped", "ReplicationTaskStartDate": "x"}, True, "reload-target"),
        ({"Status": "stopped", "ReplicationTaskStartDate": "x"}, False, "resume-processing"),
        ({"Status": "failed", "ReplicationTaskStartDate": "x"}, True, "reload-target"),
    ],
)
def test_choose_dms_start(task, reload, expected):
    assert plan.choose_dms_start(task, reload) == expected


def test_choose_dms_start_refuses_transitional_states():
    with pytest.raises(plan.SourceNotReplicatingError, match="'stopping'"):
        plan.choose_dms_start({"Status": "stopping"}, False)


def test_full_load_progress_counts_only_loads_after_the_request():
    asked = datetime(2026, 11, 22, 8, tzinfo=UTC)
    stats = [
        {
            "SchemaName": "s",
            "TableName": "a",
            "TableState": "Table completed",
            "FullLoadEndTime": asked + timedelta(minutes=3),
        },
        {
            "SchemaName": "s",
            "TableName": "b",
            "TableState": "Table completed",
            "FullLoadEndTime": asked - timedelta(days=1),
        },  # an earlier load's completion
    ]
    p = plan.full_load_progress(stats, KNOWN, asked)
    assert (p.done, p.pending, p.complete) == (["s.a"], ["s.b"], False)
    assert plan.full_load_progress(stats, KNOWN, None).complete
    assert plan.full_load_progress(stats[:1], KNOWN, asked).pending == ["s.b"]  # not listed yet
    broken = [{"SchemaName": "s", "TableName": "a", "TableState": "Table error"}]
    with pytest.raises(plan.FullLoadFailedError, match="s.a"):
        plan.full_load_progress(broken, ["s.a"], asked)


# ---- settings ------------------------------------------------------------------------------
def settings_from(values):
    return load_settings(lambda key: values.get(key))


def test_default_settings_are_the_local_demo():
    s = settings_from({})
    assert s.target == "local"
    assert s.table_names == ["delta_emr_source.travel_details", "delta_emr_source.ticket_sales"]
    assert s.grace == timedelta(minutes=5) and s.retries == 3 and s.deferrable


def test_aws_settings_need_the_deployment_outputs(tmp_path):
    with pytest.raises(SettingsError, match="make deploy"):
        settings_from({"target": "aws", "deployment_file": str(tmp_path / "none.json")})
    dep = tmp_path / "deployment.json"
    dep.write_text(json.dumps({"EmrApplicationId": "x"}))
    with pytest.raises(SettingsError, match="missing stack outputs .*EmrJobRoleArn"):
        settings_from({"target": "aws", "deployment_file": str(dep)})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("target", "gcp", "target"),
        ("grace_minutes", "soon", "grace_minutes"),
        ("retries", "-1", "retries"),
        ("deferrable", "maybe", "deferrable"),
        ("pipeline_config", "s3://b/conf.yaml", "local file"),
        ("demo_options", "[1]", "demo_options"),
        ("local_source", "kafka", "local_source"),
        ("emr_timeout_minutes", "10", "emr_timeout_minutes: must be >= 15"),
        ("emr_timeout_minutes", "20000", "at most 10090"),
    ],
)
def test_bad_settings_are_named(key, value, message):
    with pytest.raises(SettingsError, match=message):
        settings_from({key: value})


@pytest.mark.parametrize(("waited", "job_run"), [(None, 110), ("15", 5), ("10090", 10080)])
def test_job_runs_end_before_their_task_stops_waiting(waited, job_run):
    """StartJobRun's executionTimeoutMinutes is 10 minutes shorter than the task's wait (EMR
    stops a job run before Airflow gives up on it); EMR takes 5 minutes to 7 days."""
    s = settings_from({"emr_timeout_minutes": waited} if waited else {})
    assert s.job_run_timeout_minutes == job_run
    assert s.job_run_timeout_minutes < s.emr_timeout.total_seconds() / 60


# ---- the time a run's checks judge freshness at ---------------------------------------------
def test_checks_use_the_end_of_the_runs_interval():
    """Hourly, backfill, or a manual run with a logical date: the data interval's end, even
    when the run happens days later (a backfill of an old hour is not "stale")."""
    assert plan.check_time(data_interval_end=END, logical_date=START, run_after=END) == END


def test_manual_run_without_interval_uses_its_logical_date_then_its_trigger_time():
    """The full load triggered from the UI or REST without a logical date has no data interval:
    its own time is when it was triggered (Airflow's ``run_after``)."""
    triggered = datetime(2026, 12, 3, 4, 36, 42, tzinfo=UTC)
    assert plan.check_time(data_interval_end=None, logical_date=None, run_after=triggered) == (
        triggered
    )
    assert plan.check_time(data_interval_end=None, logical_date=START, run_after=triggered) == (
        START
    )


def test_check_time_is_utc_and_must_exist():
    from datetime import timezone

    two_hours_east = timezone(timedelta(hours=2))
    local = datetime(2026, 11, 22, 13, tzinfo=two_hours_east)
    assert plan.check_time(data_interval_end=local).isoformat() == "2026-11-22T11:00:00+00:00"
    with pytest.raises(ValueError, match="time zone"):
        plan.check_time(data_interval_end=datetime(2026, 11, 22, 11))
    with pytest.raises(ValueError, match="no time"):
        plan.check_time(data_interval_end=None, logical_date=None, run_after=None)


def test_reconcile_checks_the_maintenance_runs_tables_at_the_extracts_moment():
    # Same tables and run id as the maintenance job; no --now (the extract has its own
    # moment) and no metrics.
    p = maintenance(tables=["s.b"])
    args = plan.reconcile_arguments(
        p, "c.yaml", "s3://raw/reconcile", "--profile", "emr", "--metrics", "cloudwatch"
    )
    assert args == [
        "--config",
        "c.yaml",
        "--extract",
        "s3://raw/reconcile",
        "--tables",
        "s.b",
        "--run-id",
        "m__r",
        "--profile",
        "emr",
    ]
