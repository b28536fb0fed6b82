"""Command line of the CDC merge job (what EMR Serverless runs as ``entryPoint``).

    cdc_merge.py --config FILE --load full        [--tables schema.table,...]
    cdc_merge.py --config FILE --load incremental --until 2026-11-22T11 [--since ...] [--tables ...]

Exit status: 0 when every table succeeded (or had nothing to do), 1 when any table failed (the
others still ran), 2 for bad arguments or config.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cdclake.config import ConfigError, load_config
from cdclake.layout import HourArgumentError, Window, parse_hour

log = logging.getLogger("cdclake")
EXIT_OK, EXIT_TABLE_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Arguments that parse but do not make sense together."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cdc_merge.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="pipeline config (path or s3:// URI)")
    p.add_argument("--load", required=True, choices=["full", "incremental"])
    p.add_argument("--until", help="apply CDC hour folders before this UTC hour (2026-11-22T11)")
    p.add_argument("--since", help="backfill: re-apply every file in [since, until)")
    p.add_argument("--tables", help="comma-separated schema.table list (default: all)")
    p.add_argument("--profile", choices=["local", "emr"], help="Spark profile (default: auto)")
    p.add_argument("--run-id", help="identifier recorded in the audit (default: random)")
    p.add_argument("--summary-json", help="also write the run's audit records to this file")
    p.add_argument(
        "--metrics",
        choices=["none", "cloudwatch"],
        default="none",
        help="publish FreshnessSeconds / QuarantinedRows / TableRunFailed (namespace CdcLake)",
    )
    p.add_argument("--log-level", default="INFO")
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
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
    args.table_names = [t.strip() for t in (args.tables or "").split(",") if t.strip()]
    return args


def main(argv: Sequence[str] | None = None, spark: Any = None) -> int:
    """Run the job; returns the exit status. ``spark``: reuse a session (tests)."""
    _setup_logging(argv)
    try:
        args = parse_args(argv)
        cfg = load_config(args.config)
        tables = cfg.select_tables(args.table_names)
    except (UsageError, ConfigError, HourArgumentError) as exc:
        log.error("%s", exc)
        print(f"cdc_merge.py: error: {exc}", file=sys.stderr)  # noqa: T201 - CLI usage error
        return EXIT_USAGE

    from cdclake.runner import TableRun, new_record
    from cdclake.session import build_session
    from cdclake.state import append_audit

    spark = spark or build_session(args.profile, app_name=f"cdc_merge-{args.load}")
    run_id = args.run_id or f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    records = []
    for table in tables:
        run = TableRun(spark, cfg, table, run_id)
        try:
            rec = run.full() if args.load == "full" else run.incremental(args.window)
        except Exception as exc:  # noqa: BLE001 - one table's failure must not stop the others
            log.exception("%s: run failed", table.qualified_name)
            rec = new_record(run_id, table, args.load, args.window)
            rec.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:4000])
        records.append(rec)
        log.info("summary %s", json.dumps(summary(rec), default=str, sort_keys=True))
    failed = [r["table"] for r in records if r["status"] == "failed"]
    try:
        append_audit(spark, cfg, records)
    except Exception:  # noqa: BLE001
        log.exception("could not write the audit records")
        failed.append("<audit>")
    if args.metrics == "cloudwatch":
        try:
            _publish_metrics(spark, cfg, records)
        except Exception:  # noqa: BLE001 - the data is committed; a metrics outage is a failure
            log.exception("could not publish CloudWatch metrics")
            failed.append("<metrics>")
    if args.summary_json:
        with open(args.summary_json, "w") as fh:
            json.dump([summary(r) for r in records], fh, default=str, indent=2)
    log.info(
        "run %s %s: %d table(s), %d failed%s",
        run_id,
        args.load,
        len(records),
        len(failed),
        f" ({', '.join(failed)})" if failed else "",
    )
    return EXIT_TABLE_FAILED if failed else EXIT_OK


def _publish_metrics(spark: Any, cfg: Any, records: list[dict]) -> None:
    """Freshness needs the newest change ever applied, also for runs that applied nothing:
    it comes from the audit table."""
    from pyspark.sql import functions as F

    from cdclake.layout import as_utc
    from cdclake.metrics import publish

    rows = (
        spark.read.format("delta")
        .load(cfg.audit_location)
        .groupBy("table")
        .agg(F.max("newest_change_ts").alias("newest"))
        .collect()
    )
    newest = {r["table"]: as_utc(r["newest"]) for r in rows}
    publish(records, datetime.now(UTC), newest)


def summary(rec: dict) -> dict:
    """The audit record as plain JSON values."""
    out = dict(rec)
    for k in ("started_at", "newest_change_ts"):
        if isinstance(out.get(k), datetime):
            out[k] = out[k].isoformat()
    return out


def _setup_logging(argv: Sequence[str] | None) -> None:
    level = "INFO"
    args = list(argv if argv is not None else sys.argv[1:])
    if "--log-level" in args and args.index("--log-level") + 1 < len(args):
        level = args[args.index("--log-level") + 1]
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
