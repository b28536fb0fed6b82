"""The aws target's DAGs under ``dag.test()`` against a moto server (EMR Serverless, DMS,
Glue, Athena, S3, SNS, SQS on 127.0.0.1), reached through the Airflow AWS connection's
``endpoint_url``.

Asserts the exact StartJobRun request (package and delta-spark.jar on the Python path, the
DynamoDB log store, a job timeout shorter than the task's wait), the DMS call, the Glue
registration of a real Delta table uploaded to the moto bucket, and the failure modes: a failed
job run fails the merge task, a stopped DMS task fails the run at ``check_source`` with the
reason, a failed validation reaches the alarm topic (SNS -> SQS subscription).

The full-load DAG runs too: first start, reload of a stopped task, ReloadTables on a running
task, a table error. moto has no DescribeTableStatistics or ReloadTables: :class:`DmsStatsStub`
answers exactly those two calls from botocore's Stubber (request and response checked
against the service model); every other DMS call goes to moto.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cdclake.core.config import parse_config
from infra.runtime import spark_submit_parameters
from tests.dms import DmsTable, make_config, run_job

REGION = "us-east-1"
ACCOUNT = "123456789012"
CURATED, RAW, ARTIFACTS, LOGS = "cur-bucket", "raw-bucket", "art-bucket", "log-bucket"
TABLE = {"schema": "s", "name": "t", "primary_key": ["id"], "partition_by": ["p"]}
SCHEMA = {"id": pa.int32(), "p": pa.string(), "v": pa.string()}
END = datetime(2026, 11, 22, 11, tzinfo=UTC)  # dag.test(logical_date=END): [10:00, 11:00)


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """moto on 127.0.0.1 with the AWS resources a deployed stack would have."""
    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"region_name": REGION, "endpoint_url": endpoint},
    }
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))

        def client(name):
            return boto3.client(name, endpoint_url=endpoint, region_name=REGION)

        s3 = client("s3")
        for b in (CURATED, RAW, ARTIFACTS, LOGS):
            s3.create_bucket(Bucket=b)
        app = client("emr-serverless").create_application(
            name="cdclake-test", releaseLabel="emr-7.14.0", type="SPARK"
        )["applicationId"]
        task = client("dms").create_replication_task(
            ReplicationTaskIdentifier="cdclake-test",
            SourceEndpointArn=f"arn:aws:dms:{REGION}:{ACCOUNT}:endpoint:SRC",
            TargetEndpointArn=f"arn:aws:dms:{REGION}:{ACCOUNT}:endpoint:TGT",
            ReplicationInstanceArn=f"arn:aws:dms:{REGION}:{ACCOUNT}:rep:INST",
            MigrationType="full-load-and-cdc",
            TableMappings="{}",
        )["ReplicationTask"]["ReplicationTaskArn"]
        client("dms").start_replication_task(
            ReplicationTaskArn=task, StartReplicationTaskType="start-replication"
        )
        client("glue").create_database(DatabaseInput={"Name": "cdc_lake"})
        client("athena").create_work_group(
            Name="cdclake-test",
            Configuration={"ResultConfiguration": {"OutputLocation": f"s3://{ARTIFACTS}/ath/"}},
        )
        # The alarm topic, with a queue subscribed so the test can read what was published.
        topic = client("sns").create_topic(Name="cdclake-test-alarms")["TopicArn"]
        queue = client("sqs").create_queue(QueueName="cdclake-test-alarms")["QueueUrl"]
        queue_arn = client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        deployment = {
            "EmrApplicationId": app,
            "EmrJobRoleArn": f"arn:aws:iam::{ACCOUNT}:role/cdclake-test-emr-job",
            "EmrLogUri": f"s3://{LOGS}/emr/",
            "JobEntryPoint": f"s3://{ARTIFACTS}/jobs/cdc_merge.py",
            "JobConfigUri": f"s3://{ARTIFACTS}/conf/pipeline.yaml",
            # What the stack outputs (infra/runtime.py), not a stand-in.
            "SparkSubmitParameters": spark_submit_parameters(
                f"s3://{ARTIFACTS}/jobs/cdclake.zip", "cdclake-test-delta-log", REGION
            ),
            "DmsTaskArn": task,
            "AthenaWorkGroup": "cdclake-test",
            "GlueDatabase": "cdc_lake",
            "AlarmTopicArn": topic,
        }
        try:
            yield {
                "endpoint": endpoint,
                "client": client,
                "deployment": deployment,
                "queue": queue,
            }
        finally:
            requests.post(f"{endpoint}/moto-api/reset", timeout=10)
            server.stop()


@pytest.fixture(scope="module")
def lake_on_s3(moto, spark, tmp_path_factory):
    """A real Delta table (full load by the job) uploaded where the pipeline config says."""
    root = tmp_path_factory.mktemp("awslake")
    cfg = make_config(root, [TABLE])
    DmsTable(cfg, "s.t", SCHEMA).load(
        [{"id": 1, "p": "a", "v": "x"}, {"id": 2, "p": "b", "v": "y"}]
    )
    assert run_job(spark, cfg, "--load", "full") == 0
    s3 = moto["client"]("s3")
    local = Path(cfg.table_location(cfg.table("s.t")))
    for f in local.rglob("*"):
        if f.is_file():
            key = f"lake/s/t/{f.relative_to(local).as_posix()}"
            s3.upload_file(str(f), CURATED, key)
    return parse_config(
        {
            "raw_root": f"s3://{RAW}/dms",
            "curated_root": f"s3://{CURATED}/lake",
            "dms": {"timestamp_column": "dms_commit_ts", "change_sequence_column": "x_seq"},
            "tables": [TABLE],
        },
        base_dir=root,
    )


def settings_for(moto, pipeline, tmp_path):
    from cdclake_dags.settings import DagSettings

    return DagSettings(
        target="aws",
        config_path=tmp_path / "unused.yaml",
        pipeline=pipeline,
        deployment=moto["deployment"],
        retries=0,
        grace=timedelta(minutes=2),
    )


def build(moto, pipeline, tmp_path, dag_id):
    from cdclake_dags.factory import build_hourly_dag

    return build_hourly_dag(settings_for(moto, pipeline, tmp_path), dag_id=dag_id)


def published(moto) -> list[dict[str, Any]]:
    """The SNS notifications the alarm topic delivered to the test queue (and drains it)."""
    sqs = moto["client"]("sqs")
    out = []
    while True:
        msgs = sqs.receive_message(QueueUrl=moto["queue"], MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not msgs:
            return out
        for m in msgs:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=moto["queue"], ReceiptHandle=m["ReceiptHandle"])


def states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def job_runs(app_id: str) -> list:
    from moto.backends import get_backend

    return get_backend("emr-serverless")[ACCOUNT][REGION].job_runs.get(app_id, [])


def test_hourly_run_starts_the_exact_job_and_registers(moto, lake_on_s3, tmp_path, airflow_db):
    dag = build(moto, lake_on_s3, tmp_path, "cdclake_hourly_aws_ok")
    app = moto["deployment"]["EmrApplicationId"]
    before = len(job_runs(app))
    dr = dag.test(logical_date=END)
    assert str(dr.state) == "success", states(dr)

    runs = job_runs(app)[before:]
    assert len(runs) == 1
    run = runs[0]
    assert run.job_driver == {
        "sparkSubmit": {
            "entryPoint": f"s3://{ARTIFACTS}/jobs/cdc_merge.py",
            "entryPointArguments": [
                "--config",
                f"s3://{ARTIFACTS}/conf/pipeline.yaml",
                "--load",
                "incremental",
                "--until",
                "2026-11-22T11",
                "--run-id",
                f"cdclake_hourly_aws_ok__{dr.run_id}",
                "--profile",
                "emr",
                "--metrics",
                "cloudwatch",
            ],
            "sparkSubmitParameters": moto["deployment"]["SparkSubmitParameters"],
        }
    }
    params = run.job_driver["sparkSubmit"]["sparkSubmitParameters"]
    # The package zip and the image's delta-spark.jar (the Python `delta` module) on the
    # Python path, and commits to S3 through the DynamoDB log store.
    assert params.startswith(
        f"--py-files s3://{ARTIFACTS}/jobs/cdclake.zip,/usr/share/aws/delta/lib/delta-spark.jar "
    )
    assert "--conf spark.delta.logStore.s3.impl=io.delta.storage.S3DynamoDBLogStore" in params
    assert "S3DynamoDBLogStore.ddb.tableName=cdclake-test-delta-log" in params
    # EMR stops the job run 10 minutes before the task stops waiting (emr_timeout 120).
    assert run.execution_timeout_minutes == 110
    assert run.configuration_overrides == {
        "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": f"s3://{LOGS}/emr/"}}
    }
    assert run.execution_role_arn == moto["deployment"]["EmrJobRoleArn"]
    assert run.name.startswith("cdclake.cdclake_hourly_aws_ok.merge.")
    assert len(run.client_token) == 64  # derived from the run, not random: see test_plan
    assert published(moto) == []  # nothing failed, nobody was paged

    glue = moto["client"]("glue")
    athena = glue.get_table(DatabaseName="cdc_lake", Name="s_t")["Table"]
    assert athena["Parameters"]["table_type"] == "DELTA"
    assert [c["Name"] for c in athena["StorageDescriptor"]["Columns"]][:2] == ["id", "v"]
    assert [k["Name"] for k in athena["PartitionKeys"]] == ["p"]
    parts = glue.get_partitions(DatabaseName="cdc_lake", TableName="s_t_spectrum")["Partitions"]
    assert sorted(p["Values"][0] for p in parts) == ["a", "b"]


def test_backfill_run_passes_since(moto, lake_on_s3, tmp_path, airflow_db):
    dag = build(moto, lake_on_s3, tmp_path, "cdclake_hourly_aws_backfill")
    app = moto["deployment"]["EmrApplicationId"]
    before = len(job_runs(app))
    dr = dag.test(logical_date=END, run_conf={"reprocess": True, "tables": ["s.t"]})
    assert str(dr.state) == "success", states(dr)
    args = job_runs(app)[before].job_driver
    argv = args["sparkSubmit"]["entryPointArguments"]
    assert argv[argv.index("--since") + 1] == "2026-11-22T10"
    assert argv[argv.index("--until") + 1] == "2026-11-22T11"
    assert "--tables" not in argv  # the only table: same as all tables


def test_failed_job_run_fails_the_merge(moto, lake_on_s3, tmp_path, airflow_db, monkeypatch):
    import moto.emrserverless.models as emr_models

    monkeypatch.setattr(emr_models, "JOB_STATUS", "FAILED")
    dag = build(moto, lake_on_s3, tmp_path, "cdclake_hourly_aws_jobfail")
    dr = dag.test(logical_date=END)
    st = states(dr)
    assert str(dr.state) == "failed"
    assert st["merge"] == "failed"
    assert st["register_catalog"] == "upstream_failed"


def test_stopped_dms_task_fails_the_run_clearly(moto, lake_on_s3, tmp_path, airflow_db, caplog):
    dms = moto["client"]("dms")
    arn = moto["deployment"]["DmsTaskArn"]
    dms.stop_replication_task(ReplicationTaskArn=arn)
    try:
        dag = build(moto, lake_on_s3, tmp_path, "cdclake_hourly_aws_dmsstop")
        app = moto["deployment"]["EmrApplicationId"]
        before = len(job_runs(app))
        dr = dag.test(logical_date=END)
        st = states(dr)
        assert str(dr.state) == "failed"
        assert st["check_source"] == "failed"
        assert st["merge"] == "upstream_failed"
        assert len(job_runs(app)) == before  # no job was started
    finally:
        dms.start_replication_task(
            ReplicationTaskArn=arn, StartReplicationTaskType="resume-processing"
        )
    # The reason, as the operator sees it in the task log.
    from cdclake_dags.plan import SourceNotReplicatingError, check_replicating

    task = dms.describe_replication_tasks()["ReplicationTasks"][0] | {"Status": "stopped"}
    with pytest.raises(SourceNotReplicatingError, match="is 'stopped', not 'running'"):
        check_replicating(task, arn)


def test_failed_validation_notifies_the_alarm_topic(moto, lake_on_s3, tmp_path, airflow_db):
    """A validation query that returns a row fails its task; the task's failure reaches the
    alarm topic through the amazon provider's SnsNotifier (SNS -> SQS here)."""
    import requests

    published(moto)  # start from an empty queue
    # moto answers the next Athena query with these rows (header + one offending row).
    rows = [{"Data": [{"VarCharValue": "key"}]}, {"Data": [{"VarCharValue": "1"}]}]
    requests.post(
        f"{moto['endpoint']}/moto-api/static/athena/query-results",
        json={
            "account_id": ACCOUNT,
            "region": REGION,
            "results": [{"rows": rows, "column_info": [{"Name": "key", "Type": "varchar"}]}],
        },
        timeout=10,
    )
    dag = build(moto, lake_on_s3, tmp_path, "cdclake_hourly_aws_validation")
    dr = dag.test(logical_date=END)
    st = states(dr)
    assert str(dr.state) == "failed"
    failed = sorted(t for t, s in st.items() if s == "failed")
    assert len(failed) == 1 and failed[0].startswith("validate."), st
    (note,) = published(moto)
    assert note["Subject"] == f"cdclake: cdclake_hourly_aws_validation.{failed[0]} failed"
    body = note["Message"]
    for expected in (
        "DAG: cdclake_hourly_aws_validation",
        f"Task: {failed[0]}",
        f"Run: {dr.run_id}",
        "Try: 1",
        f"/dags/cdclake_hourly_aws_validation/runs/{requests.utils.quote(dr.run_id, safe='')}",
        f"/tasks/{failed[0]}?try_number=1",
    ):
        assert expected in body, body


