"""The change order as Spark sees it: the ``_cdc_*`` order columns of a lake row, a tombstone
or a batch row compared as one struct (Spark compares structs field by field)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.core.columns import CHANGE_SEQ, COMMIT_TS, ORDER_COLUMNS, ROW_POS, SOURCE_FILE

ORDER_FIELDS = (
    T.StructField(COMMIT_TS, T.TimestampType()),
    T.StructField(CHANGE_SEQ, T.StringType()),
    T.StructField(SOURCE_FILE, T.StringType()),
    T.StructField(ROW_POS, T.LongType()),
)


def order_key(prefix: str = "") -> Column:
    """The change order as one comparable struct (``prefix``: a table alias such as ``s.``)."""
    return F.struct(*(F.col(f"{prefix}{c}") for c in ORDER_COLUMNS))


def newer_than_target() -> Column:
    """Sequence guard used inside the MERGE: the source change is strictly newer."""
    return order_key("s.") > order_key("t.")
