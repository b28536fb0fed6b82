"""Register the lake's tables so query engines see exactly the current tables. Idempotent:
run it after every merge; a second run changes nothing.

``target="glue"`` (boto3 only, no Spark: runs on an Airflow worker). Per configured table, in
the configured Glue database (see :mod:`cdclake.ddl` for the names):

- Athena's native Delta table (``table_type=DELTA``) with the real columns and partition keys
  read from ``_delta_log`` (not Spark's placeholder ``col array<string>``);
- Redshift Spectrum's external table over ``_symlink_format_manifest/``, with one partition
  per manifest folder: new folders are added, vanished ones removed, and every partition's
  columns follow the table's (schema drift);

plus ``cdclake_audit`` (the job's audit, for Athena's validation queries) once it exists.

``target="local"``: the current Spark session's catalog gets ``<schema>.<table>`` (as the
source names it) and ``<glue_database>.<schema>_<table>`` (as Athena names it) over the same
Delta folders, so the same SQL runs locally and on Athena.

A failure names the table and the API error (:class:`CatalogError`); the other tables are
still registered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from cdclake.config import PipelineConfig, TableConfig
from cdclake.ddl import (
    AUDIT_TABLE,
    MANAGED_BY,
    DdlError,
    athena_table_input,
    athena_table_name,
    audit_location,
    check_names,
    s3_location,
    spectrum_partition_input,
    spectrum_table_input,
    spectrum_table_name,
)
from cdclake.deltalog import (
    DeltaLogError,
    TableMeta,
    manifest_partitions,
    read_table_meta,
    store_for,
)

log = logging.getLogger(__name__)

TARGETS = ("glue", "local")
AUDIT = "_cdclake.audit"  # how results and errors name the audit table
# Glue API limits per call.
_CREATE_BATCH, _DELETE_BATCH, _UPDATE_BATCH = 100, 25, 100


class CatalogError(RuntimeError):
    """Registration failed. ``failures`` maps each failed table to its error; ``results``
    holds what the tables that succeeded did."""

    def __init__(
        self, message: str, failures: Mapping[str, str] | None = None, results: list | None = None
    ):
        super().__init__(message)
        self.failures = dict(failures or {})
        self.results = list(results or [])


class _TableFailedError(Exception):
    """One API call failed; the message names the operation, object and error."""


def register_tables(
    cfg: PipelineConfig,
    table_names: Sequence[str] | None = None,
    *,
    target: str = "glue",
    **clients: Any,
) -> list[dict]:
    """Register ``table_names`` (default: all configured tables) and return one result per
    table. Clients: ``glue``/``s3`` (boto3; made from the default chain when absent) for
    ``glue``; ``spark`` (default: :func:`cdclake.session.build_session`) for ``local``.

    Raises :class:`CatalogError` after trying every table when any of them failed.
    """
    if target not in TARGETS:
        raise CatalogError(f"unknown catalog target '{target}' (use one of {', '.join(TARGETS)})")
    tables = cfg.select_tables(table_names)
    try:
        check_names(cfg)
    except DdlError as exc:
        raise CatalogError(str(exc)) from exc
    if target == "glue":
        register: Callable[[TableConfig | None], dict] = _GlueRegistrar(cfg, clients).register
    else:
        register = _LocalRegistrar(cfg, clients).register
    results, failures = [], {}
    for table in [*tables, None]:  # None: the audit table
        name = table.qualified_name if table else AUDIT
        try:
            result = register(table)
        except (_TableFailedError, DeltaLogError, DdlError) as exc:
            failures[name] = str(exc)
            log.error("%s: registration failed: %s", name, exc)
            continue
        if result:
            log.info("registered %s", result)
            results.append(result)
    if failures:
        detail = "; ".join(f"{n}: {e}" for n, e in failures.items())
        raise CatalogError(f"{len(failures)} table(s) failed: {detail}", failures, results)
    return results


# ---- Glue ------------------------------------------------------------------------------------
def _api_error(exc: Exception) -> str:
    """``Code: message`` of a botocore error (or the exception text)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code', '?')}: {err.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _same_columns(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> bool:
    return [(c["Name"], c["Type"]) for c in a] == [(c["Name"], c["Type"]) for c in b]


