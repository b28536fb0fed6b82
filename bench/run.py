"""`make bench`: time one hourly CDC batch by arm, table size, batch size and skew.

    python -m bench.run            # the default matrix (< 10 min on 2 cores)
    python -m bench.run --quick    # a CI smoke run (tiny tables, one repetition)
    python -m bench.run --capture-only   # only the PostgreSQL capture's section, updated in place

Writes ``results.json``, ``results.md`` and ``results.png`` to ``--out`` (bench/results).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bench import arms, history, loggrowth, many, measure, report
from bench.data import SCHEMA_NAME, TABLE_NAME, TableSpec, make_batch, write_dms_files
from bench.plan import (
    ROOT,
    WARMUP,
    Config,
    Plan,
    default_plan,
    quick_plan,
    session,
    write_config,
)

log = logging.getLogger("bench")


def _uptime() -> str:
    """Load averages (1, 5, 15 min): the machine may be shared."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _environment() -> dict:
    import deltalake
    import pyspark

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    from importlib.metadata import version

    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem),
        "platform": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "spark": pyspark.__version__,
        "delta_spark": version("delta-spark"),
        "deltalake": deltalake.__version__,
    }


class Bench:
    """Runs a plan in one long-lived Spark session."""

    def __init__(self, spark, plan: Plan, work: Path) -> None:
        self.spark, self.plan, self.work = spark, plan, work
        self.bases: dict[str, Path] = {}
        self.results: list[dict] = []
        self.floors: dict[str, dict] = {}
        self.rates: measure.Rates | None = None
        self.warm: set[str] = set()
        self.warmups: dict[str, float] = {}

    def base(self, spec: TableSpec) -> Path:
        """The base lake of ``spec`` (built once), and its no-manifest twin ``<base>-plain``."""
        if spec.name not in self.bases:
            t0 = time.perf_counter()
            curated = self.work / "base" / spec.name
            measure.build_base(self.spark, spec, curated)
            measure.without_manifest_property(
                self.spark, curated, curated.with_name(f"{spec.name}-plain")
            )
            log.info("base %s built in %.1f s", spec.name, time.perf_counter() - t0)
            self.bases[spec.name] = curated
            if self.rates is None or spec.rows > 1_000_000:
                newest = sorted(measure.live_files(measure.table_dir(curated)))[-20:]
                self.rates = measure.parquet_rates(newest, self.work / "scratch")
        return self.bases[spec.name]

    def warm_up(self, arms: tuple[str, ...]) -> None:
        """Run every arm once on a small table (class loading, JIT); timed, not reported."""
        saved = self.plan
        self.plan = replace(saved, reps=0)
        try:
            self.config(replace(WARMUP, arms=arms))
        finally:
            self.plan = saved
            self.results = [r for r in self.results if r["config"] != WARMUP.name]
            self.floors.pop(WARMUP.name, None)
            self.rates = None  # measured again on the first real table's files

    def config(self, cfg: Config) -> None:
        base = self.base(cfg.table)
        batch = make_batch(cfg.table, cfg.batch)
        raw = self.work / "raw" / cfg.name.replace(" ", "_").replace("%", "pct")
        shutil.rmtree(raw, ignore_errors=True)
        files = write_dms_files(batch, raw / SCHEMA_NAME / TABLE_NAME)
        batch_bytes = sum(f.stat().st_size for f in files)
        expected = measure.expected_fingerprint(measure.table_dir(base), batch)
        base_files = measure.files_of(measure.table_dir(base))
        assert self.rates is not None
        floor = measure.floor(base_files, batch, batch_bytes, self.rates)
        self.floors[cfg.name] = floor
        matched = batch.updated_keys + batch.deleted_keys
        for arm in cfg.arms:
            reps, error = [], None
            # The first run of an arm in the session pays class loading and JIT: it is made on a
            # small table (WARMUP) first and not reported, except in this mode (no warm-up
            # table, e.g. --quick) where the first repetition is discarded instead.
            warmup = self.plan.warmup and arm not in self.warm
            self.warm.add(arm)
            for i in range(self.plan.reps + warmup):
                curated = self.work / "rep"
                plain = arm in ("blog", "rewrite")
                measure.copy_tree(base.with_name(f"{base.name}-plain") if plain else base, curated)
                table = measure.table_dir(curated)
                group = f"bench-{len(self.results)}-{i}"
                self.spark.sparkContext.setJobGroup(group, f"{cfg.name} {arm}")
                try:
                    phases = self._run(arm, raw, curated, table, files)
                except Exception as exc:  # noqa: BLE001 - a failing arm is reported, not fatal
                    log.exception("%s / %s failed", cfg.name, arm)
                    error = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
                    break
                got = measure.fingerprint(table)
                if got != expected:
                    error = f"wrong: {got[0]} rows (expected {expected[0]}) or different values"
                    break
                jobs = len(self.spark.sparkContext.statusTracker().getJobIdsForGroup(group))
                rw = measure.rewritten(base_files, measure.files_of(table), matched)
                log.info("%s / %s rep %d: %.2f s", cfg.name, arm, i + 1, sum(phases.values()))
                if warmup and i == 0:
                    self.warmups[arm] = sum(phases.values())
                    continue
                reps.append({"phases": phases, "rewrite": rw, "spark_jobs": jobs})
            if not reps and not error:  # warm-up only (Bench.warm_up)
                continue
            rec: dict = {"config": cfg.name, "arm": arm, "rows": cfg.table.rows}
            if error:
                rec.update(status="wrong" if error.startswith("wrong") else "failed", error=error)
            else:
                stats = report.summarize(reps)
                rec.update(status="ok", **stats, rewrite=reps[-1]["rewrite"], floor=floor)
                rec["keys_per_s"] = batch.unique_keys / stats["median_s"]
                rec["reps_s"] = [round(sum(r["phases"].values()), 3) for r in reps]
                rec["spark_jobs"] = reps[-1]["spark_jobs"]
            self.results.append(rec)

    def _run(self, arm: str, raw: Path, curated: Path, table: Path, files: list[Path]) -> dict:
        hour = files[0].parent
        if arm == "job":
            cfg_path = write_config(self.work / "pipeline.yaml", raw, curated)
            return arms.ours(self.spark, cfg_path, self.work / "summary.json")
        if arm == "blog":
            return arms.blog(self.spark, str(table), hour)
        if arm == "rewrite":
            return arms.rewrite(self.spark, str(table), hour)
        if arm == "delta-rs":
            return arms.delta_rs(str(table), files)
        raise ValueError(arm)


