"""Decoder of PostgreSQL's ``pgoutput`` logical replication messages, protocol version 1.

Pure functions over the bytes of one XLogData payload (no I/O). The formats are PostgreSQL's
"Logical Replication Message Formats"; column values arrive in text format (the output
functions of the walsender session, hence its ``TimeZone``/``DateStyle`` settings matter).

Messages used: Begin, Relation, Insert, Update, Delete, Truncate, Commit, and non-transactional
logical decoding Messages (the capture's own catch-up marker). Type and Origin are decoded as
:class:`Ignored`. Protocol 1 sends a transaction only once it has committed, all at once.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from capture.errors import ProtocolError

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_I16, _I32, _I64 = struct.Struct("!h"), struct.Struct("!i"), struct.Struct("!q")
_U32, _U64 = struct.Struct("!I"), struct.Struct("!Q")


class _Unchanged:
    """An unchanged TOASTed value ('u'): the new tuple does not carry it."""

    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()
Value = str | None | _Unchanged
TupleData = tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int  # LSN of the commit record: orders transactions
    commit_ts: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int  # end of the commit record: the position to restart after
    commit_ts: datetime


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    typmod: int
    is_key: bool  # part of the replica identity (every column under FULL)


@dataclass(frozen=True, slots=True)
class Relation:
    relid: int
    schema: str
    name: str
    identity: str  # 'd' default, 'n' nothing, 'f' full, 'i' index
    columns: tuple[Column, ...]

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True, slots=True)
class Insert:
    relid: int
    new: TupleData


@dataclass(frozen=True, slots=True)
class Update:
    relid: int
    old_kind: str | None  # 'K' key only, 'O' full old row, None: key unchanged (DEFAULT)
    old: TupleData | None
    new: TupleData


@dataclass(frozen=True, slots=True)
class Delete:
    relid: int
    old_kind: str  # 'K' or 'O'
    old: TupleData


@dataclass(frozen=True, slots=True)
class Truncate:
    relids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Ignored:
    kind: str  # 'Y' type, 'O' origin


Message = Begin | Commit | Relation | Insert | Update | Delete | Truncate | LogicalMessage | Ignored


def decode(payload: bytes) -> Message:
    """One pgoutput message from the bytes of an XLogData payload."""
    if not payload:
        raise ProtocolError("empty pgoutput message")
    kind = chr(payload[0])
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ProtocolError(f"unknown pgoutput message type {kind!r} (protocol 1 expected)")
    try:
        return decoder(bytes(payload), 1)
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed pgoutput {kind!r} message: {exc}") from exc


def pg_timestamp(micros: int) -> datetime:
    """A protocol timestamp (microseconds since 2000-01-01 UTC) as an aware datetime."""
    return PG_EPOCH + timedelta(microseconds=micros)


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.find(b"\x00", pos)
    if end < 0:
        raise ProtocolError("unterminated string in pgoutput message")
    return buf[pos:end].decode("utf-8"), end + 1


def _begin(buf: bytes, pos: int) -> Begin:
    lsn, ts = _U64.unpack_from(buf, pos)[0], _I64.unpack_from(buf, pos + 8)[0]
    return Begin(lsn, pg_timestamp(ts), _U32.unpack_from(buf, pos + 16)[0])


def _commit(buf: bytes, pos: int) -> Commit:
    commit_lsn, end_lsn = _U64.unpack_from(buf, pos + 1)[0], _U64.unpack_from(buf, pos + 9)[0]
    return Commit(commit_lsn, end_lsn, pg_timestamp(_I64.unpack_from(buf, pos + 17)[0]))


def _relation(buf: bytes, pos: int) -> Relation:
    relid = _U32.unpack_from(buf, pos)[0]
    schema, pos = _string(buf, pos + 4)
    name, pos = _string(buf, pos)
    identity = chr(buf[pos])
    ncols = _I16.unpack_from(buf, pos + 1)[0]
    pos += 3
    cols = []
    for _ in range(ncols):
        flags = buf[pos]
        col, pos = _string(buf, pos + 1)
        oid, typmod = _U32.unpack_from(buf, pos)[0], _I32.unpack_from(buf, pos + 4)[0]
        pos += 8
        cols.append(Column(col, oid, typmod, bool(flags & 1)))
    return Relation(relid, schema, name, identity, tuple(cols))


def _tuple(buf: bytes, pos: int) -> tuple[TupleData, int]:
    # The hot loop of the capture: local names, one branch per value.
    ncols = _I16.unpack_from(buf, pos)[0]
    pos += 2
    values: list[Value] = []
    append, length_at = values.append, _I32.unpack_from
    for _ in range(ncols):
        kind = buf[pos]
        if kind == 0x74:  # 't' text
            end = pos + 5 + length_at(buf, pos + 1)[0]
            append(buf[pos + 5 : end].decode())
            pos = end
        elif kind == 0x6E:  # 'n' null
            append(None)
            pos += 1
        elif kind == 0x75:  # 'u' unchanged TOASTed value
            append(UNCHANGED)
            pos += 1
        else:
            raise ProtocolError(f"unexpected tuple value kind {chr(kind)!r} (text format expected)")
    return tuple(values), pos


def _insert(buf: bytes, pos: int) -> Insert:
    relid = _U32.unpack_from(buf, pos)[0]
    if chr(buf[pos + 4]) != "N":
        raise ProtocolError("insert without a new tuple")
    new, _ = _tuple(buf, pos + 5)
    return Insert(relid, new)


def _update(buf: bytes, pos: int) -> Update:
    relid = _U32.unpack_from(buf, pos)[0]
    pos += 4
    old_kind, old = None, None
    marker = chr(buf[pos])
    if marker in ("K", "O"):
        old_kind = marker
        old, pos = _tuple(buf, pos + 1)
        marker = chr(buf[pos])
    if marker != "N":
        raise ProtocolError(f"update without a new tuple (got {marker!r})")
    new, _ = _tuple(buf, pos + 1)
    return Update(relid, old_kind, old, new)


def _delete(buf: bytes, pos: int) -> Delete:
    relid = _U32.unpack_from(buf, pos)[0]
    kind = chr(buf[pos + 4])
    if kind not in ("K", "O"):
        raise ProtocolError(f"delete without an old tuple (got {kind!r})")
    old, _ = _tuple(buf, pos + 5)
    return Delete(relid, kind, old)


def _truncate(buf: bytes, pos: int) -> Truncate:
    n = _I32.unpack_from(buf, pos)[0]
    options = buf[pos + 4]
    relids = tuple(_U32.unpack_from(buf, pos + 5 + 4 * i)[0] for i in range(n))
    return Truncate(relids, bool(options & 1), bool(options & 2))


def _message(buf: bytes, pos: int) -> LogicalMessage:
    flags = buf[pos]
    lsn = _U64.unpack_from(buf, pos + 1)[0]
    prefix, pos = _string(buf, pos + 9)
    length = _I32.unpack_from(buf, pos)[0]
    return LogicalMessage(bool(flags & 1), lsn, prefix, buf[pos + 4 : pos + 4 + length])


_DECODERS: dict[str, Callable[[bytes, int], Message]] = {
    "B": _begin,
    "C": _commit,
    "R": _relation,
    "I": _insert,
    "U": _update,
    "D": _delete,
    "T": _truncate,
    "M": _message,
    "Y": lambda buf, pos: Ignored("Y"),
    "O": lambda buf, pos: Ignored("O"),
}


def lsn_text(lsn: int) -> str:
    """PostgreSQL's spelling of an LSN: ``16/B374D848``."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """Inverse of :func:`lsn_text`."""
    hi, sep, lo = text.strip().partition("/")
    if not sep:
        raise ValueError(f"not an LSN: {text!r}")
    return (int(hi, 16) << 32) | int(lo, 16)
