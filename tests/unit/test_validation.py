"""Validation queries: per engine, per table, rows only on failure."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from cdclake.catalog.spectrum import compare_rows
from cdclake.catalog.validation import ValidationError, validation_queries
from cdclake.cli.query import format_rows
from cdclake.core.config import parse_config


@pytest.fixture
def cfg(tmp_path):
    return parse_config(
        {
            "raw_root": "raw",
            "curated_root": "cur",
            "glue_database": "lake_db",
            "tables": [
                {"schema": "s", "name": "sales", "primary_key": ["trip_id", "seat_no"]},
            ],
        },
        base_dir=tmp_path,
    )


def test_engines_read_their_own_table_names(cfg):
    t = cfg.tables[0]
    athena = validation_queries(cfg, t, "athena")
    redshift = validation_queries(cfg, t, "redshift")
    spark = validation_queries(cfg, t, "spark")
    assert set(athena) == set(spark) == {"key_uniqueness", "row_count_vs_audit", "freshness"}
    assert set(redshift) == {"key_uniqueness", "freshness"}
    assert athena["key_uniqueness"] == (
        "select\n    trip_id,\n    seat_no,\n    count(*) as copies\nfrom lake_db.s_sales\n"
        "group by trip_id, seat_no\nhaving count(*) > 1\n"
    )
    assert "from lake_db.s_sales_spectrum\n" in redshift["key_uniqueness"]
    assert "runs.\"table\" = 's.sales'" in athena["row_count_vs_audit"]
    assert "runs.`table` = 's.sales'" in spark["row_count_vs_audit"]
    assert "from lake_db.cdclake_audit as runs" in spark["freshness"]


@pytest.mark.parametrize(
    ("engine", "as_of", "cutoff"),
    [
        ("athena", None, "current_timestamp - interval '3' hour"),
        ("spark", None, "current_timestamp() - interval 3 hours"),
        ("redshift", None, "getdate() - interval '3 hours'"),
        (
            "athena",
            "{{ data_interval_end }}",
            "from_iso8601_timestamp('{{ data_interval_end }}') - interval '3' hour",
        ),
        (
            "spark",
            datetime(2026, 11, 22, 11, tzinfo=UTC),
            "cast('2026-11-22T11:00:00+00:00' as timestamp) - interval 3 hours",
        ),
    ],
)
def test_freshness_reference_time(cfg, engine, as_of, cutoff):
    sql = validation_queries(cfg, cfg.tables[0], engine, as_of=as_of)["freshness"]
    assert sql.rstrip().endswith(f"< {cutoff}")


@pytest.mark.parametrize("bad", ["yesterday", "2026-11-22'; drop table x; --", "{{ x }}'"])
def test_as_of_must_be_a_timestamp_or_a_template(cfg, bad):
    with pytest.raises(ValidationError, match="as_of"):
        validation_queries(cfg, cfg.tables[0], "athena", as_of=bad)


def test_unknown_engine(cfg):
    with pytest.raises(ValidationError, match="unknown engine 'presto'"):
        validation_queries(cfg, cfg.tables[0], "presto")


def test_the_catalog_package_imports_without_pyspark():
    """Registration and validation run on Airflow workers, which have no pyspark."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; import cdclake.catalog.register, cdclake.catalog.validation, "
        "cdclake.catalog.sqlgen, cdclake.catalog.spectrum; "
        "sys.exit(1 if any(m.split('.')[0] in ('pyspark', 'delta') for m in sys.modules) else 0)"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


def test_compare_rows_is_a_multiset_difference_on_utc_instants():
    naive_local = datetime(2026, 11, 22, 10).astimezone().replace(tzinfo=None)
    aware = datetime(2026, 11, 22, 10).astimezone().astimezone(UTC)
    delta = [(1, naive_local), (2, None), (2, None)]
    spectrum = [(1, aware), (2, None), (3, date(2026, 1, 1))]
    diff = compare_rows("s.t", ["id", "ts"], delta, spectrum)
    assert (diff.missing, diff.extra, diff.ok) == (((2, None),), ((3, date(2026, 1, 1)),), False)
    assert compare_rows("s.t", ["id"], [(1,)], [(1,)]).ok


def test_format_rows():
    assert format_rows(["destination", "n"], [("Tucson", 12), (None, 3)]) == (
        "destination | n\n------------+---\nTucson      | 12\nNULL        | 3\n"
    )


def test_the_plans_check_time_is_an_accepted_template(cfg):
    """On the aws target the Athena checks take the plan's check time from XCom."""
    template = '{{ ti.xcom_pull(task_ids="plan", key="as_of") }}'
    sql = validation_queries(cfg, cfg.tables[0], "athena", as_of=template)["freshness"]
    assert f"from_iso8601_timestamp('{template}')" in sql


@pytest.mark.parametrize(
    ("as_of", "failed"),
    [
        ("2026-11-22T11:00:00+00:00", set()),  # the run's own hour: 1 h after the newest change
        ("2026-11-22T13:00:00+00:00", set()),  # exactly 3 h: still fresh
        ("2026-11-22T13:00:00.000001+00:00", {"freshness"}),
        ("2026-11-22T15:00:00+02:00", set()),  # the same instant as 13:00 UTC
        ("2026-11-25T00:00:00Z", {"freshness"}),  # days later: stale
    ],
)
def test_spark_dialect_checks_run_on_duckdb_at_the_given_time(cfg, as_of, failed):
    """The local target runs the spark dialect's queries in DuckDB: freshness fails exactly
    when the newest applied change is older than as_of - 3 h; the other checks hold."""
    import duckdb

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute("create schema lake_db")
    con.execute(
        "create table lake_db.cdclake_audit as select * from (values "
        "('s.sales', 'full', 'succeeded', timestamptz '2026-11-22 09:00:00+00', 2, 0, "
        "timestamptz '2026-11-22 09:00:00+00'), "
        "('s.sales', 'incremental', 'succeeded', timestamptz '2026-11-22 11:05:00+00', 1, 1, "
        "timestamptz '2026-11-22 10:00:00+00')) "
        'as t("table", mode, status, started_at, rows_inserted, rows_deleted, newest_change_ts)'
    )
    live = "select * from (values (1, 1), (1, 2)) as t(trip_id, seat_no)"
    con.execute(f"create table lake_db.s_sales as {live}")
    queries = validation_queries(cfg, cfg.tables[0], "spark", as_of=as_of)
    assert {name for name, sql in queries.items() if con.sql(sql).fetchall()} == failed
