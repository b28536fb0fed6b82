"""The demo driver behind ``make run``: drive the local target of the Airflow DAGs through
``dag.test()`` on a local source, then check that the lake equals the source.

    python -m demo.run_demo --config conf/pipeline.yaml [--source postgres|demo] [--hours N]

Sources (the DAG setting ``local_source``):

* ``postgres`` (the default): a throwaway PostgreSQL cluster with the blog's tables, a workload
  of real transactions over several hours of the server's (faked) clock, and the capture
  (``capture/``) writing DMS's files; see :mod:`demo.pgdemo`;
* ``demo``: the synthetic generator (:mod:`demo.generator`), for DMS's own quirks the capture
  does not produce (duplicate deliveries after a task restart, chunked full loads, files landing
  after the next hour's run).

Steps (each DAG run is an in-process ``dag.test()``; each job inside it a local ``spark-submit``
of the same entry script EMR Serverless runs):

1. wipe ``raw_root``, ``curated_root`` and the demo's Airflow home (local paths only; ``--keep``
   keeps them); migrate a fresh SQLite Airflow database;
2. ``cdclake_full_load``: the source's full load lands, the job replaces the tables;
3. ``cdclake_hourly`` for each CDC hour H (data interval ``[H, H+1h)``): the hour's files land,
   the job merges ``--until H+1h``, the tables are registered in the local catalog and
   validated; files that land late are applied by a later run (the generator adds a run after
   the last hour for its last late files);
4. a backfill of one earlier hour (``reprocess=true``: ``--since H --until H+1h``), which must
   change nothing;
5. print each run's per-table summary, then compare every lake table, read through Spark SQL
   over the local catalog (as analysts query it), with the source: PostgreSQL's ``SELECT *``,
   or the generator's exact expected state; and a table's history (``history:`` in the
   config), version by version, with the source's timeline: every change it committed, as the
   capture or the generator wrote them, replayed in commit order (:mod:`demo.timeline`),
   ending at those same rows. PASS/FAIL per table.

Exit status: 0 when every DAG run succeeded, the backfill changed nothing and every table (and
history) matches; 1 otherwise; 2 for bad arguments or config.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from cdclake.catalog.types import spark_type_name
from cdclake.core.config import ConfigError, PipelineConfig, load_config
from cdclake.core.hours import hour_arg
from cdclake.core.uris import local_dir
from demo.compare import Expected, compare_all
from demo.dagrun import (
    FULL_LOAD_DAG,
    HOUR,
    HOURLY_DAG,
    REPO,
    Outcome,
    airflow_env,
    runs_table,
    start_airflow,
)
from demo.generator import DemoSource

log = logging.getLogger("cdclake.demo")

SOURCES = ("postgres", "demo")


# ---- arguments and setup ---------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_demo", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument("--config", required=True, help="pipeline config (local roots only)")
    p.add_argument(
        "--source", choices=SOURCES, default="postgres", help="local source (default: postgres)"
    )
    p.add_argument("--hours", type=int, default=None, help="CDC hours (default: the source's)")
    p.add_argument("--keep", action="store_true", help="do not wipe the demo lake first")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: its own)")
    p.add_argument("--travel-rows", type=int, default=None, help="initial travel_details rows")
    p.add_argument("--sales-rows", type=int, default=None, help="initial ticket_sales rows")
    p.add_argument("--backfill-hour", type=int, default=None, help="CDC hour index to backfill")
    p.add_argument("--report-json", help="also write the runs and checks to this file")
    p.add_argument("--log-level", default="INFO")
    return p


def local_root(uri: str) -> Path:
    """The local folder of a config root; refuses object-store URIs (the demo is local)."""
    try:
        return local_dir(uri)
    except ValueError as exc:
        raise ConfigError(f"the demo runs on local paths only, refusing to touch {uri}") from exc


def wipe(root: Path) -> None:
    """Remove one demo root, after checks that it cannot be something precious."""
    root = root.resolve()
    protected = {Path("/"), Path.home().resolve(), REPO, Path.cwd().resolve()}
    if root in protected or root in REPO.parents or len(root.parts) < 3:
        raise ConfigError(f"refusing to wipe {root}: not a dedicated demo folder")
    if root.exists():
        log.info("wiping %s", root)
        shutil.rmtree(root)


# ---- logging ---------------------------------------------------------------------------------
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Our loggers: the job's, the demo's, the DAGs' and the capture's. Their warnings and progress
# lines reach the console, all their records the log file; everything else (Airflow, Spark)
# reaches the log file through the process's redirected stdout and stderr.
CONSOLE_LOGGERS = ("cdclake", "cdclake_dags", "demo", "capture")


class _Console(logging.Filter):
    """The console shows warnings and errors of our loggers, and the progress lines (one per
    DAG run, marked ``extra={"progress": True}``); everything goes to the log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or bool(getattr(record, "progress", False))


