"""Daily maintenance of the lake tables (EMR Serverless ``entryPoint``; locally ``python`` or
``spark-submit``, same arguments): compact recently written partitions, vacuum, regenerate the
symlink manifests, expire old tombstones and quarantine rows. See ``cdclake/lake/maintenance.py``.

    cdc_maintenance.py --config FILE [--tables schema.table,...] [--now 2026-11-23T00:00:00Z]
                       [--run-id ID] [--summary-json PATH] [--profile local|emr] [--dry-run]

Exit status: 0 when every table succeeded (or had nothing to do), 1 when any table failed (the
others still ran), 2 for bad arguments or config.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from datetime import datetime
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
from cdclake.core.hours import UTC

PROG = "cdc_maintenance.py"
log = logging.getLogger("cdclake")


def parser() -> argparse.ArgumentParser:
    p = build_parser(PROG, __doc__)
    p.add_argument(
        "--now",
        help="the run's reference time (UTC, ISO-8601; default: the wall clock). Cutoffs for "
        "compaction and expiry are computed from it, so a rerun of a day repeats that day",
    )
    add_spark_options(p)
    p.add_argument(
        "--dry-run", action="store_true", help="report what would be done; change nothing"
    )
    return p


def parse_now(value: str | None) -> datetime:
    """``--now``: an ISO-8601 time; naive values are UTC."""
    return datetime.now(UTC) if value is None else parse_time(value, "--now")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser().parse_args(argv)
    args.now = parse_now(args.now)
    args.table_names = table_names(args.tables)
    return args


def main(argv: Sequence[str] | None = None, spark: Any = None) -> int:
    """Run the job; returns the exit status. ``spark``: reuse a session (tests)."""
    setup_logging(argv)
    try:
        args = parse_args(argv)
        cfg = load_config(args.config)
        tables = cfg.select_tables(args.table_names)
    except (UsageError, ConfigError) as exc:
        return usage_failure(PROG, exc)

    from cdclake.lake.maintenance import maintain_audit, maintain_table, start_record
    from cdclake.session import build_session

    spark = spark or build_session(args.profile, app_name="cdc_maintenance")
    run_id = args.run_id or new_run_id()
    log.info(
        "maintenance run %s: now=%s, %s%s",
        run_id,
        args.now.isoformat(),
        cfg.maintenance,
        " (dry run)" if args.dry_run else "",
    )
    records = for_each_table(
        tables,
        lambda t: maintain_table(spark, cfg, t, args.now, run_id, dry_run=args.dry_run),
        lambda t, exc: start_record(run_id, t, args.now, args.dry_run).failed(exc),
    )
    write_summary(args.summary_json, records)
    also_failed = []
    try:
        audit = maintain_audit(spark, cfg, args.dry_run)
        log.info(
            "audit table: %(files_compacted)d file(s) compacted, %(files_vacuumed)d vacuumed", audit
        )
    except Exception:  # noqa: BLE001 - the tables' results stand; the run still fails
        log.exception("could not compact and vacuum the audit table")
        also_failed.append("<audit table>")
    return exit_status(f"maintenance run {run_id}", records, also_failed)
