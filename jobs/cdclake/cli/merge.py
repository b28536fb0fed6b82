"""Command line of the CDC merge job (what EMR Serverless runs as ``entryPoint``).

    cdc_merge.py --config FILE --load full        [--tables schema.table,...]
    cdc_merge.py --config FILE --load incremental --until 2026-11-22T11 [--since ...] [--tables ...]

Exit status: 0 when every table succeeded (or had nothing to do), 1 when any table failed (the
others still ran), 2 for bad arguments or config.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from cdclake.cli.scaffold import (
    EXIT_OK,
    EXIT_TABLE_FAILED,
    EXIT_USAGE,
    GroupAppend,
    UsageError,
    add_spark_options,
    build_parser,
    exit_status,
    for_each_table,
    new_run_id,
    setup_logging,
    table_names,
    usage_failure,
    write_summary,
)
from cdclake.core.config import ConfigError, TableConfig, load_config
from cdclake.core.hours import UTC, HourArgumentError, as_utc, parse_hour
from cdclake.core.records import AuditRecord

__all__ = ["EXIT_OK", "EXIT_TABLE_FAILED", "EXIT_USAGE", "UsageError", "main", "parse_args"]
PROG = "cdc_merge.py"
log = logging.getLogger("cdclake")


def parser() -> argparse.ArgumentParser:
    p = build_parser(PROG, __doc__)
    p.add_argument("--load", required=True, choices=["full", "incremental"])
    p.add_argument("--until", help="apply CDC hour folders before this UTC hour (2026-11-22T11)")
    p.add_argument("--since", help="backfill: re-apply every file in [since, until)")
    p.add_argument(
        "--past-tombstone-retention",
        action="store_true",
        help="allow a backfill --since older than maintenance.tombstone_retention_days: rows "
        "deleted before the retention may come back (the audit records the override)",
    )
    add_spark_options(p)
    p.add_argument(
        "--metrics",
        choices=["none", "cloudwatch"],
        default="none",
        help="publish FreshnessSeconds / QuarantinedRows / TableRunFailed (namespace CdcLake)",
    )
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from cdclake.job.files import Window

    args = parser().parse_args(argv)
    if args.load == "incremental":
        if not args.until:
            raise UsageError("--load incremental needs --until (e.g. --until 2026-11-22T11)")
        args.window = Window(
            until=parse_hour(args.until, "until"),
            since=parse_hour(args.since, "since") if args.since else None,
        )
    else:
        if args.until or args.since:
            raise UsageError("--until/--since only apply to --load incremental")
        args.window = None
    args.table_names = table_names(args.tables)
    return args


def main(argv: Sequence[str] | None = None, spark: Any = None) -> int:
    """Run the job; returns the exit status. ``spark``: reuse a session (tests)."""
    setup_logging(argv)
    try:
        args = parse_args(argv)
        cfg = load_config(args.config)
        tables = cfg.select_tables(args.table_names)
        overrides = backfill_overrides(args, cfg.maintenance.tombstone_retention_days)
    except (UsageError, ConfigError, HourArgumentError) as exc:
        return usage_failure(PROG, exc)

    from cdclake.job.beside import activate
    from cdclake.job.run import run_table, start_record
    from cdclake.lake.bookkeeping import append_audit, prepare_audit
    from cdclake.session import build_session

    spark = spark or build_session(args.profile, app_name=f"cdc_merge-{args.load}")
    run_id = args.run_id or new_run_id()
    also_failed: list[str] = []

    # Tables that finish while another's record is being appended share the next append.
    audit: GroupAppend[AuditRecord] = GroupAppend(lambda recs: append_audit(spark, cfg, recs))

    def audited(rec: AuditRecord) -> AuditRecord:
        """Each table's record is appended right after its run (a crash later loses none)."""
        rec = rec.but(overrides=overrides)
        try:
            audit.add(rec)
        except Exception:  # noqa: BLE001 - the table's data stands; the run is failed
            log.exception("%s: could not write the audit record", rec.table)
            also_failed.append(f"<audit {rec.table}>")
        return rec

    workers = table_workers(cfg.merge.table_concurrency, spark, len(tables))
    prepare_audit(spark, cfg)

    def run_one(table: TableConfig) -> AuditRecord:
        # Tables run side by side in one application: each on its own session (its own
        # runtime settings, e.g. commit metadata) and its own FAIR scheduler pool.
        session = spark.newSession() if workers > 1 else spark
        session.sparkContext.setLocalProperty("spark.scheduler.pool", table.qualified_name)
        if session is not spark:
            activate(session)
        return audited(run_table(session, cfg, table, run_id, args.window))

    records = for_each_table(
        tables,
        run_one,
        lambda t, exc: audited(start_record(run_id, t, args.window).failed(exc)),
        workers,
    )
    if args.metrics == "cloudwatch":
        try:
            publish_metrics(spark, cfg, records)
        except Exception:  # noqa: BLE001 - the data is committed; a metrics outage is a failure
            log.exception("could not publish CloudWatch metrics")
            also_failed.append("<metrics>")
    write_summary(args.summary_json, records)
    return exit_status(f"run {run_id} {args.load}", records, also_failed)


def table_workers(setting: int, spark: Any, tables: int) -> int:
    """How many tables run at once: the setting, or (0) the application's task slots."""
    slots = setting or max(1, int(spark.sparkContext.defaultParallelism))
    return max(1, min(slots, tables))


def backfill_overrides(args: argparse.Namespace, retention_days: int) -> tuple[str, ...]:
    """Refuse a backfill reaching back past the tombstones' retention: a change replayed from
    then can bring back a row whose delete's tombstone has expired. ``--past-tombstone-
    retention`` allows it, and the audit says so."""
    since = args.window.since if args.window else None
    oldest = datetime.now(UTC) - timedelta(days=retention_days)
    if since is None or since >= oldest:
        return ()
    if not args.past_tombstone_retention:
        raise UsageError(
            f"--since {since:%Y-%m-%dT%H} is older than the tombstones kept "
            f"(maintenance.tombstone_retention_days = {retention_days}: since "
            f"{oldest:%Y-%m-%dT%H}); re-applying those hours can bring deleted rows back. "
            "Backfill from a later hour, reload the table, or pass "
            "--past-tombstone-retention to accept it (recorded in the audit)"
        )
    log.warning("backfill from %s past the tombstone retention, as asked", since.isoformat())
    return ("past_tombstone_retention",)


def publish_metrics(spark: Any, cfg: Any, records: list[AuditRecord]) -> None:
    """Freshness needs the newest change ever applied, also for runs that applied nothing:
    it comes from the audit table."""
    from pyspark.sql import functions as F

    from cdclake.core.metrics import publish

    rows = (
        spark.read.format("delta")
        .load(cfg.audit_location)
        .groupBy("table")
        .agg(F.max("newest_change_ts").alias("newest"))
        .collect()
    )
    newest = {r["table"]: as_utc(r["newest"]) for r in rows}
    publish([dataclasses.asdict(r) for r in records], datetime.now(UTC), newest)
