"""Pure parts of catalog registration: reading the Delta log and manifests without Spark,
and deciding what to change in Glue."""

from __future__ import annotations

import json

import pytest

from cdclake.catalog.ddl import spectrum_partition_input, spectrum_table_input
from cdclake.catalog.deltalog import (
    DeltaLogError,
    LocalStore,
    manifest_partitions,
    parse_partition_path,
    read_table_meta,
)
from cdclake.catalog.glue import plan_partitions, table_differs
from tests.unit.test_ddl import TRAVEL, meta


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("route_id=AZ", ("AZ",)),
        ("route_id=a%20b%3Ac%2Fd", ("a b:c/d",)),
        ("route_id=__HIVE_DEFAULT_PARTITION__", (None,)),
    ],
)
def test_partition_values_from_manifest_folders(path, values):
    assert parse_partition_path(path, ("route_id",)) == values


def test_partition_folder_must_match_the_columns():
    with pytest.raises(DeltaLogError, match="expected 'a=...'"):
        parse_partition_path("b=1/a=2", ("a", "b"))


def _commit(log, version, *actions):
    (log / f"{version:020d}.json").write_text("\n".join(json.dumps(a) for a in actions) + "\n")


def _meta_action(fields, partitions):
    schema = {
        "type": "struct",
        "fields": [{"name": n, "type": t, "nullable": True} for n, t in fields],
    }
    return {"metaData": {"schemaString": json.dumps(schema), "partitionColumns": partitions}}


def test_newest_metadata_wins_and_the_version_is_the_newest_commit(tmp_path):
    log = tmp_path / "t" / "_delta_log"
    log.mkdir(parents=True)
    _commit(log, 0, {"protocol": {}}, _meta_action([("id", "integer"), ("p", "string")], ["p"]))
    _commit(log, 1, _meta_action([("id", "integer"), ("p", "string"), ("w", "long")], ["p"]))
    _commit(log, 2, {"add": {"path": "p=a/x.parquet"}})
    m = read_table_meta(LocalStore(), str(tmp_path / "t"))
    assert (m.version, [f.name for f in m.fields], m.partition_columns) == (
        2,
        ["id", "p", "w"],
        ("p",),
    )
    assert [f.name for f in m.data_fields] == ["id", "w"]


def test_no_delta_table_is_named(tmp_path):
    with pytest.raises(DeltaLogError, match=f"no Delta table at {tmp_path}"):
        read_table_meta(LocalStore(), str(tmp_path))


def test_manifest_partitions(tmp_path):
    root = tmp_path / "_symlink_format_manifest"
    for folder in ("p=a", "p=b%2Fc"):
        (root / folder).mkdir(parents=True)
        (root / folder / "manifest").write_text("file:/x.parquet\n")
    (root / "p=empty").mkdir()  # no manifest file: not a partition
    assert manifest_partitions(LocalStore(), str(tmp_path), ("p",)) == {
        ("a",): str(root / "p=a"),
        ("b/c",): str(root / "p=b%2Fc"),
    }


def test_table_differs_ignores_parameters_added_by_others():
    desired = spectrum_table_input("t_spectrum", TRAVEL, "s3://b/t")
    existing = dict(desired, Parameters={**desired["Parameters"], "transient_lastDdlTime": "1"})
    existing["StorageDescriptor"] = dict(desired["StorageDescriptor"], Compressed=False)
    assert not table_differs(existing, desired)
    drifted = spectrum_table_input(
        "t_spectrum",
        meta([("trip_id", "integer"), ("route_id", "string"), ("w", "long")], ("route_id",)),
        "s3://b/t",
    )
    assert table_differs(existing, drifted)


def test_plan_partitions_adds_removes_and_updates():
    new = meta([("trip_id", "integer"), ("route_id", "string"), ("w", "long")], ("route_id",))

    def part(m, v):
        return spectrum_partition_input(m, (v,), f"s3://b/t/_symlink_format_manifest/route_id={v}")

    existing = {("a",): part(TRAVEL, "a"), ("b",): part(TRAVEL, "b"), ("c",): part(new, "c")}
    desired = {("a",): part(new, "a"), ("c",): part(new, "c"), ("d",): part(new, "d")}
    create, delete, update = plan_partitions(existing, desired)
    assert (create, delete, update) == ([part(new, "d")], [("b",)], [part(new, "a")])


