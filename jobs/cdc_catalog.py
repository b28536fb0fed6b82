"""Register the lake's tables in the catalog (idempotent; run after every merge).

    cdc_catalog.py --config FILE [--tables schema.table,...] [--target glue|local]

``glue``: Athena native Delta tables and Redshift Spectrum manifest tables (+ partitions) in the
configured Glue database, through boto3 only (no Spark needed). ``local``: the local Spark
catalog. Exit status: 0 ok, 1 a table failed (the others were still registered), 2 bad
arguments or config.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from cdclake.cli import UsageError, _Parser
from cdclake.config import ConfigError, load_config

log = logging.getLogger("cdclake")
EXIT_OK, EXIT_TABLE_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cdc_catalog.py", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--config", required=True, help="pipeline config (path or s3:// URI)")
    p.add_argument("--tables", help="comma-separated schema.table list (default: all)")
    p.add_argument("--target", choices=["glue", "local"], default="glue")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: Sequence[str] | None = None, **clients: Any) -> int:
    """Run the registration; returns the exit status. ``clients``: boto3 clients or a Spark
    session to use (tests)."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"cdc_catalog.py: error: {exc}", file=sys.stderr)  # noqa: T201 - CLI usage error
        return EXIT_USAGE
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from cdclake.catalog import CatalogError, register_tables

    try:
        cfg = load_config(args.config)
        names = [t.strip() for t in (args.tables or "").split(",") if t.strip()]
        cfg.select_tables(names)
    except ConfigError as exc:
        log.error("%s", exc)
        print(f"cdc_catalog.py: error: {exc}", file=sys.stderr)  # noqa: T201 - CLI usage error
        return EXIT_USAGE
    try:
        results = register_tables(cfg, names or None, target=args.target, **clients)
    except CatalogError as exc:
        for r in exc.results:
            log.info("summary %s", json.dumps(r, sort_keys=True))
        if not exc.failures:  # nothing was tried: a configuration problem (e.g. name clash)
            log.error("%s", exc)
            return EXIT_USAGE
        return EXIT_TABLE_FAILED
    for r in results:
        log.info("summary %s", json.dumps(r, sort_keys=True))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
