"""Two Spark drivers committing to one Delta table on S3 at the same time, through Delta's
DynamoDB log store (the setting every job gets on EMR: cdclake.session.log_store_conf), on a
moto server (S3 through s3a, DynamoDB): every commit a writer reports survives in the table, or
the writer fails loudly; a commit is never lost silently.

Plumbing, test-only: Delta 3.3's log store builds its DynamoDB client from a region and has no
endpoint setting, so the AWS SDK's documented regions-file override
(``com.amazonaws.regions.RegionUtils.fileOverride``) points ``dynamodb`` in the region at a
second, HTTPS listener of the same moto server (the SDK prefixes https; its
``disableCertChecking`` accepts the throwaway certificate). Needs the
``delta-storage-s3-dynamodb`` jar in ``.jars/`` (make setup fetches it from Maven Central).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cdclake.session import LOG_STORE_CLASS, local_jars, log_store_conf
from tests.runtime import ROOT

pytestmark = [pytest.mark.spark, pytest.mark.moto, pytest.mark.slow]

REGION = "us-east-1"
BUCKET, TABLE = "lake", "s3a://lake/two_writers"
LOG_TABLE = "cdclake-test-delta-log"
COMMITS = 8  # appends per writer

WRITER = """
import json, os, sys, time
sys.path[:0] = [{jobs!r}, {root!r}]
from cdclake.session import build_session
name, table, extra, folder = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
spark = build_session("local", app_name="writer-" + name, extra=extra)
# Both drivers warm up the write path (JIT, Delta's classes) on a table of their own, so the
# race starts even; writer a also creates the shared table (version 0).
spark.createDataFrame([(name, -1)], "writer string, i int").write.format("delta").save(
    table + "_warmup_" + name)
if name == "a":
    spark.createDataFrame([], "writer string, i int").write.format("delta").save(table)
open(os.path.join(folder, "ready-" + name), "w").close()
while not os.path.exists(os.path.join(folder, "go")):
    time.sleep(0.02)
for i in range({commits}):
    spark.createDataFrame([(name, i)], "writer string, i int").write.format("delta").mode(
        "append").save(table)
    print("COMMITTED " + json.dumps([name, i]), flush=True)
