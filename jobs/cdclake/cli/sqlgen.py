"""Regenerate the generated files of ``sql/`` (``make sql-gen``).

    python -m cdclake.cli.sqlgen --config conf/pipeline.yaml --out sql \\
        --location-root s3://example-cdclake-dev-curated/lake

Exit status: 0 written (or already current), 2 bad arguments, config or a table without a
readable Delta log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from cdclake.catalog.deltalog import DeltaLogError
from cdclake.catalog.sqlgen import read_metas, render_sql_files, write_sql_files
from cdclake.catalog.types import DdlError
from cdclake.cli.scaffold import (
    EXIT_OK,
    UsageError,
    build_parser,
    setup_logging,
    usage_failure,
)
from cdclake.core.config import ConfigError, load_config

PROG = "python -m cdclake.cli.sqlgen"
log = logging.getLogger("cdclake")


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging(argv)
    p = build_parser(PROG, __doc__)
    p.add_argument("--out", default="sql", help="folder to write into (default: sql)")
    p.add_argument("--location-root", help="curated root to write in LOCATIONs (default: config's)")
    p.add_argument("--iam-role", default="default", help="Redshift IAM role ARN (default: default)")
    try:
        args = p.parse_args(argv)
        cfg = load_config(args.config)
        files = render_sql_files(
            cfg, read_metas(cfg), location_root=args.location_root, iam_role=args.iam_role
        )
    except (UsageError, ConfigError, DeltaLogError, DdlError) as exc:
        return usage_failure(PROG, exc)
    for path in write_sql_files(files, Path(args.out)):
        log.info("wrote %s", path)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