class Console:
    """The terminal, kept aside once everything else is sent to the log file."""

    out: TextIO = sys.stdout
    handler: logging.StreamHandler | None = None


def setup_logging(level: str) -> None:
    """Our loggers get their own handlers and do not propagate: Airflow reconfigures the root
    logger when it is imported and again per DAG run."""
    Console.handler = logging.StreamHandler(sys.stderr)
    Console.handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    Console.handler.addFilter(_Console())
    for name in CONSOLE_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(getattr(logging, str(level).upper(), logging.INFO))
        logger.addHandler(Console.handler)
        logger.propagate = False
    logging.getLogger("py4j").setLevel(logging.WARNING)


def log_to_file(path: Path) -> Path:
    """From now on the process's own stdout and stderr (Airflow's messages, the JVM's, every
    log record) go to ``path``; the report and the console handler keep the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    Console.out = os.fdopen(os.dup(1), "w", buffering=1)
    if Console.handler is not None:
        Console.handler.setStream(os.fdopen(os.dup(2), "w", buffering=1))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    for name in CONSOLE_LOGGERS:
        logging.getLogger(name).addHandler(handler)
    return path


def log_tail(path: Path, lines: int = 60) -> str:
    """The end of the log file (shown when the demo fails)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---- the demo --------------------------------------------------------------------------------
def _emit(text: str = "") -> None:
    """The deliberate report on the terminal's stdout (everything else: the log file)."""
    Console.out.write(text + "\n")
    Console.out.flush()


def prepare(args: argparse.Namespace) -> tuple[Path, PipelineConfig, Path]:
    """Config, arguments and wipe; raises ConfigError/ValueError for bad settings."""
    config_path = Path(args.config).resolve()
    cfg = load_config(config_path)
    raw, curated = local_root(cfg.raw_root), local_root(cfg.curated_root)
    if args.source == "postgres":
        from demo.pgdemo import check_options

        n = check_options(cfg, args)["hours"]
    else:
        n = len(DemoSource(cfg, **src_options(args)).hours())
    if args.backfill_hour is not None and not 0 <= args.backfill_hour < n:
        raise ValueError(f"--backfill-hour must be in 0..{n - 1}")
    if not args.keep:
        wipe(raw)
        wipe(curated)
        wipe(curated.parent / "airflow")
    return config_path, cfg, curated


def drive_generator(
    config_path: Path, cfg: PipelineConfig, airflow_home: Path, args: argparse.Namespace
) -> Outcome:
    """The DAG runs on the synthetic generator's files, and the check against its state."""
    src = DemoSource(cfg, **src_options(args))
    hours = src.hours()
    log.info(
        "demo source: task start %s, %d CDC hours, %s",
        src.task_start.isoformat(),
        len(hours),
        json.dumps(src.summary(), sort_keys=True),
    )
    runner = start_airflow(airflow_env(config_path, airflow_home, "demo", src_options(args)))
    t0 = time.monotonic()
    # A manual run's "logical date"; its checks judge freshness at that time.
    runner.run("full", FULL_LOAD_DAG, src.task_start + HOUR)
    # dag.test() infers the data interval that ends at the logical date: [H, H+1h).
    for h in [*hours, src.end]:
        runner.run(f"hour-{h:%H}", HOURLY_DAG, h + HOUR)
    index = len(hours) // 2 if args.backfill_hour is None else args.backfill_hour
    bh = hours[index]
    backfill = runner.run(f"backfill-{bh:%H}", HOURLY_DAG, bh + HOUR, {"reprocess": True})
    seconds = time.monotonic() - t0
    expected = {
        t.qualified_name: Expected(
            [(f.name, spark_type_name(f.type)) for f in src.expected_schema(t.qualified_name)],
            src.expected_rows(t.qualified_name),
        )
        for t in cfg.tables
    }
    checks = compare_all(cfg, expected, src.hard_cases)
    return Outcome(runner.results, backfill, bh, seconds, checks, {"source": "demo"})


