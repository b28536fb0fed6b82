"""The demo driver behind ``make run``: generate the demo source and drive the local target of
the Airflow DAGs through ``dag.test()``, then check that the lake equals the source.

    python -m cdclake.demo.run_demo --config conf/pipeline.yaml [--hours N] [--keep]

Steps (each DAG run is an in-process ``dag.test()``; each job inside it a local ``spark-submit``
of the same entry script EMR Serverless runs):

1. wipe ``raw_root``, ``curated_root`` and the demo's Airflow home (local paths only; ``--keep``
   keeps them); migrate a fresh SQLite Airflow database;
2. ``cdclake_full_load``: the demo's full load lands, the job replaces the tables;
3. ``cdclake_hourly`` for each CDC hour H (data interval ``[H, H+1h)``) and one more hour after
   the last, so files that land late are caught up: the hour's files land (everything DMS has
   written by the end of the grace period), the job merges ``--until H+1h``, the tables are
   registered in the local catalog and validated;
4. a backfill of one earlier hour (``reprocess=true``: ``--since H --until H+1h``), which must
   change nothing;
5. print each run's per-table summary, then compare every lake table (live columns, types and
   rows) with the generator's expected state: PASS/FAIL per table.

Exit status: 0 when every DAG run succeeded, the backfill changed nothing and every table
matches; 1 otherwise; 2 for bad arguments or config.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from cdclake.catalog.types import spark_type_name
from cdclake.core.config import ConfigError, PipelineConfig, load_config
from cdclake.core.hours import hour_arg
from cdclake.core.uris import local_dir
from demo.generator import DemoSource

log = logging.getLogger("cdclake.demo")

REPO = Path(__file__).resolve().parents[3]
GRACE = timedelta(minutes=2)
HOUR = timedelta(hours=1)


@dataclass
class RunResult:
    label: str
    dag_id: str
    run_id: str
    state: str
    seconds: float
    records: list[dict[str, Any]] = field(default_factory=list)
    failed_tasks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state == "success" and all(r.get("status") != "failed" for r in self.records)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


@dataclass
class TableCheck:
    table: str
    expected_rows: int
    actual_rows: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


# ---- arguments and setup ---------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_demo", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument("--config", required=True, help="pipeline config (local roots only)")
    p.add_argument("--hours", type=int, default=None, help="CDC hours (default: generator's)")
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


# ---- DAG runs --------------------------------------------------------------------------------
def airflow_env(config_path: Path, airflow_home: Path, options: dict[str, Any]) -> dict[str, str]:
    """Settings of the local target (set before Airflow is imported: it reads them then)."""
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        # Task logs go to the job log files and summaries; keep the console to the report.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW__CDCLAKE__TARGET": "local",
        "AIRFLOW__CDCLAKE__PIPELINE_CONFIG": str(config_path),
        "AIRFLOW__CDCLAKE__GRACE_MINUTES": str(int(GRACE.total_seconds() // 60)),
        "AIRFLOW__CDCLAKE__DEMO_OPTIONS": json.dumps(options, default=str),
        # A failed task fails the demo at once; retries would only repeat the same error.
        "AIRFLOW__CDCLAKE__RETRIES": "0",
    }


def migrate_airflow_db(env: dict[str, str]) -> None:
    airflow = str(Path(sys.executable).parent / "airflow")
    log.info("migrating the demo's Airflow database in %s", env["AIRFLOW_HOME"])
    subprocess.run(  # noqa: S603 - Airflow's own CLI, fixed arguments
        [airflow, "db", "migrate"],
        env={**os.environ, **env},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class DagRunner:
    """Runs the DAGs of ``dags/`` with ``dag.test()`` and keeps each run's job summaries."""

    def __init__(self) -> None:
        if str(REPO / "dags") not in sys.path:
            sys.path.insert(0, str(REPO / "dags"))
        from airflow.models.dagbag import DagBag

        bag = DagBag(dag_folder=str(REPO / "dags"))
        if bag.import_errors:
            raise RuntimeError(f"DAG import errors: {bag.import_errors}")
        self.dags = bag.dags
        self.results: list[RunResult] = []

    def run(
        self, label: str, dag_id: str, logical_date: datetime, conf: dict | None = None
    ) -> RunResult:
        from cdclake_dags.settings import load_settings

        dag = self.dags[dag_id]
        log.info("DAG run %s: %s at %s %s", label, dag_id, logical_date.isoformat(), conf or "")
        started = time.monotonic()
        dr = dag.test(logical_date=logical_date, run_conf=conf or {})
        seconds = time.monotonic() - started
        tis = dr.get_task_instances()
        failed = sorted(ti.task_id for ti in tis if ti.state not in ("success", "skipped"))
        path = load_settings().summary_path(dag_id, dr.run_id, "merge")
        records = json.loads(path.read_text()) if path.exists() else []
        result = RunResult(label, dag_id, dr.run_id, str(dr.state), seconds, records, failed)
        self.results.append(result)
        for rec in records:
            log.info("  %s", summary_line(rec))
        if result.ok:
            log.info("DAG run %s: success in %.1f s", label, seconds)
        else:
            log.error("DAG run %s: %s; tasks not successful: %s", label, dr.state, failed)
        return result


