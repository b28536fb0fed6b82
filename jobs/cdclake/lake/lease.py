"""One writer per table: a run that is going to write a table first claims its lease, and
releases it when it ends. A claim of a run that died expires after ``merge.lease_minutes``.

The lease is a tiny Delta table beside the ledger. A claim is an append tagged with Delta's
idempotent-write transaction id (``txnAppId`` = ``cdclake-lease``, ``txnVersion`` = the next
sequence number): of two runs claiming at once, Delta lets exactly one commit that version
(the other fails with a concurrent-transaction conflict, or its write is skipped), so the
claim is an atomic compare-and-set wherever Delta's commits are atomic (local files, S3 with
the DynamoDB log store). A run that finds the table held fails that table with
:class:`TableBusyError` before it writes anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.lake.bookkeeping import TableState, local_frame, read_delta
from cdclake.lake.fs import remove_older

log = logging.getLogger(__name__)
LEASE_SCHEMA = T.StructType(
    [
        T.StructField("attempt", T.StringType(), False),
        T.StructField("kind", T.StringType(), False),  # claim | release
        T.StructField("seq", T.LongType(), False),
        T.StructField("at", T.TimestampType(), False),
    ]
)
CLAIM, RELEASE = "claim", "release"
APP_ID = "cdclake-lease"
# Delta's optimistic-concurrency failures: another writer committed to what this one read.
CONFLICTS = (
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException",
    "MetadataChangedException",
    "ProtocolChangedException",
)


class TableBusyError(RuntimeError):
    """Another run holds the table (or committed to it while this run was writing)."""


@dataclass(frozen=True)
class Claim:
    attempt: str
    seq: int
    at: datetime


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is one of Delta's concurrent-modification errors."""
    java = getattr(exc, "java_exception", None)
    names = f"{type(exc).__name__} {exc}"
    if java is not None:
        try:
            names += " " + str(java.getClass().getName())
        except Exception:  # noqa: BLE001, S110 - the Python text is enough
            pass
    return any(c in names for c in CONFLICTS)


def busy(name: str, why: str, minutes: int) -> TableBusyError:
    return TableBusyError(
        f"{name}: another run holds this table ({why}); nothing was written. Rerun when it has "
        f"finished (a run that died releases the table after {minutes} min)"
    )


def holders(state: TableState, now: datetime, minutes: int) -> tuple[list[Claim], int]:
    """Live claims (not released, younger than the lease) and the highest sequence so far."""
    df = read_delta(state.spark, state.lease_path, LEASE_SCHEMA)
    state.count_files(state.lease_path, df)
    recent = F.col("at") >= F.lit(now - timedelta(minutes=minutes))
    row = df.agg(
        F.max("seq").alias("top"),
        F.collect_list(F.when(recent, F.struct("attempt", "kind", "seq", "at"))).alias("recent"),
    ).first()
    rows = row["recent"] if row is not None else []
    released = {r["attempt"] for r in rows if r["kind"] == RELEASE}
    live = [Claim(r["attempt"], r["seq"], r["at"]) for r in rows if r["kind"] == CLAIM]
    live = [c for c in live if c.attempt not in released]
    top = row["top"] if row is not None and row["top"] is not None else 0
    return sorted(live, key=lambda c: c.seq), int(top)


def acquire(state: TableState, attempt: str, minutes: int, name: str) -> int:
    """Claim the table for ``attempt``; returns the claim's sequence number. Raises
    :class:`TableBusyError` when another live run holds it or claims it at the same time."""
    now = datetime.now().astimezone()
    live, top = holders(state, now, minutes)
    if live:
        c = live[0]
        raise busy(name, f"run attempt {c.attempt} since {c.at:%Y-%m-%d %H:%M:%S}", minutes)
    seq = top + 1
    claim = local_frame(state.spark, [(attempt, CLAIM, seq, now)], LEASE_SCHEMA)
    try:
        (
            claim.write.format("delta")
            .mode("append")
            .option("txnAppId", APP_ID)
            .option("txnVersion", seq)
            .save(state.lease_path)
        )
    except Exception as exc:
        if is_conflict(exc):
            raise busy(name, "it claimed the table at the same moment", minutes) from exc
        raise
    live, _ = holders(state, now, minutes)
    # Delta skips a write whose txnVersion is not above the table's: a concurrent claim won.
    if not live or live[0].attempt != attempt:
        if any(c.attempt == attempt for c in live):
            release(state, attempt, seq)
        raise busy(name, "it claimed the table at the same moment", minutes)
    cutoff = now - timedelta(minutes=minutes)
    remove_older(state.spark, state.staging_path, int(cutoff.timestamp() * 1000))
    return seq


@contextmanager
def held(state: TableState, attempt: str, minutes: int, name: str) -> Iterator[None]:
    """Hold the table's lease while the body writes; release it however the body ends."""
    seq = acquire(state, attempt, minutes, name)
    try:
        yield
    finally:
        try:
            release(state, attempt, seq)
        except Exception:  # noqa: BLE001 - the claim then expires; the run's outcome stands
            log.exception("%s: could not release the lease (it expires by itself)", name)


def release(state: TableState, attempt: str, seq: int) -> None:
    """End ``attempt``'s claim (also after a failure, so a rerun need not wait)."""
    row = (attempt, RELEASE, seq, datetime.now().astimezone())
    state.append_rows(state.lease_path, local_frame(state.spark, [row], LEASE_SCHEMA))
