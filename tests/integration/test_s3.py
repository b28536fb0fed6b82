"""The S3 code path against a moto server: ``s3://`` served by s3a, Delta on S3, the symlink
manifest in the curated bucket, the ledger, and ``load_config`` reading ``s3://bucket/key``.

The session-scoped ``spark`` fixture exists before the moto server does, so s3a is pointed at
moto at run time on that session's Hadoop configuration (``fs.s3.impl`` -> S3AFileSystem is
already a session setting of the ``local`` profile) and restored afterwards. Delta needs no
setting for this: its default log store for the s3/s3a/s3n schemes is S3SingleDriverLogStore
(single writer per table, which is what the job is).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from chispa import assert_df_equality
from pyspark.sql import types as T

from cdclake.cli.merge import main
from cdclake.core.config import (
    ConfigFileNotFoundError,
    InvalidSettingError,
    load_config,
    parse_config,
)
from tests.dms import SEQ, TS, DmsTable, make_config

pytestmark = pytest.mark.s3

REGION = "us-east-1"
RAW_BUCKET, CURATED_BUCKET, ARTIFACTS_BUCKET = "raw-bucket", "curated-bucket", "artifacts-bucket"
TABLE = {"schema": "s", "name": "t", "primary_key": ["id"], "partition_by": ["p"]}
SCHEMA = {"id": pa.int32(), "p": pa.string(), "v": pa.string()}
SPARK_SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("p", T.StringType()),
        T.StructField("v", T.StringType()),
    ]
)


# ---- moto server, boto3 and s3a ------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_endpoint():
    """A moto S3 server on 127.0.0.1 (free port), with boto3's environment pointed at it."""
    import requests
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        # boto3 (and so load_config) honours this without an endpoint_url argument.
        mp.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        s3 = _client(endpoint)
        for bucket in (RAW_BUCKET, CURATED_BUCKET, ARTIFACTS_BUCKET):
            s3.create_bucket(Bucket=bucket)
        try:
            yield endpoint
        finally:
            # The backends live in this process: leave nothing behind for other moto tests.
            requests.post(f"{endpoint}/moto-api/reset", timeout=10)
            server.stop()


def _client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


def s3a_settings(endpoint: str) -> dict[str, str]:
    return {
        "fs.s3a.endpoint": endpoint,
        "fs.s3a.endpoint.region": REGION,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "fs.s3a.access.key": "testing",
        "fs.s3a.secret.key": "testing",
        # Fail in seconds, not minutes, if the server is gone.
        "fs.s3a.attempts.maximum": "2",
        "fs.s3a.retry.limit": "2",
        "fs.s3a.connection.establish.timeout": "5000",
        "fs.s3a.connection.timeout": "30000",
    }


@pytest.fixture(scope="module")
def s3_spark(spark, moto_endpoint):
    """The session's Hadoop configuration pointed at moto for this module, then restored.

    S3AFileSystem instances are cached per scheme + bucket (+ user) and keep the settings they
    were created with, so the ones for our buckets are closed (which evicts them) before and
    after: no other test can get a client bound to this server, nor this test a stale one.
    """
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    settings = s3a_settings(moto_endpoint)
    saved = {key: conf.get(key) for key in settings}

    def close_filesystems() -> None:
        for scheme in ("s3", "s3a"):
            for bucket in (RAW_BUCKET, CURATED_BUCKET, ARTIFACTS_BUCKET):
                uri = jvm.java.net.URI.create(f"{scheme}://{bucket}/")
                jvm.org.apache.hadoop.fs.FileSystem.get(uri, conf).close()
        # DeltaLog instances hold the table's FileSystem and cached snapshots.
        jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()

    close_filesystems()
    for key, value in settings.items():
        conf.set(key, value)
    try:
        yield spark
    finally:
        close_filesystems()
        for key, value in saved.items():
            if value is None:
                conf.unset(key)
            else:
                conf.set(key, value)