"""


@pytest.fixture(scope="module")
def moto_pair(tmp_path_factory):
    """One moto backend, two listeners: HTTP (S3 for s3a) and HTTPS (DynamoDB for the SDK)."""
    import boto3
    import requests
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    http = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    http.start()
    host, port = http.get_host_and_port()
    app = DomainDispatcherApplication(create_backend_app)
    tls = make_server(
        "127.0.0.1", 0, app, True, request_handler=MotoRequestHandler, ssl_context="adhoc"
    )
    threading.Thread(target=tls.serve_forever, daemon=True).start()
    endpoint = f"http://{host}:{port}"
    try:
        yield {
            "endpoint": endpoint,
            "tls_port": tls.server_address[1],
            "client": lambda n: boto3.client(
                n,
                endpoint_url=endpoint,
                region_name=REGION,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            ),
        }
    finally:
        tls.shutdown()
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)
        http.stop()


def regions_override(path: Path, tls_port: int) -> Path:
    """The AWS SDK v1 regions file: DynamoDB of REGION at the moto HTTPS listener."""
    path.write_text(
        "<XmlResponse><Regions><Region>"
        f"<Name>{REGION}</Name><Endpoint><ServiceName>dynamodb</ServiceName>"
        "<Http>false</Http><Https>true</Https>"
        f"<Hostname>127.0.0.1:{tls_port}</Hostname></Endpoint>"
        "</Region></Regions></XmlResponse>"
    )
    return path


def table_rows(s3, prefix: str) -> tuple[list[int], set[tuple[str, int]], str]:
    """(versions in the log, rows of every file the log adds, the writer of each version),
    read without Spark."""
    import pyarrow.parquet as pq

    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    versions = sorted(int(Path(k).stem) for k in keys if k.endswith(".json") and "/.tmp/" not in k)
    rows: set[tuple[str, int]] = set()
    order = ""
    for v in versions:
        body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}_delta_log/{v:020d}.json")["Body"]
        for line in body.read().decode().splitlines():
            add = json.loads(line).get("add")
            if add:
                data = s3.get_object(Bucket=BUCKET, Key=f"{prefix}{add['path']}")["Body"].read()
                for r in pq.read_table(io.BytesIO(data)).to_pylist():
                    rows.add((r["writer"], r["i"]))
                    order += r["writer"]
    return versions, rows, order


def test_two_writers_commit_to_one_table_at_once(moto_pair, tmp_path):
    if not any("delta-storage-s3-dynamodb" in j for j in local_jars()):
        pytest.skip("delta-storage-s3-dynamodb jar not in .jars/ (Maven registry lacked it)")
    s3, ddb = moto_pair["client"]("s3"), moto_pair["client"]("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    ddb.create_table(  # as the stack creates it (infra/stack/logstore.py)
        TableName=LOG_TABLE,
        AttributeDefinitions=[
            {"AttributeName": "tablePath", "AttributeType": "S"},
            {"AttributeName": "fileName", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "tablePath", "KeyType": "HASH"},
            {"AttributeName": "fileName", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    override = regions_override(tmp_path / "regions.xml", moto_pair["tls_port"])
    extra = {
        **log_store_conf(LOG_TABLE, REGION),
        "spark.driver.extraJavaOptions": (
            f"-Dcom.amazonaws.regions.RegionUtils.fileOverride={override} "
            "-Dcom.amazonaws.sdk.disableCertChecking=true"
        ),
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "1",
    }
    assert extra["spark.delta.logStore.s3a.impl"] == LOG_STORE_CLASS
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(jobs=str(ROOT / "jobs"), root=str(ROOT), commits=COMMITS))
    env = {
        **__import__("os").environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": moto_pair["endpoint"],
        "CDCLAKE_SPARK_MASTER": "local[1]",
        "CDCLAKE_DRIVER_MEMORY": "1g",
        "CDCLAKE_WAREHOUSE_DIR": str(tmp_path / "warehouse"),
    }
    env.pop("AWS_ENDPOINT_URL", None)

    def start(name: str) -> subprocess.Popen:
        return subprocess.Popen(  # noqa: S603 - this interpreter on the script above
            [sys.executable, str(script), name, TABLE, json.dumps(extra), str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    writers = {"a": start("a"), "b": start("b")}
    deadline = time.monotonic() + 600
    while not all((tmp_path / f"ready-{n}").exists() for n in writers):
        assert all(p.poll() is None for p in writers.values()), {
            n: p.communicate()[1][-3000:] for n, p in writers.items() if p.poll() is not None
        }
        assert time.monotonic() < deadline, "writers did not start"
        time.sleep(0.1)
    (tmp_path / "go").touch()  # both drivers commit from here on, at the same time
    results = {n: p.communicate(timeout=600) for n, p in writers.items()}

    committed: set[tuple[str, int]] = set()
    for n, (out, err) in results.items():
        ok = [
            tuple(json.loads(line.split(" ", 1)[1]))
            for line in out.splitlines()
            if line.startswith("COMMITTED ")
        ]
        committed |= {(str(w), int(i)) for w, i in ok}
        if writers[n].returncode != 0:  # allowed: failing loudly, with the reason
            assert "Exception" in err, err[-3000:]
        else:
            assert len(ok) == COMMITS, (n, out, err[-3000:])

    prefix = TABLE.removeprefix(f"s3a://{BUCKET}/") + "/"  # (not the warm-up tables)
    versions, rows, order = table_rows(s3, prefix)
    print(f"writers of versions 1..{len(versions) - 1}: {order}")
    assert rows == committed, "a commit a writer reported is missing from the table"
    assert versions == list(range(len(versions)))  # one file per version, no gaps
    assert len(versions) == 1 + len(committed)
    # Every commit went through the log store's DynamoDB table.
    items = ddb.scan(TableName=LOG_TABLE)["Items"]
    names = {i["fileName"]["S"] for i in items}
    assert {f"{v:020d}.json" for v in versions} <= names
    assert {i["tablePath"]["S"] for i in items} >= {TABLE}
    assert {w for w, _ in committed} == {"a", "b"}
