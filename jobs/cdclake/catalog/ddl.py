"""Catalog definitions generated from the pipeline config and a table's actual Delta schema.

Pure functions: Glue ``TableInput``/``PartitionInput`` documents (what
:mod:`cdclake.catalog.register` sends) and the equivalent Athena and Redshift DDL text (what
``sql/`` holds). Nothing here is written per table by hand, so a new table or a new column
needs no SQL edit.

Names: each source table ``<schema>.<table>`` becomes, in the configured Glue database,

- ``<schema>_<table>``: Athena's native Delta table (``table_type=DELTA``, real columns);
- ``<schema>_<table>_spectrum``: Redshift Spectrum's external table over the symlink
  manifest (Parquet SerDe, ``SymlinkTextInputFormat``), one Glue partition per manifest folder;
- for a table that keeps a history, ``<schema>_<table>_history`` and
  ``<schema>_<table>_history_spectrum``, the same two over the history table;

and the job's audit table is ``cdclake_audit`` (Athena, for the validation queries).

``sql/`` is regenerated from these by :mod:`cdclake.catalog.sqlgen`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cdclake.catalog.deltalog import MANIFEST_DIR, NULL_PARTITION, Field, TableMeta
from cdclake.catalog.types import DdlError, hive_type, redshift_type
from cdclake.core.columns import BOOKKEEPING_COLUMNS, HISTORY_COLUMNS, IS_CURRENT
from cdclake.core.config import HISTORY_SUFFIX, PipelineConfig, TableConfig
from cdclake.core.uris import join_uri, s3_location

SPECTRUM_SUFFIX = "_spectrum"
AUDIT_TABLE = "cdclake_audit"
AUDIT_LABEL = "_cdclake.audit"  # how registration results and errors name the audit table
MANAGED_BY = {"cdclake.managed_by": "cdclake"}  # marks tables this code may update
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
SYMLINK_INPUT = "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
IGNORE_KEY_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"


# ---- names -----------------------------------------------------------------------------------
def athena_table_name(table: TableConfig) -> str:
    """Glue lowercases names; ``schema.table`` is flattened as ``schema_table``."""
    return f"{table.schema}_{table.name}".lower()


def spectrum_table_name(table: TableConfig) -> str:
    return athena_table_name(table) + SPECTRUM_SUFFIX


def history_table_name(table: TableConfig) -> str:
    """Athena's name of the table's history: ``<schema>_<table>_history``."""
    return athena_table_name(table) + HISTORY_SUFFIX


def history_spectrum_name(table: TableConfig) -> str:
    return history_table_name(table) + SPECTRUM_SUFFIX


def check_names(cfg: PipelineConfig) -> None:
    """Two configured tables (or histories) must not flatten to the same catalog name
    (``a_b.c``/``a.b_c``)."""
    seen: dict[str, str] = {}
    for label, name in _catalog_names(cfg):
        if name in seen or name == AUDIT_TABLE:
            other = seen.get(name, "the audit table")
            raise DdlError(f"tables '{other}' and '{label}' both map to catalog name '{name}'")
        seen[name] = label


def _catalog_names(cfg: PipelineConfig) -> list[tuple[str, str]]:
    names = []
    for t in cfg.tables:
        names.append((t.qualified_name, athena_table_name(t)))
        if t.history:
            names.append((f"{t.schema}.{t.history_name}", history_table_name(t)))
    return names


def table_location(cfg: PipelineConfig, table: TableConfig, location_root: str | None = None):
    """The table's folder, under ``location_root`` instead of the config's curated root when
    given (to write DDL for another environment)."""
    root = location_root or cfg.curated_root
    return s3_location(join_uri(root, table.schema, table.name))


def history_location(cfg: PipelineConfig, table: TableConfig, location_root: str | None = None):
    """The table's history folder (``<table>_history`` beside the table)."""
    root = location_root or cfg.curated_root
    return s3_location(join_uri(root, table.schema, table.history_name))


def history_meta(live: TableMeta, partition_columns: Sequence[str]) -> TableMeta:
    """The shape a history table has, from its live table's: the source columns, the
    interval columns, then the change columns (for DDL written before the history exists)."""
    data = [f for f in live.fields if f.name not in BOOKKEEPING_COLUMNS]
    interval = [Field(c, "boolean" if c == IS_CURRENT else "timestamp") for c in HISTORY_COLUMNS]
    change = [f for f in live.fields if f.name in BOOKKEEPING_COLUMNS]
    fields = (*data, *interval, *change)
    return TableMeta(live.version, fields, tuple(partition_columns), live.configuration)


def audit_location(cfg: PipelineConfig, location_root: str | None = None) -> str:
    return s3_location(join_uri(location_root or cfg.curated_root, "_cdclake", "audit"))


# ---- Glue documents -------------------------------------------------------------------------
def _columns(fields: Sequence[Any]) -> list[dict[str, str]]:
    return [{"Name": f.name.lower(), "Type": hive_type(f.type)} for f in fields]


