"""A small lake in a temp dir: one DMS table writer plus helpers to run the job and compare."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from tests.dms import DmsTable, make_config, read_table, run_job

SCHEMA = {"id": pa.int32(), "p": pa.string(), "v": pa.string()}
SPARK_SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("p", T.StringType()),
        T.StructField("v", T.StringType()),
    ]
)


class Lake:
    def __init__(self, spark, root, tables=None, schema=None, merge=None, **dms):
        self.spark = spark
        tables = tables or [
            {"schema": "s", "name": "t", "primary_key": ["id"], "partition_by": ["p"]}
        ]
        self.cfg = make_config(root, tables, merge, **dms)
        self.name = f"{tables[0]['schema']}.{tables[0]['name']}"
        self.w = DmsTable(self.cfg, self.name, dict(schema or SCHEMA))
        self.summary_path = root / "summary.json"

    @property
    def path(self) -> str:
        return self.cfg.table_location(self.cfg.table(self.name))

    def run(self, *args: str) -> int:
        return run_job(self.spark, self.cfg, *args, "--summary-json", str(self.summary_path))

    def full(self) -> dict:
        assert self.run("--load", "full") == 0
        return self.last_summary()

    def inc(self, until: str, since: str | None = None, expect: int = 0) -> dict:
        args = ["--load", "incremental", "--until", until]
        if since:
            args += ["--since", since]
        assert self.run(*args) == expect
        return self.last_summary()

    def last_summary(self, table: str | None = None) -> dict:
        recs = json.loads(self.summary_path.read_text())
        return next(r for r in recs if r["table"] == (table or self.name))

    def df(self, bookkeeping: bool = False, name: str | None = None):
        return read_table(self.spark, self.cfg, name or self.name, bookkeeping)

    def assert_rows(self, rows, schema=SPARK_SCHEMA):
        expected = self.spark.createDataFrame(rows, schema)
        assert_df_equality(self.df(), expected, ignore_row_order=True, ignore_nullable=True)

    def version(self) -> int:
        from delta.tables import DeltaTable

        return DeltaTable.forPath(self.spark, self.path).history(1).first()["version"]


@pytest.fixture
def lake(spark, tmp_path):
    return Lake(spark, tmp_path)


def ts(minute: int, second: int = 0, hour: int = 10) -> str:
    return f"2026-11-22 {hour:02d}:{minute:02d}:{second:02d}.000000"
