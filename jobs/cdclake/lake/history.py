"""A table's history (SCD type 2) as Delta tables: the history table analysts query, and the
change log kept beside it (bookkeeping).

- ``<curated_root>/<schema>/<table>_history``: one row per version (source columns,
  ``_valid_from``, ``_valid_to``, ``_is_current``, and the ``_cdc_*`` columns of the newest
  change the version holds), partitioned like the table unless configured otherwise; created
  with the lake tables' properties; its Spectrum manifests are kept after every commit;
- ``<curated_root>/_cdclake/<schema>/<table>/history_changes``: every change the history has
  taken in that is not the newest change of a version (deletes, changes that altered no
  tracked column, the opening change of a version that later changes updated). Append-only.

Together they hold every change applied to the history (one per key and commit time): that is
what lets a late change be put in its place in a key's timeline. See :mod:`cdclake.job.history`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.core.columns import BOOKKEEPING_COLUMNS, HISTORY_COLUMNS
from cdclake.core.config import PipelineConfig, TableConfig
from cdclake.core.sql import quote_ident, table_sql
from cdclake.lake import manifest, tables
from cdclake.lake.bookkeeping import COMPACT_AT_FILES, compact, read_counted
from cdclake.lake.tables import Commit

log = logging.getLogger(__name__)
CHANGES = "history_changes"  # the change log's kind under the table's bookkeeping folder


@dataclass(frozen=True)
class HistoryTable:
    """The history table of one lake table and its change log."""

    spark: SparkSession
    name: str  # the history table's qualified name, for messages
    path: str
    log_path: str
    keys: tuple[str, ...]
    parts: tuple[str, ...]

    @classmethod
    def of(cls, spark: SparkSession, cfg: PipelineConfig, table: TableConfig) -> HistoryTable:
        return cls(
            spark,
            f"{table.schema}.{table.history_name}",
            cfg.history_location(table),
            cfg.state_location(table, CHANGES),
            table.primary_key,
            table.history_partition_by,
        )

    def exists(self) -> bool:
        return tables.exists(self.spark, self.path)

    def started(self) -> bool:
        """Whether the history holds versions: when not (no table yet, or the empty one a
        first run of an empty table created), the run starts it from the live table."""
        return tables.files_now(self.spark, self.path) > 0

    def schema(self) -> T.StructType | None:
        if not self.exists():
            return None
        return self.spark.read.format("delta").load(self.path).schema

    def versions(self, keys: DataFrame | None, key_range: tuple[Any, Any]) -> DataFrame | None:
        """The versions of ``keys`` (a small frame of key values; None: every key), the key
        range first so Delta skips files by their statistics. None when there is no table."""
        if not self.exists():
            return None
        return _of_keys(self.spark.read.format("delta").load(self.path), self.keys, keys, key_range)

    def logged(
        self, keys: DataFrame | None, key_range: tuple[Any, Any]
    ) -> tuple[DataFrame | None, int]:
        """The change log's rows of ``keys`` (None: all), and how many files the log has."""
        if not tables.exists(self.spark, self.log_path):
            return None, 0
        df, files = read_counted(self.spark, self.log_path, T.StructType())  # exists: its schema
        return _of_keys(df, self.keys, keys, key_range), files

    def append_log(self, rows: DataFrame, files: int) -> None:
        """Append to the change log (new source columns are added to it); compacted when it
        reaches COMPACT_AT_FILES files, as the other bookkeeping tables are."""
        rows.write.format("delta").mode("append").option("mergeSchema", "true").save(self.log_path)
        if files + 1 >= COMPACT_AT_FILES:
            compact(self.spark, self.log_path)

    def create(self, schema: T.StructType) -> None:
        tables.create(self.spark, self.path, schema, self.parts)

    def add_columns(self, fields: Sequence[T.StructField]) -> None:
        """New source columns, added before the MERGE (which names every column)."""
        cols = ", ".join(f"{quote_ident(f.name)} {f.dataType.simpleString()}" for f in fields)
        self.spark.sql(f"ALTER TABLE {table_sql(self.path)} ADD COLUMNS ({cols})")

    def repair(self, finished_runs: Iterable[str]) -> None:
        """The history's last commit was made by a run that never finished: it may have died
        before the manifests were brought up to date, so rebuild them."""
        if not self.exists():
            return
        head = tables.last_commit(self.spark, self.path)
        run = _commit_run(head)
        if run and run not in set(finished_runs):
            log.warning(
                "%s: run %s committed version %s but did not finish; regenerating the "
                "symlink manifests",
                self.name,
                run,
                head.version,
            )
            manifest.regenerate(self.spark, self.path)

    def committed(self) -> Commit:
        """The commit just made, with the manifests of the partitions it touched updated."""
        commit = tables.last_commit(self.spark, self.path)
        manifest.update(self.spark, self.path, commit.actions)
        return commit

    def merge(self, source: DataFrame, cond: Column, action: str, columns: Sequence[str]) -> None:
        """One MERGE of the recomputed versions: ``source`` rows carry ``action`` =
        ``upsert`` (update the version with the same key and ``_valid_from``, or insert it)
        or ``delete`` (remove it)."""
        values: dict[str, str | Column] = {c: F.col(f"s.{quote_ident(c)}") for c in columns}
        upsert = F.col(f"s.{action}") == "upsert"
        (
            DeltaTable.forPath(self.spark, self.path)
            .alias("t")
            .merge(source.alias("s"), cond)
            .whenMatchedDelete(condition=F.col(f"s.{action}") == "delete")
            .whenMatchedUpdate(condition=upsert, set=values)
            .whenNotMatchedInsert(condition=upsert, values=values)
            .execute()
        )


def as_table(table: TableConfig) -> TableConfig:
    """The history table described as a table of its own (name, partitions), for the steps
    that treat it like any lake table (daily maintenance)."""
    return dataclasses.replace(
        table, name=table.history_name, partition_by=table.history_partition_by, history=None
    )


def history_columns(data: Sequence[str]) -> list[str]:
    """A history table's columns in order: the source's, the interval, the change's."""
    return [*data, *HISTORY_COLUMNS, *BOOKKEEPING_COLUMNS]


def _of_keys(
    df: DataFrame, key_cols: Sequence[str], keys: DataFrame | None, key_range: tuple[Any, Any]
) -> DataFrame:
    if keys is None:
        return df
    if key_range[0] is not None:
        df = df.where(F.col(key_cols[0]).between(F.lit(key_range[0]), F.lit(key_range[1])))
    return df.join(F.broadcast(keys), list(key_cols), "left_semi")


def _commit_run(commit: Commit) -> str | None:
    try:
        meta = json.loads(commit.info.get("userMetadata") or "{}")
    except ValueError:
        return None
    return meta.get("cdclake_run") if isinstance(meta, dict) else None
