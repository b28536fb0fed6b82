"""The shipped job in an EMR-like sandbox: what `make package` writes to ``dist/<env>/``,
submitted the way the DAG submits it, in an environment that has only what the EMR Serverless
image gives the job.

The sandbox (what it reproduces of EMR Serverless 7.x, and how):

- Python: a fresh venv (uv) on Python 3.9 when the machine has one (EMR Serverless 7.x runs
  PySpark on 3.9; ``CDCLAKE_EMR_PYTHON`` points at one), else on the machine's Python (then the
  vermin check of tests/runtime/test_emr_python.py is what covers 3.9). In it: the pinned
  pyspark and boto3, nothing else: no delta-spark wheel, no PyYAML, no project venv, no
  PYTHONPATH. boto3 stands for the image's (the job reads its config from S3 and publishes
  metrics with it; botocore cannot run from a ``--py-files`` zip).
- Delta: the jars of ``.jars/`` copied under the image's names into a stand-in for
  ``/usr/share/aws/delta/lib`` (``CDCLAKE_EMR_DELTA_LIB`` points the emr profile at it).
- The files: ``dist/dev/jobs/cdc_merge.py`` and ``dist/dev/jobs/cdclake.zip`` as built; the
  rendered ``dist/dev/conf/pipeline.yaml`` with its two roots rewritten to local folders (the
  only rewrite of a file), put on a moto S3 at the key the DAG passes as ``--config``.
- The call: ``spark-submit --master local[2] <sizing> <sparkSubmitParameters> <entryPoint>
  <entryPointArguments>`` with the stack output's sparkSubmitParameters and the arguments the
  aws DAGs build (plan + aws target extras: ``--profile emr --metrics cloudwatch``); the only
  mapping: ``s3://<artifacts>/jobs/`` -> ``dist/dev/jobs/`` and ``/usr/share/aws/delta/lib`` ->
  the stand-in. ``<sizing>`` (:data:`SIZING`) only fits Spark's parallelism to two local
  cores (EMR's defaults are for a cluster: 200 shuffle partitions, 50 Delta snapshot
  partitions); the sparkSubmitParameters come after it and would win on any shared key.
  CloudWatch is the same moto server.

The demo source (demo.generator.DemoSource) lands its full load and CDC hours; the job runs
the full load, an hourly run in the middle and one after every file landed; the lake must equal
the source. Not reproduced: EMRFS and S3 for the data (local paths), Glue as metastore, the
DynamoDB log store on a real table (tests/runtime/test_two_writers.py), the image's own boto3.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from infra import layout
from infra.envconf import load_env
from infra.package import build
from infra.runtime import runtime_pins, spark_submit_parameters
from tests.runtime import ROOT, clean_env, find_python, fresh_venv

pytestmark = [pytest.mark.spark, pytest.mark.moto, pytest.mark.slow]

ENV = "dev"
REGION = "eu-west-1"
EMR_LIB = "/usr/share/aws/delta/lib"
# Machine sizing only (see the module docstring): no setting of the job or of the image.
SIZING = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.ui.enabled": "false",
    # A short-lived JVM on two cores: the quick JIT tier only, and a small-heap collector.
    "spark.driver.extraJavaOptions": (
        "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m -XX:+UseSerialGC"
    ),
}
# The image's jar names for the jars make setup fetched (missing ones are simply absent).
IMAGE_JARS = {
    "delta-spark.jar": "delta-spark_{scala}-{delta}.jar",
    "delta-storage.jar": "delta-storage-{delta}.jar",
    "delta-storage-s3-dynamodb.jar": "delta-storage-s3-dynamodb-{delta}.jar",
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """The venv and the stand-in for the image's Delta folder."""
    root = tmp_path_factory.mktemp("emr")
    python, exact = find_python(runtime_pins()["emr_python"], "CDCLAKE_EMR_PYTHON")
    if not exact:
        print(f"no Python {runtime_pins()['emr_python']} here: the sandbox runs on {python}")
    lock = {p: v for p, v in _locked(("boto3", "botocore")).items()}
    py = fresh_venv(
        root / "venv",
        python,
        f"pyspark=={runtime_pins()['spark']}",
        f"boto3=={lock['boto3']}",
        f"botocore=={lock['botocore']}",
    )
    lib = root / "usr-share-aws-delta-lib"
    lib.mkdir()
    pins = runtime_pins()
    for image_name, pattern in IMAGE_JARS.items():
        src = ROOT / ".jars" / pattern.format(**pins)
        if src.is_file():
            shutil.copy(src, lib / image_name)
    assert (lib / "delta-spark.jar").is_file(), "run `make setup` (Delta jars in .jars/)"
    return {"python": py, "lib": lib, "root": root}


def _locked(names: tuple[str, ...]) -> dict[str, str]:
    import tomllib

    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {p["name"]: p["version"] for p in lock["package"] if p["name"] in names}


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """moto (S3 for the config, CloudWatch for the metrics) on 127.0.0.1."""
    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    try:
        yield {
            "endpoint": endpoint,
            "client": lambda n: boto3.client(n, endpoint_url=endpoint, region_name=REGION, **creds),
        }
    finally:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)
        server.stop()


