"""Spark's column types (as the Delta log spells them in JSON) and their equivalents in every
engine that reads the lake: Hive/Glue (Athena), Redshift Spectrum and Arrow. One table, so a
type is added once for all engines."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class DdlError(ValueError):
    """A table cannot be described for an engine (e.g. a type it has no equivalent for)."""


@dataclass(frozen=True)
class EngineTypes:
    hive: str
    redshift: str
    arrow: str  # a pyarrow factory name (``pa.<arrow>()``)


# Redshift's longest VARCHAR; Spectrum reads Parquet strings into it.
REDSHIFT_STRING = "varchar(65535)"
SIMPLE: dict[str, EngineTypes] = {
    "string": EngineTypes("string", REDSHIFT_STRING, "string"),
    "integer": EngineTypes("int", "int", "int32"),
    "long": EngineTypes("bigint", "bigint", "int64"),
    "short": EngineTypes("smallint", "smallint", "int16"),
    "byte": EngineTypes("tinyint", "smallint", "int8"),  # Redshift has no tinyint
    "boolean": EngineTypes("boolean", "boolean", "bool_"),
    "double": EngineTypes("double", "double precision", "float64"),
    "float": EngineTypes("float", "real", "float32"),
    "date": EngineTypes("date", "date", "date32"),
    "timestamp": EngineTypes("timestamp", "timestamp", "timestamp_utc"),
    "timestamp_ntz": EngineTypes("timestamp", "timestamp", "timestamp_ntz"),
    "binary": EngineTypes("binary", "varbyte", "binary"),
}
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


def decimal(t: Any) -> tuple[int, int] | None:
    """``(precision, scale)`` of a ``decimal(p,s)`` type, else None."""
    m = _DECIMAL.match(t) if isinstance(t, str) else None
    return (int(m.group(1)), int(m.group(2))) if m else None


def hive_type(t: Any) -> str:
    """Spark's JSON type (``"long"``, ``{"type": "array", ...}``) as a Hive/Glue type."""
    if isinstance(t, str):
        if d := decimal(t):
            return f"decimal({d[0]},{d[1]})"
        if t in SIMPLE:
            return SIMPLE[t].hive
        raise DdlError(f"no Hive type for Spark type '{t}'")
    kind = t.get("type")
    if kind == "array":
        return f"array<{hive_type(t['elementType'])}>"
    if kind == "map":
        return f"map<{hive_type(t['keyType'])},{hive_type(t['valueType'])}>"
    if kind == "struct":
        return (
            "struct<" + ",".join(f"{f['name']}:{hive_type(f['type'])}" for f in t["fields"]) + ">"
        )
    raise DdlError(f"no Hive type for Spark type {t!r}")


def redshift_type(t: Any) -> str:
    """Spark's JSON type as a Redshift Spectrum column type (nested types in Hive syntax)."""
    if isinstance(t, str):
        if d := decimal(t):
            return f"decimal({d[0]}, {d[1]})"
        if t in SIMPLE:
            return SIMPLE[t].redshift
        raise DdlError(f"no Redshift type for Spark type '{t}'")
    return hive_type(t).replace("string", REDSHIFT_STRING)


def arrow_type(t: Any) -> Any:
    """Spark's JSON type as a pyarrow type (simple types and decimals)."""
    import pyarrow as pa

    if d := decimal(t):
        return pa.decimal128(*d)
    if isinstance(t, str) and t in SIMPLE:
        name = SIMPLE[t].arrow
        if name == "timestamp_utc":
            return pa.timestamp("us", tz="UTC")
        if name == "timestamp_ntz":
            return pa.timestamp("us")
        return getattr(pa, name)()
    raise DdlError(f"no Arrow type for Spark type {t!r}")


def spark_type_name(arrow: Any) -> str:
    """The Spark JSON type name of a pyarrow type (inverse of :func:`arrow_type`)."""
    import pyarrow as pa

    if pa.types.is_decimal(arrow):
        return f"decimal({arrow.precision},{arrow.scale})"
    if pa.types.is_timestamp(arrow):
        return "timestamp" if arrow.tz else "timestamp_ntz"
    for name, engines in SIMPLE.items():
        if (
            engines.arrow not in ("timestamp_utc", "timestamp_ntz")
            and arrow == getattr(pa, engines.arrow)()
        ):
            return name
    raise DdlError(f"no Spark type for Arrow type {arrow}")