# ---- a pipeline whose roots are s3:// URIs ---------------------------------------------------
class S3Lake:
    """DMS files written locally by :class:`DmsTable`, then uploaded where DMS would put them;
    the pipeline config itself lives in S3 and the job is started with ``--config s3://...``."""

    def __init__(self, spark, endpoint: str, tmp: Path) -> None:
        self.spark, self.s3, self.tmp = spark, _client(endpoint), tmp
        # A fresh curated prefix per lake: S3SingleDriverLogStore remembers (per JVM) the commit
        # files it wrote, so reusing a table path against a reset server would look like a
        # concurrent writer.
        prefix = f"lake-{uuid.uuid4().hex[:8]}"
        doc = {
            "raw_root": f"s3://{RAW_BUCKET}/dms",
            "curated_root": f"s3://{CURATED_BUCKET}/{prefix}",
            "dms": {"timestamp_column": TS, "change_sequence_column": SEQ},
            "tables": [TABLE],
        }
        self.config_uri = f"s3://{ARTIFACTS_BUCKET}/conf/{prefix}/pipeline.yaml"
        self.s3.put_object(
            Bucket=ARTIFACTS_BUCKET, Key=self.config_uri.split("/", 3)[3], Body=yaml.safe_dump(doc)
        )
        self.cfg = parse_config(doc, relative_roots=False)
        self.table = self.cfg.table("s.t")
        self.path = self.cfg.table_location(self.table)
        self.curated_prefix = self.path.removeprefix(f"s3://{CURATED_BUCKET}/")
        # Same layout, local staging folder: <stage>/raw/s/t/... mirrors s3://raw-bucket/dms/s/t/.
        self.stage = make_config(tmp / "stage", [TABLE])
        self.w = DmsTable(self.stage, "s.t", SCHEMA)
        self.uploaded: set[str] = set()
        self.summary_path = tmp / "summary.json"

    def upload(self) -> list[str]:
        """Upload the staged files not uploaded yet; returns their s3:// URIs."""
        raw = Path(self.stage.raw_root)
        uris = []
        for f in sorted(raw.rglob("*.parquet")):
            key = f"dms/{f.relative_to(raw).as_posix()}"
            if key not in self.uploaded:
                self.s3.upload_file(str(f), RAW_BUCKET, key)
                self.uploaded.add(key)
                uris.append(f"s3://{RAW_BUCKET}/{key}")
        return uris

    def run(self, *args: str) -> dict:
        argv = ["--config", self.config_uri, *args, "--summary-json", str(self.summary_path)]
        assert main(argv, spark=self.spark) == 0
        (rec,) = json.loads(self.summary_path.read_text())
        return rec

    def df(self):
        df = self.spark.read.format("delta").load(self.path)
        return df.select(*[c for c in df.columns if not c.startswith("_")])

    def version(self) -> int:
        from delta.tables import DeltaTable

        return DeltaTable.forPath(self.spark, self.path).history(1).first()["version"]

    def ledger(self):
        return self.spark.read.format("delta").load(self.cfg.state_location(self.table, "ledger"))

    def manifests(self) -> dict[str, list[str]]:
        """``{key: lines}`` of every symlink manifest object of the table."""
        prefix = f"{self.curated_prefix}/_symlink_format_manifest/"
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=CURATED_BUCKET, Prefix=prefix
        )
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        return {
            k[len(prefix) :]: self.s3.get_object(Bucket=CURATED_BUCKET, Key=k)["Body"]
            .read()
            .decode()
            .split()
            for k in keys
            if k.endswith("/manifest")
        }


def h10(minute: int) -> str:
    return f"2026-11-22 10:{minute:02d}:00.000000"


