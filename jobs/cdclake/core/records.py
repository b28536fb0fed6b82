"""What a run reports per table: :class:`AuditRecord` (the merge job; also the schema of the
audit table) and :class:`MaintenanceRecord`, plus the :class:`Stopwatch` timing their steps.

Each record is the one definition of its fields: the summary JSON, the audit table's columns
(:func:`spark_schema`) and the catalog's queries all follow from it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from cdclake.core.hours import UTC

# Statuses of a table's run.
RUNNING, SUCCEEDED, NOOP, FAILED = "running", "succeeded", "noop", "failed"
ERROR_LIMIT = 4000  # characters of an error kept in a record


R = TypeVar("R", bound="Record")


class Record:
    """What every run record can do (the records are frozen dataclasses)."""

    status: str
    error: str | None

    def but(self: R, **changes: Any) -> R:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def failed(self: R, exc: BaseException) -> R:
        return self.but(status=FAILED, error=error_text(exc)[:ERROR_LIMIT])

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON values (the ``summary`` log line, ``--summary-json``)."""
        return to_json(self)


@dataclass(frozen=True)
class AuditRecord(Record):
    """One table's merge run: what it read, decided and wrote (a row of the audit table)."""

    run_id: str
    table: str
    mode: str  # full | incremental
    status: str  # succeeded | noop | failed
    since: str | None
    until: str | None
    started_at: datetime
    duration_s: float = 0.0
    files: int = 0
    hours: tuple[str, ...] = ()
    records: int = 0
    records_by_op: dict[str, int] = field(default_factory=dict)
    duplicates_collapsed: int = 0
    stale_skipped: int = 0
    deletes_of_absent_keys: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    quarantined: int = 0
    delta_version: int | None = None
    newest_change_ts: datetime | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # Unapplied files left over the per-run caps for the next run (a catch-up).
    deferred_files: int | None = 0  # nullable: audit tables created before it read null
    # Safety checks the operator overrode for this run (e.g. a backfill past tombstones).
    overrides: tuple[str, ...] = ()

    @classmethod
    def start(
        cls,
        run_id: str,
        table: str,
        mode: str,
        until: datetime | None = None,
        since: datetime | None = None,
    ) -> AuditRecord:
        """The record of a run starting now (status ``running``)."""
        return cls(
            run_id=run_id,
            table=table,
            mode=mode,
            status=RUNNING,
            since=f"{since:%Y-%m-%dT%H}" if since else None,
            until=f"{until:%Y-%m-%dT%H}" if until else None,
            started_at=datetime.now(UTC),
        )

    def to_row(self) -> tuple[Any, ...]:
        """The record as a row of :func:`spark_schema` (field order)."""
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))


@dataclass(frozen=True)
class MaintenanceRecord(Record):
    """One table's maintenance run."""

    run_id: str
    table: str
    mode: str
    status: str
    now: str
    dry_run: bool
    partitions_considered: int = 0
    files_compacted: int = 0
    bytes_compacted: int = 0
    files_written: int = 0
    bytes_written: int = 0
    files_vacuumed: int = 0
    bytes_vacuumed: int = 0
    manifest_regenerated: bool = False
    tombstones_expired: int = 0
    quarantine_expired: int = 0
    bookkeeping_files_compacted: int = 0
    bookkeeping_files_vacuumed: int = 0
    duration_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class ReconcileRecord(Record):
    """One table's reconciliation against a source extract (:mod:`cdclake.lake.reconcile`).

    Keys are counted once each: ``equal``, ``different`` (same key, other values),
    ``missing_in_lake``, ``extra_in_lake``, or ``changed_since`` (the lake changed the key
    after the extract's time, so the two cannot be compared)."""

    run_id: str
    table: str
    mode: str
    status: str  # succeeded | failed (a mismatch, or an error)
    as_of: str | None = None
    columns_compared: tuple[str, ...] = ()
    source_rows: int = 0
    lake_rows: int = 0
    equal: int = 0
    different: int = 0
    missing_in_lake: int = 0
    extra_in_lake: int = 0
    changed_since: int = 0
    sample_keys: tuple[str, ...] = ()  # up to 20 mismatched keys, as JSON
    duration_s: float = 0.0
    error: str | None = None

    @property
    def mismatches(self) -> int:
        return self.different + self.missing_in_lake + self.extra_in_lake


def to_json(record: Any) -> dict[str, Any]:
    """A record dataclass as plain JSON values (datetimes as ISO text, tuples as lists)."""
    out = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dict):
            value = dict(value)
        out[f.name] = value
    return out


def error_text(exc: BaseException) -> str:
    """The failure as one readable line: for a JVM error, the Java exception (py4j's own
    message is only "An error occurred while calling ...")."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:
            return f"{type(exc).__name__}: {java.toString()}"
        except Exception:  # noqa: BLE001, S110 - fall back to Python's text
            pass
    return f"{type(exc).__name__}: {exc}"


# Annotation text -> Spark type (built lazily: pyspark is not needed to use the records).
_SPARK_TYPES = {
    "str": lambda t: t.StringType(),
    "int": lambda t: t.LongType(),
    "float": lambda t: t.DoubleType(),
    "bool": lambda t: t.BooleanType(),
    "datetime": lambda t: t.TimestampType(),
    "tuple[str, ...]": lambda t: t.ArrayType(t.StringType()),
    "dict[str, int]": lambda t: t.MapType(t.StringType(), t.LongType()),
    "dict[str, float]": lambda t: t.MapType(t.StringType(), t.DoubleType()),
}


def spark_schema(record_type: type) -> Any:
    """The Spark schema of a record dataclass: ``X | None`` fields and collections are
    nullable, every other field is NOT NULL."""
    from pyspark.sql import types as T

    fields = []
    for f in dataclasses.fields(record_type):
        text = str(f.type)
        optional = text.endswith(" | None")
        base = text[: -len(" | None")] if optional else text
        dtype = _SPARK_TYPES[base](T)
        nullable = optional or isinstance(dtype, (T.ArrayType, T.MapType))
        fields.append(T.StructField(f.name, dtype, nullable))
    return T.StructType(fields)


class Stopwatch:
    """Wall time per step (``timings``) and in all (``elapsed``), in seconds."""

    def __init__(self) -> None:
        self.t0 = self.last = time.monotonic()
        self.timings: dict[str, float] = {}

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.timings[step] = round(now - self.last, 3)
        self.last = now

    @property
    def elapsed(self) -> float:
        return round(time.monotonic() - self.t0, 3)