def summary_line(rec: dict[str, Any]) -> str:
    return (
        f"{rec.get('table')}: {rec.get('status')} files={rec.get('files')} "
        f"records={rec.get('records')} ins={rec.get('rows_inserted')} "
        f"upd={rec.get('rows_updated')} del={rec.get('rows_deleted')} "
        f"stale={rec.get('stale_skipped')} quarantined={rec.get('quarantined')} "
        f"{float(rec.get('duration_s') or 0):.1f}s"
        + (f" error={rec['error']}" if rec.get("error") else "")
    )


COLUMNS = (
    ("run", "label", "<"),
    ("table", "table", "<"),
    ("status", "status", "<"),
    ("files", "files", ">"),
    ("records", "records", ">"),
    ("ins", "rows_inserted", ">"),
    ("upd", "rows_updated", ">"),
    ("del", "rows_deleted", ">"),
    ("stale", "stale_skipped", ">"),
    ("quar", "quarantined", ">"),
    ("secs", "duration_s", ">"),
)


def runs_table(results: Sequence[RunResult]) -> str:
    rows: list[list[str]] = []
    for r in results:
        recs = r.records or [{"table": "-", "status": f"exit {r.exit_code}"}]
        for rec in recs:
            cells = []
            for _, k, _ in COLUMNS:
                if k == "label":
                    cells.append(r.label)
                elif k == "table":
                    cells.append(str(rec.get("table", "-")).split(".")[-1])
                elif k == "duration_s":
                    cells.append(f"{float(rec.get(k) or 0):.1f}")
                else:
                    v = rec.get(k)
                    cells.append("-" if v is None else str(v))
            rows.append(cells)
    heads = [h for h, _, _ in COLUMNS]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if a == "<" else c.rjust(w)
            for c, w, (_, _, a) in zip(cells, widths, COLUMNS, strict=True)
        ).rstrip()

    lines = [fmt(heads), fmt(["-" * w for w in widths])]
    lines += [fmt(row) for row in rows]
    return "\n".join(lines)


# ---- comparison -------------------------------------------------------------------------------
def normalise(value: Any) -> Any:
    """Compare-ready value: aware UTC datetimes (PySpark hands back naive local ones)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, Decimal):
        return value  # Decimal('1.50') == Decimal('1.5'); the column type pins the scale
    return value


def compare_table(spark: Any, cfg: PipelineConfig, src: DemoSource, name: str) -> TableCheck:
    table = cfg.table(name)
    keys = table.primary_key
    schema = src.expected_schema(name)
    expected_cols = [(f.name, spark_type_name(f.type)) for f in schema]  # Delta log names
    expected = src.expected_rows(name)
    problems: list[str] = []

    df = spark.read.format("delta").load(cfg.table_location(table))
    df = df.select(*[c for c in df.columns if not c.startswith("_")])
    actual_cols = [(f.name, f.dataType.jsonValue()) for f in df.schema.fields]
    if actual_cols != expected_cols:
        problems.append(f"columns differ: expected {expected_cols}, lake has {actual_cols}")
    names = [n for n, _ in expected_cols if n in df.columns]
    actual = [{c: normalise(v) for c, v in r.asDict().items()} for r in df.select(*names).collect()]

    def by_key(rows: list[dict[str, Any]], side: str) -> dict[tuple, dict[str, Any]]:
        out: dict[tuple, dict[str, Any]] = {}
        for row in rows:
            k = tuple(row[c] for c in keys)
            if k in out:
                problems.append(f"{side} has key {k} twice")
            out[k] = row
        return out

    exp = by_key([{c: normalise(r.get(c)) for c in names} for r in expected], "expected")
    act = by_key(actual, "lake")
    missing = sorted(set(exp) - set(act))
    extra = sorted(set(act) - set(exp))
    differ = sorted(k for k in set(exp) & set(act) if exp[k] != act[k])
    cases = _cases_by_key(src, name)
    for what, ks in (("missing from the lake", missing), ("not in the source", extra)):
        if ks:
            problems.append(f"{len(ks)} row(s) {what}: " + _describe_keys(ks, cases))
    if differ:
        problems.append(f"{len(differ)} row(s) differ: " + _describe_keys(differ, cases))
        for k in differ[:10]:
            diffs = {c: (exp[k][c], act[k][c]) for c in names if exp[k][c] != act[k][c]}
            problems.append(f"  key {k}: expected vs lake {diffs}")
    for k in missing[:5]:
        problems.append(f"  missing {k}: expected {exp[k]}")
    for k in extra[:5]:
        problems.append(f"  extra {k}: lake has {act[k]}")
    return TableCheck(name, len(expected), len(actual), problems)


def _cases_by_key(src: DemoSource, name: str) -> dict[tuple, list[str]]:
    out: dict[tuple, list[str]] = {}
    for case in src.hard_cases:
        if case.table == name:
            for k in case.keys:
                out.setdefault(tuple(k), []).append(case.name)
    return out


def _describe_keys(keys: Sequence[tuple], cases: dict[tuple, list[str]], limit: int = 20) -> str:
    parts = []
    for k in keys[:limit]:
        label = "/".join(cases.get(k, [])) or "background"
        parts.append(f"{k} [{label}]")
    more = f" ... (+{len(keys) - limit})" if len(keys) > limit else ""
    return ", ".join(parts) + more


# ---- the demo --------------------------------------------------------------------------------
def _emit(text: str = "") -> None:
    """The deliberate report on stdout (progress goes to the log on stderr)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def prepare(args: argparse.Namespace) -> tuple[Path, PipelineConfig, Path, DemoSource]:
    """Config, wipe and generator; raises ConfigError/ValueError for bad settings."""
    config_path = Path(args.config).resolve()
    cfg = load_config(config_path)
    raw, curated = local_root(cfg.raw_root), local_root(cfg.curated_root)
    if not args.keep:
        wipe(raw)
        wipe(curated)
    src = DemoSource(cfg, **src_options(args))
    n = len(src.hours())
    if args.backfill_hour is not None and not 0 <= args.backfill_hour < n:
        raise ValueError(f"--backfill-hour must be in 0..{n - 1}")
    return config_path, cfg, curated, src


