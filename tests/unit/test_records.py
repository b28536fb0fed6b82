"""Run records: the audit table's schema is generated from AuditRecord's fields, and records
serialise to the summary JSON (no JVM)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pyspark.sql import types as T

from cdclake.core.records import AuditRecord, MaintenanceRecord, Stopwatch, spark_schema
from cdclake.core.sql import sql_literal

# The audit table as every lake written so far has it: generated must equal it exactly.
AUDIT_TABLE = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("table", T.StringType(), False),
        T.StructField("mode", T.StringType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("since", T.StringType(), True),
        T.StructField("until", T.StringType(), True),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("duration_s", T.DoubleType(), False),
        T.StructField("files", T.LongType(), False),
        T.StructField("hours", T.ArrayType(T.StringType()), True),
        T.StructField("records", T.LongType(), False),
        T.StructField("records_by_op", T.MapType(T.StringType(), T.LongType()), True),
        T.StructField("duplicates_collapsed", T.LongType(), False),
        T.StructField("stale_skipped", T.LongType(), False),
        T.StructField("deletes_of_absent_keys", T.LongType(), False),
        T.StructField("rows_inserted", T.LongType(), False),
        T.StructField("rows_updated", T.LongType(), False),
        T.StructField("rows_deleted", T.LongType(), False),
        T.StructField("quarantined", T.LongType(), False),
        T.StructField("delta_version", T.LongType(), True),
        T.StructField("newest_change_ts", T.TimestampType(), True),
        T.StructField("error", T.StringType(), True),
        T.StructField("timings", T.MapType(T.StringType(), T.DoubleType()), True),
        # Added later: appends evolve the table's schema (older rows read null).
        T.StructField("deferred_files", T.LongType(), True),
        T.StructField("overrides", T.ArrayType(T.StringType()), True),
    ]
)


def test_audit_schema_is_generated_from_the_record():
    assert spark_schema(AuditRecord) == AUDIT_TABLE


def test_record_rows_follow_the_schema_and_json_is_plain():
    until = datetime(2026, 11, 22, 11, tzinfo=UTC)
    rec = AuditRecord.start("r1", "s.t", "incremental", until).but(hours=("2026-11-22T10",))
    assert rec.status == "running" and rec.until == "2026-11-22T11" and rec.since is None
    assert len(rec.to_row()) == len(AUDIT_TABLE.fields)
    doc = rec.to_json()
    assert list(doc) == AUDIT_TABLE.fieldNames()
    assert doc["hours"] == ["2026-11-22T10"] and isinstance(doc["started_at"], str)


def test_a_failed_record_names_the_error():
    rec = AuditRecord.start("r1", "s.t", "full").failed(ValueError("x" * 5000))
    assert rec.status == "failed" and rec.error.startswith("ValueError: xxx")
    assert len(rec.error) == 4000
    m = MaintenanceRecord("r", "s.t", "maintenance", "noop", "now", False).failed(KeyError("k"))
    assert m.error == "KeyError: 'k'"


def test_stopwatch_laps():
    clock = Stopwatch()
    clock.lap("a")
    clock.lap("b")
    assert list(clock.timings) == ["a", "b"] and clock.elapsed >= 0


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("it's", "'it\\'s'"),
        (True, "TRUE"),
        (7, "7"),
        (1.5, "1.5"),
        (float("nan"), "CAST('nan' AS DOUBLE)"),
        (Decimal("1E+2"), "100BD"),
        (datetime(2026, 11, 22, 10, tzinfo=UTC), "TIMESTAMP '2026-11-22 10:00:00.000000'"),
        (datetime(2026, 11, 22).date(), "DATE '2026-11-22'"),
        (b"\x01\xff", "X'01ff'"),
    ],
)
def test_sql_literals_keep_the_type(value, literal):
    assert sql_literal(value) == literal


def test_sql_literal_refuses_what_it_cannot_spell():
    with pytest.raises(TypeError, match="no Spark SQL literal"):
        sql_literal(object())
