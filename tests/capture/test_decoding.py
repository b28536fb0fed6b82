"""The pure parts, without a server: pgoutput decoding from hand-built bytes, the rows a
transaction becomes, type mapping, the state file."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from capture.changes import ChangeBuffer, change_counter
from capture.errors import ProtocolError, StateError, UnchangedToastError
from capture.pgoutput import (
    UNCHANGED,
    Begin,
    Column,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Relation,
    Truncate,
    Update,
    decode,
    lsn_text,
    parse_lsn,
)
from capture.state import CaptureState, load_state, save_state
from capture.typemap import pg_type
from cdclake.core.config import TableConfig
from cdclake.core.dms import change_sequence

COMMIT = datetime(2026, 11, 22, 10, 59, 59, 987654, tzinfo=UTC)
MICROS = int((COMMIT - datetime(2000, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)
TABLE = TableConfig("s", "t", ("id",), drop_columns=("secret",))


def cstr(s: str) -> bytes:
    return s.encode() + b"\0"


def tuple_data(*values: object) -> bytes:
    out = struct.pack("!h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is UNCHANGED:
            out += b"u"
        else:
            data = str(v).encode()
            out += b"t" + struct.pack("!i", len(data)) + data
    return out


def relation_bytes(identity: bytes = b"f") -> bytes:
    cols = [(1, "id", 23, -1), (0, "body", 25, -1), (0, "secret", 25, -1)]
    out = b"R" + struct.pack("!I", 16401) + cstr("s") + cstr("t") + identity
    out += struct.pack("!h", len(cols))
    for flags, name, oid, typmod in cols:
        out += bytes([flags]) + cstr(name) + struct.pack("!Ii", oid, typmod)
    return out


def test_decodes_every_message_type():
    assert decode(b"B" + struct.pack("!QqI", 0x1_0000_0020, MICROS, 77)) == Begin(
        0x1_0000_0020, COMMIT, 77
    )
    assert decode(b"C\0" + struct.pack("!QQq", 10, 20, MICROS)) == Commit(10, 20, COMMIT)
    assert decode(relation_bytes()) == Relation(
        16401,
        "s",
        "t",
        "f",
        (
            Column("id", 23, -1, True),
            Column("body", 25, -1, False),
            Column("secret", 25, -1, False),
        ),
    )
    assert decode(b"I" + struct.pack("!I", 5) + b"N" + tuple_data(1, "é", None)) == Insert(
        5, ("1", "é", None)
    )
    update = b"U" + struct.pack("!I", 5) + b"O" + tuple_data(1, "x", "s")
    update += b"N" + tuple_data(1, UNCHANGED, "s")
    assert decode(update) == Update(5, "O", ("1", "x", "s"), ("1", UNCHANGED, "s"))
    assert decode(b"U" + struct.pack("!I", 5) + b"N" + tuple_data(2)) == Update(
        5, None, None, ("2",)
    )
    assert decode(b"D" + struct.pack("!I", 5) + b"K" + tuple_data(3, None)) == Delete(
        5, "K", ("3", None)
    )
    assert decode(b"T" + struct.pack("!iBII", 2, 1, 5, 6)) == Truncate((5, 6), True, False)
    message = b"M\0" + struct.pack("!Q", 99) + cstr("p") + struct.pack("!i", 3) + b"abc"
    assert decode(message) == LogicalMessage(False, 99, "p", b"abc")


@pytest.mark.parametrize("payload", [b"", b"Z", b"B\0\0", b"I" + struct.pack("!I", 5) + b"X"])
def test_undecodable_messages_are_protocol_errors(payload):
    with pytest.raises(ProtocolError):
        decode(payload)


def buffer(resume_after: int = 0) -> ChangeBuffer:
    buf = ChangeBuffer({"s.t": TABLE}, pg_type, resume_after)
    buf.begin(Begin(0x2_0000_0000, COMMIT, 1))
    buf.relation(decode(relation_bytes()))
    return buf


def test_a_transaction_becomes_dms_rows_in_order():
    buf = buffer()
    buf.insert(Insert(16401, ("1", "a", "pii")))
    buf.update(Update(16401, "O", ("1", "a", "pii"), ("1", UNCHANGED, "pii2")))
    buf.update(Update(16401, "O", ("1", "a", "pii2"), ("2", "b", "pii2")))  # key change
    buf.delete(Delete(16401, "O", ("2", "b", "pii2")))
    buf.commit(Commit(0x2_0000_0000, 0x2_0000_0040, COMMIT))

    (batch,) = buf.take()
    assert batch.columns.names == ("id", "body")  # drop_columns never written
    assert batch.hour == datetime(2026, 11, 22, 10, tzinfo=UTC)
    expected_ops = [("I", ("1", "a")), ("U", ("1", "a")), ("D", ("1", "a")), ("I", ("2", "b")),
                    ("D", ("2", "b"))]  # fmt: skip
    assert [(r[0], r[3]) for r in batch.rows] == expected_ops
    assert {r[1] for r in batch.rows} == {"2026-11-22 10:59:59.987654"}
    assert [r[2] for r in batch.rows] == [
        change_sequence(COMMIT, change_counter(0x2_0000_0000, i)) for i in range(5)
    ]
    assert buf.committed_lsn == 0x2_0000_0040
    assert buf.stats.tables["s.t"].key_updates == 1


def test_unchanged_toast_without_an_old_row_is_an_error_not_a_null():
    buf = buffer()
    with pytest.raises(UnchangedToastError, match="REPLICA IDENTITY FULL"):
        buf.update(Update(16401, None, None, ("1", UNCHANGED, "x")))
    buf.update(Update(16401, None, None, ("1", "a", UNCHANGED)))  # only a dropped column: fine


def test_transactions_before_the_saved_position_are_skipped():
    buf = buffer(resume_after=0x2_0000_0001)
    buf.insert(Insert(16401, ("1", "a", None)))
    buf.commit(Commit(0x2_0000_0000, 0x2_0000_0040, COMMIT))
    assert buf.take() == []
    assert buf.stats.skipped_transactions == 1


def test_change_counter_orders_by_commit_lsn_then_row():
    assert change_counter(100, 999_999) < change_counter(101, 0)
    assert len(f"{change_counter(2**63, 999_999):019d}") == 19


def numeric(p: int, s: int) -> int:
    return ((p << 16) | (s & 0x7FF)) + 4


@pytest.mark.parametrize(
    ("oid", "typmod", "arrow"),
    [
        (21, -1, pa.int16()), (23, -1, pa.int32()), (20, -1, pa.int64()),
        (700, -1, pa.float32()), (701, -1, pa.float64()),
        (1700, numeric(10, 2), pa.decimal128(10, 2)),
        (1700, numeric(38, 38), pa.decimal128(38, 38)),
        (1700, numeric(39, 2), pa.string()), (1700, numeric(5, -2), pa.string()),
        (1700, -1, pa.string()), (1082, -1, pa.date32()),
        (1114, -1, pa.timestamp("us", tz="UTC")), (1184, 3, pa.timestamp("us", tz="UTC")),
        (16, -1, pa.bool_()), (17, -1, pa.binary()), (25, -1, pa.string()),
        (3802, -1, pa.string()), (2950, -1, pa.string()), (1007, -1, pa.string()),
    ],
)  # fmt: skip
def test_type_mapping(oid, typmod, arrow):
    assert pg_type(oid, typmod).arrow == arrow


def test_text_values_convert_and_unrepresentable_ones_become_null():
    array, bad = pg_type(1700, numeric(6, 2)).to_arrow(["1.50", "NaN", None], "price")
    assert (array.to_pylist(), bad) == ([Decimal("1.50"), None, None], 1)
    array, bad = pg_type(1114, -1).to_arrow(["2026-11-22 10:00:00.5", "infinity"], "ts")
    assert array.to_pylist()[0] == datetime(2026, 11, 22, 10, 0, 0, 500000, tzinfo=UTC)
    assert bad == 1
    assert pg_type(16, -1).to_arrow(["t", "f", None])[0].to_pylist() == [True, False, None]
    assert pg_type(17, -1).to_arrow(["\\x00ff"])[0].to_pylist() == [b"\x00\xff"]


def test_lsn_text_round_trips():
    assert lsn_text(0x16_B374D848) == "16/B374D848"
    assert parse_lsn("16/B374D848") == 0x16_B374D848


def test_state_file_round_trips_and_leaves_no_temp_file(tmp_path: Path):
    state = CaptureState("slot", "pub", "7", "db", ("s.t",), 0x1_0000_0000, "ts", "ts2")
    save_state(tmp_path, state)
    save_state(tmp_path, state.advanced(0x2_0000_0000))
    assert load_state(tmp_path) == state.advanced(0x2_0000_0000)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    (tmp_path / "state.json").write_text("{")
    with pytest.raises(StateError):
        load_state(tmp_path)
