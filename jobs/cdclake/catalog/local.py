"""Registration in the local Spark session's catalog (Athena's stand-in on the local target):
each table (and history table) under its source name and its Athena name, over the same Delta
folder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cdclake.catalog.ddl import AUDIT_LABEL, AUDIT_TABLE, athena_table_name, history_table_name
from cdclake.catalog.deltalog import DeltaLogError
from cdclake.core.config import PipelineConfig, TableConfig
from cdclake.core.uris import same_location


class LocalRegistrar:
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
                AUDIT_LABEL,
            )
        else:
            loc, label = self.cfg.table_location(table), table.qualified_name
            names = [(table.schema, table.name), (self.cfg.glue_database, athena_table_name(table))]
        if not DeltaTable.isDeltaTable(self.spark, loc):
            if table is None:
                return {}
            raise DeltaLogError(f"no Delta table at {loc}")
        out: dict[str, Any] = {"table": label}
        for db, name in names:
            out[f"{db}.{name}"] = self._register(db, name, loc)
        if table is not None and table.history:
            hist = self.cfg.history_location(table)
            if DeltaTable.isDeltaTable(self.spark, hist):  # once a run has written it
                history_names = [
                    (table.schema, table.history_name),
                    (self.cfg.glue_database, history_table_name(table)),
                ]
                for db, name in history_names:
                    out[f"{db}.{name}"] = self._register(db, name, hist)
        return out

    def _register(self, db: str, name: str, loc: str) -> str:
        self.spark.sql(f"create database if not exists `{db}`")
        full = f"`{db}`.`{name}`"
        action = "created"
        if self.spark.catalog.tableExists(f"{db}.{name}"):
            current = self.spark.sql(f"describe detail {full}").first()
            if current is not None and same_location(current["location"], loc):
                return "unchanged"
            self.spark.sql(f"drop table {full}")  # an external table: only the entry goes
            action = "replaced"
        self.spark.sql(f"create table {full} using delta location '{loc.replace(chr(39), '')}'")
        return action
