"""One table's run, in the order of the pipeline: list -> read -> validate -> order + dedupe ->
MERGE with sequence guard and partition pruning -> tombstones -> ledger -> audit record.

Each table's data change is exactly one Delta commit. Bookkeeping writes come after it and are
idempotent, so a crash anywhere followed by a rerun converges to the same table.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.config import BOOKKEEPING_PREFIX, PipelineConfig, TableConfig
from cdclake.layout import CDC, LOAD, RawFile, Window, as_utc
from cdclake.schema import SchemaPlan, plan_schema
from cdclake.session import LAKE_TABLE_PROPERTIES, setting
from cdclake.state import Ledger, TableState
from cdclake.storage import diagnose, list_raw_files, read_raw, remove_tree
from cdclake.transforms import (
    BOOKKEEPING_COLUMNS,
    COMMIT_TS,
    DELETE,
    DELETE_ABSENT,
    INSERT,
    OP,
    ORDER_COLUMNS,
    REASON,
    STALE,
    UPDATE,
    classify_against_target,
    latest_per_key,
    merge_condition,
    newer_than_target,
    normalize_changes,
    order_key,
    split_valid,
)

log = logging.getLogger(__name__)
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
MATERIALIZE_SOURCE = "spark.databricks.delta.merge.materializeSource"
EFFECTIVE = (INSERT, UPDATE, DELETE)


class TableRunError(RuntimeError):
    """A table's run cannot proceed (no input, wrong table settings, ...)."""


def new_record(run_id: str, table: TableConfig, mode: str, window: Window | None) -> dict:
    return {
        "run_id": run_id,
        "table": table.qualified_name,
        "mode": mode,
        "status": "running",
        "since": f"{window.since:%Y-%m-%dT%H}" if window and window.since else None,
        "until": f"{window.until:%Y-%m-%dT%H}" if window else None,
        "started_at": datetime.now(UTC),
        "duration_s": 0.0,
        "files": 0,
        "hours": [],
        "records": 0,
        "records_by_op": {},
        "duplicates_collapsed": 0,
        "stale_skipped": 0,
        "deletes_of_absent_keys": 0,
        "rows_inserted": 0,
        "rows_updated": 0,
        "rows_deleted": 0,
        "quarantined": 0,
        "delta_version": None,
        "newest_change_ts": None,
        "error": None,
    }


