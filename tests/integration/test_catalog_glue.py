"""Glue registration on moto (Glue + S3): create, rerun no-op, new column, partition added and
removed, and failures naming the table and the API error. The Delta tables are written by the
real job locally, then copied to the moto bucket the way the job would have written them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import boto3
import cdc_catalog
import pyarrow as pa
import pytest
from moto import mock_aws

from cdclake.catalog.register import CatalogError, register_tables
from tests.integration.conftest import Lake, ts

REGION = "us-east-1"
BUCKET = "curated"
SCHEMA = {"id": pa.int32(), "p": pa.string(), "v": pa.string(), "w": pa.int64()}
BOOKKEEPING = [
    {"Name": "_cdc_op", "Type": "string"},
    {"Name": "_cdc_commit_ts", "Type": "timestamp"},
    {"Name": "_cdc_change_seq", "Type": "string"},
    {"Name": "_cdc_source_file", "Type": "string"},
    {"Name": "_cdc_row_pos", "Type": "bigint"},
]


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        glue = boto3.client("glue", region_name=REGION)
        yield {"s3": s3, "glue": glue}


def sync(s3, local_root: str) -> None:
    """Mirror the local curated root to s3://curated/lake/ (deleted files disappear too)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="lake/"):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    root = Path(local_root)
    for path in root.rglob("*"):
        if path.is_file() and not path.name.endswith(".crc"):
            s3.upload_file(str(path), BUCKET, f"lake/{path.relative_to(root)}")


def partitions(glue, table: str) -> dict[tuple, dict]:
    out = glue.get_partitions(DatabaseName="cdc_lake", TableName=table)["Partitions"]
    return {tuple(p["Values"]): p["StorageDescriptor"] for p in out}


def columns(glue, table: str) -> tuple[list[dict], list[dict]]:
    t = glue.get_table(DatabaseName="cdc_lake", Name=table)["Table"]
    strip = lambda cols: [{"Name": c["Name"], "Type": c["Type"]} for c in cols]  # noqa: E731
    return strip(t["StorageDescriptor"]["Columns"]), strip(t["PartitionKeys"])


