"""Where one warm incremental run of the job spends its Spark jobs.

    python -m bench.profile [--rows 20000] [--runs 3] [--history] [--all-jobs]

Builds a small lake, applies ``--runs`` hourly batches in one session and prints, for the last
run, its phases and its Spark jobs grouped by what Delta or the job calls them, with their
summed wall time. Spark's status store is read through py4j (the UI stays off).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from bench import arms, measure
from bench.data import (
    BATCH_HOUR,
    SCHEMA_NAME,
    TABLE_NAME,
    BatchSpec,
    TableSpec,
    make_batch,
    write_dms_files,
)
from bench.run import ROOT, write_config

log = logging.getLogger("bench.profile")


def _jobs(spark) -> list[tuple[int, str, int]]:
    """(job id, description or call site, wall ms) of every job the session ran."""
    store = spark.sparkContext._jsc.sc().statusStore()  # type: ignore[union-attr]
    jobs = store.jobsList(None)
    out = []
    for i in range(jobs.size()):
        j = jobs.apply(i)
        start = j.submissionTime().get().getTime() if j.submissionTime().isDefined() else 0
        end = j.completionTime().get().getTime() if j.completionTime().isDefined() else start
        what = j.description().get() if j.description().isDefined() else j.name()
        out.append((int(j.jobId()), str(what).split(": Compute snapshot")[0][:70], end - start))
    return sorted(out)


def group(jobs: list[tuple[int, str, int]]) -> list[tuple[str, int, int]]:
    """(what, number of jobs, total ms), most jobs first."""
    by: dict[str, list[int]] = defaultdict(list)
    for _, what, ms in jobs:
        by[what].append(ms)
    return sorted(((w, len(v), sum(v)) for w, v in by.items()), key=lambda t: -t[1])


def _keep_history(config: Path) -> None:
    import yaml

    doc = yaml.safe_load(config.read_text())
    for table in doc["tables"]:
        table["history"] = True
    config.write_text(yaml.safe_dump(doc))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "profile")
    p.add_argument("--skew", default="hot", choices=("hot", "tail"))
    p.add_argument("--fraction", type=float, default=0.01)
    p.add_argument("--history", action="store_true", help="the table keeps a history")
    p.add_argument("--all-jobs", action="store_true", help="also list every job, in order")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("cdclake").setLevel(logging.WARNING)
    from cdclake.session import build_session

    spark = build_session("local", app_name="cdclake-bench-profile")
    shutil.rmtree(args.work, ignore_errors=True)
    spec = TableSpec(args.rows, file_bytes=50_000)
    curated, raw = args.work / "curated", args.work / "raw"
    measure.build_base(spark, spec, curated)
    for h in range(args.runs):
        hour = BATCH_HOUR + timedelta(hours=h)
        batch = make_batch(spec, BatchSpec(args.fraction, args.skew, seed=h), hour)
        write_dms_files(batch, raw / SCHEMA_NAME / TABLE_NAME, files=3)
        cfg = write_config(args.work / "pipeline.yaml", raw, curated)
        if args.history:  # the first run starts it from the live table
            _keep_history(cfg)
        seen = len(_jobs(spark))
        t0 = time.perf_counter()
        arms.ours(spark, cfg, args.work / "summary.json", until=hour + timedelta(hours=1))
        wall = time.perf_counter() - t0
        jobs = _jobs(spark)[seen:]
        timings = json.loads((args.work / "summary.json").read_text())[0]["timings"]
        log.info("run %d: %.2f s, %d Spark jobs, %s", h + 1, wall, len(jobs), timings)
    if args.all_jobs:
        sys.stdout.write("".join(f"{i} {ms:>6} ms  {what}\n" for i, what, ms in jobs))
    lines = ["| Spark jobs | ms | what |", "|---:|---:|---|"]
    lines += [f"| {n} | {ms} | {what} |" for what, n, ms in group(jobs)]
    sys.stdout.write("\n".join(lines) + "\n")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
