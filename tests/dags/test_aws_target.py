"""The aws target's hourly DAG under ``dag.test()`` against a moto server (EMR Serverless, DMS,
Glue, Athena, S3 on 127.0.0.1), reached through the Airflow AWS connection's ``endpoint_url``.

Asserts the exact StartJobRun request, the DMS call, the Glue registration of a real Delta
table uploaded to the moto bucket, and the failure modes: a failed job run fails the merge
task, a stopped DMS task fails the run at ``check_source`` with the reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from cdclake.core.config import parse_config
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
        deployment = {
            "EmrApplicationId": app,
            "EmrJobRoleArn": f"arn:aws:iam::{ACCOUNT}:role/cdclake-test-emr-job",
            "EmrLogUri": f"s3://{LOGS}/emr/",
            "JobEntryPoint": f"s3://{ARTIFACTS}/jobs/cdc_merge.py",
            "JobConfigUri": f"s3://{ARTIFACTS}/conf/pipeline.yaml",
            "SparkSubmitParameters": f"--py-files s3://{ARTIFACTS}/jobs/cdclake.zip --conf x=y",
            "DmsTaskArn": task,
            "AthenaWorkGroup": "cdclake-test",
            "GlueDatabase": "cdc_lake",
        }
        try:
            yield {"endpoint": endpoint, "client": client, "deployment": deployment}
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


def build(moto, pipeline, tmp_path, dag_id):
    from cdclake_dags.factory import build_hourly_dag
    from cdclake_dags.settings import DagSettings

    settings = DagSettings(
        target="aws",
        config_path=tmp_path / "unused.yaml",
        pipeline=pipeline,
        deployment=moto["deployment"],
        retries=0,
        grace=__import__("datetime").timedelta(minutes=2),
    )
    return build_hourly_dag(settings, dag_id=dag_id)


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
    assert run.configuration_overrides == {
        "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": f"s3://{LOGS}/emr/"}}
    }
    assert run.execution_role_arn == moto["deployment"]["EmrJobRoleArn"]
    assert run.name.startswith("cdclake.cdclake_hourly_aws_ok.merge.")
    assert len(run.client_token) == 64  # derived from the run, not random: see test_plan

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
