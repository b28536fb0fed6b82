"""SQL on the local lake through Spark SQL and a local catalog (Athena's stand-in).

    python -m cdclake.cli.query --config FILE --sql "select destination, count(*) from
        delta_emr_source.travel_details group by destination"
    python -m cdclake.cli.query --config FILE --file sql/athena/analyst/trips_by_destination.sql
    python -m cdclake.cli.query --config FILE --validate [--tables ...] [--as-of ISO]
    python -m cdclake.cli.query --config FILE --spectrum-check [--tables ...]

Tables are registered first (``register_tables(target="local")``) under their source names
(``delta_emr_source.travel_details``) and their Athena names
(``cdc_lake.delta_emr_source_travel_details``, ``cdc_lake.cdclake_audit``), so queries written
for Athena run unchanged. ``--validate`` runs the ``spark`` validation queries; exit 1 when
any returns rows. ``--spectrum-check`` reads each table the way Redshift Spectrum does (the
manifests' Parquet files, with pyarrow) and compares with the Delta snapshot; exit 1 on any
difference. Exit 2: bad arguments or config.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from cdclake.cli.scaffold import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    UsageError,
    build_parser,
    setup_logging,
    table_names,
    usage_failure,
)
from cdclake.core.config import ConfigError, PipelineConfig, load_config

log = logging.getLogger("cdclake.query")
PROG = "python -m cdclake.cli.query"


def parser() -> argparse.ArgumentParser:
    p = build_parser(PROG, __doc__, log_level="WARNING")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--sql", help="a SQL statement")
    what.add_argument("--file", help="a file holding one SQL statement")
    what.add_argument("--validate", action="store_true", help="run the validation queries")
    what.add_argument("--spectrum-check", action="store_true", help="manifests == snapshot")
    p.add_argument("--limit", type=int, default=100, help="rows to print (default: 100)")
    p.add_argument("--as-of", help="freshness reference time (ISO; default: now)")
    p.add_argument("--max-age-hours", type=int, default=None, help="freshness limit")
    p.add_argument("--profile", choices=["local", "emr"], help="Spark profile (default: auto)")
    return p


def format_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table (what the terminal shows)."""
    cells = [[str(c) for c in columns]] + [
        ["NULL" if v is None else str(v) for v in r] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(row: Sequence[str]) -> str:
        return " | ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()

    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])]) + "\n"


def run_sql(spark: Any, sql: str, limit: int, out: TextIO) -> int:
    df = spark.sql(sql.strip().rstrip(";"))
    rows = df.limit(limit + 1).collect()
    out.write(format_rows(df.columns, [tuple(r) for r in rows[:limit]]))
    more = f" (first {limit} shown)" if len(rows) > limit else ""
    out.write(f"({min(len(rows), limit)} row(s){more})\n")
    return EXIT_OK


def run_validation(spark: Any, cfg: PipelineConfig, tables: list[str], args: Any) -> int:
    from cdclake.catalog.validation import DEFAULT_MAX_AGE_HOURS, all_validation_queries

    queries = all_validation_queries(
        cfg,
        "spark",
        tables or None,
        as_of=args.as_of,
        max_age_hours=args.max_age_hours or DEFAULT_MAX_AGE_HOURS,
    )
    failed = []
    for name, sql in queries.items():
        rows = spark.sql(sql).limit(20).collect()
        if rows:
            failed.append(name)
            log.error("check %s FAILED: %s", name, [r.asDict() for r in rows])
        else:
            log.info("check %s passed", name)
    sys.stdout.write(
        f"{len(queries) - len(failed)}/{len(queries)} checks passed"
        + (f"; failed: {', '.join(failed)}\n" if failed else "\n")
    )
    return EXIT_CHECK_FAILED if failed else EXIT_OK


def spectrum_check(spark: Any, cfg: PipelineConfig, table_name: str) -> Any:
    """Compare a Spectrum-style read of the table's manifests with its Delta snapshot."""
    from cdclake.catalog.deltalog import store_for
    from cdclake.catalog.spectrum import compare_rows, read_like_spectrum

    loc = cfg.table_location(cfg.table(table_name))
    columns, spectrum_rows = read_like_spectrum(store_for(loc), loc)
    snapshot = spark.read.format("delta").load(loc).select(*columns)
    return compare_rows(table_name, columns, [tuple(r) for r in snapshot.collect()], spectrum_rows)


def run_spectrum_check(spark: Any, cfg: PipelineConfig, tables: list[str]) -> int:
    bad = []
    for t in cfg.select_tables(tables or None):
        diff = spectrum_check(spark, cfg, t.qualified_name)
        if diff.ok:
            log.info("%s: manifests match the Delta snapshot", t.qualified_name)
            continue
        bad.append(t.qualified_name)
        log.error(
            "%s: manifests differ from the snapshot: %d row(s) missing, %d extra; first: %s",
            t.qualified_name,
            len(diff.missing),
            len(diff.extra),
            (diff.missing or diff.extra)[:3],
        )
    sys.stdout.write("spectrum check: " + (f"FAILED for {', '.join(bad)}\n" if bad else "ok\n"))
    return EXIT_CHECK_FAILED if bad else EXIT_OK


def main(argv: Sequence[str] | None = None, spark: Any = None) -> int:
    """Returns the exit status. ``spark``: reuse a session (tests)."""
    setup_logging(argv, default="WARNING")
    try:
        args = parser().parse_args(argv)
        cfg = load_config(args.config)
        tables = table_names(args.tables)
        cfg.select_tables(tables)
        sql = Path(args.file).read_text() if args.file else args.sql
    except (UsageError, ConfigError, OSError) as exc:
        return usage_failure(PROG, exc)

    from cdclake.catalog.register import CatalogError, register_tables
    from cdclake.session import build_session

    spark = spark or build_session(args.profile, app_name="cdclake-query")
    try:
        register_tables(cfg, tables or None, target="local", spark=spark)
    except CatalogError as exc:
        # Tables that exist are still queryable; say which are not.
        log.warning("%s", exc)
    if args.validate:
        return run_validation(spark, cfg, tables, args)
    if args.spectrum_check:
        return run_spectrum_check(spark, cfg, tables)
    from pyspark.errors import PySparkException

    try:
        return run_sql(spark, sql, args.limit, sys.stdout)
    except PySparkException as exc:
        sys.stderr.write(f"{PROG}: SQL error: {str(exc).strip().splitlines()[0]}\n")
        return EXIT_CHECK_FAILED


if __name__ == "__main__":
    sys.exit(main())