def athena_table_input(name: str, meta: TableMeta, location: str) -> dict[str, Any]:
    """Athena's native Delta table, with the real columns and partition keys so the catalog
    (and Lake Formation, views, the console) show them; Athena itself reads ``_delta_log``."""
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "table_type": "DELTA",
            "EXTERNAL": "TRUE",
            # Spark reading through the Glue catalog (EMR) then treats it as a Delta table.
            "spark.sql.sources.provider": "delta",
            **MANAGED_BY,
        },
        "PartitionKeys": _columns(meta.partition_fields),
        "StorageDescriptor": {
            "Columns": _columns(meta.data_fields),
            "Location": location.rstrip("/") + "/",
            "InputFormat": PARQUET_INPUT,
            "OutputFormat": PARQUET_OUTPUT,
            "SerdeInfo": {
                "SerializationLibrary": PARQUET_SERDE,
                "Parameters": {"path": location.rstrip("/") + "/"},
            },
        },
    }


def _manifest_sd(meta: TableMeta, location: str) -> dict[str, Any]:
    return {
        "Columns": _columns(meta.data_fields),
        "Location": location.rstrip("/") + "/",
        "InputFormat": SYMLINK_INPUT,
        "OutputFormat": IGNORE_KEY_OUTPUT,
        "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {}},
    }


def spectrum_table_input(name: str, meta: TableMeta, location: str) -> dict[str, Any]:
    """Redshift Spectrum's table: Parquet files listed by ``_symlink_format_manifest/``."""
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"EXTERNAL": "TRUE", "classification": "parquet", **MANAGED_BY},
        "PartitionKeys": _columns(meta.partition_fields),
        "StorageDescriptor": _manifest_sd(meta, join_uri(location, MANIFEST_DIR)),
    }


def spectrum_partition_input(
    meta: TableMeta, values: Sequence[str | None], folder: str
) -> dict[str, Any]:
    """One manifest folder as a Glue partition (null values as Hive's default partition)."""
    return {
        "Values": [v if v is not None else NULL_PARTITION for v in values],
        "StorageDescriptor": _manifest_sd(meta, s3_location(folder)),
    }


# ---- DDL text -------------------------------------------------------------------------------
def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def athena_ddl(database: str, name: str, location: str) -> str:
    """Athena's own DDL for the native Delta table: no column list (it reads the log)."""
    return (
        f"create external table if not exists {database}.{name}\n"
        f"location {_sql_string(location.rstrip('/') + '/')}\n"
        "tblproperties ('table_type' = 'DELTA');\n"
    )


def redshift_schema_ddl(schema: str, database: str, iam_role: str = "default") -> str:
    """External schema over the Glue database. ``iam_role``: an ARN, or ``default`` (the
    cluster's default role) so no account id is written down."""
    role = "default" if iam_role == "default" else _sql_string(iam_role)
    return (
        f"create external schema if not exists {schema}\n"
        "from data catalog\n"
        f"database {_sql_string(database)}\n"
        f"iam_role {role};\n"
    )


def redshift_table_ddl(schema: str, name: str, meta: TableMeta, location: str) -> str:
    """Spectrum's external table over the manifest (what the Glue registration also creates)."""
    cols = ",\n".join(f"    {f.name.lower()} {redshift_type(f.type)}" for f in meta.data_fields)
    parts = ", ".join(f"{f.name.lower()} {redshift_type(f.type)}" for f in meta.partition_fields)
    return (
        f"create external table {schema}.{name} (\n{cols}\n)\n"
        + (f"partitioned by ({parts})\n" if parts else "")
        + f"row format serde {_sql_string(PARQUET_SERDE)}\n"
        f"stored as inputformat {_sql_string(SYMLINK_INPUT)}\n"
        f"outputformat {_sql_string(IGNORE_KEY_OUTPUT)}\n"
        f"location {_sql_string(join_uri(location, MANIFEST_DIR) + '/')};\n"
    )


def redshift_partition_ddl(
    schema: str,
    name: str,
    meta: TableMeta,
    added: Mapping[tuple[str | None, ...], str],
    removed: Sequence[tuple[str | None, ...]] = (),
) -> str:
    """``alter table ... add/drop partition`` statements for Spectrum (manifest folders)."""

    def spec(values: Sequence[str | None]) -> str:
        return ", ".join(
            f"{c.lower()} = {_sql_string(v if v is not None else NULL_PARTITION)}"
            for c, v in zip(meta.partition_columns, values)
        )

    out = [
        f"alter table {schema}.{name} add if not exists partition ({spec(v)})\n"
        f"location {_sql_string(s3_location(folder).rstrip('/') + '/')};\n"
        for v, folder in sorted(added.items(), key=str)
    ]
    out += [
        f"alter table {schema}.{name} drop partition ({spec(v)});\n"
        for v in sorted(removed, key=str)
    ]
    return "".join(out)