# ---- the full-load DAG ------------------------------------------------------------------------
class DmsStatsStub:
    """Answers the two DMS calls moto does not implement, and only those, through botocore's
    Stubber (which checks the request and the response against the DMS service model):
    DescribeTableStatistics reports ``state`` for every table, finished now; ReloadTables is
    recorded. Every other call of the hook's client goes to moto."""

    STUBBED = ("describe_table_statistics", "reload_tables")

    def __init__(self, state: str = "Table completed") -> None:
        import boto3
        from botocore.stub import Stubber

        self.state = state
        self.reloaded: list[list[dict[str, str]]] = []
        self.client = boto3.client(
            "dms", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
        )
        self.stubber = Stubber(self.client)
        self.stubber.activate()

    def describe_table_statistics(self, **params: Any) -> dict[str, Any]:
        now = datetime.now(UTC)
        tables = [TABLE]
        self.stubber.add_response(
            "describe_table_statistics",
            {
                "ReplicationTaskArn": params["ReplicationTaskArn"],
                "TableStatistics": [
                    {
                        "SchemaName": t["schema"],
                        "TableName": t["name"],
                        "TableState": self.state,
                        "FullLoadRows": 2,
                        "FullLoadStartTime": now,
                        "FullLoadEndTime": now,
                    }
                    for t in tables
                ],
            },
            params,
        )
        return self.client.describe_table_statistics(**params)

    def reload_tables(self, **params: Any) -> dict[str, Any]:
        self.stubber.add_response(
            "reload_tables", {"ReplicationTaskArn": params["ReplicationTaskArn"]}, params
        )
        self.reloaded.append(params["TablesToReload"])
        return self.client.reload_tables(**params)

    def wrap(self, real: Any) -> Any:
        stub = self

        class Conn:
            def __getattr__(self, name: str) -> Any:
                return getattr(stub, name) if name in stub.STUBBED else getattr(real, name)

        return Conn()


