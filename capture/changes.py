"""From decoded pgoutput messages to DMS change rows, buffered per table and commit hour.
Pure: no database, no files (the streamer flushes the buffers).

Rules, as DMS writes them (and where the source forces a choice, as the job needs them):

* every row carries its transaction's commit time and a change sequence: 16 digits of commit
  time + a 19-digit counter from the transaction's *commit* LSN and the row's index in the
  transaction. Commit order is LSN order, so the sequence increases in commit order even when
  transactions interleave, and a replay produces exactly the same values;
* ``U`` carries the full new row; an unchanged TOASTed value is taken from the old row, which
  REPLICA IDENTITY FULL sends (tables without it are refused up front: see
  :func:`capture.source.check_capturable`); without an old row it is an error, never NULL;
* ``D`` carries the old row: the key only under REPLICA IDENTITY DEFAULT, all columns under
  FULL;
* an update that changes the configured key is written as ``D`` (old key) + ``I`` (new row);
* TRUNCATE is not replicated (DMS does not capture it for PostgreSQL): it is counted and
  logged;
* a transaction that ended at or before the saved position is skipped (a restart replays from
  the slot's confirmed position, which may be older).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

from capture.errors import ProtocolError, UnchangedToastError, UnsupportedTableError
from capture.files import Columns
from capture.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    Relation,
    TupleData,
    Update,
)
from capture.typemap import PgType
from cdclake.core.config import TableConfig
from cdclake.core.dms import change_sequence, dms_timestamp
from cdclake.core.hours import floor_hour

log = logging.getLogger(__name__)

# Counter = (commit LSN mod 10^13) * 10^6 + row index, mod 10^19 (19 digits). Exact ordering
# for transactions of up to a million rows; the LSN wraps every ~9 TiB of WAL, which can only
# misorder transactions committed within the same 1/100 s as the wrap.
LSN_MODULUS = 10**13
ROWS_PER_TRANSACTION = 10**6
COUNTER_MODULUS = 10**19

Row = tuple[str, str, str, tuple[str | None, ...]]  # op, commit time, change seq, values


def change_counter(commit_lsn: int, index: int) -> int:
    """The 19-digit counter of the ``index``-th (0-based) row of a transaction."""
    return ((commit_lsn % LSN_MODULUS) * ROWS_PER_TRANSACTION + index) % COUNTER_MODULUS


@dataclass
class TableStats:
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    key_updates: int = 0  # written as D + I
    truncates: int = 0  # not replicated: see the log


@dataclass
class Stats:
    transactions: int = 0
    skipped_transactions: int = 0  # replayed, already written before a restart
    tables: dict[str, TableStats] = field(default_factory=lambda: defaultdict(TableStats))
    ignored_relations: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "transactions": self.transactions,
            "skipped_transactions": self.skipped_transactions,
            "tables": {k: vars(v).copy() for k, v in sorted(self.tables.items())},
            "ignored_relations": sorted(self.ignored_relations),
        }


@dataclass
class _Txn:
    final_lsn: int
    commit: datetime
    stamp: str  # DMS timestamp text
    hour: datetime
    seq_prefix: str  # 16 commit-time digits
    skip: bool
    index: int = 0

    def next_seq(self) -> str:
        counter = change_counter(self.final_lsn, self.index)
        self.index += 1
        return f"{self.seq_prefix}{counter:019d}"


@dataclass(frozen=True)
class _Shape:
    """How one version of a table's relation maps to file columns."""

    table: TableConfig
    name: str  # qualified, looked up once per row
    columns: Columns
    project: Callable[[TupleData], tuple[Any, ...]]  # relation tuple -> file values
    key: Callable[[TupleData], Any]  # relation tuple -> configured key values
    version: int


@dataclass(frozen=True)
class Batch:
    """Buffered rows of one table, one commit hour and one relation version: one file."""

    table: TableConfig
    hour: datetime
    columns: Columns
    rows: list[Row]


