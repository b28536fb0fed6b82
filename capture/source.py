"""The source database: connections with the session settings values depend on, the checks a
table must pass to be captured faithfully, and small catalog look-ups.

Connections come from a libpq DSN or, when it is empty, the standard ``PG*`` environment
variables (``PGHOST``, ``PGUSER``, ``PGPASSWORD`` or ``~/.pgpass``...): no credential is ever
in the code or the pipeline config.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions
import psycopg2.extras
from psycopg2 import sql

from capture.errors import SlotLostError, SourceError, UnsupportedTableError
from capture.typemap import PgType, pg_type
from cdclake.core.config import DmsLayout, TableConfig

log = logging.getLogger(__name__)

# Seconds a replication connection's server process may outlive its client's close: until it
# exits, the slot shows as active (a drop or a new stream right after a flush waits for it).
SLOT_RELEASE_WAIT = 10.0
_T = TypeVar("_T")


def until_slot_free(attempt: Callable[[], _T], busy: Callable[[_T], bool]) -> _T:
    """``attempt()`` again every 0.1 s while ``busy`` says another connection holds the slot,
    for up to ``SLOT_RELEASE_WAIT`` seconds; the last result (busy or not) is returned."""
    deadline = time.monotonic() + SLOT_RELEASE_WAIT
    while True:
        result = attempt()
        if not busy(result) or time.monotonic() >= deadline:
            return result
        time.sleep(0.1)


# Text output must not depend on the server's or the role's defaults: timestamps in UTC, ISO
# dates, floats that read back exactly, bytea as hex.
SESSION_SETTINGS = {
    "timezone": "UTC",
    "datestyle": "ISO",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "intervalstyle": "postgres",
}
APPLICATION_NAME = "cdclake-capture"
MIN_SERVER_VERSION = 140000  # pgoutput's 'messages' option (the catch-up marker)


def connect(dsn: str, *, replication: bool = False) -> Any:
    """A connection with :data:`SESSION_SETTINGS`; autocommit unless ``replication``."""
    params = psycopg2.extensions.parse_dsn(dsn or "")
    options = " ".join(f"-c {k}={v}" for k, v in SESSION_SETTINGS.items())
    params["options"] = f"{params.get('options', '')} {options}".strip()
    params.setdefault("application_name", APPLICATION_NAME)
    params["client_encoding"] = "UTF8"  # pgoutput's text values are decoded as UTF-8
    factory = psycopg2.extras.LogicalReplicationConnection if replication else None
    try:
        conn = psycopg2.connect(connection_factory=factory, **params)
    except psycopg2.OperationalError as exc:
        raise SourceError(f"cannot connect to the source database: {exc}".strip()) from exc
    if not replication:
        conn.autocommit = True
    return conn


def check_server(conn: Any) -> None:
    """Logical decoding must be on, and the server new enough."""
    if conn.server_version < MIN_SERVER_VERSION:
        raise SourceError(f"PostgreSQL {conn.server_version} is too old: 14 or later is needed")
    level = fetch_value(conn, "SHOW wal_level")
    if level != "logical":
        raise SourceError(
            f"wal_level is '{level}': set wal_level = logical on the source (restart needed)"
        )


def fetch_value(conn: Any, query: str | sql.Composable, args: tuple[Any, ...] = ()) -> Any:
    with conn.cursor() as cur:
        cur.execute(query, args)
        row = cur.fetchone()
    return row[0] if row else None


def server_now(conn: Any) -> datetime:
    """The database's clock (which may run fast under libfaketime: never use the local one)."""
    return fetch_value(conn, "SELECT clock_timestamp()")


def qualified(table: TableConfig) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))


@dataclass(frozen=True)
class SourceColumn:
    name: str
    type: PgType
    storage: str  # attstorage: 'p' plain is never TOASTed


@dataclass(frozen=True)
class TableInfo:
    """A configured table as the source defines it."""

    table: TableConfig
    columns: tuple[SourceColumn, ...]  # published columns (not generated), attnum order
    identity: str  # relreplident: 'd' default, 'f' full, 'i' index, 'n' nothing
    identity_key: tuple[str, ...]  # columns an old-key image carries (PK or identity index)

    @property
    def captured(self) -> tuple[SourceColumn, ...]:
        """The columns written to files: DMS's table mapping removes ``drop_columns``."""
        return tuple(c for c in self.columns if c.name not in self.table.drop_columns)


