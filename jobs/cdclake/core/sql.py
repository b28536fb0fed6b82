"""Spark SQL text built from values: literals, quoted names, and the predicate that selects a
set of partitions. Pure (no pyspark): the MERGE condition and OPTIMIZE's ``WHERE`` both use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from cdclake.core.hours import UTC

Partition = Mapping[str, Any]


def sql_string(value: str) -> str:
    """A Spark SQL string literal (backslash escapes are on by default in Spark SQL)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_ident(name: str) -> str:
    """A column name in backquotes (backquotes inside doubled)."""
    return "`" + name.replace("`", "``") + "`"


def sql_literal(value: Any) -> str:
    """A Python value (as PySpark collects it, or a string as Delta stores partition values)
    as a Spark SQL literal of the same type."""
    if isinstance(value, str):
        return sql_string(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"CAST('{value}' AS DOUBLE)"
    if isinstance(value, Decimal):
        return f"{value:f}BD"
    if isinstance(value, datetime):
        # PySpark collects timestamps as naive local times; the job's session zone is UTC.
        return f"TIMESTAMP '{value.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, (bytes, bytearray)):
        return f"X'{bytes(value).hex()}'"
    raise TypeError(f"no Spark SQL literal for {type(value).__name__} value {value!r}")


def partition_predicate(
    columns: Sequence[str],
    partitions: Iterable[Partition],
    prefix: str = "",
    *,
    in_list: bool = False,
) -> str:
    """A predicate selecting exactly ``partitions`` (each a mapping column -> value, None for
    null), with only constant comparisons on partition columns: what OPTIMIZE accepts and
    what lets a MERGE prune. ``prefix``: a table alias such as ``t.``; ``in_list``: one
    ``IN (...)`` for a single partition column (a MERGE may touch hundreds of partitions).

    >>> partition_predicate(["p"], [{"p": "a"}, {"p": None}])
    "(`p` = 'a') OR (`p` IS NULL)"
    >>> partition_predicate(["p"], [{"p": "a"}, {"p": None}], "t.", in_list=True)
    "t.`p` IN ('a') OR t.`p` IS NULL"
    """
    if not columns:
        raise ValueError("partition_predicate needs at least one partition column")
    parts = sorted(partitions, key=lambda p: tuple((p[c] is None, str(p[c])) for c in columns))
    if not parts:
        raise ValueError("partition_predicate needs at least one partition")
    if in_list and len(columns) == 1:
        return _in_list(prefix + quote_ident(columns[0]), [p[columns[0]] for p in parts])
    terms = []
    for part in parts:
        conds = []
        for c in columns:
            name = prefix + quote_ident(c)
            v = part[c]
            conds.append(f"{name} IS NULL" if v is None else f"{name} = {sql_literal(v)}")
        terms.append("(" + " AND ".join(conds) + ")")
    return " OR ".join(terms)


def _in_list(name: str, values: Sequence[Any]) -> str:
    present = [sql_literal(v) for v in values if v is not None]
    terms = [f"{name} IN ({', '.join(present)})"] if present else []
    if len(present) < len(values):
        terms.append(f"{name} IS NULL")
    return " OR ".join(terms)


def table_sql(path: str) -> str:
    """A Delta table by path in SQL: ``delta.`<path>```."""
    return "delta." + quote_ident(path)