def run(config_path: Path, cfg: PipelineConfig, curated: Path, args: argparse.Namespace) -> int:
    airflow_home = curated.parent / "airflow"
    if args.source == "postgres":
        from demo.pgdemo import drive

        outcome = drive(config_path, cfg, airflow_home, args)
    else:
        outcome = drive_generator(config_path, cfg, airflow_home, args)
    return report(outcome, curated, args)


def report(outcome: Outcome, curated: Path, args: argparse.Namespace) -> int:
    """Print the runs, the backfill and the checks; write ``--report-json``; the exit code."""
    results, backfill, checks = outcome.results, outcome.backfill, outcome.checks
    _emit()
    _emit(f"DAG runs ({len(results)}, {outcome.seconds:.0f} s; job logs in {curated}/_runs):")
    _emit(runs_table(results))
    failed_runs = [f"{r.label} ({', '.join(r.failed_tasks)})" for r in results if not r.ok]
    late = outcome.source.get("late_files")
    if late is not None:
        _emit()
        _emit(f"Late files (written into an hour's folder after that hour's run): {len(late)}")
        for name in late:
            _emit(f"  {name}")

    changed = [
        rec["table"]
        for rec in backfill.records
        if rec.get("rows_inserted") or rec.get("rows_updated") or rec.get("rows_deleted")
    ]
    backfill_ok = backfill.ok and bool(backfill.records) and not changed
    _emit()
    _emit(
        f"Backfill of hour {hour_arg(outcome.backfill_hour)}: "
        + ("PASS (changed nothing)" if backfill_ok else f"FAIL (changed {changed or '?'})")
    )

    _emit()
    _emit(f"Lake (Spark SQL, local catalog) vs source ({outcome.source.get('source')}):")
    width = max(len(c.table) for c in checks) if checks else 0
    for c in checks:
        _emit(
            f"  {'PASS' if c.ok else 'FAIL'}  {c.table.ljust(width)}  "
            f"source {c.expected_rows} rows, lake {c.actual_rows} rows"
        )
        for p in c.problems:
            _emit(f"        {p}")

    ok = not failed_runs and backfill_ok and bool(checks) and all(c.ok for c in checks)
    _emit()
    if failed_runs:
        _emit(f"FAILED runs: {', '.join(failed_runs)}")
    _emit(f"Demo {'PASSED' if ok else 'FAILED'}")
    if args.report_json:
        doc = {
            "ok": ok,
            **outcome.source,
            "seconds": round(outcome.seconds, 1),
            "runs": [
                {
                    "label": r.label,
                    "dag_id": r.dag_id,
                    "run_id": r.run_id,
                    "state": r.state,
                    "failed_tasks": r.failed_tasks,
                    "seconds": round(r.seconds, 1),
                    "records": r.records,
                }
                for r in results
            ],
            "backfill_changed_nothing": backfill_ok,
            "tables": [
                {
                    "table": c.table,
                    "equal": c.ok,
                    "expected_rows": c.expected_rows,
                    "actual_rows": c.actual_rows,
                    "problems": c.problems,
                }
                for c in checks
            ],
        }
        Path(args.report_json).write_text(json.dumps(doc, indent=2, default=str))
    return 0 if ok else 1


def src_options(args: argparse.Namespace) -> dict[str, Any]:
    """The generator options; the DAGs' demo source must be built with the same ones."""
    return {
        k: v
        for k, v in {
            "hours": args.hours,
            "seed": args.seed,
            "travel_rows": args.travel_rows,
            "sales_rows": args.sales_rows,
        }.items()
        if v is not None
    }


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    setup_logging(args.log_level)
    try:
        prepared = prepare(args)
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    log_file = log_to_file(prepared[2].parent / "make-run.log")
    _emit(f"Full log (Airflow, Spark, the job): {log_file}")
    from capture.pgcluster import ClusterError
    from demo.pgsource import SourceSetupError

    try:
        code = run(*prepared, args)
    except (ClusterError, SourceSetupError) as exc:  # PostgreSQL missing, cannot start, ...
        log.error("%s: %s", type(exc).__name__, exc)
        code = 1
    except Exception:
        log.exception("the demo stopped")
        code = 1
    if code:
        _emit(f"\nThe end of {log_file}:\n{log_tail(log_file)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
