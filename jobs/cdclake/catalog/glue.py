"""Registration in the Glue Data Catalog through boto3 (no Spark: runs on Airflow workers):
Athena's native Delta table and Spectrum's manifest table with its partitions, updated only
where they differ from what the Delta log and the manifests say."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from cdclake.catalog.ddl import (
    AUDIT_LABEL,
    AUDIT_TABLE,
    MANAGED_BY,
    athena_table_input,
    athena_table_name,
    audit_location,
    history_spectrum_name,
    history_table_name,
    spectrum_partition_input,
    spectrum_table_input,
    spectrum_table_name,
)
from cdclake.catalog.deltalog import (
    DeltaLogError,
    TableMeta,
    manifest_partitions,
    read_table_meta,
    store_for,
)
from cdclake.core.config import PipelineConfig, TableConfig
from cdclake.core.uris import s3_location

log = logging.getLogger(__name__)
# Glue API limits per call.
_CREATE_BATCH, _DELETE_BATCH, _UPDATE_BATCH = 100, 25, 100


class GlueCallError(Exception):
    """One Glue or S3 call failed; the message names the operation, object and error."""


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


class GlueRegistrar:
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
            raise GlueCallError(f"{what} failed: {_api_error(exc)}") from exc

    def register(self, table: TableConfig | None) -> dict:
        if table is None:
            return self._register_audit()
        loc = self.cfg.table_location(table)
        result: dict[str, Any] = {"table": table.qualified_name, "database": self.db}
        result.update(
            self._register_pair(loc, athena_table_name(table), spectrum_table_name(table))
        )
        if table.history:
            result["history"] = self._register_history(table)
        return result

    def _register_pair(self, loc: str, athena: str, spectrum: str) -> dict[str, Any]:
        """Athena's Delta table and Spectrum's manifest table (and partitions) over ``loc``."""
        meta = read_table_meta(store_for(loc, self.s3), loc)
        location = s3_location(loc)
        result = {
            "delta_version": meta.version,
            "athena_table": athena,
            "athena": self._upsert_table(athena_table_input(athena, meta, location)),
            "spectrum_table": spectrum,
            "spectrum": self._upsert_table(spectrum_table_input(spectrum, meta, location)),
        }
        result.update(self._sync_partitions(spectrum, meta, loc))
        return result

    def _register_history(self, table: TableConfig) -> dict[str, Any]:
        """The table's history, once its first run with history on has written it."""
        loc = self.cfg.history_location(table)
        try:
            return self._register_pair(loc, history_table_name(table), history_spectrum_name(table))
        except DeltaLogError:
            log.info("no history table at %s yet: not registered", loc)
            return {}

    def _register_audit(self) -> dict:
        loc = self.cfg.audit_location
        try:
            meta = read_table_meta(store_for(loc, self.s3), loc)
        except DeltaLogError:
            log.info("no audit table at %s yet: not registered", loc)
            return {}
        desired = athena_table_input(AUDIT_TABLE, meta, audit_location(self.cfg))
        return {
            "table": AUDIT_LABEL,
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
        except GlueCallError as exc:
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
            raise GlueCallError(
                f"{what} failed for {len(errors)} partition(s), first "
                f"{first.get('PartitionValues')}: {detail.get('ErrorCode')}: "
                f"{detail.get('ErrorMessage')}"
            )
