"""What every step of a table's run shares: the session, the config, the table, the run id,
and the table's bookkeeping; and what the run found when it opened the table."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession

from cdclake.core.config import PipelineConfig, TableConfig
from cdclake.lake import tables
from cdclake.lake.bookkeeping import Ledger, TableState


@dataclass(frozen=True)
class RunContext:
    """One table's run."""

    spark: SparkSession
    cfg: PipelineConfig
    table: TableConfig
    run_id: str
    state: TableState  # the table's bookkeeping

    @classmethod
    def of(
        cls, spark: SparkSession, cfg: PipelineConfig, table: TableConfig, run_id: str
    ) -> RunContext:
        return cls(spark, cfg, table, run_id, TableState(spark, cfg, table))

    @property
    def name(self) -> str:
        return self.table.qualified_name

    @property
    def path(self) -> str:
        """The lake table's location."""
        return self.cfg.table_location(self.table)

    @property
    def keys(self) -> list[str]:
        return list(self.table.primary_key)

    @property
    def parts(self) -> list[str]:
        return list(self.table.partition_by)

    @property
    def raw_location(self) -> str:
        return self.cfg.raw_location(self.table)


@dataclass(frozen=True)
class Target:
    """The lake table as the run found it: whether it exists, and what its ledger says."""

    exists: bool
    ledger: Ledger


def open_target(ctx: RunContext) -> Target:
    """Read the ledger and check the table (properties, a manifest a crashed run left)."""
    ledger = ctx.state.ledger()
    if not tables.exists(ctx.spark, ctx.path):
        return Target(False, ledger)
    tables.check_properties(ctx.spark, ctx.path, ctx.name)
    tables.repair_manifest(ctx.spark, ctx.path, ctx.name, ledger.finished_runs)
    return Target(True, ledger)