def job_arguments(kind: str, **window) -> list[str]:
    """The entryPointArguments the aws DAGs send (their plan plus the aws target's extras)."""
    from cdclake_dags import aws, plan

    env = load_env(ENV)
    config_uri = f"s3://{env.buckets.artifacts}/{layout.JOB_CONFIG_KEY}"
    tables = [f"delta_emr_source.{t}" for t in ("travel_details", "ticket_sales")]
    if kind == "full":
        p = plan.plan_full_load(
            dag_id="cdclake_full_load", run_id="r0", params={}, known_tables=tables
        )
    else:
        p = plan.plan_hourly(
            dag_id="cdclake_hourly",
            run_id=f"r-{window['end']:%H}",
            run_type="scheduled",
            params={},
            known_tables=tables,
            **window,
        )
    return p.arguments(config_uri, *aws.job_extra_args(None, "d", "r", "merge"))  # type: ignore[arg-type]


def lake_equals_source(cfg, src, name: str) -> None:
    """The table's live columns and rows (by key) are the source's final state. Read with
    delta-rs, so the check starts no JVM of its own."""
    from datetime import UTC, datetime

    from deltalake import DeltaTable

    def norm(v):
        return v.astimezone(UTC) if isinstance(v, datetime) else v

    table = cfg.table(name)
    data = DeltaTable(cfg.table_location(table)).to_pyarrow_table()
    columns = src.expected_schema(name).names
    assert [c for c in data.column_names if not c.startswith("_")] == columns, name
    key = table.primary_key
    lake = [{c: norm(r[c]) for c in columns} for r in data.select(columns).to_pylist()]
    source = [{c: norm(r.get(c)) for c in columns} for r in src.expected_rows(name)]
    by_key = {tuple(r[k] for k in key): r for r in lake}
    assert len(by_key) == len(lake), f"{name}: duplicate keys in the lake"
    assert by_key == {tuple(r[k] for k in key): r for r in source}, name


def test_packaged_job_runs_on_the_emr_like_sandbox(sandbox, aws, tmp_path):
    from cdclake.core.config import load_config
    from demo.generator import DemoSource

    env = load_env(ENV)
    dist = build(env, tmp_path / "dist")  # exactly what `make package ENV=dev` writes

    # The rendered config, roots rewritten to local folders, where the DAG's --config points.
    doc = yaml.safe_load((dist / layout.JOB_CONFIG_KEY).read_text())
    doc["raw_root"], doc["curated_root"] = str(tmp_path / "raw"), str(tmp_path / "curated")
    local_config = tmp_path / "pipeline.yaml"
    local_config.write_text(yaml.safe_dump(doc, sort_keys=False))
    s3 = aws["client"]("s3")
    s3.create_bucket(
        Bucket=env.buckets.artifacts, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    s3.put_object(
        Bucket=env.buckets.artifacts, Key=layout.JOB_CONFIG_KEY, Body=local_config.read_bytes()
    )
    cfg = load_config(local_config)

    # The stack output's sparkSubmitParameters, mapped to the sandbox's paths.
    params = spark_submit_parameters(
        f"s3://{env.buckets.artifacts}/{layout.JOB_PACKAGE_KEY}",
        env.resource_name("delta-log"),
        env.region,
    )
    params = params.replace(f"s3://{env.buckets.artifacts}/", f"{dist}/")
    params = params.replace(EMR_LIB, str(sandbox["lib"]))
    venv_bin = Path(sandbox["python"]).parent
    process_env = clean_env(
        PATH=f"{venv_bin}:{clean_env()['PATH']}",
        PYSPARK_PYTHON=str(sandbox["python"]),
        PYSPARK_DRIVER_PYTHON=str(sandbox["python"]),
        CDCLAKE_EMR_DELTA_LIB=str(sandbox["lib"]),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL=aws["endpoint"],
        CDCLAKE_SPARK_LOG_LEVEL="WARN",
    )

    def submit(arguments: list[str], label: str) -> float:
        cmd = [
            str(venv_bin / "spark-submit"),
            "--master",
            "local[2]",
            *[a for k, v in SIZING.items() for a in ("--conf", f"{k}={v}")],
            *shlex.split(params),
            str(dist / layout.JOB_ENTRY_KEY),
            *arguments,
        ]
        t0 = time.monotonic()
        out = subprocess.run(  # noqa: S603 - the sandbox's spark-submit, our own entry
            cmd, cwd=tmp_path, env=process_env, capture_output=True, text=True, timeout=900
        )
        took = time.monotonic() - t0
        # spark-submit passes the Python driver's output (the job's log) on stdout.
        tail = f"{out.stdout[-6000:]}\n{out.stderr[-3000:]}"
        assert out.returncode == 0, f"{label}: exit {out.returncode}\n{tail}"
        print(f"{label}: {took:.0f} s")
        return took

    src = DemoSource(cfg, hours=4, travel_rows=200, sales_rows=100)
    grace = timedelta(minutes=5)
    src.write_landed(src.load_landed_at)
    submit(job_arguments("full"), "full load")
    first, mid = src.hours()[0], src.hours()[2]
    src.write_landed(mid + grace)
    submit(job_arguments("hourly", start=mid - timedelta(hours=1), end=mid), "hourly run")
    src.write_all()  # every hour, late files and redeliveries included
    end = src.end + timedelta(hours=1)
    submit(job_arguments("hourly", start=end - timedelta(hours=1), end=end), "catch-up run")
    assert first < mid < end

    for t in cfg.tables:
        lake_equals_source(cfg, src, t.qualified_name)

    # The job published its metrics with boto3 (the image's) to "CloudWatch".
    metrics = aws["client"]("cloudwatch").list_metrics(Namespace="CdcLake")["Metrics"]
    assert {m["MetricName"] for m in metrics} >= {"FreshnessSeconds", "TableRunFailed"}