# ---- reading a real lake table past its checkpoints (Spark writes it, the reader has no Spark)
def test_lake_table_read_past_its_first_checkpoint(spark, tmp_path):
    """A lake table created with the job's properties checkpoints every CHECKPOINT_INTERVAL
    commits; the catalog reader then takes the schema from the Parquet checkpoint (pyarrow,
    as on MWAA), also without ``_last_checkpoint`` and after the early commits are cleaned up,
    and from a later JSON commit once the schema changes again."""
    from pyspark.sql import types as T

    from cdclake.lake import tables
    from cdclake.session import CHECKPOINT_INTERVAL

    path = str(tmp_path / "lake")
    schema = T.StructType(
        [
            T.StructField("id", T.IntegerType()),
            T.StructField("p", T.StringType()),
            T.StructField("v", T.StringType()),
        ]
    )
    tables.create(spark, path, schema, ["p"])  # version 0
    for i in range(CHECKPOINT_INTERVAL):  # versions 1 .. CHECKPOINT_INTERVAL
        spark.createDataFrame([(i, "a", "x")], schema).write.format("delta").mode("append").save(
            path
        )
    log = tmp_path / "lake" / "_delta_log"
    assert (log / f"{CHECKPOINT_INTERVAL:020d}.checkpoint.parquet").is_file()

    expected = ([("id", "integer"), ("p", "string"), ("v", "string")], ("p",))

    def read() -> tuple:
        m = read_table_meta(LocalStore(), path)
        assert m.configuration["delta.checkpointInterval"] == str(CHECKPOINT_INTERVAL)
        return m.version, ([(f.name, f.type) for f in m.fields], m.partition_columns)

    assert read() == (CHECKPOINT_INTERVAL, expected)  # metaData only in the checkpoint
    (log / "_last_checkpoint").unlink()  # a hint Delta may not have written
    assert read() == (CHECKPOINT_INTERVAL, expected)
    for old in range(CHECKPOINT_INTERVAL):  # log cleanup removed the commits before it
        (log / f"{old:020d}.json").unlink()
    assert read() == (CHECKPOINT_INTERVAL, expected)

    wider = T.StructType([*schema.fields, T.StructField("w", T.LongType())])
    spark.createDataFrame([(99, "b", "y", 7)], wider).write.format("delta").mode("append").option(
        "mergeSchema", "true"
    ).save(path)
    assert read() == (CHECKPOINT_INTERVAL + 1, ([*expected[0], ("w", "long")], ("p",)))


class _FailingStore(LocalStore):
    def __init__(self, error: Exception) -> None:
        self.error = error

    def read(self, uri: str) -> bytes:
        if uri.endswith("_last_checkpoint"):
            raise self.error
        return super().read(uri)


def test_read_errors_other_than_a_missing_file_are_not_swallowed(tmp_path):
    log = tmp_path / "t" / "_delta_log"
    log.mkdir(parents=True)
    _commit(log, 0, _meta_action([("id", "integer")], []))
    with pytest.raises(PermissionError):
        read_table_meta(_FailingStore(PermissionError("AccessDenied")), str(tmp_path / "t"))
    (log / "_last_checkpoint").write_text("{not json")
    with pytest.raises(DeltaLogError, match="_last_checkpoint: unreadable"):
        read_table_meta(LocalStore(), str(tmp_path / "t"))
    (log / "_last_checkpoint").unlink()
    assert read_table_meta(LocalStore(), str(tmp_path / "t")).version == 0  # absent: fine


def test_s3_store_reports_a_missing_object_as_file_not_found():
    import boto3
    from botocore.stub import Stubber

    from cdclake.catalog.deltalog import S3Store

    client = boto3.client(
        "s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        stub.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
        stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(FileNotFoundError):
            S3Store(client).read("s3://b/t/_delta_log/_last_checkpoint")
        with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
            S3Store(client).read("s3://b/t/_delta_log/_last_checkpoint")