_COLUMNS = """
SELECT a.attname, a.atttypid, a.atttypmod, a.attstorage
FROM pg_attribute a
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""
_IDENTITY_KEY = """
SELECT a.attname
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND (CASE WHEN %s = 'i' THEN i.indisreplident ELSE i.indisprimary END)
ORDER BY k.ord
"""


def describe_table(conn: Any, table: TableConfig, types: TypeResolver) -> TableInfo:
    """Columns, replica identity and key of a configured table (missing: an error)."""
    oid = fetch_value(conn, "SELECT to_regclass(%s)::oid", (qualified(table).as_string(conn),))
    if oid is None:
        raise UnsupportedTableError(f"table {table.qualified_name} does not exist in the source")
    with conn.cursor() as cur:
        cur.execute(_COLUMNS, (oid,))
        cols = tuple(SourceColumn(n, types.resolve(t, m), s) for n, t, m, s in cur.fetchall())
        identity = fetch_value(conn, "SELECT relreplident FROM pg_class WHERE oid = %s", (oid,))
        cur.execute(_IDENTITY_KEY, (oid, identity))
        key = tuple(r[0] for r in cur.fetchall())
    return TableInfo(table, cols, identity, key)


def check_capturable(info: TableInfo, layout: DmsLayout) -> None:
    """Refuse a table whose deletes or updates could not be written faithfully.

    * the configured key must be among the columns, and no column may be named like one of
      DMS's own columns (``Op``, the timestamp and sequence columns);
    * REPLICA IDENTITY NOTHING gives no key for deletes;
    * DEFAULT/INDEX: a delete carries only the identity key, which must cover the configured
      key; and an update leaves unchanged TOASTed values out with no old row to take them
      from, so every captured column that can be TOASTed (storage other than PLAIN) needs
      REPLICA IDENTITY FULL instead. Writing NULL there would corrupt the lake silently.
    """
    t, name = info.table, info.table.qualified_name
    names = {c.name for c in info.columns}
    if missing := [k for k in t.primary_key if k not in names]:
        raise UnsupportedTableError(f"{name}: configured key column(s) {missing} do not exist")
    if clash := sorted({c.name for c in info.captured} & set(layout.dms_columns)):
        raise UnsupportedTableError(
            f"{name}: column(s) {clash} have the names of DMS's columns (dms: in the config)"
        )
    if info.identity == "f":
        return
    fix = f"ALTER TABLE {name} REPLICA IDENTITY FULL"
    if info.identity == "n" or not info.identity_key:
        why = "NOTHING" if info.identity == "n" else "DEFAULT without a primary key"
        raise UnsupportedTableError(
            f"{name}: deletes would carry no key (REPLICA IDENTITY {why}); run: {fix}"
        )
    if uncovered := [k for k in t.primary_key if k not in info.identity_key]:
        raise UnsupportedTableError(
            f"{name}: deletes would carry only {list(info.identity_key)}, not the configured "
            f"key column(s) {uncovered}; run: {fix}"
        )
    toastable = [c.name for c in info.captured if c.storage != "p"]
    if toastable:
        raise UnsupportedTableError(
            f"{name}: column(s) {toastable} can be TOASTed, and under REPLICA IDENTITY "
            f"{'DEFAULT' if info.identity == 'd' else 'USING INDEX'} an update that leaves such "
            f"a value unchanged does not send it (the capture never writes NULL instead); run: "
            f"{fix}"
        )


class TypeResolver:
    """Type OID -> :class:`PgType`, following domains to their base type (cached)."""

    _BUILTIN_LIMIT = 10000  # OIDs below are built-in types, never domains

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._cache: dict[tuple[int, int], PgType] = {}

    def resolve(self, oid: int, typmod: int) -> PgType:
        key = (oid, typmod)
        if key not in self._cache:
            self._cache[key] = self._lookup(oid, typmod)
        return self._cache[key]

    def _lookup(self, oid: int, typmod: int) -> PgType:
        if oid < self._BUILTIN_LIMIT:
            return pg_type(oid, typmod)
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT typtype, typbasetype, typtypmod FROM pg_type WHERE oid = %s", (oid,)
            )
            row = cur.fetchone()
        if row and row[0] == "d":  # a domain reads and parses as its base type
            return self.resolve(row[1], row[2])
        return pg_type(oid, typmod)


def slot_status(conn: Any, slot: str) -> str | None:
    """``wal_status`` of the slot (``reserved``, ``extended``, ``unreserved``, ``lost``), or
    None when it does not exist."""
    with conn.cursor() as cur:
        cur.execute("SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        row = cur.fetchone()
    return None if row is None else (row[0] or "unknown")


def check_slot(conn: Any, slot: str) -> None:
    """The slot must exist and still hold the WAL the capture needs."""
    status = slot_status(conn, slot)
    if status is None:
        raise SlotLostError(
            f"replication slot '{slot}' does not exist: changes since the last position cannot "
            "be read. Run a full load again: python -m capture init --force"
        )
    if status == "lost":
        raise SlotLostError(
            f"replication slot '{slot}' is lost (wal_status = lost: the server removed WAL it "
            "still needed, max_slot_wal_keep_size). Changes were lost; run a full load again: "
            "python -m capture init --force"
        )
