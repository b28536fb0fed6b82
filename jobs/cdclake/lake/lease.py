"""One writer per table: a run that is going to write a table first claims its lease, and
releases it when it ends. A claim of a run that died expires after ``merge.lease_minutes``.

The lease is a log of numbered entries (``<state>/writer/_delta_log/<n>.json``) written
through Delta's own LogStore with put-if-absent, the primitive Delta's commits rely on: of
two runs claiming entry ``n`` at once, exactly one write succeeds (atomic wherever Delta's
commits are: local files, HDFS, S3 with the DynamoDB log store). Reading and claiming need no
Spark job and no Delta commit. A run that finds the table held fails that table with
:class:`TableBusyError` before it writes anything.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cdclake.lake.bookkeeping import TableState
from cdclake.lake.fs import list_level, log_create, log_read, remove_older, remove_tree

log = logging.getLogger(__name__)
CLAIM, RELEASE = "claim", "release"
ENTRY = re.compile(r"^(\d{20})\.json$")
LOOK_BACK = 8  # entries read to find the holder (a claim is followed by its release)
KEEP = 32  # older entries are deleted once a claim succeeds
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


class _Log:
    """The lease's numbered entries."""

    def __init__(self, state: TableState) -> None:
        self.spark = state.spark
        self.dir = f"{state.lease_path}/_delta_log"

    def versions(self) -> list[int]:
        listed = list_level(self.spark, self.dir) or []
        return sorted(int(m.group(1)) for n, *_ in listed if (m := ENTRY.match(n)))

    def uri(self, version: int) -> str:
        return f"{self.dir}/{version:020d}.json"

    def read(self, version: int) -> dict[str, Any]:
        return json.loads(log_read(self.spark, self.uri(version))[0])

    def write(self, version: int, entry: dict[str, Any]) -> bool:
        """Put-if-absent; False when entry ``version`` exists already."""
        return log_create(self.spark, self.uri(version), [json.dumps(entry)])

    def trim(self, below: int) -> None:
        for v in self.versions():
            if v < below:
                remove_tree(self.spark, self.uri(v))


def holders(state: TableState, now: datetime, minutes: int) -> tuple[list[Claim], int]:
    """Live claims (not released, younger than the lease) and the newest entry number."""
    lease_log = _Log(state)
    versions = lease_log.versions()
    released, live = set(), []
    for v in reversed(versions[-LOOK_BACK:]):
        try:
            entry = lease_log.read(v)
        except Exception:  # noqa: BLE001 - trimmed meanwhile by a newer claim: older still
            break
        if entry["kind"] == RELEASE:
            released.add(entry["attempt"])
        elif entry["attempt"] not in released:
            at = datetime.fromisoformat(entry["at"])
            if at >= now - timedelta(minutes=minutes):
                live.append(Claim(entry["attempt"], v, at))
    return live, versions[-1] if versions else 0


def acquire(state: TableState, attempt: str, minutes: int, name: str) -> int:
    """Claim the table for ``attempt``; returns the claim's entry number. Raises
    :class:`TableBusyError` when another live run holds it or claims it at the same time."""
    now = datetime.now().astimezone()
    live, top = holders(state, now, minutes)
    others = [c for c in live if c.attempt != attempt]
    if others:
        c = others[0]
        raise busy(name, f"run attempt {c.attempt} since {c.at:%Y-%m-%d %H:%M:%S}", minutes)
    lease_log = _Log(state)
    entry = {"attempt": attempt, "kind": CLAIM, "at": now.isoformat()}
    if not lease_log.write(top + 1, entry):
        raise busy(name, "it claimed the table at the same moment", minutes)
    lease_log.trim(top + 1 - KEEP)
    cutoff = now - timedelta(minutes=minutes)
    remove_older(state.spark, state.staging_path, int(cutoff.timestamp() * 1000))
    return top + 1


def release(state: TableState, attempt: str, seq: int) -> None:
    """End ``attempt``'s claim (also after a failure, so a rerun need not wait)."""
    lease_log = _Log(state)
    entry = {"attempt": attempt, "kind": RELEASE, "at": datetime.now().astimezone().isoformat()}
    for _ in range(3):  # another run may append at the same moment (after our claim expired)
        top = max(lease_log.versions(), default=seq)
        if lease_log.write(top + 1, entry):
            return
    log.warning("%s: could not release its lease; it expires by itself", attempt)


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