def capture_figures(quick: bool) -> dict:
    """The PostgreSQL capture's full-load and stream rates (``capture.bench.measure``) on a
    throwaway cluster; ``skipped`` with the reason when PostgreSQL is not installed."""
    from capture.bench import measure
    from capture.pgcluster import ClusterError, throwaway_cluster

    sizes = {"changes": 5_000, "transactions": 20, "load_rows": 5_000} if quick else {}
    started, load_before = datetime.now(UTC), _uptime()
    try:
        with throwaway_cluster() as pg:
            figures = measure(pg.dsn, **sizes)
    except ClusterError as exc:
        log.warning("capture figures skipped: %s", exc)
        return {"status": "skipped", "reason": str(exc)}
    log.info("capture: %s", json.dumps(figures))
    return {
        "status": "ok",
        "measured_at": f"{started:%Y-%m-%dT%H:%M:%SZ}",
        "load_before": load_before,
        **figures,
    }


def bench_session(work: Path):
    """The benchmark's Spark session: a 4 GB driver, its warehouse under ``work``."""
    os.environ.setdefault("CDCLAKE_DRIVER_MEMORY", "4g")
    os.environ.setdefault("CDCLAKE_WAREHOUSE_DIR", str(work / "warehouse"))
    return session()


def run(
    plan: Plan,
    out: Path,
    work: Path,
    mode: str,
    stop: bool = True,
    log_json: Path | None = None,
    capture: dict | None = None,
) -> dict:
    """Run ``plan`` and write results.{json,md,png} to ``out``; returns the document.
    ``stop``: stop the Spark session at the end (not when it is borrowed, as in tests).
    ``log_json``: take the log-growth part from this file, written by a parallel
    ``python -m bench.loggrowth`` (waited for), instead of running it here.
    ``capture``: the capture's figures (:func:`capture_figures`), reported in their own
    section."""
    started = datetime.now(UTC)
    load_before = _uptime()
    t_all = time.perf_counter()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    spark = bench_session(work)
    spark.range(1).count()
    jvm_s = time.perf_counter() - t0
    bench = Bench(spark, plan, work)
    if plan.warmup and plan.configs[0].table.rows > WARMUP.table.rows:
        bench.warm_up(tuple(dict.fromkeys(a for c in plan.configs for a in c.arms)))
    for cfg in plan.configs:
        bench.config(cfg)
    # Issue 16: the same batch with the table's history off and on (bench/history.py).
    big = next((c for c in plan.configs if c.name == plan.big), None)
    on_off = big and history.measure(
        spark, work, bench.base(big.table), big.table, big.batch, plan.reps
    )
    tables = many.run(spark, work / "many", plan.many) if plan.many else None
    if log_json is None:
        log_growth = loggrowth.run(spark, work / "loggrowth", plan.log_marks, plan.reps)
    else:
        while not log_json.exists():
            log.info("waiting for %s", log_json)
            time.sleep(10)
        log_growth = json.loads(log_json.read_text())
    assert bench.rates is not None
    doc = {
        "started_at": f"{started:%Y-%m-%dT%H:%M:%SZ}",
        "mode": mode,
        "environment": _environment(),
        "jvm_startup_s": jvm_s,
        "first_run_s": bench.warmups,
        "rates": {"read_bps": bench.rates.read_bps, "write_bps": bench.rates.write_bps},
        "floors": bench.floors,
        "results": bench.results,
        "log_growth": log_growth,
        "ratios": report.ratios(bench.results, log_growth, plan.big, plan.small, plan.same, tables),
        "notes": list(plan.notes),
    }
    if capture is not None:
        doc["capture"] = capture
    if tables:
        doc["many"] = tables
    if on_off:
        doc["history"] = on_off
    if stop:
        spark.stop()
    doc["environment"]["load_before"] = load_before
    doc["environment"]["load_after"] = _uptime()
    doc["wall_s"] = time.perf_counter() - t_all
    loads = [float(x) for x in f"{load_before} {doc['environment']['load_after']}".split()]
    if max(loads) > (os.cpu_count() or 1):
        doc["notes"].append(
            f"- Load averages reached {max(loads):.1f} on {os.cpu_count()} cores (before the "
            f"run: {load_before}; the run's own Spark threads count too). If other processes "
            "ran meanwhile, every time here is inflated and noisy, Spark's more than "
            "delta-rs' and pyarrow's (the floor)."
        )
    out.mkdir(parents=True, exist_ok=True)
    write_outputs(doc, out)
    return doc


