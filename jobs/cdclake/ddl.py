"""Catalog definitions generated from the pipeline config and a table's actual Delta schema.

Pure functions: Glue ``TableInput``/``PartitionInput`` documents (what :mod:`cdclake.catalog`
sends) and the equivalent Athena and Redshift DDL text (what ``sql/`` holds). Nothing here is
written per table by hand, so a new table or a new column needs no SQL edit.

Names: each source table ``<schema>.<table>`` becomes, in the configured Glue database,

- ``<schema>_<table>``: Athena's native Delta table (``table_type=DELTA``, real columns);
- ``<schema>_<table>_spectrum``: Redshift Spectrum's external table over the symlink
  manifest (Parquet SerDe, ``SymlinkTextInputFormat``), one Glue partition per manifest folder;

and the job's audit table is ``cdclake_audit`` (Athena, for the validation queries).

Regenerate ``sql/``::

    python -m cdclake.ddl --config conf/pipeline.yaml --out sql \\
        --location-root s3://example-cdclake-dev-curated/lake
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cdclake.config import ConfigError, PipelineConfig, TableConfig, join_uri, load_config
from cdclake.deltalog import MANIFEST_DIR, DeltaLogError, TableMeta, read_table_meta, store_for

log = logging.getLogger(__name__)

SPECTRUM_SUFFIX = "_spectrum"
AUDIT_TABLE = "cdclake_audit"
MANAGED_BY = {"cdclake.managed_by": "cdclake"}  # marks tables this code may update
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
SYMLINK_INPUT = "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
IGNORE_KEY_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
# Redshift's longest VARCHAR; Spectrum reads Parquet strings into it.
REDSHIFT_STRING = "varchar(65535)"

_HIVE = {
    "string": "string",
    "integer": "int",
    "long": "bigint",
    "short": "smallint",
    "byte": "tinyint",
    "boolean": "boolean",
    "double": "double",
    "float": "float",
    "date": "date",
    "timestamp": "timestamp",
    "timestamp_ntz": "timestamp",
    "binary": "binary",
}
_REDSHIFT = {
    "string": REDSHIFT_STRING,
    "integer": "int",
    "long": "bigint",
    "short": "smallint",
    "byte": "smallint",  # Redshift has no tinyint
    "boolean": "boolean",
    "double": "double precision",
    "float": "real",
    "date": "date",
    "timestamp": "timestamp",
    "timestamp_ntz": "timestamp",
    "binary": "varbyte",
}
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


class DdlError(ValueError):
    """A table cannot be described for an engine (e.g. a type it has no equivalent for)."""


# ---- names -----------------------------------------------------------------------------------
def athena_table_name(table: TableConfig) -> str:
    """Glue lowercases names; ``schema.table`` is flattened as ``schema_table``."""
    return f"{table.schema}_{table.name}".lower()


def spectrum_table_name(table: TableConfig) -> str:
    return athena_table_name(table) + SPECTRUM_SUFFIX


def check_names(cfg: PipelineConfig) -> None:
    """Two configured tables must not flatten to the same catalog name (``a_b.c``/``a.b_c``)."""
    seen: dict[str, str] = {}
    for t in cfg.tables:
        name = athena_table_name(t)
        if name in seen or name == AUDIT_TABLE:
            other = seen.get(name, "the audit table")
            raise DdlError(
                f"tables '{other}' and '{t.qualified_name}' both map to catalog name '{name}'"
            )
        seen[name] = t.qualified_name


def s3_location(uri: str) -> str:
    """Athena, Glue and Spectrum know ``s3://`` only (the job may be configured with s3a)."""
    return re.sub(r"^s3a://", "s3://", uri, flags=re.IGNORECASE)


def table_location(cfg: PipelineConfig, table: TableConfig, location_root: str | None = None):
    """The table's folder, under ``location_root`` instead of the config's curated root when
    given (to write DDL for another environment)."""
    root = location_root or cfg.curated_root
    return s3_location(join_uri(root, table.schema, table.name))


def audit_location(cfg: PipelineConfig, location_root: str | None = None) -> str:
    return s3_location(join_uri(location_root or cfg.curated_root, "_cdclake", "audit"))


