"""Register the lake's tables in the catalog (idempotent; run after every merge).

    cdc_catalog.py --config FILE [--tables schema.table,...] [--target glue|local]

``glue``: Athena native Delta tables and Redshift Spectrum manifest tables (+ partitions) in the
configured Glue database, through boto3 only (no Spark needed). ``local``: the local Spark
catalog. Exit status: 0 ok, 1 a table failed (the others were still registered), 2 bad
arguments or config.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

from cdclake.cli.scaffold import (
    EXIT_OK,
    EXIT_TABLE_FAILED,
    EXIT_USAGE,
    UsageError,
    build_parser,
    setup_logging,
    summary_line,
    table_names,
    usage_failure,
)
from cdclake.core.config import ConfigError, load_config

PROG = "cdc_catalog.py"
log = logging.getLogger("cdclake")


def parser() -> argparse.ArgumentParser:
    p = build_parser(PROG, __doc__)
    p.add_argument("--target", choices=["glue", "local"], default="glue")
    return p


def main(argv: Sequence[str] | None = None, **clients: Any) -> int:
    """Run the registration; returns the exit status. ``clients``: boto3 clients or a Spark
    session to use (tests)."""
    setup_logging(argv)
    try:
        args = parser().parse_args(argv)
        cfg = load_config(args.config)
        names = table_names(args.tables)
        cfg.select_tables(names)
    except (UsageError, ConfigError) as exc:
        return usage_failure(PROG, exc)
    from cdclake.catalog.register import CatalogError, register_tables

    try:
        results = register_tables(cfg, names or None, target=args.target, **clients)
    except CatalogError as exc:
        for r in exc.results:
            log.info("summary %s", summary_line(r))
        if not exc.failures:  # nothing was tried: a configuration problem (e.g. name clash)
            log.error("%s", exc)
            return EXIT_USAGE
        return EXIT_TABLE_FAILED
    for r in results:
        log.info("summary %s", summary_line(r))
    return EXIT_OK