def run(
    config_path: Path, cfg: PipelineConfig, curated: Path, src: DemoSource, args: argparse.Namespace
) -> int:
    hours = src.hours()
    log.info(
        "demo source: task start %s, %d CDC hours, %s",
        src.task_start.isoformat(),
        len(hours),
        json.dumps(src.summary(), sort_keys=True),
    )
    airflow_home = curated.parent / "airflow"
    if not args.keep:
        wipe(airflow_home)
    env = airflow_env(config_path, airflow_home, src_options(args))
    os.environ.update(env)
    migrate_airflow_db(env)
    runner = DagRunner()
    t0 = time.monotonic()

    # A manual run's "logical date"; its checks judge freshness at that time.
    runner.run("full", "cdclake_full_load", src.task_start + HOUR)
    # dag.test() infers the data interval that ends at the logical date: [H, H+1h).
    for h in [*hours, src.end]:
        runner.run(f"hour-{h:%H}", "cdclake_hourly", h + HOUR)
    index = len(hours) // 2 if args.backfill_hour is None else args.backfill_hour
    bh = hours[index]
    backfill = runner.run(f"backfill-{bh:%H}", "cdclake_hourly", bh + HOUR, {"reprocess": True})
    runs_seconds = time.monotonic() - t0

    _emit()
    _emit(f"DAG runs ({len(runner.results)}, {runs_seconds:.0f} s; job logs in {curated}/_runs):")
    _emit(runs_table(runner.results))
    failed_runs = [f"{r.label} ({', '.join(r.failed_tasks)})" for r in runner.results if not r.ok]

    changed = [
        rec["table"]
        for rec in backfill.records
        if rec.get("rows_inserted") or rec.get("rows_updated") or rec.get("rows_deleted")
    ]
    backfill_ok = backfill.ok and bool(backfill.records) and not changed
    _emit()
    _emit(
        f"Backfill of hour {hour_arg(bh)}: "
        + ("PASS (changed nothing)" if backfill_ok else f"FAIL (changed {changed or '?'})")
    )

    checks = compare_all(cfg, src)
    _emit()
    _emit("Lake vs source:")
    width = max(len(c.table) for c in checks) if checks else 0
    for c in checks:
        _emit(
            f"  {'PASS' if c.ok else 'FAIL'}  {c.table.ljust(width)}  "
            f"expected {c.expected_rows} rows, lake {c.actual_rows} rows"
        )
        for p in c.problems:
            _emit(f"        {p}")

    ok = not failed_runs and backfill_ok and all(c.ok for c in checks)
    _emit()
    if failed_runs:
        _emit(f"FAILED runs: {', '.join(failed_runs)}")
    _emit(f"Demo {'PASSED' if ok else 'FAILED'}")
    if args.report_json:
        report = {
            "ok": ok,
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
                for r in runner.results
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
        Path(args.report_json).write_text(json.dumps(report, indent=2, default=str))
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


def compare_all(cfg: PipelineConfig, src: DemoSource) -> list[TableCheck]:
    from cdclake.session import build_session

    log.info("comparing the lake with the source state")
    spark = build_session("local", app_name="cdclake-demo-check")
    checks = []
    for t in cfg.tables:
        try:
            checks.append(compare_table(spark, cfg, src, t.qualified_name))
        except Exception as exc:  # noqa: BLE001 - an unreadable table is a FAIL, not a crash
            log.exception("%s: could not compare", t.qualified_name)
            checks.append(TableCheck(t.qualified_name, 0, 0, [f"{type(exc).__name__}: {exc}"]))
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        prepared = prepare(args)
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    return run(*prepared, args)


if __name__ == "__main__":
    sys.exit(main())