def test_full_incremental_and_rerun_on_s3(s3_spark, moto_endpoint, tmp_path):
    lake = S3Lake(s3_spark, moto_endpoint, tmp_path)
    spark = lake.spark
    # No log store setting is needed: Delta's default for s3 is the single-writer S3 store.
    store = spark.sparkContext._jvm.org.apache.spark.sql.delta.storage.DelegatingLogStore
    assert (
        store.getDefaultLogStoreClassName("s3").get() == "io.delta.storage.S3SingleDriverLogStore"
    )
    assert spark.conf.get("spark.delta.logStore.s3.impl", None) is None

    # Full load.
    lake.w.load(
        [
            {"id": 1, "p": "a", "v": "x"},
            {"id": 2, "p": "a", "v": "y"},
            {"id": 3, "p": "b", "v": "z"},
            {"id": 4, "p": "b", "v": "w"},
        ],
        ts="2026-11-22 09:30:00.000000",
    )
    assert lake.upload() == [f"s3://{RAW_BUCKET}/dms/s/t/LOAD00000001.parquet"]
    rec = lake.run("--load", "full")
    assert (rec["status"], rec["files"], rec["rows_inserted"]) == ("succeeded", 1, 4)
    assert set(lake.manifests()) == {"p=a/manifest", "p=b/manifest"}

    # Incremental: partition b empties (3 moves to c, 4 is deleted), c appears.
    lake.w.cdc(
        "2026-11-22T10",
        [
            {"Op": "U", "ts": h10(1), "seq": "1", "id": 1, "p": "a", "v": "x2"},
            {"Op": "U", "ts": h10(2), "seq": "2", "id": 3, "p": "c", "v": "z2"},
            {"Op": "D", "ts": h10(3), "seq": "3", "id": 4},
        ],
    )
    lake.w.cdc(
        "2026-11-22T10", [{"Op": "I", "ts": h10(4), "seq": "4", "id": 5, "p": "c", "v": "n"}]
    )
    cdc_uris = lake.upload()
    assert len(cdc_uris) == 2 and all(
        u.startswith(f"s3://{RAW_BUCKET}/dms/s/t/2026/11/22/10/") for u in cdc_uris
    )
    rec = lake.run("--load", "incremental", "--until", "2026-11-22T11")
    assert (rec["status"], rec["files"], rec["hours"]) == ("succeeded", 2, ["2026-11-22T10"])
    assert (rec["rows_inserted"], rec["rows_updated"], rec["rows_deleted"]) == (1, 2, 1)
    version = lake.version()
    assert rec["delta_version"] == version

    expected = spark.createDataFrame(
        [(1, "a", "x2"), (2, "a", "y"), (3, "c", "z2"), (5, "c", "n")], SPARK_SCHEMA
    )
    assert_df_equality(lake.df(), expected, ignore_row_order=True, ignore_nullable=True)

    # The manifests: one object per live partition, listing exactly the snapshot's files.
    snapshot = set(spark.read.format("delta").load(lake.path).inputFiles())
    assert snapshot and all(f.startswith(f"{lake.path}/p=") for f in snapshot)
    manifests = lake.manifests()
    assert set(manifests) == {"p=a/manifest", "p=c/manifest"}  # p=b's was removed
    for key, lines in manifests.items():
        part = key.split("/")[0]
        assert lines and all(line.startswith(f"{lake.path}/{part}/") for line in lines)
    listed = [line for lines in manifests.values() for line in lines]
    assert sorted(listed) == sorted(snapshot)

    # The ledger recorded both CDC files by their s3 URI.
    ledger = lake.ledger().select("kind", "file", "data_version").collect()
    cdc_rows = [r for r in ledger if r["kind"] == "cdc"]
    assert sorted(r["file"] for r in cdc_rows) == sorted(cdc_uris)
    assert {r["data_version"] for r in cdc_rows} == {version}

    # Rerun of the same window: the ledger makes it a no-op (no commit, no ledger rows, the
    # manifests untouched). The audit records of all three runs went to S3 (exit status 0).
    rec = lake.run("--load", "incremental", "--until", "2026-11-22T11")
    assert (rec["status"], rec["files"], rec["delta_version"]) == ("noop", 0, None)
    assert lake.version() == version
    assert lake.ledger().count() == len(ledger)
    assert lake.manifests() == manifests


# ---- load_config from s3:// ------------------------------------------------------------------
def _put_config(endpoint: str, key: str, doc: dict) -> str:
    _client(endpoint).put_object(Bucket=ARTIFACTS_BUCKET, Key=key, Body=yaml.safe_dump(doc))
    return f"s3://{ARTIFACTS_BUCKET}/{key}"


def _doc(**over) -> dict:
    return {
        "raw_root": f"s3://{RAW_BUCKET}/dms/",
        "curated_root": f"s3://{CURATED_BUCKET}/lake",
        "tables": [TABLE],
    } | over


def test_load_config_reads_an_s3_object(moto_endpoint):
    uri = _put_config(moto_endpoint, "conf/ok/pipeline.yaml", _doc())
    cfg = load_config(uri)
    assert (cfg.raw_root, cfg.curated_root) == (
        f"s3://{RAW_BUCKET}/dms",
        f"s3://{CURATED_BUCKET}/lake",
    )
    assert cfg.source_path == uri
    assert cfg.table_location(cfg.table("s.t")) == f"s3://{CURATED_BUCKET}/lake/s/t"


@pytest.mark.parametrize(
    "uri",
    [
        f"s3://{ARTIFACTS_BUCKET}/conf/missing.yaml",
        "s3://no-such-bucket/conf/pipeline.yaml",
        f"s3://{ARTIFACTS_BUCKET}/",
    ],
)
def test_load_config_missing_s3_object(moto_endpoint, uri):
    with pytest.raises(ConfigFileNotFoundError, match="pipeline config"):
        load_config(uri)


def test_cli_exits_2_when_the_s3_config_is_missing(moto_endpoint, capsys):
    uri = f"s3://{ARTIFACTS_BUCKET}/conf/missing.yaml"
    assert main(["--config", uri, "--load", "full"]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("root", ["raw_root", "curated_root"])
def test_relative_roots_are_rejected_in_an_s3_config(moto_endpoint, root):
    uri = _put_config(
        moto_endpoint, f"conf/relative-{root}/pipeline.yaml", _doc(**{root: "../lake"})
    )
    with pytest.raises(InvalidSettingError, match=f"{root}: '../lake' is a relative path"):
        load_config(uri)