# ---- types ----------------------------------------------------------------------------------
def hive_type(t: Any) -> str:
    """Spark's JSON type (``"long"``, ``{"type": "array", ...}``) as a Hive/Glue type."""
    if isinstance(t, str):
        if m := _DECIMAL.match(t):
            return f"decimal({m.group(1)},{m.group(2)})"
        if t in _HIVE:
            return _HIVE[t]
        raise DdlError(f"no Hive type for Spark type '{t}'")
    kind = t.get("type")
    if kind == "array":
        return f"array<{hive_type(t['elementType'])}>"
    if kind == "map":
        return f"map<{hive_type(t['keyType'])},{hive_type(t['valueType'])}>"
    if kind == "struct":
        return (
            "struct<" + ",".join(f"{f['name']}:{hive_type(f['type'])}" for f in t["fields"]) + ">"
        )
    raise DdlError(f"no Hive type for Spark type {t!r}")


def redshift_type(t: Any) -> str:
    """Spark's JSON type as a Redshift Spectrum column type (nested types in Hive syntax)."""
    if isinstance(t, str):
        if m := _DECIMAL.match(t):
            return f"decimal({m.group(1)}, {m.group(2)})"
        if t in _REDSHIFT:
            return _REDSHIFT[t]
        raise DdlError(f"no Redshift type for Spark type '{t}'")
    return hive_type(t).replace("string", REDSHIFT_STRING)


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
        "Values": [v if v is not None else "__HIVE_DEFAULT_PARTITION__" for v in values],
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
            f"{c.lower()} = {_sql_string(v if v is not None else '__HIVE_DEFAULT_PARTITION__')}"
            for c, v in zip(meta.partition_columns, values, strict=True)
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


# ---- sql/ generation ------------------------------------------------------------------------
def render_sql_files(
    cfg: PipelineConfig,
    metas: Mapping[str, TableMeta],
    *,
    location_root: str | None = None,
    iam_role: str = "default",
) -> dict[str, str]:
    """Every generated file of ``sql/`` (relative path -> text) for the given table shapes."""
    from cdclake import validation

    check_names(cfg)
    db = cfg.glue_database
    header = "-- Generated by `python -m cdclake.ddl` from the pipeline config and the table's\n"
    header += "-- Delta schema. Do not edit: regenerate.\n"
    files = {"redshift/ddl/external_schema.sql": header + redshift_schema_ddl(db, db, iam_role)}
    files["athena/ddl/cdclake_audit.sql"] = header + athena_ddl(
        db, AUDIT_TABLE, audit_location(cfg, location_root)
    )
    for t in cfg.tables:
        meta = metas[t.qualified_name]
        loc = table_location(cfg, t, location_root)
        base = athena_table_name(t)
        files[f"athena/ddl/{base}.sql"] = header + athena_ddl(db, base, loc)
        files[f"redshift/ddl/{base}.sql"] = header + redshift_table_ddl(
            db, spectrum_table_name(t), meta, loc
        )
        for engine in ("athena", "redshift"):
            for check, sql in validation.validation_queries(cfg, t, engine).items():
                files[f"{engine}/validation/{base}__{check}.sql"] = header + sql
    return files


def write_sql_files(files: Mapping[str, str], out: Path) -> list[Path]:
    written = []
    for rel, text in sorted(files.items()):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


def read_metas(cfg: PipelineConfig, s3_client: Any = None) -> dict[str, TableMeta]:
    """The current shape of every configured table, read from its Delta log."""
    out = {}
    for t in cfg.tables:
        loc = cfg.table_location(t)
        out[t.qualified_name] = read_table_meta(store_for(loc, s3_client), loc)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cdclake.ddl", description="Regenerate sql/.")
    p.add_argument("--config", required=True)
    p.add_argument("--out", default="sql", help="folder to write into (default: sql)")
    p.add_argument("--location-root", help="curated root to write in LOCATIONs (default: config's)")
    p.add_argument("--iam-role", default="default", help="Redshift IAM role ARN (default: default)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config)
        files = render_sql_files(
            cfg, read_metas(cfg), location_root=args.location_root, iam_role=args.iam_role
        )
    except (ConfigError, DeltaLogError, DdlError) as exc:
        log.error("%s", exc)
        return 2
    for path in write_sql_files(files, Path(args.out)):
        log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