@pytest.fixture
def dms_stats(monkeypatch):
    """Install a :class:`DmsStatsStub` under every DmsHook client of the test."""
    from airflow.providers.amazon.aws.hooks.dms import DmsHook

    stub = DmsStatsStub()
    real_conn = DmsHook.conn  # cached_property on the base hook

    def conn(self):
        return stub.wrap(real_conn.func(self))

    monkeypatch.setattr(DmsHook, "conn", property(conn))
    return stub


def dms_task_in(moto, status: str) -> str:
    """A fresh DMS task (new ARN) in ``status``: ready (never started), running or stopped."""
    from moto.backends import get_backend

    dms = moto["client"]("dms")
    n = len(dms.describe_replication_tasks()["ReplicationTasks"])
    arn = dms.create_replication_task(
        ReplicationTaskIdentifier=f"cdclake-test-{n}",
        SourceEndpointArn=f"arn:aws:dms:{REGION}:{ACCOUNT}:endpoint:SRC",
        TargetEndpointArn=f"arn:aws:dms:{REGION}:{ACCOUNT}:endpoint:TGT",
        ReplicationInstanceArn=f"arn:aws:dms:{REGION}:{ACCOUNT}:rep:INST",
        MigrationType="full-load-and-cdc",
        TableMappings="{}",
    )["ReplicationTask"]["ReplicationTaskArn"]
    # moto leaves a new task "creating"; DMS makes it "ready" once it is created.
    get_backend("dms")[ACCOUNT][REGION].replication_tasks[arn].ready()
    if status in ("running", "stopped"):
        dms.start_replication_task(
            ReplicationTaskArn=arn, StartReplicationTaskType="start-replication"
        )
    if status == "stopped":
        dms.stop_replication_task(ReplicationTaskArn=arn)
    return arn


