"""The demo driver behind ``make run``: generate the demo source, run the job the way the hourly
scheduler would, and check that the lake ends up equal to the source.

    python -m cdclake.demo.run_demo --config conf/pipeline.yaml [--hours N] [--keep]

Steps (each job run is a separate ``python jobs/cdc_merge.py ...`` process, like a scheduler's):

1. wipe ``raw_root`` and ``curated_root`` (local paths only; ``--keep`` skips this);
2. write the files that have landed when the last LOAD file lands, run ``--load full``;
3. for each CDC hour H: write the files landed by H + 1h + 2 min (the DAG's grace period), run
   ``--load incremental --until H+1h``;
4. write every file (late ones included), run a catch-up ``--until <end hour>``;
5. backfill one middle hour (``--since H --until H+1h``): must change nothing;
6. print each run's per-table summary, then compare every lake table (live columns, types and
   rows) with the generator's expected state: PASS/FAIL per table.

Exit status: 0 when every run succeeded, the backfill changed nothing and every table matches;
1 otherwise; 2 for bad arguments or config.
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

from cdclake.config import ConfigError, PipelineConfig, load_config
from cdclake.demo.generator import DemoSource

log = logging.getLogger("cdclake.demo")

REPO = Path(__file__).resolve().parents[3]
ENTRY = "jobs/cdc_merge.py"  # relative to REPO, as the scheduler passes it
GRACE = timedelta(minutes=2)
HOUR = timedelta(hours=1)
RUNS_DIR = "_demo_runs"  # per-run summary JSON and job logs, under curated_root
LOG_TAIL = 40


@dataclass
class RunResult:
    label: str
    args: list[str]
    exit_code: int
    seconds: float
    records: list[dict[str, Any]] = field(default_factory=list)
    log_path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and all(r.get("status") != "failed" for r in self.records)


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
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    if "://" in uri:
        raise ConfigError(f"the demo runs on local paths only, refusing to touch {uri}")
    return Path(uri)


def wipe(root: Path) -> None:
    """Remove one demo root, after checks that it cannot be something precious."""
    root = root.resolve()
    protected = {Path("/"), Path.home().resolve(), REPO, Path.cwd().resolve()}
    if root in protected or root in REPO.parents or len(root.parts) < 3:
        raise ConfigError(f"refusing to wipe {root}: not a dedicated demo folder")
    if root.exists():
        log.info("wiping %s", root)
        shutil.rmtree(root)


def job_env() -> dict[str, str]:
    """The caller's environment, with the job's import path guaranteed on PYTHONPATH."""
    env = dict(os.environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    for needed in (str(REPO / "jobs"), str(REPO)):
        if needed not in parts:
            parts.append(needed)
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def hour_arg(t: datetime) -> str:
    return f"{t.astimezone(UTC):%Y-%m-%dT%H}"


# ---- job runs --------------------------------------------------------------------------------
class Runner:
    """Runs ``jobs/cdc_merge.py`` as separate processes and keeps their summaries."""

    def __init__(self, config_path: Path, runs_dir: Path) -> None:
        self.config_path = config_path
        self.runs_dir = runs_dir
        self.env = job_env()
        self.results: list[RunResult] = []

    def run(self, label: str, *args: str) -> RunResult:
        n = len(self.results) + 1
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        summary_path = self.runs_dir / f"{n:02d}-{label}.json"
        log_path = self.runs_dir / f"{n:02d}-{label}.log"
        summary_path.unlink(missing_ok=True)
        cmd = [
            sys.executable,
            ENTRY,
            "--config",
            str(self.config_path),
            *args,
            "--run-id",
            f"demo-{n:02d}-{label}",
            "--summary-json",
            str(summary_path),
        ]
        log.info("run %d %s: %s", n, label, " ".join(cmd[1:]))
        started = time.monotonic()
        with open(log_path, "w") as out:
            proc = subprocess.run(  # noqa: S603 - our own entry script, fixed arguments
                cmd, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT, check=False
            )
        seconds = time.monotonic() - started
        records: list[dict[str, Any]] = []
        if summary_path.exists():
            records = json.loads(summary_path.read_text())
        result = RunResult(label, list(args), proc.returncode, seconds, records, log_path)
        self.results.append(result)
        for rec in records:
            log.info("  %s", summary_line(rec))
        if not result.ok:
            tail = log_path.read_text().splitlines()[-LOG_TAIL:]
            log.error(
                "run %d %s failed (exit %d); last lines of %s:\n%s",
                n,
                label,
                proc.returncode,
                log_path,
                "\n".join(tail),
            )
        else:
            log.info("run %d %s: exit 0 in %.1f s", n, label, seconds)
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
def spark_type_name(pa_type: Any) -> str:
    """The Spark SQL type a pyarrow type of the demo maps to (``simpleString``)."""
    import pyarrow as pa

    if pa.types.is_int32(pa_type):
        return "int"
    if pa.types.is_int64(pa_type):
        return "bigint"
    if pa.types.is_string(pa_type):
        return "string"
    if pa.types.is_date32(pa_type):
        return "date"
    if pa.types.is_timestamp(pa_type):
        return "timestamp" if pa_type.tz else "timestamp_ntz"
    if pa.types.is_decimal(pa_type):
        return f"decimal({pa_type.precision},{pa_type.scale})"
    if pa.types.is_boolean(pa_type):
        return "boolean"
    if pa.types.is_float64(pa_type):
        return "double"
    raise ValueError(f"no Spark type known for {pa_type}")


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
    expected_cols = [(f.name, spark_type_name(f.type)) for f in schema]
    expected = src.expected_rows(name)
    problems: list[str] = []

    df = spark.read.format("delta").load(cfg.table_location(table))
    df = df.select(*[c for c in df.columns if not c.startswith("_")])
    actual_cols = [(f.name, f.dataType.simpleString()) for f in df.schema.fields]
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
    options = {
        k: v
        for k, v in {
            "hours": args.hours,
            "seed": args.seed,
            "travel_rows": args.travel_rows,
            "sales_rows": args.sales_rows,
        }.items()
        if v is not None
    }
    src = DemoSource(cfg, **options)
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
    runner = Runner(config_path, curated / RUNS_DIR)
    t0 = time.monotonic()

    def land(until: datetime) -> None:
        written = src.write_landed(until)
        kinds: dict[str, int] = {}
        for d in written:
            kinds[d.kind] = kinds.get(d.kind, 0) + 1
        log.info("landed by %s: %d file(s) %s", until.isoformat(), len(written), kinds)

    land(src.load_landed_at)
    runner.run("full", "--load", "full")
    for h in hours:
        land(h + HOUR + GRACE)
        runner.run(f"hour-{h:%H}", "--load", "incremental", "--until", hour_arg(h + HOUR))
    land(datetime.max.replace(tzinfo=UTC))
    runner.run("catch-up", "--load", "incremental", "--until", hour_arg(src.end))
    index = len(hours) // 2 if args.backfill_hour is None else args.backfill_hour
    bh = hours[index]
    backfill = runner.run(
        f"backfill-{bh:%H}",
        "--load",
        "incremental",
        "--since",
        hour_arg(bh),
        "--until",
        hour_arg(bh + HOUR),
    )
    runs_seconds = time.monotonic() - t0

    _emit()
    _emit(f"Job runs ({len(runner.results)}, {runs_seconds:.0f} s; logs in {runner.runs_dir}):")
    _emit(runs_table(runner.results))
    failed_runs = [r.label for r in runner.results if not r.ok]

    changed = [
        rec["table"]
        for rec in backfill.records
        if rec.get("rows_inserted") or rec.get("rows_updated") or rec.get("rows_deleted")
    ]
    backfill_ok = backfill.ok and not changed
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
                    "args": r.args,
                    "exit_code": r.exit_code,
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
