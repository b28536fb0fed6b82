"""DDL and Glue documents generated from the config and a table's Delta schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdclake.catalog.ddl import (
    PARQUET_SERDE,
    DdlError,
    athena_ddl,
    athena_table_input,
    check_names,
    hive_type,
    redshift_partition_ddl,
    redshift_table_ddl,
    redshift_type,
    spectrum_partition_input,
    spectrum_table_input,
)
from cdclake.catalog.deltalog import TableMeta, parse_metadata
from cdclake.catalog.sqlgen import render_sql_files
from cdclake.core.config import load_config, parse_config

REPO = Path(__file__).resolve().parents[2]


def meta(fields: list[tuple[str, object]], partitions: tuple[str, ...] = ()) -> TableMeta:
    schema = {
        "type": "struct",
        "fields": [{"name": n, "type": t, "nullable": True} for n, t in fields],
    }
    return parse_metadata(
        {"schemaString": json.dumps(schema), "partitionColumns": list(partitions)}, 3
    )


TRAVEL = meta(
    [("trip_id", "integer"), ("route_id", "string"), ("fare", "decimal(10,2)"),
     ("_cdc_commit_ts", "timestamp"), ("_cdc_row_pos", "long")],
    ("route_id",),
)  # fmt: skip


@pytest.mark.parametrize(
    ("spark_type", "hive", "redshift"),
    [
        ("integer", "int", "int"),
        ("long", "bigint", "bigint"),
        ("byte", "tinyint", "smallint"),
        ("string", "string", "varchar(65535)"),
        ("double", "double", "double precision"),
        ("timestamp_ntz", "timestamp", "timestamp"),
        ("decimal(10,2)", "decimal(10,2)", "decimal(10, 2)"),
        ({"type": "array", "elementType": "string"}, "array<string>", "array<varchar(65535)>"),
        (
            {"type": "map", "keyType": "string", "valueType": "long"},
            "map<string,bigint>",
            "map<varchar(65535),bigint>",
        ),
    ],
)
def test_types(spark_type, hive, redshift):
    assert (hive_type(spark_type), redshift_type(spark_type)) == (hive, redshift)


def test_unknown_type_is_named():
    with pytest.raises(DdlError, match="variant"):
        hive_type("variant")


def test_athena_table_input_has_real_columns_and_partition_keys():
    doc = athena_table_input("s_t", TRAVEL, "s3://b/lake/s/t")
    assert doc == {
        "Name": "s_t",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "table_type": "DELTA",
            "EXTERNAL": "TRUE",
            "spark.sql.sources.provider": "delta",
            "cdclake.managed_by": "cdclake",
        },
        "PartitionKeys": [{"Name": "route_id", "Type": "string"}],
        "StorageDescriptor": {
            "Columns": [
                {"Name": "trip_id", "Type": "int"},
                {"Name": "fare", "Type": "decimal(10,2)"},
                {"Name": "_cdc_commit_ts", "Type": "timestamp"},
                {"Name": "_cdc_row_pos", "Type": "bigint"},
            ],
            "Location": "s3://b/lake/s/t/",
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {
                "SerializationLibrary": PARQUET_SERDE,
                "Parameters": {"path": "s3://b/lake/s/t/"},
            },
        },
    }


def test_spectrum_table_and_partition_read_the_manifest():
    table = spectrum_table_input("s_t_spectrum", TRAVEL, "s3://b/lake/s/t")
    sd = table["StorageDescriptor"]
    assert sd["Location"] == "s3://b/lake/s/t/_symlink_format_manifest/"
    assert sd["InputFormat"] == "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
    assert sd["OutputFormat"] == "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    part = spectrum_partition_input(
        TRAVEL, ("a b",), "s3a://b/lake/s/t/_symlink_format_manifest/route_id=a%20b"
    )
    assert part["Values"] == ["a b"]
    assert part["StorageDescriptor"] == dict(
        sd, Location="s3://b/lake/s/t/_symlink_format_manifest/route_id=a%20b/"
    )
    null = spectrum_partition_input(TRAVEL, (None,), "s3://b/x/route_id=__HIVE_DEFAULT_PARTITION__")
    assert null["Values"] == ["__HIVE_DEFAULT_PARTITION__"]


def test_redshift_ddl_text():
    assert redshift_table_ddl("lake", "s_t_spectrum", TRAVEL, "s3://b/lake/s/t") == (
        "create external table lake.s_t_spectrum (\n"
        "    trip_id int,\n"
        "    fare decimal(10, 2),\n"
        "    _cdc_commit_ts timestamp,\n"
        "    _cdc_row_pos bigint\n"
        ")\n"
        "partitioned by (route_id varchar(65535))\n"
        "row format serde 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe'\n"
        "stored as inputformat 'org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat'\n"
        "outputformat 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'\n"
        "location 's3://b/lake/s/t/_symlink_format_manifest/';\n"
    )
    parts = redshift_partition_ddl(
        "lake", "s_t_spectrum", TRAVEL, {("o'k",): "s3://b/m/route_id=o%27k"}, [("gone",)]
    )
    assert parts == (
        "alter table lake.s_t_spectrum add if not exists partition (route_id = 'o''k')\n"
        "location 's3://b/m/route_id=o%27k/';\n"
        "alter table lake.s_t_spectrum drop partition (route_id = 'gone');\n"
    )


def test_athena_ddl_has_no_column_list():
    assert athena_ddl("db", "s_t", "s3a://b/lake/s/t") == (
        "create external table if not exists db.s_t\n"
        "location 's3a://b/lake/s/t/'\n"
        "tblproperties ('table_type' = 'DELTA');\n"
    )


def test_flattened_name_clash_is_refused(tmp_path):
    cfg = parse_config(
        {
            "raw_root": "raw",
            "curated_root": "cur",
            "tables": [
                {"schema": "a_b", "name": "c", "primary_key": ["id"]},
                {"schema": "a", "name": "b_c", "primary_key": ["id"]},
            ],
        },
        base_dir=tmp_path,
    )
    with pytest.raises(DdlError, match="'a_b.c' and 'a.b_c' both map to catalog name 'a_b_c'"):
        check_names(cfg)


def test_checked_in_sql_is_what_the_generator_writes():
    """sql/ is generated, not hand-edited: the schema-independent files (Athena DDL, the
    external schema, validation queries) equal a fresh rendering, and every table has its
    Redshift DDL."""
    cfg = load_config(REPO / "conf" / "pipeline.yaml")
    metas = {t.qualified_name: TRAVEL for t in cfg.tables}
    files = render_sql_files(cfg, metas, location_root="s3://example-cdclake-dev-curated/lake")
    on_disk = {
        str(p.relative_to(REPO / "sql")): p.read_text()
        for p in (REPO / "sql").rglob("*.sql")
        if "analyst" not in p.parts
    }
    assert set(on_disk) == set(files)
    schema_independent = {k for k in files if not k.startswith("redshift/ddl/delta_")}
    assert {k: on_disk[k] for k in schema_independent} == {k: files[k] for k in schema_independent}
