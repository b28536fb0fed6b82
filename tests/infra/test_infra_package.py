"""`make package` output and its upload to a moto S3 server: the object layout DAGs use."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import zipfile
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from cdclake.core.config import load_config
from infra import layout
from infra.envconf import load_env
from infra.package import build, upload

REPO = Path(__file__).resolve().parents[2]
ENTRY_STUB = "# stand-in for jobs/cdc_merge.py while it is being written\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the parts of the repo that get packaged, plus a DAG and a cache to skip."""
    root = tmp_path / "repo"
    shutil.copytree(
        REPO / "jobs" / "cdclake",
        root / "jobs" / "cdclake",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    entry = REPO / "jobs" / "cdc_merge.py"
    (root / "jobs" / "cdc_merge.py").write_text(
        entry.read_text() if entry.is_file() else ENTRY_STUB
    )
    (root / "jobs" / "cdclake" / "__pycache__").mkdir()
    (root / "jobs" / "cdclake" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (root / "conf").mkdir()
    shutil.copy(REPO / "conf" / "pipeline.yaml", root / "conf" / "pipeline.yaml")
    (root / "dags").mkdir()
    (root / "dags" / "cdclake_hourly.py").write_text("# a DAG\n")
    return root


def expected_keys(repo: Path) -> set[str]:
    # The DAG folder carries the job package too (the demo lives outside it), without caches.
    package = repo / "jobs" / "cdclake"
    dag_package = {
        f"{layout.DAG_PACKAGE_PREFIX}/{p.relative_to(package).as_posix()}"
        for p in package.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    return {
        layout.JOB_ENTRY_KEY,
        layout.JOB_PACKAGE_KEY,
        layout.JOB_CONFIG_KEY,
        layout.DAG_CONFIG_KEY,
        layout.MWAA_REQUIREMENTS_KEY,
        "dags/cdclake_hourly.py",
    } | dag_package


def test_build_lays_out_the_bucket(repo, tmp_path):
    env = load_env("dev")
    dist = build(env, tmp_path / "dist", repo=repo)
    files = {p.relative_to(dist).as_posix() for p in dist.rglob("*") if p.is_file()}
    assert files == expected_keys(repo)
    with zipfile.ZipFile(dist / layout.JOB_PACKAGE_KEY) as zf:
        names = zf.namelist()
    assert "cdclake/__init__.py" in names and "cdclake/core/config.py" in names
    assert not [n for n in names if n.endswith((".pyc", ".so", ".pyd"))]  # nothing compiled
    # The job's own package plus the pure-Python part of PyYAML (the lock's version).
    assert {n.split("/")[0] for n in names} == {"cdclake", "yaml", "PyYAML-6.0.2.dist-info"}
    assert "yaml/__init__.py" in names and "PyYAML-6.0.2.dist-info/LICENSE" in names
    for key in (layout.JOB_CONFIG_KEY, layout.DAG_CONFIG_KEY):
        cfg = load_config(dist / key)
        assert cfg.raw_root == f"s3://{env.buckets.raw}/dms"
        assert cfg.curated_root == f"s3://{env.buckets.curated}/lake"
        assert cfg.tables == load_config(REPO / "conf" / "pipeline.yaml").tables


def test_requirements_txt_pins_the_mwaa_runtime(repo, tmp_path):
    dist = build(load_env("dev"), tmp_path / "dist", repo=repo)
    lines = [
        line
        for line in (dist / layout.MWAA_REQUIREMENTS_KEY).read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines == [
        '--constraint "https://raw.githubusercontent.com/apache/airflow/'
        'constraints-3.0.6/constraints-3.12.txt"',
        "apache-airflow-providers-amazon[aiobotocore]==9.12.0",
        "pyarrow==18.1.0",
    ]


def test_zip_is_reproducible(repo, tmp_path):
    env = load_env("dev")
    a = (build(env, tmp_path / "a", repo=repo) / layout.JOB_PACKAGE_KEY).read_bytes()
    b = (build(env, tmp_path / "b", repo=repo) / layout.JOB_PACKAGE_KEY).read_bytes()
    assert a == b


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto_s3(monkeypatch):
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(k, v)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        # moto's backends live in this process: start the next test from an empty account.
        import requests

        requests.post(f"http://127.0.0.1:{port}/moto-api/reset", timeout=10)
        server.stop()


def test_upload_puts_every_object_where_the_dags_look(repo, tmp_path, moto_s3):
    env = load_env("dev")
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name=env.region)
    bucket = env.buckets.artifacts
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": env.region})
    s3.put_object(Bucket=bucket, Key="dags/removed_dag.py", Body=b"old")
    s3.put_object(Bucket=bucket, Key="athena-results/q.csv", Body=b"kept")
    dist = build(env, tmp_path / "dist", repo=repo)
    outputs = {"EmrApplicationId": "00abc", "EmrJobRoleArn": "arn:aws:iam::000000000000:role/x"}

    versions = upload(dist, bucket, outputs=outputs, endpoint_url=moto_s3, region=env.region)

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert set(versions) == keys - {"athena-results/q.csv"}
    assert keys == expected_keys(repo) | {
        layout.DEPLOYMENT_KEY,
        layout.DAG_DEPLOYMENT_KEY,
        "athena-results/q.csv",
    }
    body = s3.get_object(Bucket=bucket, Key=layout.JOB_CONFIG_KEY)["Body"].read()
    assert body == (dist / layout.JOB_CONFIG_KEY).read_bytes()
    for key in (layout.DEPLOYMENT_KEY, layout.DAG_DEPLOYMENT_KEY):
        assert json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) == outputs


@pytest.mark.skipif(
    not (REPO / "jobs" / "cdc_merge.py").is_file(),
    reason="jobs/cdc_merge.py is not in the repo yet (being written in another issue)",
)
def test_make_package_builds_dist(tmp_path):
    res = subprocess.run(
        ["make", "--no-print-directory", "package", "ENV=dev", f"DIST={tmp_path}/dist"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    files = {
        p.relative_to(tmp_path / "dist").as_posix()
        for p in (tmp_path / "dist").rglob("*")
        if p.is_file()
    }
    assert {
        layout.JOB_ENTRY_KEY,
        layout.JOB_PACKAGE_KEY,
        layout.JOB_CONFIG_KEY,
        layout.DAG_CONFIG_KEY,
    } <= files


def test_upload_does_not_write_unchanged_objects_again(repo, tmp_path, moto_s3):
    """MWAA reinstalls requirements.txt for every new object version: same bytes, same one."""
    env = load_env("dev")
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name=env.region)
    bucket = env.buckets.artifacts
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": env.region})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    dist = build(env, tmp_path / "dist", repo=repo)
    key = layout.MWAA_REQUIREMENTS_KEY

    first = upload(dist, bucket, endpoint_url=moto_s3, region=env.region, only={key})
    again = upload(dist, bucket, endpoint_url=moto_s3, region=env.region)
    assert first[key] and again[key] == first[key]
    (dist / key).write_text((dist / key).read_text() + "# changed\n")
    changed = upload(dist, bucket, endpoint_url=moto_s3, region=env.region, only={key})
    assert changed[key] != first[key]
    assert len(s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]) == 2
