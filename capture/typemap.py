"""PostgreSQL column types -> the Parquet (Arrow) types DMS writes, and text values -> arrays.

Values reach the capture as PostgreSQL's text output (pgoutput's text format for changes,
the same output functions for the full load), always from a session with ``TimeZone=UTC``,
``DateStyle=ISO`` and ``extra_float_digits=3``, so one converter serves both and a value
reads the same in a LOAD file and in a CDC file.

================================  =========================  ==================================
PostgreSQL                        Parquet / Arrow            note
================================  =========================  ==================================
smallint / integer / bigint       int16 / int32 / int64
oid                               int64
real / double precision           float32 / float64          NaN and +-Infinity kept
numeric(p,s), p <= 38, 0<=s<=p    decimal(p,s)
numeric(p,s) otherwise, numeric   string                     DMS: unbounded -> decimal(28,6),
                                                             which rounds; a string loses nothing
date                              date32
timestamp, timestamptz            timestamp(us, UTC)         as the demo source; ``timestamp``
                                                             values are read as UTC wall time
boolean                           bool                       DMS writes 'true'/'false' strings;
                                                             the job handles bool, and the lake
                                                             keeps the source's type
bytea                             binary
text, varchar, char, json(b),     string                     text output (arrays: ``{1,2}``)
uuid, arrays, time, interval,
enums, anything else
domain                            its base type
================================  =========================  ==================================

A value the Arrow type cannot hold (``'NaN'::numeric``, ``'infinity'::date``, years outside
1..9999) is written as null and counted as *unrepresentable* (logged with the column name);
it is never silently replaced by another value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa

log = logging.getLogger(__name__)

TIMESTAMP = pa.timestamp("us", tz="UTC")
MAX_DECIMAL_PRECISION = 38
_VARHDRSZ = 4

# Built-in type OIDs (fixed in PostgreSQL's catalog).
BOOL, BYTEA, INT8, INT2, INT4, OID = 16, 17, 20, 21, 23, 26
FLOAT4, FLOAT8, NUMERIC, DATE, TIMESTAMP_OID, TIMESTAMPTZ = 700, 701, 1700, 1082, 1114, 1184
_SIMPLE: dict[int, pa.DataType] = {
    INT2: pa.int16(),
    INT4: pa.int32(),
    INT8: pa.int64(),
    OID: pa.int64(),
    FLOAT4: pa.float32(),
    FLOAT8: pa.float64(),
    DATE: pa.date32(),
    TIMESTAMPTZ: TIMESTAMP,
    BOOL: pa.bool_(),
    BYTEA: pa.binary(),
}


@dataclass(frozen=True)
class PgType:
    """A column's PostgreSQL type (after resolving domains) and its Arrow type."""

    oid: int
    typmod: int
    arrow: pa.DataType

    def to_arrow(self, values: Sequence[str | None], column: str = "?") -> tuple[pa.Array, int]:
        """Text values -> an Arrow array, and how many values were unrepresentable (null)."""
        parse = _PARSERS.get(self.oid, _cast)
        return parse(values, self.arrow, column)


def pg_type(oid: int, typmod: int) -> PgType:
    """The Arrow type of a built-in type OID and modifier (unknown OIDs: string)."""
    if oid == NUMERIC:
        return PgType(oid, typmod, numeric_type(typmod))
    if oid == TIMESTAMP_OID:
        return PgType(oid, typmod, TIMESTAMP)
    return PgType(oid, typmod, _SIMPLE.get(oid, pa.string()))


def numeric_type(typmod: int) -> pa.DataType:
    """``numeric(p,s)`` -> decimal(p,s) when Arrow and Spark can hold it exactly, else string."""
    if typmod < _VARHDRSZ:  # unbounded numeric
        return pa.string()
    precision = ((typmod - _VARHDRSZ) >> 16) & 0xFFFF
    scale = (((typmod - _VARHDRSZ) & 0x7FF) ^ 1024) - 1024  # 11-bit signed (PostgreSQL 15)
    if precision <= MAX_DECIMAL_PRECISION and 0 <= scale <= precision:
        return pa.decimal128(precision, scale)
    return pa.string()


Parser = Callable[[Sequence[str | None], pa.DataType, str], tuple[pa.Array, int]]


def _cast(values: Sequence[str | None], arrow: pa.DataType, column: str) -> tuple[pa.Array, int]:
    """Arrow's own string parser (fast, exact); value by value only when some value fails."""
    text = pa.array(values, pa.string())
    if pa.types.is_string(arrow):
        return text, 0
    try:
        return text.cast(arrow), 0
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _one_by_one(values, lambda v: pa.array([v], pa.string()).cast(arrow), arrow, column)


def _naive_timestamp(
    values: Sequence[str | None], arrow: pa.DataType, column: str
) -> tuple[pa.Array, int]:
    """``timestamp without time zone``: the wall-clock value, taken as UTC."""

    def parse(v: str | None) -> pa.Array:
        return pa.array([v], pa.string()).cast(pa.timestamp("us")).cast(arrow)

    try:
        return pa.array(values, pa.string()).cast(pa.timestamp("us")).cast(arrow), 0
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _one_by_one(values, parse, arrow, column)


def _bool(values: Sequence[str | None], arrow: pa.DataType, column: str) -> tuple[pa.Array, int]:
    return pa.array([None if v is None else v == "t" for v in values], pa.bool_()), 0


def _bytea(values: Sequence[str | None], arrow: pa.DataType, column: str) -> tuple[pa.Array, int]:
    # bytea_output=hex (set on the session): '\x' followed by two hex digits per byte.
    return pa.array([None if v is None else bytes.fromhex(v[2:]) for v in values], pa.binary()), 0


def _one_by_one(
    values: Sequence[str | None],
    parse: Callable[[str | None], pa.Array],
    arrow: pa.DataType,
    column: str,
) -> tuple[pa.Array, int]:
    out: list[object] = []
    bad: list[str] = []
    for v in values:
        try:
            out.append(parse(v)[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out.append(None)
            bad.append(str(v))
    if bad:
        log.warning(
            "column %s: %d value(s) cannot be represented as %s and are written as null (e.g. %r)",
            column,
            len(bad),
            arrow,
            bad[0],
        )
    return pa.array(out, arrow), len(bad)


_PARSERS: dict[int, Parser] = {
    TIMESTAMP_OID: _naive_timestamp,
    BOOL: _bool,
    BYTEA: _bytea,
}
