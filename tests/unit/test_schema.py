import pytest
from pyspark.sql import types as T

from cdclake.job.drift import SchemaDriftError, plan_schema, widens_safely


@pytest.mark.parametrize(
    ("incoming", "target", "safe"),
    [
        (T.IntegerType(), T.LongType(), True),
        (T.LongType(), T.IntegerType(), False),
        (T.ShortType(), T.IntegerType(), True),
        (T.IntegerType(), T.DecimalType(12, 2), True),
        (T.IntegerType(), T.DecimalType(10, 2), False),
        (T.DecimalType(10, 2), T.DecimalType(12, 2), True),
        (T.DecimalType(10, 2), T.DecimalType(12, 4), True),
        (T.DecimalType(10, 4), T.DecimalType(10, 2), False),
        (T.FloatType(), T.DoubleType(), True),
        (T.DoubleType(), T.FloatType(), False),
        (T.IntegerType(), T.DoubleType(), True),
        (T.LongType(), T.DoubleType(), False),
        (T.StringType(), T.IntegerType(), False),
        (T.IntegerType(), T.StringType(), False),
        (T.DateType(), T.TimestampType(), False),
        (T.StringType(), T.StringType(), True),
    ],
)
def test_widens_safely(incoming, target, safe):
    assert widens_safely(incoming, target) is safe


def st(**cols):
    return T.StructType([T.StructField(n, t) for n, t in cols.items()])


def test_plan_adds_new_columns_and_casts_narrower_types():
    plan = plan_schema(
        st(id=T.IntegerType(), v=T.StringType(), extra=T.IntegerType()),
        st(id=T.LongType(), v=T.StringType(), gone=T.DateType()),
        "s.t",
    )
    assert plan.casts == {"id": T.LongType()}
    assert [f.name for f in plan.new_columns] == ["extra"]
    assert [f.name for f in plan.missing_columns] == ["gone"]


def test_plan_rejects_unsafe_change_naming_column_and_types():
    with pytest.raises(SchemaDriftError) as e:
        plan_schema(
            st(id=T.IntegerType(), price=T.StringType()),
            st(id=T.IntegerType(), price=T.DecimalType(10, 2)),
            "s.t",
        )
    msg = str(e.value)
    assert "s.t" in msg and "'price'" in msg and "decimal(10,2)" in msg and "string" in msg