def table_differs(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether a Glue table (as ``get_table`` returns it) differs from a ``TableInput`` in
    anything we manage. Extra parameters other tools add are left alone."""
    params = existing.get("Parameters") or {}
    if any(params.get(k) != v for k, v in desired["Parameters"].items()):
        return True
    if existing.get("TableType") != desired["TableType"]:
        return True
    if not _same_columns(existing.get("PartitionKeys") or [], desired["PartitionKeys"]):
        return True
    return sd_differs(existing.get("StorageDescriptor") or {}, desired["StorageDescriptor"])


def sd_differs(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    if not _same_columns(existing.get("Columns") or [], desired["Columns"]):
        return True
    for key in ("Location", "InputFormat", "OutputFormat"):
        if existing.get(key) != desired[key]:
            return True
    serde, want = existing.get("SerdeInfo") or {}, desired["SerdeInfo"]
    return serde.get("SerializationLibrary") != want["SerializationLibrary"] or any(
        (serde.get("Parameters") or {}).get(k) != v for k, v in want["Parameters"].items()
    )


def plan_partitions(
    existing: Mapping[tuple[str, ...], Mapping[str, Any]],
    desired: Mapping[tuple[str, ...], Mapping[str, Any]],
) -> tuple[list[dict], list[tuple[str, ...]], list[dict]]:
    """(to create, values to delete, to update) from current and wanted partitions (both
    keyed by their values; items are ``get_partitions`` entries / ``PartitionInput``)."""
    create = [dict(desired[v]) for v in sorted(desired) if v not in existing]
    delete = [v for v in sorted(existing) if v not in desired]
    update = [
        dict(desired[v])
        for v in sorted(desired)
        if v in existing
        and sd_differs(existing[v].get("StorageDescriptor") or {}, desired[v]["StorageDescriptor"])
    ]
    return create, delete, update


class _GlueRegistrar:
    def __init__(self, cfg: PipelineConfig, clients: Mapping[str, Any]) -> None:
        import boto3

        self.cfg = cfg
        self.db = cfg.glue_database
        self.glue = clients.get("glue") or boto3.client("glue")
        self.s3 = clients.get("s3")

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _TableFailedError(f"{what} failed: {_api_error(exc)}") from exc

    def register(self, table: TableConfig | None) -> dict:
        if table is None:
            return self._register_audit()
        loc = self.cfg.table_location(table)
        meta = read_table_meta(store_for(loc, self.s3), loc)
        location = s3_location(loc)
        athena = athena_table_name(table)
        spectrum = spectrum_table_name(table)
        result = {
            "table": table.qualified_name,
            "database": self.db,
            "delta_version": meta.version,
            "athena_table": athena,
            "athena": self._upsert_table(athena_table_input(athena, meta, location)),
            "spectrum_table": spectrum,
            "spectrum": self._upsert_table(spectrum_table_input(spectrum, meta, location)),
        }
        result.update(self._sync_partitions(spectrum, meta, loc))
        return result

    def _register_audit(self) -> dict:
        loc = self.cfg.audit_location
        try:
            meta = read_table_meta(store_for(loc, self.s3), loc)
        except DeltaLogError:
            log.info("no audit table at %s yet: not registered", loc)
            return {}
        desired = athena_table_input(AUDIT_TABLE, meta, audit_location(self.cfg))
        return {
            "table": AUDIT,
            "database": self.db,
            "athena_table": AUDIT_TABLE,
            "athena": self._upsert_table(desired),
        }

    def _get_table(self, name: str) -> dict | None:
        try:
            return self._call(
                f"glue:GetTable {self.db}.{name}",
                self.glue.get_table,
                DatabaseName=self.db,
                Name=name,
            )["Table"]
        except _TableFailedError as exc:
            if "EntityNotFoundException" in str(exc):
                return None
            raise

    def _upsert_table(self, desired: dict) -> str:
        """``created`` | ``updated`` | ``unchanged``."""
        name = desired["Name"]
        existing = self._get_table(name)
        if existing is None:
            self._call(
                f"glue:CreateTable {self.db}.{name}",
                self.glue.create_table,
                DatabaseName=self.db,
                TableInput=desired,
            )
            return "created"
        if not table_differs(existing, desired):
            return "unchanged"
        params = existing.get("Parameters") or {}
        if params.get(next(iter(MANAGED_BY))) is None:
            log.warning("%s.%s was not created by cdclake: replacing its definition", self.db, name)
        # Keep parameters other tools added (e.g. Lake Formation, Athena's own bookkeeping).
        update = dict(desired, Parameters={**params, **desired["Parameters"]})
        self._call(
            f"glue:UpdateTable {self.db}.{name}",
            self.glue.update_table,
            DatabaseName=self.db,
            TableInput=update,
        )
        return "updated"

    def _existing_partitions(self, name: str) -> dict[tuple[str, ...], dict]:
        out = {}
        paginator = self.glue.get_paginator("get_partitions")
        pages = self._call(
            f"glue:GetPartitions {self.db}.{name}",
            lambda: list(paginator.paginate(DatabaseName=self.db, TableName=name)),
        )
        for page in pages:
            for p in page.get("Partitions", []):
                out[tuple(p["Values"])] = p
        return out

    def _sync_partitions(self, name: str, meta: TableMeta, loc: str) -> dict[str, Any]:
        if not meta.partition_columns:
            return {"partitions": 0, "partitions_added": [], "partitions_removed": []}
        folders = manifest_partitions(store_for(loc, self.s3), loc, meta.partition_columns)
        desired = {}
        for values, folder in folders.items():
            p = spectrum_partition_input(meta, values, folder)
            desired[tuple(p["Values"])] = p
        create, delete, update = plan_partitions(self._existing_partitions(name), desired)
        where = f"{self.db}.{name}"
        for batch in _chunks(create, _CREATE_BATCH):
            self._check_batch(
                f"glue:BatchCreatePartition {where}",
                self._call(
                    f"glue:BatchCreatePartition {where}",
                    self.glue.batch_create_partition,
                    DatabaseName=self.db,
                    TableName=name,
                    PartitionInputList=list(batch),
                ),
            )
        for batch in _chunks(delete, _DELETE_BATCH):
            self._check_batch(
                f"glue:BatchDeletePartition {where}",
                self._call(
                    f"glue:BatchDeletePartition {where}",
                    self.glue.batch_delete_partition,
                    DatabaseName=self.db,
                    TableName=name,
                    PartitionsToDelete=[{"Values": list(v)} for v in batch],
                ),
            )
        for batch in _chunks(update, _UPDATE_BATCH):
            entries = [{"PartitionValueList": p["Values"], "PartitionInput": p} for p in batch]
            self._check_batch(
                f"glue:BatchUpdatePartition {where}",
                self._call(
                    f"glue:BatchUpdatePartition {where}",
                    self.glue.batch_update_partition,
                    DatabaseName=self.db,
                    TableName=name,
                    Entries=entries,
                ),
            )
        return {
            "partitions": len(desired),
            "partitions_added": [list(p["Values"]) for p in create],
            "partitions_removed": [list(v) for v in delete],
            "partitions_updated": len(update),
        }

    @staticmethod
    def _check_batch(what: str, response: Mapping[str, Any]) -> None:
        """Batch calls report per-item errors in the response instead of raising."""
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            detail = first.get("ErrorDetail", {})
            raise _TableFailedError(
                f"{what} failed for {len(errors)} partition(s), first "
                f"{first.get('PartitionValues')}: {detail.get('ErrorCode')}: "
                f"{detail.get('ErrorMessage')}"
            )


# ---- local Spark catalog ---------------------------------------------------------------------
class _LocalRegistrar:
    def __init__(self, cfg: PipelineConfig, clients: Mapping[str, Any]) -> None:
        self.cfg = cfg
        spark = clients.get("spark")
        if spark is None:
            from cdclake.session import build_session

            spark = build_session(app_name="cdc_catalog")
        self.spark = spark

    def register(self, table: TableConfig | None) -> dict:
        from delta.tables import DeltaTable

        if table is None:
            loc, names, label = (
                self.cfg.audit_location,
                [(self.cfg.glue_database, AUDIT_TABLE)],
                AUDIT,
            )
        else:
            loc, label = self.cfg.table_location(table), table.qualified_name
            names = [(table.schema, table.name), (self.cfg.glue_database, athena_table_name(table))]
        if not DeltaTable.isDeltaTable(self.spark, loc):
            if table is None:
                return {}
            raise _TableFailedError(f"no Delta table at {loc}")
        out: dict[str, Any] = {"table": label}
        for db, name in names:
            out[f"{db}.{name}"] = self._register(db, name, loc)
        return out

    def _register(self, db: str, name: str, loc: str) -> str:
        self.spark.sql(f"create database if not exists `{db}`")
        full = f"`{db}`.`{name}`"
        action = "created"
        if self.spark.catalog.tableExists(f"{db}.{name}"):
            current = self.spark.sql(f"describe detail {full}").first()
            if current is not None and _same_path(current["location"], loc):
                return "unchanged"
            self.spark.sql(f"drop table {full}")  # an external table: only the entry goes
            action = "replaced"
        self.spark.sql(f"create table {full} using delta location '{loc.replace(chr(39), '')}'")
        return action


def _same_path(a: str, b: str) -> bool:
    def norm(p: str) -> str:
        for prefix in ("file://", "file:"):
            if p.startswith(prefix):
                p = p[len(prefix) :]
        return p.rstrip("/")

    return norm(a) == norm(b)
