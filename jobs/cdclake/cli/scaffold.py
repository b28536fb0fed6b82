"""What every command line shares: the argument parser (usage errors raise instead of
exiting), exit codes, logging, the per-table loop and the summary.

Exit status, for every entry point: **0** every table succeeded (or had nothing to do), **1**
a table (or a check) failed while the others still ran, **2** bad arguments or config; the
scheduler retries 1 and fails 2 at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, Generic, NoReturn, TypeVar

from cdclake.core.config import TableConfig
from cdclake.core.hours import UTC

log = logging.getLogger("cdclake")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_TABLE_FAILED = EXIT_CHECK_FAILED = EXIT_FAILED
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(table_prefix)s%(message)s"
R = TypeVar("R")


class UsageError(ValueError):
    """Arguments that do not parse or do not make sense together."""


class Parser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        raise UsageError(message)


def build_parser(prog: str, doc: str | None, *, log_level: str = "INFO") -> Parser:
    """A parser with the options every entry point takes: ``--config``, ``--tables``,
    ``--log-level``; its description is the first paragraph of ``doc``."""
    p = Parser(prog=prog, description=(doc or "").split("\n\n")[0])
    p.add_argument("--config", required=True, help="pipeline config (path or s3:// URI)")
    p.add_argument("--tables", help="comma-separated schema.table list (default: all)")
    p.add_argument("--log-level", default=log_level)
    return p


def add_spark_options(p: argparse.ArgumentParser) -> None:
    """The options of the Spark jobs: ``--profile``, ``--run-id``, ``--summary-json``."""
    p.add_argument("--profile", choices=["local", "emr"], help="Spark profile (default: auto)")
    p.add_argument("--run-id", help="identifier recorded in the summaries (default: random)")
    p.add_argument("--summary-json", help="also write the per-table summaries to this file")


def table_names(text: str | None) -> list[str]:
    """``--tables a.b, c.d`` as a list (empty: all tables)."""
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def setup_logging(argv: Sequence[str] | None, default: str = "INFO") -> None:
    """Log to stderr at ``--log-level`` (read before parsing, so usage errors are logged)."""
    level = default
    args = list(argv if argv is not None else sys.argv[1:])
    if "--log-level" in args and args.index("--log-level") + 1 < len(args):
        level = args[args.index("--log-level") + 1]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_TablePrefix())
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    logging.getLogger("py4j").setLevel(logging.WARNING)


def parse_time(value: str, option: str) -> datetime:
    """An option's ISO-8601 time (``Z`` or an offset; naive values are UTC), in UTC."""
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"{option} '{value}' is not a time like 2026-11-23T00:00:00Z") from exc
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def usage_failure(prog: str, exc: Exception) -> int:
    """Report a usage or config error and return :data:`EXIT_USAGE`."""
    log.error("%s", exc)
    sys.stderr.write(f"{prog}: error: {exc}\n")
    return EXIT_USAGE


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def for_each_table(
    tables: Iterable[TableConfig],
    run_one: Callable[[TableConfig], R],
    on_error: Callable[[TableConfig, Exception], R],
    workers: int = 1,
) -> list[R]:
    """Run every table, ``workers`` at a time; one table's failure does not stop the others
    (its record says why). While a table runs, its log lines are prefixed with its name; the
    records' one-line JSON ``summary`` lines follow in config order once all are done."""

    def one(table: TableConfig) -> R:
        _current.table = table.qualified_name
        try:
            return run_one(table)
        except Exception as exc:  # noqa: BLE001 - one table's failure must not stop the others
            log.exception("%s: run failed", table.qualified_name)
            return on_error(table, exc)
        finally:
            _current.table = None

    tables = list(tables)
    if workers > 1 and len(tables) > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="table") as pool:
            records = list(pool.map(one, tables))
    else:
        records = [one(t) for t in tables]
    for rec in records:
        log.info("summary %s", summary_line(rec))
    return records


class GroupAppend(Generic[R]):
    """Appends items through ``write`` (one call per batch), for threads side by side: an
    item handed in while another thread's write runs goes with the next write, with every
    item that arrived meanwhile (group commit). :meth:`add` returns once a write has carried
    the item, or raises that write's error. One thread alone: one write per item, as before.
    """

    def __init__(self, write: Callable[[list[R]], None]) -> None:
        self._write = write
        self._queue: list[tuple[R, Future[None]]] = []
        self._queue_lock = threading.Lock()
        self._turn = threading.Lock()  # one write at a time

    def add(self, item: R) -> None:
        done: Future[None] = Future()
        with self._queue_lock:
            self._queue.append((item, done))
        with self._turn:  # the write that took this item (if any) has ended when we get here
            if not done.done():
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    self._write([i for i, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every item of the batch gets it
                    for _, f in batch:
                        f.set_exception(exc)
                else:
                    for _, f in batch:
                        f.set_result(None)
        done.result()


# The table the current thread is running, for the log prefix.
_current = threading.local()


class _TablePrefix(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        table = getattr(_current, "table", None)
        record.table_prefix = f"[{table}] " if table else ""
        return True


def summary_line(rec: Any) -> str:
    return json.dumps(_plain(rec), default=str, sort_keys=True)


def write_summary(path: str | None, records: Sequence[Any]) -> None:
    """``--summary-json``: the records as a JSON list."""
    if path:
        with open(path, "w") as fh:
            json.dump([_plain(r) for r in records], fh, default=str, indent=2)


def _plain(rec: Any) -> Any:
    return rec.to_json() if hasattr(rec, "to_json") else rec


def exit_status(label: str, records: Sequence[Any], also_failed: Sequence[str] = ()) -> int:
    """Log the run's one-line result; :data:`EXIT_FAILED` when a table or a step failed."""
    failed = [r.table for r in records if r.status == "failed"] + list(also_failed)
    log.info(
        "%s: %d table(s), %d failed%s",
        label,
        len(records),
        len(failed),
        f" ({', '.join(failed)})" if failed else "",
    )
    return EXIT_FAILED if failed else EXIT_OK
