"""Schema drift: which incoming column types can be applied to a table safely. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import types as T

_INTEGRAL = [T.ByteType, T.ShortType, T.IntegerType, T.LongType]
_INTEGRAL_DIGITS = {T.ByteType: 3, T.ShortType: 5, T.IntegerType: 10, T.LongType: 20}


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
