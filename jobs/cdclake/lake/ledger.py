"""The ledger: which raw files each table has applied, per full-load *generation*.

Rows (one small append per run, in the same commit as the run's files):

- ``full_load``: a generation starts; ``watermark`` is the load's timestamp (every change
  older than it is already in the load). Recorded after the load's data commit, which carries
  the same generation in its commit metadata, so a crash between the two is recovered from the
  table's history (:func:`cdclake.job.context.open_target`);
- ``load`` / ``cdc``: a file applied (path, hour, size, the data version it produced);
- ``frontier``: ``hour`` = the oldest hour that may still hold an unapplied file after this
  run; hourly runs list hour folders from there (minus the configured lookback), so neither
  the listing nor the ledger read grows with the table's age.

Reads are bounded: control rows (full loads, frontiers, recent runs) and the ``cdc`` rows of
the hours a run lists, never the whole ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.core.dms import RawFile
from cdclake.core.hours import as_utc
from cdclake.lake.bookkeeping import TableState, local_frame, read_delta

LEDGER_SCHEMA = T.StructType(
    [
        T.StructField("generation", T.StringType(), False),
        T.StructField("kind", T.StringType(), False),  # full_load | load | cdc | frontier
        T.StructField("file", T.StringType(), True),
        T.StructField("hour", T.TimestampType(), True),
        T.StructField("size", T.LongType(), True),
        T.StructField("watermark", T.TimestampType(), True),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("data_version", T.LongType(), True),
        T.StructField("recorded_at", T.TimestampType(), False),
    ]
)
FULL_LOAD, LOAD, CDC, FRONTIER = "full_load", "load", "cdc", "frontier"
# Runs whose bookkeeping is looked at to tell whether the last data commit finished.
RECENT = timedelta(days=7)


@dataclass(frozen=True)
class Ledger:
    """What the ledger says about a table: its generation and where CDC listing may start."""

    generation: str | None
    watermark: datetime | None
    frontier: datetime | None  # None: no incremental run recorded one in this generation
    finished_runs: frozenset[str]  # runs that recorded files recently


def read_ledger(state: TableState, now: datetime) -> Ledger:
    """The ledger's control rows (full loads, frontiers, recent runs), in one pass."""
    df = state.read(state.ledger_path, LEDGER_SCHEMA)
    is_control = F.col("kind").isin(FULL_LOAD, FRONTIER)
    control = df.where(is_control | (F.col("recorded_at") >= F.lit(now - RECENT))).select(
        "generation",
        "kind",
        F.when(is_control, F.col("hour")).alias("hour"),  # file rows: one row per run
        "watermark",
        "run_id",
        "recorded_at",
    )
    rows = control.distinct().collect()
    loads = sorted((r for r in rows if r["kind"] == FULL_LOAD), key=lambda r: r["recorded_at"])
    generation = loads[-1]["generation"] if loads else ""
    frontiers = sorted(
        (r for r in rows if r["kind"] == FRONTIER and r["generation"] == generation),
        key=lambda r: r["recorded_at"],
    )
    return Ledger(
        generation=generation or None,
        watermark=as_utc(loads[-1]["watermark"]) if loads else None,
        frontier=as_utc(frontiers[-1]["hour"]) if frontiers else None,
        finished_runs=frozenset(r["run_id"] for r in rows if r["kind"] in (LOAD, CDC, FRONTIER)),
    )


def applied_files(state: TableState, generation: str | None, since: datetime | None) -> set[str]:
    """The CDC files applied in ``generation``, of hours from ``since`` on (all when None)."""
    df = read_delta(state.spark, state.ledger_path, LEDGER_SCHEMA)
    files = df.where((F.col("kind") == CDC) & (F.col("generation") == (generation or "")))
    if since is not None:
        files = files.where(F.col("hour") >= F.lit(since))
    return {r["file"] for r in files.select("file").collect()}


def record_generation(
    state: TableState, generation: str, watermark: datetime | None, run_id: str
) -> None:
    """A full load's generation starts (after its data commit)."""
    row = (generation, FULL_LOAD, None, None, None, watermark, run_id, None, _now())
    state.append_rows(state.ledger_path, local_frame(state.spark, [row], LEDGER_SCHEMA))


def record_files(
    state: TableState,
    generation: str | None,
    files: Sequence[RawFile],
    run_id: str,
    version: int | None,
    frontier: datetime | None = None,
) -> None:
    """The files a run applied, and (incremental runs) the new frontier, in one append."""
    now = _now()
    gen = generation or ""
    rows: list[tuple] = [
        (gen, f.kind, f.path, f.hour, f.size, None, run_id, version, now) for f in files
    ]
    if frontier is not None:
        rows.append((gen, FRONTIER, None, frontier, None, None, run_id, version, now))
    state.append_rows(state.ledger_path, local_frame(state.spark, rows, LEDGER_SCHEMA))


def _now() -> datetime:
    return datetime.now().astimezone()
