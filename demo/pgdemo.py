"""``make run`` on a real PostgreSQL: a throwaway cluster with the blog's tables, a workload of
real transactions over several hours of the source's clock (:mod:`demo.workload`), the capture
(``capture/``) in place of DMS, and the same DAGs as on AWS through ``dag.test()``.

Order: seed the tables at ``T0 - 1h``; set the source's clock to ``T0``; run
``cdclake_full_load`` (its ``start_source`` runs ``capture init``) while another session commits
changes; then per hour: the hour's transactions, the clock to where the hour's run happens,
``cdclake_hourly`` (its ``check_source`` checks the capture's slot and flushes what the
database committed), the transactions committed after it; a backfill run; finally every lake
table (Spark SQL over the local catalog) against ``SELECT *`` of its source table.
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capture.load import drop
from capture.options import Options, default_state_dir
from capture.source import TypeResolver, connect, describe_table
from cdclake.catalog.types import spark_type_name
from cdclake.core.config import PipelineConfig, TableConfig
from cdclake.core.dms import hour_folder
from cdclake.core.uris import local_dir
from demo.compare import Expected, compare_all
from demo.dagrun import FULL_LOAD_DAG, GRACE, HOUR, HOURLY_DAG, Outcome, airflow_env, start_airflow
from demo.pgsource import (
    MIN_SALES_ROWS,
    MIN_TRAVEL_ROWS,
    PgSource,
    create_tables,
    demo_tables,
)
from demo.workload import MIN_HOURS, Workload

log = logging.getLogger("cdclake.demo")

START = datetime(2026, 11, 22, 8, tzinfo=UTC)  # T0: the full load; CDC hours follow
DEFAULTS = {"hours": 4, "seed": 7, "travel_rows": 20_000, "sales_rows": 3_000}
CAPTURE_DSN_ENV = "CDCLAKE_CAPTURE_DSN"


def options(args: argparse.Namespace) -> dict[str, int]:
    """The workload's sizes: the arguments given, else :data:`DEFAULTS`."""
    return {k: v if (v := getattr(args, k, None)) is not None else d for k, d in DEFAULTS.items()}


def check_options(cfg: PipelineConfig, args: argparse.Namespace) -> dict[str, int]:
    """:func:`options`, checked (``ValueError``/``ConfigError`` say what is wrong)."""
    demo_tables(cfg)
    opts = options(args)
    if opts["hours"] < MIN_HOURS:
        raise ValueError(f"--hours must be at least {MIN_HOURS} with the postgres source")
    if opts["travel_rows"] < MIN_TRAVEL_ROWS or opts["sales_rows"] < MIN_SALES_ROWS:
        raise ValueError(
            f"need --travel-rows >= {MIN_TRAVEL_ROWS} and --sales-rows >= {MIN_SALES_ROWS}"
        )
    return opts


def drive(config_path: Path, cfg: PipelineConfig, airflow_home: Path,
          args: argparse.Namespace) -> Outcome:  # fmt: skip
    opts = options(args)
    src = PgSource.start(at=START - HOUR)
    workload = None
    try:
        create_tables(src, cfg, opts["travel_rows"], opts["sales_rows"], opts["seed"])
        workload = Workload(src, cfg, start=START, grace=GRACE, **opts)
        hours = workload.hours()
        env = airflow_env(config_path, airflow_home, "postgres", {})
        runner = start_airflow({**env, CAPTURE_DSN_ENV: src.dsn})
        t0 = time.monotonic()

        src.advance_to(START)
        with workload.during_full_load():
            # A manual run's "logical date"; its checks judge freshness at that time.
            runner.run("full", FULL_LOAD_DAG, START + HOUR)
        seen: dict[datetime, set[str]] = {}
        clocks = {}
        for i, h in enumerate(hours):
            workload.run_hour(i)
            clocks[f"hour-{h:%H}"] = workload.ready_for_run(i).isoformat()
            # dag.test() infers the data interval that ends at the logical date: [H, H+1h).
            runner.run(f"hour-{h:%H}", HOURLY_DAG, h + HOUR)
            seen[h] = hour_files(cfg, h)
            workload.after_run(i)
        index = len(hours) // 2 if args.backfill_hour is None else args.backfill_hour
        bh = hours[index]
        backfill = runner.run(f"backfill-{bh:%H}", HOURLY_DAG, bh + HOUR, {"reprocess": True})
        seconds = time.monotonic() - t0

        late = sorted(f for h in hours for f in hour_files(cfg, h) - seen[h])
        expected = {t.qualified_name: source_rows(src, t) for t in cfg.tables}
        checks = compare_all(cfg, expected, workload.hard_cases)
        dropped = drop(Options(dsn=src.dsn, state_dir=default_state_dir(cfg)))["dropped"]
        facts = {
            "source": "postgres",
            "transactions": workload.transactions,
            "source_clock_at_runs": clocks,
            "late_files": late,
            "hard_cases": sorted({c.name for c in workload.hard_cases}),
            "capture_dropped": dropped,
        }
        return Outcome(runner.results, backfill, bh, seconds, checks, facts)
    finally:
        if workload is not None:
            workload.close()
        src.stop()


def hour_files(cfg: PipelineConfig, hour: datetime) -> set[str]:
    """The CDC files in ``hour``'s folder of every table (``schema.table/folder/name``)."""
    folder = hour_folder(hour, cfg.dms)
    out: set[str] = set()
    for t in cfg.tables:
        files = (local_dir(cfg.raw_location(t)) / folder).glob("*.parquet")
        out |= {f"{t.qualified_name}/{folder}/{p.name}" for p in files}
    return out


def source_rows(src: PgSource, table: TableConfig) -> Expected:
    """``SELECT *`` of the source table (minus ``drop_columns``); column types as the capture
    maps them to Parquet (Spark's names)."""
    conn = connect(src.dsn)
    try:
        info = describe_table(conn, table, TypeResolver(conn))
    finally:
        conn.close()
    columns = [(c.name, spark_type_name(c.type.arrow)) for c in info.captured]
    names, rows = src.select_all(table)
    keep = [i for i, n in enumerate(names) if n not in table.drop_columns]
    return Expected(columns, [{names[i]: _utc(row[i]) for i in keep} for row in rows])


def _utc(value: Any) -> Any:
    """A ``timestamp`` (no time zone) is UTC wall time, as the capture writes it."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value