def test_register_create_noop_drift_and_partitions(spark, tmp_path, aws):
    s3, glue = aws["s3"], aws["glue"]
    lake = Lake(spark, tmp_path, schema=SCHEMA)
    lake.w.load([{"id": 1, "p": "a", "v": "one"}, {"id": 2, "p": "b", "v": "two"}])
    lake.full()
    local_root = lake.cfg.curated_root
    cfg = dataclasses.replace(lake.cfg, curated_root=f"s3://{BUCKET}/lake")
    sync(s3, local_root)

    # The database is the stack's; without it, the failure names table, call and error.
    with pytest.raises(CatalogError) as err:
        register_tables(cfg, s3=s3, glue=glue)
    assert set(err.value.failures) == {"s.t", "_cdclake.audit"}
    assert err.value.failures["s.t"] == (
        "glue:CreateTable cdc_lake.s_t failed: "
        "EntityNotFoundException: Database cdc_lake not found."
    )
    config = str(Path(lake.cfg.raw_root).parent / "pipeline.yaml")
    doc = Path(config).read_text().replace(local_root, f"s3://{BUCKET}/lake")
    s3_config = tmp_path / "s3-pipeline.yaml"
    s3_config.write_text(doc)
    assert cdc_catalog.main(["--config", str(s3_config)], s3=s3, glue=glue) == 1
    assert cdc_catalog.main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert cdc_catalog.main(["--config", str(s3_config), "--tables", "s.nope"]) == 2

    glue.create_database(DatabaseInput={"Name": "cdc_lake"})
    first = register_tables(cfg, s3=s3, glue=glue)
    manifest = "s3://curated/lake/s/t/_symlink_format_manifest"
    assert first == [
        {
            "table": "s.t",
            "database": "cdc_lake",
            "delta_version": lake.version(),
            "athena_table": "s_t",
            "athena": "created",
            "spectrum_table": "s_t_spectrum",
            "spectrum": "created",
            "partitions": 2,
            "partitions_added": [["a"], ["b"]],
            "partitions_removed": [],
            "partitions_updated": 0,
        },
        {
            "table": "_cdclake.audit",
            "database": "cdc_lake",
            "athena_table": "cdclake_audit",
            "athena": "created",
        },
    ]
    source_cols = [{"Name": "id", "Type": "int"}, {"Name": "v", "Type": "string"}]
    assert columns(glue, "s_t") == (source_cols + BOOKKEEPING, [{"Name": "p", "Type": "string"}])
    athena = glue.get_table(DatabaseName="cdc_lake", Name="s_t")["Table"]
    assert athena["Parameters"]["table_type"] == "DELTA"
    assert athena["StorageDescriptor"]["Location"] == "s3://curated/lake/s/t/"
    spectrum = glue.get_table(DatabaseName="cdc_lake", Name="s_t_spectrum")["Table"]
    assert spectrum["StorageDescriptor"]["Location"] == f"{manifest}/"
    assert {v: sd["Location"] for v, sd in partitions(glue, "s_t_spectrum").items()} == {
        ("a",): f"{manifest}/p=a/",
        ("b",): f"{manifest}/p=b/",
    }

    # Rerun: nothing changes (no new table versions either).
    versions = len(
        glue.get_table_versions(DatabaseName="cdc_lake", TableName="s_t")["TableVersions"]
    )
    again = register_tables(cfg, s3=s3, glue=glue)
    assert [(r["table"], r["athena"], r.get("spectrum")) for r in again] == [
        ("s.t", "unchanged", "unchanged"),
        ("_cdclake.audit", "unchanged", None),
    ]
    assert (again[0]["partitions_added"], again[0]["partitions_removed"]) == ([], [])
    after = glue.get_table_versions(DatabaseName="cdc_lake", TableName="s_t")["TableVersions"]
    assert len(after) == versions

    # Partition b emptied, c appears, and a new source column w.
    lake.w.cdc(
        "2026-11-22T10",
        [
            {"Op": "D", "ts": ts(1), "id": 2},
            {"Op": "I", "ts": ts(2), "id": 3, "p": "c", "v": "three", "w": 30},
        ],
    )
    lake.inc("2026-11-22T11")
    sync(s3, local_root)
    drift = register_tables(cfg, ["s.t"], s3=s3, glue=glue)
    assert [
        (r["table"], r["athena"], r.get("spectrum"), r.get("partitions_added"))
        + (r.get("partitions_removed"),)
        for r in drift
    ] == [
        ("s.t", "updated", "updated", [["c"]], [["b"]]),
        ("_cdclake.audit", "unchanged", None, None, None),
    ]
    assert drift[0]["partitions_updated"] == 1  # a's columns follow the table
    # Delta appends an added column after the existing ones (bookkeeping included).
    new_cols = [*source_cols, *BOOKKEEPING, {"Name": "w", "Type": "bigint"}]
    assert columns(glue, "s_t") == (new_cols, [{"Name": "p", "Type": "string"}])
    assert columns(glue, "s_t_spectrum") == columns(glue, "s_t")
    parts = partitions(glue, "s_t_spectrum")
    assert sorted(parts) == [("a",), ("c",)]
    assert all(
        [c["Name"] for c in sd["Columns"]] == [c["Name"] for c in new_cols] for sd in parts.values()
    )
    # And the CLI agrees that there is nothing left to do.
    assert cdc_catalog.main(["--config", str(s3_config)], s3=s3, glue=glue) == 0
    assert register_tables(cfg, s3=s3, glue=glue)[0]["athena"] == "unchanged"


def test_batch_errors_name_the_table(spark, tmp_path, aws):
    """A partition call's per-item errors (reported in the response, not raised) fail the
    table with the API's error code."""
    s3, glue = aws["s3"], aws["glue"]
    lake = Lake(spark, tmp_path, schema=SCHEMA)
    lake.w.load([{"id": 1, "p": "a", "v": "one"}])
    lake.full()
    cfg = dataclasses.replace(lake.cfg, curated_root=f"s3://{BUCKET}/lake")
    sync(s3, lake.cfg.curated_root)
    glue.create_database(DatabaseInput={"Name": "cdc_lake"})

    class FailingGlue:
        def __getattr__(self, name):
            return getattr(glue, name)

        def batch_create_partition(self, **kwargs):
            return {
                "Errors": [
                    {
                        "PartitionValues": ["a"],
                        "ErrorDetail": {"ErrorCode": "AccessDeniedException", "ErrorMessage": "no"},
                    }
                ]
            }

    with pytest.raises(CatalogError) as err:
        register_tables(cfg, s3=s3, glue=FailingGlue())
    assert err.value.failures == {
        "s.t": "glue:BatchCreatePartition cdc_lake.s_t_spectrum failed for 1 partition(s), "
        "first ['a']: AccessDeniedException: no"
    }
    assert [r["table"] for r in err.value.results] == ["_cdclake.audit"]
