"""Log growth: the job's per-run time as one table's Delta log reaches N commits.

Between measured runs the log is advanced with delta-rs, one commit per simulated hour, each
shaped like an hourly run's: the data table replaces one small file (a remove and an add),
the ledger gains 60 file records (DMS writes a file about every minute) and the audit table
one record; the ledger is compacted when it reaches 50 files, as the job does. Running
the job itself 1,000 times would take over an hour on 2 cores; the log it reads is what
matters. Checkpoints every 10 commits on all three tables (Spark's default,
set explicitly so delta-rs writes them too).
"""

from __future__ import annotations

import logging
import statistics
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa

from bench import arms
from bench.data import (
    BATCH_HOUR,
    SCHEMA_NAME,
    TABLE_NAME,
    BatchSpec,
    TableSpec,
    make_batch,
    write_dms_files,
)
from bench.measure import build_base, table_dir

log = logging.getLogger(__name__)
FILES_PER_HOUR = 60
AUTO_COMPACT_FILES = 50  # cdclake.lake.bookkeeping.COMPACT_AT_FILES


def _set_checkpoint_interval(spark, path: Path) -> None:
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.checkpointInterval' = '10')")


class _Filler:
    """Advances the three tables by one simulated hourly run per call, with delta-rs."""

    def __init__(self, curated: Path) -> None:
        from deltalake import DeltaTable

        self.data = table_dir(curated)
        self.state = curated / "_cdclake" / SCHEMA_NAME / TABLE_NAME / "ledger"
        self.audit = curated / "_cdclake" / "audit"
        oldest = DeltaTable(str(self.data)).to_pyarrow_dataset()
        rows = oldest.to_table()
        self.date = min(rows.column("event_date").to_pylist())
        self.rows = rows.filter(pa.compute.equal(rows.column("event_date"), self.date))
        self.ledger_schema = DeltaTable(str(self.state)).to_pyarrow_dataset().schema
        self.audit_rows = DeltaTable(str(self.audit)).to_pyarrow_dataset().to_table().slice(0, 1)
        self.n = 0
        self.sync()

    def sync(self) -> None:
        """Re-read the data table's version and the ledger's file count (after job runs)."""
        from deltalake import DeltaTable

        self.at = DeltaTable(str(self.data)).version()
        self.ledger_files = len(DeltaTable(str(self.state)).file_uris())

    def version(self) -> int:
        """The data table's version: one commit per step (no table is reloaded per step)."""
        return self.at

    def step(self) -> None:
        from deltalake import DeltaTable, write_deltalake

        self.n += 1
        self.at += 1
        write_deltalake(
            str(self.data), self.rows, mode="overwrite", predicate=f"event_date = '{self.date}'"
        )
        hour = BATCH_HOUR - timedelta(days=60) + timedelta(hours=self.n)
        records = [
            {
                "generation": "bench-load",
                "kind": "cdc",
                "file": f"filler/{hour:%Y/%m/%d/%H}/{i:02d}.parquet",
                "hour": hour,
                "size": 1,
                "watermark": None,
                "run_id": f"filler-{self.n}",
                "data_version": self.n,
                "recorded_at": hour,
            }
            for i in range(FILES_PER_HOUR)
        ]
        write_deltalake(
            str(self.state), pa.Table.from_pylist(records, self.ledger_schema), mode="append"
        )
        write_deltalake(str(self.audit), self.audit_rows, mode="append")
        # What the job does after its own appends (cdclake.lake.bookkeeping.COMPACT_AT_FILES): a
        # bookkeeping table that reaches 50 files is compacted.
        self.ledger_files += 1
        if self.ledger_files >= AUTO_COMPACT_FILES:
            DeltaTable(str(self.state)).optimize.compact()
            self.ledger_files = 1


def run(spark, work: Path, marks: tuple[int, ...], reps: int) -> dict:
    """Per-run time of the job at each commit count in ``marks`` (median/min/max of reps)."""
    spec = TableSpec(rows=16_000, file_bytes=20_000)
    curated, raw = work / "curated", work / "raw"
    build_base(spark, spec, curated)
    hour_no = 0

    def job_run() -> float:
        nonlocal hour_no
        hour_no += 1
        hour = BATCH_HOUR + timedelta(hours=hour_no)
        batch = make_batch(spec, BatchSpec(0.002, "hot", seed=hour_no), hour)
        write_dms_files(batch, raw / SCHEMA_NAME / TABLE_NAME, files=3)
        cfg = _config(work, raw, curated)
        t0 = time.perf_counter()
        arms.ours(spark, cfg, work / "summary.json", until=hour + timedelta(hours=1))
        return time.perf_counter() - t0

    job_run()  # creates the audit and tombstone tables
    ledger = curated / "_cdclake" / SCHEMA_NAME / TABLE_NAME / "ledger"
    for p in (table_dir(curated), ledger, curated / "_cdclake" / "audit"):
        _set_checkpoint_interval(spark, p)
    filler = _Filler(curated)
    out = {}
    fill_s = 0.0
    for mark in marks:
        t0 = time.perf_counter()
        filler.sync()
        while filler.version() < mark - 2:
            filler.step()
        fill_s += time.perf_counter() - t0
        # Not timed: the first run after the filler finds the newest versions written by
        # delta-rs, which writes no checksum (.crc) file, so the job reads the bookkeeping
        # tables the slow way once (+3-5 s at every mark alike, whatever the log's length).
        # An hourly job always finds its own previous run's checksum; so do the timed runs.
        warm = job_run()
        filler.sync()
        at = filler.version() + 1
        times = [job_run() for _ in range(reps)]
        log.info(
            "log growth: commit %d: %s (untimed first %.2f)",
            mark,
            [f"{t:.2f}" for t in times],
            warm,
        )
        out[str(mark)] = {
            "median_s": statistics.median(times),
            "min_s": min(times),
            "max_s": max(times),
            "reps": times,
            "untimed_first_s": warm,
            "first_commit": at,
        }
    checkpoints = sorted(p.name for p in (table_dir(curated) / "_delta_log").glob("*.checkpoint*"))
    return {
        "table_rows": spec.rows,
        "per_run": out,
        "filler_commits": filler.n,
        "filler_seconds": round(fill_s, 1),
        "data_checkpoints": len(checkpoints),
    }


def _config(work: Path, raw: Path, curated: Path) -> Path:
    from bench.plan import write_config

    return write_config(work / "pipeline.yaml", raw, curated)


def main(argv: list[str] | None = None) -> int:
    """Measure log growth alone (in its own Spark session) and write it as JSON."""
    import argparse
    import json
    import shutil

    from bench.plan import ROOT, default_plan, quick_plan, session

    p = argparse.ArgumentParser(prog="bench.loggrowth", description=main.__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "loggrowth-solo")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("cdclake").setLevel(logging.WARNING)
    plan = quick_plan() if args.quick else default_plan()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    doc = run(session(), args.work, plan.log_marks, plan.reps)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.rename(args.out)  # the main run waits for the file: appear whole or not at all
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