def write_outputs(doc: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out / "results.md").write_text(report.markdown(doc))
    report.chart(doc, out / "results.png")


def merge(docs: list[dict], plan: Plan) -> dict:
    """One document from runs of parts of the matrix made at the same time (separate
    processes): results, floors and first runs joined, ratios recomputed."""
    first = dict(docs[0])
    first["results"] = [r for d in docs for r in d["results"]]
    first["floors"] = {k: v for d in docs for k, v in d["floors"].items()}
    first["first_run_s"] = {k: v for d in docs for k, v in d["first_run_s"].items()}
    first["parts"] = [
        {k: d[k] for k in ("started_at", "wall_s", "jvm_startup_s", "rates")} for d in docs
    ]
    first["wall_s"] = max(d["wall_s"] for d in docs)
    first["many"] = next((d["many"] for d in docs if d.get("many")), None)
    first["history"] = next((d["history"] for d in docs if d.get("history")), None)
    first["ratios"] = report.ratios(
        first["results"], first["log_growth"], plan.big, plan.small, plan.same, first["many"]
    )
    first["notes"] = list(dict.fromkeys(n for d in docs for n in d["notes"]))
    first["notes"].append(
        f"- Run as {len(docs)} processes at the same time (one Spark session each, the log "
        "growth in another), so that it ends in time on the shared machine; wall time "
        "is the longest part."
    )
    return first


def history_only(plan: Plan, work: Path) -> int:
    """The history on/off pair alone (no results written): its base, its runs, the result,
    in a session configured as :func:`run`'s."""
    big = next(c for c in plan.configs if c.name == plan.big)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    spark = bench_session(work)
    bench = Bench(spark, plan, work)
    result = history.measure(spark, work, bench.base(big.table), big.table, big.batch, plan.reps)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    spark.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="CI smoke run: tiny tables, 1 rep")
    p.add_argument("--out", type=Path, help="results folder (default bench/results[/quick])")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "work", help="scratch folder")
    p.add_argument("--log-growth-json", type=Path, help="log growth measured by bench.loggrowth")
    p.add_argument(
        "--only", help='run only the configurations of this table size (1M) or name ("1M 1%% hot")'
    )
    p.add_argument("--no-warmup", action="store_true", help="time every run (no discarded one)")
    p.add_argument(
        "--history-only",
        action="store_true",
        help="measure only the history on/off pair of the plan's big configuration; print it",
    )
    p.add_argument("--merge", type=Path, nargs="+", help="combine results.json files and stop")
    p.add_argument("--no-capture", action="store_true", help="skip the PostgreSQL capture figures")
    p.add_argument(
        "--capture-only",
        action="store_true",
        help="measure only the capture and update the capture section of --out's results",
    )
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    logging.getLogger("cdclake").setLevel(logging.WARNING)
    plan = quick_plan() if args.quick else default_plan()
    if args.only:
        picked = tuple(c for c in plan.configs if args.only in (c.table.name, c.name))
        plan = replace(plan, configs=picked)
    if args.no_warmup:
        plan = replace(plan, warmup=False)
    if args.history_only:
        return history_only(plan, args.work / "history-only")
    if args.merge:
        out = args.out or ROOT / "bench" / "results"
        doc = merge([json.loads(p.read_text()) for p in args.merge], plan)
        out.mkdir(parents=True, exist_ok=True)
        write_outputs(doc, out)
        sys.stdout.write(report.markdown(doc).split("## Per arm")[0])
        return 0
    out = args.out or ROOT / "bench" / "results" / ("quick" if args.quick else "")
    mode = "quick" if args.quick else "default"
    # Before Spark starts: the capture's figures are not competing with the JVM for the cores.
    capture = None if args.no_capture else capture_figures(args.quick)
    if args.capture_only:
        doc = json.loads((out / "results.json").read_text())
        doc["capture"] = capture
        write_outputs(doc, out)
        sys.stdout.write("\n".join(report.capture_section(doc)) + "\n")
        return 0 if capture and capture["status"] == "ok" else 1
    doc = run(plan, out, args.work, mode, log_json=args.log_growth_json, capture=capture)
    table = report.markdown(doc).split("## Per arm")[0]
    sys.stdout.write(table + f"\nresults in {out}\n")
    bad = [r for r in doc["results"] if r["arm"] == "job" and r["status"] != "ok"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
