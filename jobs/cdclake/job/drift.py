"""Schema drift: which incoming column types can be applied to a table safely (pure), and
the batch made to fit the table accordingly."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.core.columns import BOOKKEEPING_COLUMNS
from cdclake.core.config import TableConfig

log = logging.getLogger(__name__)

_INTEGRAL: list[type] = [T.ByteType, T.ShortType, T.IntegerType, T.LongType]
_INTEGRAL_DIGITS: dict[type, int] = {
    T.ByteType: 3,
    T.ShortType: 5,
    T.IntegerType: 10,
    T.LongType: 20,
}


class SchemaDriftError(ValueError):
    """An incoming column's type cannot be applied to the table without losing data."""


@dataclass
class SchemaPlan:
    """How to make a batch fit the table: casts to apply and columns the MERGE will add."""

    casts: dict[str, T.DataType] = field(default_factory=dict)
    new_columns: list[T.StructField] = field(default_factory=list)
    missing_columns: list[T.StructField] = field(default_factory=list)


def widens_safely(incoming: T.DataType, target: T.DataType) -> bool:
    """True when every value of ``incoming`` is exactly representable as ``target``."""
    if incoming == target or isinstance(incoming, T.NullType):
        return True
    it, tt = type(incoming), type(target)
    if it in _INTEGRAL and tt in _INTEGRAL:
        return _INTEGRAL.index(it) <= _INTEGRAL.index(tt)
    if it in _INTEGRAL and isinstance(target, T.DecimalType):
        return target.precision - target.scale >= _INTEGRAL_DIGITS[it]
    if it in _INTEGRAL and tt is T.DoubleType:
        return it is not T.LongType
    if it in (T.ByteType, T.ShortType) and tt is T.FloatType:
        return True
    if it is T.FloatType and tt is T.DoubleType:
        return True
    if isinstance(incoming, T.DecimalType) and isinstance(target, T.DecimalType):
        return (
            target.scale >= incoming.scale
            and target.precision - target.scale >= incoming.precision - incoming.scale
        )
    return False


def plan_schema(incoming: T.StructType, table: T.StructType, table_name: str) -> SchemaPlan:
    """Compare the batch's source columns with the table's (bookkeeping columns excluded).

    New columns are added (older rows read null); narrower incoming types are cast up to the
    table's type; anything else raises :class:`SchemaDriftError` naming column and types.
    """
    plan = SchemaPlan()
    existing = {f.name.lower(): f for f in table.fields}
    seen = set()
    problems = []
    for f in incoming.fields:
        seen.add(f.name.lower())
        current = existing.get(f.name.lower())
        if current is None:
            plan.new_columns.append(f)
        elif current.dataType != f.dataType:
            if widens_safely(f.dataType, current.dataType):
                plan.casts[f.name] = current.dataType
            else:
                problems.append(
                    f"column '{f.name}': table has {current.dataType.simpleString()}, "
                    f"incoming files have {f.dataType.simpleString()}"
                )
    if problems:
        raise SchemaDriftError(
            f"{table_name}: incompatible type change, nothing was committed: "
            + "; ".join(problems)
            + ". Widen the table's column deliberately (or run a full load) and rerun."
        )
    plan.missing_columns = [f for f in table.fields if f.name.lower() not in seen]
    return plan


def fit_to_table(
    spark: SparkSession,
    good: DataFrame,
    path: str,
    exists: bool,
    table: TableConfig,
    upserts: bool = True,
) -> DataFrame:
    """The batch's valid rows cast to the table's column types, with the table's columns the
    files lack added as nulls; new source columns stay (the MERGE adds them). ``upserts``:
    the batch holds inserts or updates (not only deletes, which need no partition value)."""
    incoming = T.StructType([f for f in good.schema.fields if f.name not in BOOKKEEPING_COLUMNS])
    missing_parts = [p for p in table.partition_by if p not in incoming.fieldNames()]
    if missing_parts and upserts:
        # Filling them with nulls would move every updated row to the null partition.
        raise SchemaDriftError(
            f"{table.qualified_name}: partition column(s) {missing_parts} not in the files "
            "(dropped or renamed at the source?); nothing was committed. Restore the column, "
            "or change partition_by and reload the table"
        )
    plan = SchemaPlan()
    if exists:
        table_schema = spark.read.format("delta").load(path).schema
        data = T.StructType([f for f in table_schema.fields if f.name not in BOOKKEEPING_COLUMNS])
        plan = plan_schema(incoming, data, table.qualified_name)
    for name, dtype in plan.casts.items():
        good = good.withColumn(name, F.col(name).cast(dtype))
    for missing in plan.missing_columns:
        good = good.withColumn(missing.name, F.lit(None).cast(missing.dataType))
    if plan.new_columns:
        log.info(
            "%s: new source column(s) %s will be added",
            table.qualified_name,
            [f.name for f in plan.new_columns],
        )
    return good
