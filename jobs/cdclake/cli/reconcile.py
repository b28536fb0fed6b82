"""Reconcile lake tables with a source extract (EMR Serverless ``entryPoint``; locally
``python`` or ``spark-submit``): per table, keys missing in the lake, extra in it, or with
other values, as of the extract's moment. See ``cdclake/lake/reconcile.py``.

    cdc_reconcile.py --config FILE --extract URI [--as-of 2026-11-23T00:00:00Z]
                     [--tables schema.table,...] [--summary-json PATH] [--profile local|emr]

The extract holds Parquet files per table under ``<extract>/<schema>/<table>/`` (e.g. a DMS
full-load-only task's files). Exit status: 0 when every table matches, 1 when any table
differs or could not be compared (the others still ran), 2 for bad arguments or config.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

from cdclake.cli.scaffold import (
    UsageError,
    add_spark_options,
    build_parser,
    exit_status,
    for_each_table,
    new_run_id,
    parse_time,
    setup_logging,
    table_names,
    usage_failure,
    write_summary,
)
from cdclake.core.config import ConfigError, load_config
from cdclake.core.records import ReconcileRecord

PROG = "cdc_reconcile.py"
log = logging.getLogger("cdclake")


def parser() -> argparse.ArgumentParser:
    p = build_parser(PROG, __doc__)
    p.add_argument("--extract", required=True, help="folder of the source extract (URI)")
    p.add_argument(
        "--as-of",
        help="the extract's moment (UTC, ISO-8601; default: its newest DMS timestamp)",
    )
    add_spark_options(p)
    return p


def main(argv: Sequence[str] | None = None, spark: Any = None) -> int:
    """Run the check; returns the exit status. ``spark``: reuse a session (tests)."""
    setup_logging(argv)
    try:
        args = parser().parse_args(argv)
        as_of = parse_time(args.as_of, "--as-of") if args.as_of else None
        cfg = load_config(args.config)
        tables = cfg.select_tables(table_names(args.tables))
    except (UsageError, ConfigError) as exc:
        return usage_failure(PROG, exc)

    from cdclake.lake.reconcile import reconcile_table
    from cdclake.session import build_session

    spark = spark or build_session(args.profile, app_name="cdc_reconcile")
    run_id = args.run_id or new_run_id()
    records = for_each_table(
        tables,
        lambda t: reconcile_table(spark, cfg, t, args.extract, as_of, run_id),
        lambda t, exc: ReconcileRecord(run_id, t.qualified_name, "reconcile", "running").failed(
            exc
        ),
    )
    for rec in records:
        if rec.status == "failed":
            log.error("%s", rec.error)
    write_summary(args.summary_json, records)
    return exit_status(f"reconcile run {run_id}", records)
