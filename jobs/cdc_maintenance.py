"""Daily maintenance of the lake tables (EMR Serverless ``entryPoint``; locally ``python`` or
``spark-submit``, same arguments): compact recently written partitions, vacuum, regenerate the
symlink manifests, expire old tombstones and quarantine rows. See ``cdclake/maintenance.py``.

    cdc_maintenance.py --config FILE [--tables schema.table,...] [--now 2026-11-23T00:00:00Z]
                       [--run-id ID] [--summary-json PATH] [--profile local|emr] [--dry-run]

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

from cdclake.cli import EXIT_OK, EXIT_TABLE_FAILED, EXIT_USAGE, UsageError, _setup_logging
from cdclake.config import ConfigError, load_config

log = logging.getLogger("cdclake")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cdc_maintenance.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="pipeline config (path or s3:// URI)")
    p.add_argument("--tables", help="comma-separated schema.table list (default: all)")
    p.add_argument(
        "--now",
        help="the run's reference time (UTC, ISO-8601; default: the wall clock). Cutoffs for "
        "compaction and expiry are computed from it, so a rerun of a day repeats that day",
    )
    p.add_argument("--profile", choices=["local", "emr"], help="Spark profile (default: auto)")
    p.add_argument("--run-id", help="identifier in the summaries (default: random)")
    p.add_argument("--summary-json", help="also write the per-table summaries to this file")
    p.add_argument(
        "--dry-run", action="store_true", help="report what would be done; change nothing"
    )
    p.add_argument("--log-level", default="INFO")
    return p


def parse_now(value: str | None) -> datetime:
    """``--now``: an ISO-8601 time; naive values are UTC."""
    if value is None:
        return datetime.now(UTC)
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--now '{value}' is not a time like 2026-11-23T00:00:00Z") from exc
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.now = parse_now(args.now)
    args.table_names = [t.strip() for t in (args.tables or "").split(",") if t.strip()]
    return args


def main(argv: Sequence[str] | None = None, spark: Any = None) -> int:
    """Run the job; returns the exit status. ``spark``: reuse a session (tests)."""
    _setup_logging(argv)
    try:
        args = parse_args(argv)
        cfg = load_config(args.config)
        tables = cfg.select_tables(args.table_names)
    except (UsageError, ConfigError) as exc:
        log.error("%s", exc)
        print(f"cdc_maintenance.py: error: {exc}", file=sys.stderr)  # noqa: T201 - usage error
        return EXIT_USAGE

    from cdclake.maintenance import maintain_table, new_record
    from cdclake.session import build_session

    spark = spark or build_session(args.profile, app_name="cdc_maintenance")
    run_id = args.run_id or f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    log.info(
        "maintenance run %s: now=%s, %s%s",
        run_id,
        args.now.isoformat(),
        cfg.maintenance,
        " (dry run)" if args.dry_run else "",
    )
    records = []
    for table in tables:
        try:
            rec = maintain_table(spark, cfg, table, args.now, run_id, dry_run=args.dry_run)
        except Exception as exc:  # noqa: BLE001 - one table's failure must not stop the others
            log.exception("%s: maintenance failed", table.qualified_name)
            rec = new_record(run_id, table, args.now, args.dry_run)
            rec.update(status="failed", error=error_text(exc)[:4000])
        records.append(rec)
        log.info("summary %s", json.dumps(rec, default=str, sort_keys=True))
    if args.summary_json:
        with open(args.summary_json, "w") as fh:
            json.dump(records, fh, default=str, indent=2)
    failed = [r["table"] for r in records if r["status"] == "failed"]
    log.info(
        "maintenance run %s: %d table(s), %d failed%s",
        run_id,
        len(records),
        len(failed),
        f" ({', '.join(failed)})" if failed else "",
    )
    return EXIT_TABLE_FAILED if failed else EXIT_OK


def error_text(exc: BaseException) -> str:
    """The failure as one readable line: for a JVM error, the Java exception (py4j's own
    message is only "An error occurred while calling ...")."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:
            return f"{type(exc).__name__}: {java.toString()}"
        except Exception:  # noqa: BLE001, S110 - fall back to Python's text
            pass
    return f"{type(exc).__name__}: {exc}"


if __name__ == "__main__":
    sys.exit(main())
