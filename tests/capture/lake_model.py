"""What the capture's files say, decoded with pyarrow and applied the way the job applies them
(a small model of its semantics), and the database's rows in the same Python types.

Order of changes: ``(commit timestamp, change sequence, file, row position)``; LOAD rows carry
the load timestamp and an empty sequence (padded, so before every change). The latest change
per key wins; ``D`` removes the key. A column a file lacks reads as null.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cdclake.core.config import DmsLayout
from cdclake.core.dms import classify

SEQ_WIDTH = 35


@dataclass(frozen=True)
class FileRow:
    """One row of one raw file, with its place in the change order."""

    relative: str
    pos: int
    op: str
    ts: str
    seq: str
    values: dict[str, Any]

    @property
    def order(self) -> tuple[str, str, str, int]:
        return (self.ts, self.seq.rjust(SEQ_WIDTH, "0"), self.relative, self.pos)


def raw_files(table_dir: Path, layout: DmsLayout) -> list[tuple[str, str]]:
    """``(relative path, kind)`` of every file the job would read, sorted."""
    out = []
    for p in sorted(table_dir.rglob("*.parquet")):
        rel = p.relative_to(table_dir).as_posix()
        c = classify(rel, layout)
        if c is not None:
            out.append((rel, c[0]))
    return out


def read_rows(table_dir: Path, layout: DmsLayout) -> list[FileRow]:
    rows = []
    dms = set(layout.dms_columns)
    for rel, kind in raw_files(table_dir, layout):
        for pos, r in enumerate(pq.read_table(table_dir / rel).to_pylist()):
            op = r.get(layout.op_column) or ("I" if kind == "load" else "?")
            seq = r.get(layout.change_sequence_column or "") or ""
            values = {k: v for k, v in r.items() if k not in dms}
            rows.append(FileRow(rel, pos, op, r[layout.timestamp_column], seq, values))
    return rows


def apply(rows: list[FileRow], key: tuple[str, ...]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The table the job builds from these rows: key -> row (latest change wins)."""
    state: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r.order):
        k = tuple(r.values[c] for c in key)
        if r.op == "D":
            state.pop(k, None)
        else:
            state[k] = r.values
    columns = list(dict.fromkeys(c for r in rows for c in r.values))
    return {k: {c: v.get(c) for c in columns} for k, v in state.items()}


def lake_schema(table_dir: Path, layout: DmsLayout) -> dict[str, pa.DataType]:
    """Column -> type over all files (a later file's type for a column wins)."""
    out: dict[str, pa.DataType] = {}
    for rel, _ in raw_files(table_dir, layout):
        for f in pq.read_schema(table_dir / rel):
            if f.name not in layout.dms_columns:
                out[f.name] = f.type
    return out


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """NaN equals NaN here (it never does in Python)."""
    return {k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def parse_text(text: str | None, type_: pa.DataType) -> Any:
    """A PostgreSQL text value as the Python value pyarrow gives for ``type_`` (an oracle
    independent of the capture's Arrow casts)."""
    if text is None:
        return None
    if pa.types.is_integer(type_):
        return int(text)
    if pa.types.is_float32(type_):
        return struct.unpack("f", struct.pack("f", float(text)))[0]
    if pa.types.is_floating(type_):
        return float(text)
    if pa.types.is_decimal(type_):
        return Decimal(text)
    if pa.types.is_date(type_):
        return date.fromisoformat(text)
    if pa.types.is_timestamp(type_):
        t = datetime.fromisoformat(text)
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    if pa.types.is_boolean(type_):
        return text == "t"
    if pa.types.is_binary(type_):
        return bytes.fromhex(text[2:])
    return text
