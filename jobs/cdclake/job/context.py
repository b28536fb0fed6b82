"""What every step of a table's run shares: the session, the config, the table, the run id,
and the table's bookkeeping; and what the run found when it opened the table."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pyspark.sql import SparkSession

from cdclake.core.config import PipelineConfig, TableConfig
from cdclake.core.dms import RawFile
from cdclake.core.hours import UTC, as_utc
from cdclake.lake import lease, tables
from cdclake.lake.bookkeeping import TableState
from cdclake.lake.ledger import Ledger, read_ledger, record_generation
from cdclake.session import interpreted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """One table's run."""

    spark: SparkSession
    cfg: PipelineConfig
    table: TableConfig
    run_id: str  # the scheduler's run (stable across retries)
    attempt: str  # this process's attempt at it (lease, scratch folder)
    state: TableState  # the table's bookkeeping

    @classmethod
    def of(
        cls, spark: SparkSession, cfg: PipelineConfig, table: TableConfig, run_id: str
    ) -> RunContext:
        attempt = f"{run_id}.{uuid.uuid4().hex[:8]}"
        return cls(spark, cfg, table, run_id, attempt, TableState(spark, cfg, table))

    def on(self, spark: SparkSession) -> RunContext:
        """The same run on another session (of the same application)."""
        return replace(self, spark=spark, state=TableState(spark, self.cfg, self.table))

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

    @property
    def staging(self) -> str:
        """This attempt's scratch folder."""
        return f"{self.state.staging_path}/{self.attempt}"


@dataclass(frozen=True)
class Target:
    """The lake table as the run found it: whether it exists, and what its ledger says."""

    exists: bool
    ledger: Ledger
    ledger_version: int  # the ledger's Delta version when it was read (-1: no ledger yet)
    size_bytes: int | None = None  # the table's (and its history's) data; None: unknown

    def ledger_changed(self, ctx: RunContext) -> bool:
        """Whether another run recorded something since (cheap: Delta lists its log)."""
        return tables.head_version(ctx.spark, ctx.state.ledger_path) != self.ledger_version


def open_target(ctx: RunContext) -> Target:
    """Read the ledger and check the table: its properties, and what a run that died after
    its data commit left undone (a full load's generation, the manifest)."""
    version = tables.head_version(ctx.spark, ctx.state.ledger_path)
    ledger = read_ledger(ctx.state, datetime.now(UTC))
    if not tables.exists(ctx.spark, ctx.path):
        return Target(False, ledger, version, data_size(ctx, None))
    tables.check_properties(ctx.spark, ctx.path, ctx.name)
    head = tables.last_commit(ctx.spark, ctx.path)
    meta = commit_meta(head.info)
    run = meta.get("cdclake_run")
    if run and run not in ledger.finished_runs:
        ledger = recover_generation(ctx, ledger, meta)
        tables.repair_manifest(ctx.spark, ctx.path, ctx.name, run, head.version)
    return Target(True, ledger, version, data_size(ctx, head.version))


def data_size(ctx: RunContext, version: int | None) -> int | None:
    """The bytes of the table at ``version`` (None: no table) and of its history, from their
    checksums (no Spark job); None when one is unknown or the size is not used."""
    if ctx.cfg.merge.interpreted_max_mb <= 0:
        return None
    sizes = [0 if version is None else tables.size_bytes(ctx.spark, ctx.path, version)]
    if ctx.table.history:
        sizes.append(tables.size_bytes(ctx.spark, ctx.cfg.history_location(ctx.table)))
    return None if None in sizes else sum(s or 0 for s in sizes)


def interprets(size_bytes: int | None, batch_bytes: int, max_mb: int) -> bool:
    """Whether a run is small enough for Spark to interpret its expressions rather than
    compile them (``merge.interpreted_max_mb``; 0: never; an unknown size: never)."""
    if max_mb <= 0 or size_bytes is None:
        return False
    return size_bytes + batch_bytes <= max_mb * 2**20


def expressions(
    ctx: RunContext, target: Target, files: Sequence[RawFile]
) -> AbstractContextManager[None]:
    """How Spark evaluates the expressions of the run's reads and writes (see
    :data:`cdclake.session.INTERPRETED_CONF`): interpreted when the table and the batch are
    small, else as the session is configured."""
    batch = sum(f.size for f in files)
    max_mb = ctx.cfg.merge.interpreted_max_mb
    if not interprets(target.size_bytes, batch, max_mb):
        return nullcontext()
    log.info(
        "%s: %.1f MB of table and %.1f MB of changes (at most %d MB): expressions interpreted",
        ctx.name,
        (target.size_bytes or 0) / 2**20,
        batch / 2**20,
        max_mb,
    )
    return interpreted(ctx.spark)


def commit_meta(info: dict[str, Any]) -> dict[str, Any]:
    """The run metadata a commit carries (see :func:`cdclake.lake.tables.commit_metadata`)."""
    try:
        meta = json.loads(info.get("userMetadata") or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def recover_generation(ctx: RunContext, ledger: Ledger, meta: dict[str, Any]) -> Ledger:
    """A full load committed its data but died before recording its generation: record it
    now, from the commit, so no change older than the load is applied on top of it."""
    generation = meta.get("generation")
    if not generation or generation == ledger.generation:
        return ledger
    watermark = as_utc(datetime.fromisoformat(meta["watermark"])) if meta.get("watermark") else None
    log.warning(
        "%s: full load %s committed its data but did not record its generation: recording it",
        ctx.name,
        generation,
    )
    record_generation(ctx.state, generation, watermark, meta["cdclake_run"])
    return replace(ledger, generation=generation, watermark=watermark, frontier=None)


def writing(ctx: RunContext) -> AbstractContextManager[None]:
    """Hold the table's lease while the body writes (see :mod:`cdclake.lake.lease`)."""
    return lease.held(ctx.state, ctx.attempt, ctx.cfg.merge.lease_minutes, ctx.name)
