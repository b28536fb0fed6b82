"""The local target's catalog and checks without a JVM: what the DAGs' ``register_catalog`` and
``validate.*`` tasks run on the local target.

Under a real Airflow every task is its own process, so a Spark session per task costs a JVM
start per task (and an in-memory catalog that dies with the task). Instead, as Glue and Athena
do on AWS:

- :func:`register` keeps the local catalog in a file, ``<curated_root>/_catalog/local.json``:
  every configured table under its source name (``<schema>.<table>``) and its Athena name
  (``<glue_database>.<schema>_<table>``), and the audit (``<glue_database>.cdclake_audit``) once
  it exists, and a table's history table (where the config keeps one) once written, each with
  its Delta folder, columns and partition columns read from ``_delta_log``
  (:mod:`cdclake.catalog.deltalog`, the reader the Glue registrar uses). Idempotent: an entry is
  ``created``, ``unchanged``, or ``updated`` (another folder or another schema).
- :func:`connect` opens an in-memory DuckDB (UTC) with one view per catalog entry over the
  table's current snapshot, read by delta-rs (Delta -> Arrow).
- :func:`failed_checks` runs a table's validation queries (the ``spark`` dialect, which DuckDB
  runs as is) there: every query that returns rows is a failed check.

Local roots only; DuckDB and deltalake are imported when used (the job zip shipped to EMR does
not carry them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cdclake.catalog.ddl import (
    AUDIT_LABEL,
    AUDIT_TABLE,
    DdlError,
    athena_table_name,
    check_names,
    history_table_name,
)
from cdclake.catalog.deltalog import DeltaLogError, LocalStore, read_table_meta
from cdclake.catalog.register import CatalogError
from cdclake.catalog.validation import validation_queries
from cdclake.core.config import PipelineConfig, TableConfig
from cdclake.core.uris import local_dir

CATALOG_FILE = ("_catalog", "local.json")

Rows = tuple[list[str], list[tuple[Any, ...]]]


def catalog_path(cfg: PipelineConfig) -> Path:
    return Path(local_dir(cfg.curated_root)).joinpath(*CATALOG_FILE)


def load_catalog(cfg: PipelineConfig) -> dict[str, dict[str, Any]]:
    """``{"<db>.<name>": {"location", "version", "columns", "partition_columns"}}``; empty
    before the first registration."""
    path = catalog_path(cfg)
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text())["tables"])


def _names(cfg: PipelineConfig, table: TableConfig | None) -> tuple[str, list[str], str]:
    """The Delta folder, the catalog names and the label of a table (None: the audit)."""
    if table is None:
        return cfg.audit_location, [f"{cfg.glue_database}.{AUDIT_TABLE}"], AUDIT_LABEL
    names = [table.qualified_name, f"{cfg.glue_database}.{athena_table_name(table)}"]
    return cfg.table_location(table), names, table.qualified_name


def _history_names(cfg: PipelineConfig, table: TableConfig) -> tuple[str, list[str]] | None:
    """The Delta folder and catalog names of the table's history table, where the config keeps
    one (``history:``, :mod:`cdclake.lake.history`); None otherwise."""
    if not table.history:
        return None
    names = [
        f"{table.schema}.{table.history_name}",
        f"{cfg.glue_database}.{history_table_name(table)}",
    ]
    return cfg.history_location(table), names


def _entry(location: str) -> dict[str, Any]:
    meta = read_table_meta(LocalStore(), location)
    return {
        "location": str(Path(local_dir(location)).resolve()),
        "version": meta.version,
        "columns": [[f.name, f.type] for f in meta.fields],
        "partition_columns": list(meta.partition_columns),
    }


def register(cfg: PipelineConfig, table_names: Sequence[str] | None = None) -> list[dict]:
    """Register ``table_names`` (default: every configured table) and the audit; one result per
    table, as :func:`cdclake.catalog.register.register_tables` returns them. Raises
    :class:`CatalogError` after trying every table when any failed (no Delta table there)."""
    tables = cfg.select_tables(table_names)
    try:
        check_names(cfg)
    except DdlError as exc:
        raise CatalogError(str(exc)) from exc
    catalog = load_catalog(cfg)
    results, failures = [], {}
    for table in [*tables, None]:  # None: the audit table
        location, names, label = _names(cfg, table)
        try:
            found = [(_entry(location), names)]
        except DeltaLogError as exc:
            if table is not None:  # (no run has written the audit yet: nothing to register)
                failures[label] = str(exc)
            continue
        history = _history_names(cfg, table) if table is not None else None
        # A history is registered once a run has written it; an unreadable one is a failure.
        if history is not None and (local_dir(history[0]) / "_delta_log").is_dir():
            try:
                found.append((_entry(history[0]), history[1]))
            except DeltaLogError as exc:
                failures[f"{label} history"] = str(exc)
        result: dict[str, Any] = {"table": label}
        for entry, entry_names in found:
            for name in entry_names:
                old = catalog.get(name)
                same = old is not None and all(
                    old[k] == entry[k] for k in ("location", "columns", "partition_columns")
                )
                result[name] = "unchanged" if same else ("updated" if old else "created")
                catalog[name] = entry
        results.append(result)
    _write(catalog_path(cfg), catalog)
    if failures:
        detail = "; ".join(f"{n}: {e}" for n, e in failures.items())
        raise CatalogError(f"{len(failures)} table(s) failed: {detail}", failures, results)
    return results


def _write(path: Path, catalog: dict[str, dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"tables": catalog}, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)  # a reader sees the old catalog or the new one


def connect(cfg: PipelineConfig, names: Sequence[str] | None = None) -> Any:
    """An in-memory DuckDB connection (time zone UTC) with a view per catalog entry (only
    ``names`` when given) over the Delta table's current snapshot."""
    import duckdb
    from deltalake import DeltaTable

    catalog = load_catalog(cfg)
    missing = sorted(set(names or ()) - set(catalog))
    if missing:
        raise CatalogError(
            f"not in the local catalog ({catalog_path(cfg)}): {', '.join(missing)}; "
            "register_catalog registers them"
        )
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    for i, name in enumerate(sorted(names or catalog)):
        db, _, tbl = name.partition(".")
        con.execute(f'create schema if not exists "{db}"')
        handle = f"delta_snapshot_{i}"
        con.register(handle, DeltaTable(catalog[name]["location"]).to_pyarrow_dataset())
        view = f'"{db}"."{tbl}"'  # names from the catalog, which has the config's names
        con.execute(f"create or replace view {view} as select * from {handle}")  # noqa: S608  # nosec B608
    return con


def failed_checks(
    cfg: PipelineConfig, table_name: str, as_of: str | datetime | None
) -> dict[str, Rows]:
    """Run the validation queries of ``table_name`` with freshness judged at ``as_of``; the
    checks that returned rows, with their column names and rows."""
    table = cfg.table(table_name)
    queries = validation_queries(cfg, table, "spark", as_of=as_of)
    names = [*_names(cfg, table)[1][1:], f"{cfg.glue_database}.{AUDIT_TABLE}"]
    history = _history_names(cfg, table)
    if history is not None:
        names.append(history[1][1])
    con = connect(cfg, names)
    try:
        failed = {}
        for check, sql in queries.items():
            rel = con.sql(sql)
            rows = rel.fetchall()
            if rows:
                failed[check] = (list(rel.columns), rows)
        return failed
    finally:
        con.close()