def run_full_load(moto, pipeline, tmp_path, dag_id, task_arn, conf=None):
    from cdclake_dags.factory import build_full_load_dag

    s = settings_for(moto, pipeline, tmp_path)
    s = type(s)(**{**s.__dict__, "deployment": {**s.deployment, "DmsTaskArn": task_arn}})
    dag = build_full_load_dag(s, dag_id=dag_id)
    return dag.test(logical_date=END, run_conf=conf or {})


def started_type(dr) -> str | None:
    ti = dr.get_task_instance("start_source.choose")
    return ti.xcom_pull(task_ids="start_source.choose", key="start_type")


@pytest.mark.parametrize(
    ("status", "conf", "how"),
    [
        ("ready", {}, "start-replication"),  # first start: full load, then CDC
        ("stopped", {"reload": True}, "reload-target"),  # reload of a stopped task
    ],
)
def test_full_load_starts_dms_and_replaces_the_tables(
    moto, lake_on_s3, tmp_path, airflow_db, dms_stats, status, conf, how
):
    arn = dms_task_in(moto, status)
    app = moto["deployment"]["EmrApplicationId"]
    before = len(job_runs(app))
    dr = run_full_load(moto, lake_on_s3, tmp_path, f"cdclake_full_load_{status}", arn, conf)
    st = states(dr)
    assert str(dr.state) == "success", st
    assert st["start_source.start"] == "success" and st["start_source.reload_tables"] == "skipped"
    assert started_type(dr) == how
    desc = moto["client"]("dms").describe_replication_tasks(
        Filters=[{"Name": "replication-task-arn", "Values": [arn]}]
    )["ReplicationTasks"][0]
    assert desc["Status"] == "running"  # moto ran StartReplicationTask
    assert dms_stats.reloaded == []
    (run,) = job_runs(app)[before:]
    argv = run.job_driver["sparkSubmit"]["entryPointArguments"]
    assert argv[argv.index("--load") + 1] == "full"
    assert run.execution_timeout_minutes == 110