class ChangeBuffer:
    """Builds DMS rows from pgoutput messages and buffers them until the next flush."""

    def __init__(
        self,
        tables: Mapping[str, TableConfig],
        resolve: Callable[[int, int], PgType],
        resume_after: int,
    ) -> None:
        self.tables = tables
        self.resolve = resolve
        self.resume_after = resume_after
        self.committed_lsn = resume_after  # end of the last complete transaction seen
        self.stats = Stats()
        self.buffered = 0
        self._shapes: dict[int, _Shape] = {}  # relid -> current shape
        self._versions: Counter[str] = Counter()
        self._rows: dict[tuple[str, datetime, int], tuple[_Shape, list[Row]]] = {}
        self._txn: _Txn | None = None

    @property
    def in_transaction(self) -> bool:
        return self._txn is not None

    # --- transaction boundaries -----------------------------------------------------------
    def begin(self, msg: Begin) -> None:
        skip = msg.final_lsn < self.resume_after
        seq0 = change_sequence(msg.commit_ts, 0)
        self._txn = _Txn(
            msg.final_lsn,
            msg.commit_ts,
            dms_timestamp(msg.commit_ts),
            floor_hour(msg.commit_ts),
            seq0[:16],
            skip,
        )

    def commit(self, msg: Commit) -> None:
        txn = self._require_txn("commit")
        if txn.skip:
            self.stats.skipped_transactions += 1
        else:
            self.stats.transactions += 1
        self.committed_lsn = max(self.committed_lsn, msg.end_lsn)
        self._txn = None

    def advance(self, lsn: int) -> None:
        """Everything before ``lsn`` has been seen (a catch-up marker outside transactions)."""
        if self._txn is None:
            self.committed_lsn = max(self.committed_lsn, lsn)

    # --- relations ---------------------------------------------------------------------------
    def relation(self, msg: Relation) -> None:
        table = self.tables.get(msg.qualified_name)
        if table is None:
            if msg.qualified_name not in self.stats.ignored_relations:
                log.warning("ignoring changes of %s: not a configured table", msg.qualified_name)
            self.stats.ignored_relations.add(msg.qualified_name)
            self._shapes.pop(msg.relid, None)
            return
        names = [c.name for c in msg.columns]
        if missing := [k for k in table.primary_key if k not in names]:
            raise UnsupportedTableError(
                f"{table.qualified_name}: key column(s) {missing} are no longer in the table"
            )
        keep = [i for i, c in enumerate(msg.columns) if c.name not in table.drop_columns]
        columns = Columns(
            tuple(names[i] for i in keep),
            tuple(self.resolve(msg.columns[i].type_oid, msg.columns[i].typmod) for i in keep),
        )
        old = self._shapes.get(msg.relid)
        if old is not None and old.columns == columns:
            return  # pgoutput resends unchanged relations (cache invalidations, new session)
        self._versions[table.qualified_name] += 1
        self._shapes[msg.relid] = _Shape(
            table,
            table.qualified_name,
            columns,
            _getter(keep),
            _getter([names.index(k) for k in table.primary_key]),
            self._versions[table.qualified_name],
        )
        if old is not None:
            log.info("%s: columns changed to %s", table.qualified_name, list(columns.names))

    # --- row changes -------------------------------------------------------------------------
    def insert(self, msg: Insert) -> None:
        if shape := self._shape(msg.relid):
            self._add(shape, "I", msg.new)
            self.stats.tables[shape.name].inserts += 1

    def update(self, msg: Update) -> None:
        shape = self._shape(msg.relid)
        if shape is None:
            return
        new = msg.new
        # Only the written columns matter: a dropped (e.g. PII) column may stay unchanged.
        if UNCHANGED in shape.project(new) or UNCHANGED in shape.key(new):
            new = _fill_unchanged(shape, msg)
        stats = self.stats.tables[shape.name]
        if msg.old is not None and shape.key(msg.old) != shape.key(new):
            self._add(shape, "D", msg.old)
            self._add(shape, "I", new)
            stats.key_updates += 1
        else:
            self._add(shape, "U", new)
            stats.updates += 1

    def delete(self, msg: Delete) -> None:
        if shape := self._shape(msg.relid):
            self._add(shape, "D", msg.old)
            self.stats.tables[shape.name].deletes += 1

    def truncate(self, relids: tuple[int, ...]) -> None:
        txn = self._require_txn("truncate")
        for relid in relids:
            shape = self._shapes.get(relid)
            if shape is None or txn.skip:
                continue
            self.stats.tables[shape.name].truncates += 1
            log.warning(
                "TRUNCATE of %s committed at %s is not replicated (DMS does not capture "
                "TRUNCATE from PostgreSQL): the lake keeps the rows; run a full load "
                "(python -m capture init --force, then the job's full load) to resync",
                shape.table.qualified_name,
                txn.stamp,
            )

    def take(self) -> list[Batch]:
        """The buffered rows as batches (one file each), emptying the buffer."""
        batches = [
            Batch(shape.table, hour, shape.columns, rows)
            for (_, hour, _), (shape, rows) in self._rows.items()
        ]
        self._rows.clear()
        self.buffered = 0
        return batches

    # --- internals ---------------------------------------------------------------------------
    def _shape(self, relid: int) -> _Shape | None:
        txn = self._require_txn("row change")
        return None if txn.skip else self._shapes.get(relid)

    def _require_txn(self, what: str) -> _Txn:
        if self._txn is None:
            raise ProtocolError(f"{what} outside a transaction")
        return self._txn

    def _add(self, shape: _Shape, op: str, tup: TupleData) -> None:
        txn = self._txn
        assert txn is not None
        slot = (shape.name, txn.hour, shape.version)
        entry = self._rows.get(slot)
        if entry is None:
            entry = self._rows[slot] = (shape, [])
        entry[1].append((op, txn.stamp, txn.next_seq(), shape.project(tup)))
        self.buffered += 1


def _getter(positions: list[int]) -> Callable[[TupleData], tuple[Any, ...]]:
    if len(positions) == 1:
        (i,) = positions
        return lambda t: (t[i],)
    if not positions:
        return lambda t: ()
    return itemgetter(*positions)


def _fill_unchanged(shape: _Shape, msg: Update) -> TupleData:
    """Unchanged TOASTed values of the new row, taken from the full old row."""
    if msg.old_kind != "O" or msg.old is None:
        raise UnchangedToastError(
            f"{shape.table.qualified_name}: an update left an unchanged TOASTed value out and "
            "the table has no REPLICA IDENTITY FULL to take it from; writing NULL would corrupt "
            f"the lake. Run: ALTER TABLE {shape.table.qualified_name} REPLICA IDENTITY FULL, "
            "then a full load (python -m capture init --force)"
        )
    filled = tuple(o if n is UNCHANGED else n for n, o in zip(msg.new, msg.old, strict=True))
    if UNCHANGED in shape.project(filled):
        raise UnchangedToastError(f"{shape.name}: the old row also lacks a TOASTed value")
    return filled
