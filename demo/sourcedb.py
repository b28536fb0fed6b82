"""A tiny in-memory model of the source database the demo replicates.

It holds the rows of each table (a dict keyed by primary key), applies transactions in commit
order and records every row change the way logical replication sees it:

* ``I`` and ``U`` carry the full after image;
* ``D`` carries the full before image, or only the key columns when the table has no
  ``REPLICA IDENTITY FULL`` (:attr:`TableSpec.key_only_deletes`);
* every change of one transaction shares the transaction's commit time; :attr:`Change.position`
  (global across tables, strictly increasing) orders changes, ties included;
* ``ALTER TABLE ... ADD COLUMN`` adds a nullable column; existing rows read NULL for it, and
  later change images carry it.

The state after the last transaction is the exact source state the lake must end up with.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

Key = tuple[Any, ...]
Row = dict[str, Any]


@dataclass(frozen=True)
class TableSpec:
    """Shape of one source table (column order is the source's)."""

    name: str
    columns: tuple[tuple[str, pa.DataType], ...]
    key: tuple[str, ...]
    key_only_deletes: bool

    def key_of(self, row: Row) -> Key:
        return tuple(row[c] for c in self.key)


@dataclass(frozen=True)
class Change:
    """One row change as captured from the source log."""

    table: str
    op: str  # 'I' | 'U' | 'D'
    commit: datetime  # transaction commit time (UTC)
    position: int  # 1-based, global, strictly increasing in change order
    image: Row  # after image (I/U), before image or key only (D)
    columns: tuple[str, ...]  # the table's columns when the change was captured


class SourceError(RuntimeError):
    """The scenario asked for something the source database would refuse."""


class SourceDb:
    """Rows per table, a change log, and the table columns over time."""

    def __init__(self, specs: Iterable[TableSpec]) -> None:
        self.specs = {s.name: s for s in specs}
        self._columns: dict[str, list[tuple[str, pa.DataType]]] = {
            n: list(s.columns) for n, s in self.specs.items()
        }
        self._rows: dict[str, dict[Key, Row]] = {n: {} for n in self.specs}
        self.changes: list[Change] = []
        self.added: list[tuple[str, str, datetime]] = []  # (table, column, at)
        self._last: datetime | None = None

    # --- reading -------------------------------------------------------------------------
    def columns(self, table: str) -> tuple[tuple[str, pa.DataType], ...]:
        return tuple(self._columns[table])

    def column_names(self, table: str) -> tuple[str, ...]:
        return tuple(n for n, _ in self._columns[table])

    def get(self, table: str, key: Key) -> Row | None:
        row = self._rows[table].get(key)
        return dict(row) if row is not None else None

    def has(self, table: str, key: Key) -> bool:
        return key in self._rows[table]

    def keys(self, table: str) -> list[Key]:
        return sorted(self._rows[table])

    def rows(self, table: str) -> list[Row]:
        """Current rows of ``table`` in key order (copies)."""
        data = self._rows[table]
        return [dict(data[k]) for k in sorted(data)]

    def count(self, table: str) -> int:
        return len(self._rows[table])

    # --- writing -------------------------------------------------------------------------
    def seed(self, table: str, rows: Iterable[Row]) -> None:
        """Rows that exist before the replication task starts (not changes)."""
        spec, data = self.specs[table], self._rows[table]
        for row in rows:
            full = self._normalise(table, row)
            key = spec.key_of(full)
            if key in data:
                raise SourceError(f"{table}: duplicate key {key} in the initial rows")
            data[key] = full

    def add_column(self, table: str, name: str, type_: pa.DataType, at: datetime) -> None:
        """``ALTER TABLE <table> ADD COLUMN <name>`` committed at ``at``."""
        self._advance(at)
        if name in self.column_names(table):
            raise SourceError(f"{table}: column {name} exists")
        self._columns[table].append((name, type_))
        for row in self._rows[table].values():
            row[name] = None
        self.added.append((table, name, at))

    def begin(self, commit: datetime) -> Txn:
        """A transaction that commits at ``commit`` (strictly after the previous one)."""
        self._advance(commit)
        return Txn(self, commit)

    def _advance(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise SourceError("commit times must be timezone-aware (UTC)")
        if self._last is not None and at <= self._last:
            raise SourceError(f"commit {at} is not after the previous one ({self._last})")
        self._last = at

    def _normalise(self, table: str, row: Row) -> Row:
        names = self.column_names(table)
        unknown = set(row) - set(names)
        if unknown:
            raise SourceError(f"{table}: unknown column(s) {sorted(unknown)}")
        return {c: row.get(c) for c in names}

    def _record(self, table: str, op: str, commit: datetime, image: Row) -> None:
        self.changes.append(
            Change(table, op, commit, len(self.changes) + 1, image, self.column_names(table))
        )


class Txn:
    """Statements of one transaction; each is applied at once and logged as a change."""

    def __init__(self, db: SourceDb, commit: datetime) -> None:
        self.db, self.commit = db, commit

    def insert(self, table: str, row: Row) -> Row:
        full = self.db._normalise(table, row)
        key = self.db.specs[table].key_of(full)
        if key in self.db._rows[table]:
            raise SourceError(f"{table}: insert of existing key {key}")
        self.db._rows[table][key] = full
        self.db._record(table, "I", self.commit, dict(full))
        return dict(full)

    def update(self, table: str, key: Key, **values: Any) -> Row:
        data = self.db._rows[table]
        if key not in data:
            raise SourceError(f"{table}: update of missing key {key}")
        spec = self.db.specs[table]
        if set(values) & set(spec.key):
            raise SourceError(f"{table}: the demo never updates key columns")
        new = self.db._normalise(table, {**data[key], **values})
        data[key] = new
        self.db._record(table, "U", self.commit, dict(new))
        return dict(new)

    def delete(self, table: str, key: Key) -> Row:
        data = self.db._rows[table]
        if key not in data:
            raise SourceError(f"{table}: delete of missing key {key}")
        before = data.pop(key)
        spec = self.db.specs[table]
        image = dict(zip(spec.key, key, strict=True)) if spec.key_only_deletes else dict(before)
        self.db._record(table, "D", self.commit, image)
        return before
