"""``python -m capture init|stream|drop|status``: the command line.

Exit status: 0 done; 1 the capture failed (the message says why and what to do); 2 bad
arguments or pipeline config. Every command logs a one-line JSON ``summary`` and, with
``--summary-json FILE``, writes it to a file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg2

from capture.errors import CaptureError, CaptureUsageError
from capture.options import DEFAULT_NAME, Options, default_state_dir
from cdclake.core.config import ConfigError, PipelineConfig, load_config

log = logging.getLogger("capture")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_CONFIG = "conf/pipeline.yaml"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises instead of exiting (so main() returns 2)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise CaptureUsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--config",
        default=os.environ.get("CDCLAKE_CONFIG", DEFAULT_CONFIG),
        help="pipeline config (raw_root, dms:, tables:); default %(default)s",
    )
    common.add_argument(
        "--dsn",
        default=os.environ.get("CDCLAKE_CAPTURE_DSN", ""),
        help="libpq connection string; empty: the PG* environment variables",
    )
    common.add_argument("--state-dir", type=Path, help="default: <raw_root>/_capture")
    common.add_argument("--slot", default=DEFAULT_NAME, help="replication slot name")
    common.add_argument("--publication", default=DEFAULT_NAME, help="publication name")
    common.add_argument("--summary-json", type=Path, help="also write the summary here")
    common.add_argument("--log-level", default="INFO")
    parser = _Parser(prog="python -m capture", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    init = sub.add_parser("init", parents=[common], help="publication, slot, full load")
    init.add_argument("--force", action="store_true", help="drop an existing capture, reload")
    init.add_argument("--load-file-mb", type=float, default=64.0, help="LOAD file size (text)")
    run = sub.add_parser("stream", parents=[common], help="write CDC files from the slot")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument(
        "--until-idle",
        "--once",
        dest="until_idle",
        action="store_true",
        help="stop once everything committed before the start is written",
    )
    run.add_argument("--flush-seconds", type=float, default=60.0)
    run.add_argument("--flush-rows", type=int, default=100_000)
    sub.add_parser("drop", parents=[common], help="drop the slot and the publication")
    sub.add_parser(
        "status", parents=[common], help="exit 0 if the slot is healthy, 1 (and why) if not"
    )
    return parser


def options_from(args: argparse.Namespace, cfg: PipelineConfig) -> Options:
    extra: dict[str, Any] = {}
    if args.command == "stream":
        extra = {"flush_seconds": args.flush_seconds, "flush_rows": args.flush_rows}
    if args.command == "init":
        extra = {"load_file_bytes": int(args.load_file_mb * 1024 * 1024)}
    return Options(
        dsn=args.dsn,
        state_dir=args.state_dir or default_state_dir(cfg),
        slot=args.slot,
        publication=args.publication,
        **extra,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run one parsed command; raises :class:`CaptureError` or :class:`ConfigError`."""
    from capture.load import drop, initialize
    from capture.status import status
    from capture.stream import stream

    cfg = load_config(args.config)
    opts = options_from(args, cfg)
    if args.command == "init":
        return initialize(cfg, opts, force=args.force)
    if args.command == "stream":
        return stream(cfg, opts, until_idle=args.until_idle)
    if args.command == "status":
        return status(cfg, opts)
    return drop(opts)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except CaptureUsageError as exc:
        logging.basicConfig(level=logging.INFO)
        log.error("%s", exc)
        return EXIT_USAGE
    _setup_logging(args.log_level)
    try:
        summary = run(args)
    except (ConfigError, CaptureUsageError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except CaptureError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        return EXIT_FAILED
    except (psycopg2.Error, OSError) as exc:  # connection lost, disk full...: say which
        log.error("%s: %s", type(exc).__name__, str(exc).strip())
        return EXIT_FAILED
    line = json.dumps(summary, sort_keys=True, default=str)
    log.info("summary %s", line)
    if args.summary_json:
        args.summary_json.write_text(line + "\n")
    return EXIT_OK


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