def test_full_load_of_a_running_task_reloads_the_tables(
    moto, lake_on_s3, tmp_path, airflow_db, dms_stats
):
    arn = dms_task_in(moto, "running")
    dr = run_full_load(moto, lake_on_s3, tmp_path, "cdclake_full_load_running", arn)
    st = states(dr)
    assert str(dr.state) == "success", st
    assert st["start_source.reload_tables"] == "success" and st["start_source.start"] == "skipped"
    assert dms_stats.reloaded == [[{"SchemaName": "s", "TableName": "t"}]]


def test_full_load_table_error_fails_before_the_merge_and_notifies(
    moto, lake_on_s3, tmp_path, airflow_db, dms_stats
):
    published(moto)
    dms_stats.state = "Table error"
    arn = dms_task_in(moto, "ready")
    app = moto["deployment"]["EmrApplicationId"]
    before = len(job_runs(app))
    dr = run_full_load(moto, lake_on_s3, tmp_path, "cdclake_full_load_error", arn)
    st = states(dr)
    assert str(dr.state) == "failed"
    assert st["wait_full_load"] == "failed" and st["merge"] == "upstream_failed"
    assert len(job_runs(app)) == before  # nothing was merged
    (note,) = published(moto)
    assert "Task: wait_full_load" in note["Message"]