class TableRun:
    """Applies one table's pending DMS files to its Delta table."""

    def __init__(
        self, spark: SparkSession, cfg: PipelineConfig, table: TableConfig, run_id: str
    ) -> None:
        self.spark, self.cfg, self.table, self.run_id = spark, cfg, table, run_id
        self.path = cfg.table_location(table)
        self.state = TableState(spark, cfg, table)
        self.keys = list(table.primary_key)
        self.parts = list(table.partition_by)

    # ---- entry points -------------------------------------------------------------------
    def full(self) -> dict:
        rec = new_record(self.run_id, self.table, "full", None)
        clock = _Clock(rec)
        exists = self._check_existing(self.state.ledger())
        files = [f for f in self._list() if f.kind == LOAD]
        if not files:
            where = self.cfg.raw_location(self.table)
            raise TableRunError(f"{self.table.qualified_name}: no LOAD files under {where}")
        self._describe_files(rec, files)
        clock.lap("list")
        raw = read_raw(self.spark, files)
        changes = normalize_changes(raw, self.table, self.cfg.dms, kind=LOAD)
        with _persisted(changes) as changes:
            stats = self._batch_stats(changes, files, rec)
            clock.lap("read")
            good, bad = split_valid(changes)
            winners = latest_per_key(good, self.keys)
            if exists:
                # A delete committed after the load started (a cached change) that an earlier
                # generation already applied beats the snapshot row.
                tombs = self.state.tombstones(_key_schema(good, self.keys), of=winners)
                newer_tombs = (
                    tombs.alias("d")
                    .join(winners.alias("w"), self.keys, "inner")
                    .where(order_key("d.") > order_key("w."))
                    .select(*self.keys)
                )
                rec["stale_skipped"] = newer_tombs.count()
                winners = winners.join(newer_tombs, self.keys, "left_anti")
            rows = winners.select(*_data_columns(winners), *BOOKKEEPING_COLUMNS)
            clock.lap("dedupe")
            if rec["quarantined"]:
                self.state.quarantine(bad, self.run_id)
            # Recorded before the data: if the overwrite then fails, incremental runs re-apply
            # changes newer than the load to the old table, which the sequence guard makes safe.
            self.state.record_full_load(self.run_id, stats["min_ts"], self.run_id)
            if not exists:
                self._create_table(rows.schema)
            with self._commit_metadata(len(files)):
                (
                    rows.write.format("delta")
                    .mode("overwrite")
                    .option("overwriteSchema", "true")
                    .partitionBy(*self.parts)
                    .save(self.path)
                )
            version, metrics = self._last_commit()
            rec["rows_inserted"] = int(metrics.get("numOutputRows", 0))
            rec["delta_version"] = version
            rec["duplicates_collapsed"] = (
                stats["valid"] - rec["rows_inserted"] - rec["stale_skipped"]
            )
            clock.lap("merge")
        self.state.record_files(self.run_id, files, self.run_id, version)
        clock.lap("ledger")
        rec["status"] = "succeeded"
        return clock.done()

    def incremental(self, window: Window) -> dict:
        rec = new_record(self.run_id, self.table, "incremental", window)
        clock = _Clock(rec)
        ledger = self.state.ledger()
        exists = self._check_existing(ledger)
        generation, watermark = ledger.generation, ledger.watermark
        files = window.select(self._list(), ledger.applied, floor=watermark)
        self._describe_files(rec, files)
        clock.lap("list")
        if not files:
            rec["status"] = "noop"
            return clock.done()
        raw = read_raw(self.spark, files)
        changes = normalize_changes(raw, self.table, self.cfg.dms, kind=CDC)
        with _persisted(changes) as changes:
            stats = self._batch_stats(changes, files, rec)
            clock.lap("read")
            good, bad = split_valid(changes)
            good = self._fit_schema(good, exists)
            winners = latest_per_key(good, self.keys)
            if exists:
                current = self._current_rows(winners, stats["key_range"])
            else:
                schema = _target_lookup_schema(good, self.keys, self.parts)
                current = self.spark.createDataFrame([], schema)
            tombs = self.state.tombstones(_key_schema(good, self.keys), of=winners)
            classified = classify_against_target(
                winners, current, tombs, self.keys, self.parts, watermark
            )
            with self._staged(classified) as classified:
                plan = self._plan(classified)
                counts = plan["counts"]
                rec["stale_skipped"] = counts.get(STALE, 0)
                rec["deletes_of_absent_keys"] = counts.get(DELETE_ABSENT, 0)
                rec["duplicates_collapsed"] = stats["valid"] - sum(counts.values())
                clock.lap("dedupe")
                if rec["quarantined"]:
                    self.state.quarantine(bad, self.run_id)
                # Tombstones before the data: a crash between the two is safe either way (a
                # delete equal to its tombstone is still applied on rerun).
                if counts.get(DELETE, 0) + counts.get(DELETE_ABSENT, 0):
                    live = classified.where(F.col("_cdc_status") != STALE)
                    self.state.apply_tombstones(live, self.keys)
                clock.lap("tombstones")
                if any(counts.get(s, 0) for s in EFFECTIVE):
                    self._merge(classified, exists, plan, len(files))
                    version, metrics = self._last_commit()
                    rec["rows_inserted"] = int(metrics.get("numTargetRowsInserted", 0))
                    rec["rows_updated"] = int(metrics.get("numTargetRowsUpdated", 0))
                    rec["rows_deleted"] = int(metrics.get("numTargetRowsDeleted", 0))
                    rec["delta_version"] = version
                elif exists:
                    rec["delta_version"] = self._last_commit()[0]
                clock.lap("merge")
        self.state.record_files(generation, files, self.run_id, rec["delta_version"])
        clock.lap("ledger")
        rec["status"] = "succeeded"
        return clock.done()

    # ---- steps --------------------------------------------------------------------------
    def _list(self) -> list[RawFile]:
        return list_raw_files(self.spark, self.cfg.raw_location(self.table), self.cfg.dms)

    def _describe_files(self, rec: dict, files: Sequence[RawFile]) -> None:
        rec["files"] = len(files)
        rec["hours"] = sorted({f"{f.hour:%Y-%m-%dT%H}" for f in files if f.hour is not None})

    def _batch_stats(self, changes: DataFrame, files: Sequence[RawFile], rec: dict) -> dict:
        """One pass over the batch (which also proves every file is readable)."""
        k0 = self.keys[0]
        try:
            rows = (
                changes.groupBy(REASON, OP)
                .agg(
                    F.count(F.lit(1)).alias("n"),
                    F.max(COMMIT_TS).alias("max_ts"),
                    F.min(COMMIT_TS).alias("min_ts"),
                    F.min(k0).alias("min_key"),
                    F.max(k0).alias("max_key"),
                )
                .collect()
            )
        except Exception as exc:  # noqa: BLE001 - re-raised naming the file
            raise diagnose(self.spark, files, exc) from exc
        good = [r for r in rows if r[REASON] is None]
        rec["records"] = sum(r["n"] for r in rows)
        by_op: dict[str, int] = {}
        for r in rows:
            by_op[r[OP] or "null"] = by_op.get(r[OP] or "null", 0) + r["n"]
        rec["records_by_op"] = by_op
        rec["quarantined"] = sum(r["n"] for r in rows if r[REASON] is not None)
        if rec["quarantined"]:
            log.warning(
                "%s: %d row(s) quarantined (%s)",
                self.table.qualified_name,
                rec["quarantined"],
                ", ".join(sorted({r[REASON] for r in rows if r[REASON]})),
            )
        rec["newest_change_ts"] = as_utc(max((r["max_ts"] for r in good), default=None))
        return {
            "valid": sum(r["n"] for r in good),
            "min_ts": as_utc(min((r["min_ts"] for r in good), default=None)),
            "key_range": (
                min((r["min_key"] for r in good), default=None),
                max((r["max_key"] for r in good), default=None),
            ),
        }

    def _fit_schema(self, good: DataFrame, exists: bool) -> DataFrame:
        incoming = T.StructType(
            [f for f in good.schema.fields if f.name not in BOOKKEEPING_COLUMNS]
        )
        missing_parts = [p for p in self.parts if p not in incoming.fieldNames()]
        if missing_parts and not exists:
            raise TableRunError(
                f"{self.table.qualified_name}: partition column(s) {missing_parts} not in the files"
            )
        plan = SchemaPlan()
        if exists:
            table_schema = self.spark.read.format("delta").load(self.path).schema
            data = T.StructType(
                [f for f in table_schema.fields if f.name not in BOOKKEEPING_COLUMNS]
            )
            plan = plan_schema(incoming, data, self.table.qualified_name)
        for name, dtype in plan.casts.items():
            good = good.withColumn(name, F.col(name).cast(dtype))
        for field in plan.missing_columns:
            good = good.withColumn(field.name, F.lit(None).cast(field.dataType))
        if plan.new_columns:
            log.info(
                "%s: new source column(s) %s will be added",
                self.table.qualified_name,
                [f.name for f in plan.new_columns],
            )
        return good

    def _current_rows(self, winners: DataFrame, key_range: tuple) -> DataFrame:
        """The live target rows of the batch's keys (where they are today).

        The first key's min/max lets Delta skip files by their statistics before the join.
        """
        k0 = self.keys[0]
        target = self.spark.read.format("delta").load(self.path)
        if key_range[0] is not None:
            target = target.where(F.col(k0).between(F.lit(key_range[0]), F.lit(key_range[1])))
        return target.select(*self.keys, *self.parts, *ORDER_COLUMNS).join(
            winners.select(*self.keys), self.keys, "left_semi"
        )

    def _plan(self, classified: DataFrame) -> dict:
        """Status counts, the partitions the MERGE may touch and the key range it covers, in
        one pass over the batch (each extra action is a few Spark jobs)."""
        k0 = self.keys[0]
        status = F.col("_cdc_status")
        effective = status.isin(*EFFECTIVE)
        # Where matched keys live today, and where upserts will put them.
        where_now = F.struct(*(F.col(f"_cdc_t_{p}").alias(p) for p in self.parts))
        where_next = F.struct(*(F.col(p) for p in self.parts))
        rows = (
            classified.groupBy(status)
            .agg(
                F.count(F.lit(1)).alias("n"),
                F.min(F.when(effective, F.col(k0))).alias("lo"),
                F.max(F.when(effective, F.col(k0))).alias("hi"),
                *(
                    [
                        F.collect_set(F.when(status.isin(UPDATE, DELETE), where_now)).alias("now"),
                        F.collect_set(F.when(status.isin(INSERT, UPDATE), where_next)).alias(
                            "next"
                        ),
                    ]
                    if self.parts
                    else []
                ),
            )
            .collect()
        )
        los = [r["lo"] for r in rows if r["lo"] is not None]
        his = [r["hi"] for r in rows if r["hi"] is not None]
        part_values: set[tuple] = set()
        if self.parts:
            for r in rows:
                part_values |= {tuple(v) for v in (*r["now"], *r["next"])}
        return {
            "counts": {r["_cdc_status"]: r["n"] for r in rows},
            "partitions": sorted(part_values, key=str),
            "key_range": (min(los), max(his)) if los else None,
        }

    @contextmanager
    def _staged(self, classified: DataFrame):
        """The classified batch written once to a scratch folder and read back.

        Everything after it (plan, tombstones, MERGE) reads these immutable files instead of a
        plan that scans the target and the tombstones: a commit to either would otherwise make
        Spark recompute a cached classification against the changed tables, and Delta's MERGE
        would materialize its source a second time. Removed when the run ends.
        """
        path = f"{self.state.staging_path}/{self.run_id}"
        remove_tree(self.spark, self.state.staging_path)  # a crashed run's leftovers
        classified.write.mode("overwrite").parquet(path)
        try:
            yield self.spark.read.parquet(path)
        finally:
            remove_tree(self.spark, self.state.staging_path)

    def _merge(self, classified: DataFrame, exists: bool, plan: dict, n_files: int) -> None:
        source = classified.where(F.col("_cdc_status").isin(*EFFECTIVE))
        source = source.select(*_data_columns(source), *BOOKKEEPING_COLUMNS)
        if not exists:
            self._create_table(source.schema)
        cond = merge_condition(self.keys, self.parts, plan["partitions"], plan["key_range"])
        newer = newer_than_target()
        is_delete = F.col(f"s.{OP}") == "D"
        # The source is the staged batch (immutable files): reading it twice gives the same
        # rows, so Delta need not copy it first.
        with self._commit_metadata(n_files), setting(self.spark, MATERIALIZE_SOURCE, "none"):
            (
                DeltaTable.forPath(self.spark, self.path)
                .alias("t")
                .merge(source.alias("s"), cond)
                .whenMatchedDelete(condition=is_delete & newer)
                .whenMatchedUpdateAll(condition=~is_delete & newer)
                .whenNotMatchedInsertAll(condition=~is_delete)
                .execute()
            )

    def _create_table(self, schema: T.StructType) -> None:
        builder = (
            DeltaTable.createIfNotExists(self.spark)
            .location(self.path)
            .addColumns(schema)
            .partitionedBy(*self.parts)
        )
        for key, value in LAKE_TABLE_PROPERTIES.items():
            builder = builder.property(key, value)
        builder.execute()

    # ---- table checks and helpers ---------------------------------------------------------
    def _check_existing(self, ledger: Ledger) -> bool:
        if not DeltaTable.isDeltaTable(self.spark, self.path):
            return False
        self._check_table_properties()
        self._repair_manifest(ledger)
        return True

    def _check_table_properties(self) -> None:
        props = {
            r["key"]: r["value"]
            for r in self.spark.sql(f"SHOW TBLPROPERTIES delta.`{self.path}`").collect()
        }
        problems = []
        if props.get("delta.enableDeletionVectors", "false").lower() == "true":
            problems.append("deletion vectors are enabled")
        if props.get("delta.columnMapping.mode", "none") != "none":
            problems.append("column mapping is enabled")
        if problems:
            raise TableRunError(
                f"{self.table.qualified_name}: {' and '.join(problems)} on {self.path}; "
                "Redshift Spectrum's symlink manifest needs both off"
            )
        if props.get("delta.compatibility.symlinkFormatManifest.enabled", "false") != "true":
            # A table created by an older version or by hand: turn manifests on (and build
            # them once, as Delta only maintains them from the next commit on).
            self.spark.sql(
                f"ALTER TABLE delta.`{self.path}` SET TBLPROPERTIES "
                "('delta.compatibility.symlinkFormatManifest.enabled' = 'true')"
            )
            DeltaTable.forPath(self.spark, self.path).generate("symlink_format_manifest")

    def _repair_manifest(self, ledger: Ledger) -> None:
        """If the last data commit was ours but its run never reached the ledger, the process
        may have died before Delta refreshed the manifest: regenerate it."""
        last = self._history_head()
        try:
            meta = json.loads(last["userMetadata"] or "{}")
        except ValueError:
            return
        run = meta.get("cdclake_run") if isinstance(meta, dict) else None
        if run and run not in ledger.finished_runs:
            log.warning(
                "%s: previous run %s committed version %s but did not finish; "
                "regenerating the symlink manifest",
                self.table.qualified_name,
                run,
                last["version"],
            )
            DeltaTable.forPath(self.spark, self.path).generate("symlink_format_manifest")

    def _commit_metadata(self, n_files: int):
        meta = json.dumps({"cdclake_run": self.run_id, "files": n_files})
        return setting(self.spark, USER_METADATA, meta)

    def _history_head(self) -> Row:
        row = DeltaTable.forPath(self.spark, self.path).history(1).first()
        if row is None:  # a Delta table always has at least one commit
            raise TableRunError(f"{self.path}: Delta table has no history")
        return row

    def _last_commit(self) -> tuple[int, dict[str, Any]]:
        row = self._history_head()
        return int(row["version"]), dict(row["operationMetrics"] or {})


class _Clock:
    """Wall time per step, recorded in the audit record (``timings``)."""

    def __init__(self, rec: dict) -> None:
        self.rec, self.t0 = rec, time.monotonic()
        self.last = self.t0
        rec["timings"] = {}

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.rec["timings"][step] = round(now - self.last, 3)
        self.last = now

    def done(self) -> dict:
        self.rec["duration_s"] = round(time.monotonic() - self.t0, 3)
        return self.rec


@contextmanager
def _persisted(df: DataFrame):
    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        yield df
    finally:
        df.unpersist()


def _data_columns(df: DataFrame) -> list[str]:
    """The source's columns (no source column may start with ``_cdc_``: config and input
    checks enforce it), so working columns can never leak into the table."""
    return [c for c in df.columns if not c.startswith(BOOKKEEPING_PREFIX)]


def _key_schema(df: DataFrame, keys: Sequence[str]) -> T.StructType:
    return T.StructType([df.schema[k] for k in keys])


def _target_lookup_schema(df: DataFrame, keys: Sequence[str], parts: Sequence[str]) -> T.StructType:
    fields = [df.schema[c] for c in [*keys, *parts, *ORDER_COLUMNS]]
    return T.StructType(fields)
