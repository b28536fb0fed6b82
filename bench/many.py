"""Many tables, one hourly run: what a real source with ~100 replicated tables costs.

Every table is a copy of one 20k-row base (data files hard-linked, its manifests pointed at
the copy) with its own 1% batch. Arms: the job with its tables applied side by side (the
default), the job one table after another (``table_concurrency: 1``, the baseline; on a subset
of the tables so the run fits its budget, reported per table), and delta-rs per table. Each
table is checked against its expected rows after every arm.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from bench import arms, measure
from bench.data import SCHEMA_NAME, BatchSpec, TableSpec, make_batch, write_dms_files
from bench.plan import ManySpec, write_config

log = logging.getLogger(__name__)


def spark_jobs(spark) -> int:
    """Jobs the application has started so far (all threads): the newest job id + 1. (The
    status store keeps only the last ``spark.ui.retainedJobs`` jobs, so counting its list
    undercounts a long run; ids are sequential.)"""
    ids = spark.sparkContext._jsc.sc().statusStore().jobsList(None)
    return max((int(ids.apply(i).jobId()) for i in range(ids.size())), default=-1) + 1


def table_name(i: int) -> str:
    return f"t{i:03d}"


def copy_lake(base: Path, dst: Path, names: list[str]) -> None:
    """One lake with a copy of the base table (and its ledger) per name."""
    from bench.data import TABLE_NAME

    for name in names:
        for kind, src in (
            ("data", base / SCHEMA_NAME / TABLE_NAME),
            ("ledger", base / "_cdclake" / SCHEMA_NAME / TABLE_NAME / "ledger"),
        ):
            out = dst / (SCHEMA_NAME if kind == "data" else f"_cdclake/{SCHEMA_NAME}")
            target = out / name / ("" if kind == "data" else "ledger")
            measure.copy_tree(src, target)
        # Manifests name absolute paths: point the copy's at its own files.
        old, new = str(base / SCHEMA_NAME / TABLE_NAME), str(dst / SCHEMA_NAME / name)
        for m in (dst / SCHEMA_NAME / name / "_symlink_format_manifest").rglob("manifest"):
            m.write_text(m.read_text().replace(old, new))
            m.with_name(".manifest.crc").unlink(missing_ok=True)  # Hadoop's local checksum


class ManyTables:
    def __init__(self, spark, spec: ManySpec, work: Path) -> None:
        self.spark, self.spec, self.work = spark, spec, work
        self.table_spec = TableSpec(spec.rows, file_bytes=50_000)
        self.names = [table_name(i) for i in range(spec.tables)]

    def prepare(self) -> None:
        """The base, and each table's batch written once (files and expected state)."""
        self.base = self.work / "base"
        measure.build_base(self.spark, self.table_spec, self.base)
        self.raw = self.work / "raw"
        self.files: dict[str, list[Path]] = {}
        self.expected: dict[str, tuple[int, int]] = {}
        table = measure.table_dir(self.base)
        for i, name in enumerate(self.names):
            batch = make_batch(self.table_spec, BatchSpec(self.spec.fraction, "hot", seed=i))
            self.files[name] = write_dms_files(batch, self.raw / SCHEMA_NAME / name, files=2)
            self.expected[name] = measure.expected_fingerprint(table, batch)

    def job(self, names: list[str], concurrency: int) -> dict:
        curated = self.work / f"lake-{concurrency}"
        copy_lake(self.base, curated, names)
        cfg = write_config(
            self.work / f"pipeline-{concurrency}.yaml",
            self.raw,
            curated,
            tables=names,
            merge={"table_concurrency": concurrency},
        )
        before = spark_jobs(self.spark)
        t0 = time.perf_counter()
        arms.ours(self.spark, cfg, self.work / f"summary-{concurrency}.json")
        wall = time.perf_counter() - t0
        jobs = spark_jobs(self.spark) - before
        self.check(curated, names)
        return self.result(names, wall, jobs)

    def delta_rs(self) -> dict:
        curated = self.work / "lake-delta-rs"
        copy_lake(self.base, curated, self.names)
        t0 = time.perf_counter()
        for name in self.names:
            arms.delta_rs(str(curated / SCHEMA_NAME / name), self.files[name])
        wall = time.perf_counter() - t0
        self.check(curated, self.names)
        return self.result(self.names, wall, 0)

    def check(self, curated: Path, names: list[str]) -> None:
        for name in names:
            got = measure.fingerprint(curated / SCHEMA_NAME / name)
            if got != self.expected[name]:
                raise AssertionError(f"{name}: {got} != expected {self.expected[name]}")

    def result(self, names: list[str], wall: float, jobs: int) -> dict:
        return {
            "tables": len(names),
            "wall_s": round(wall, 2),
            "s_per_table": round(wall / len(names), 3),
            "spark_jobs_per_table": round(jobs / len(names), 1),
        }


def run(spark, work: Path, spec: ManySpec | None = None) -> dict:
    """The three arms; returns the many-tables section of the results."""
    spec = spec or ManySpec()
    many = ManyTables(spark, spec, work)
    t0 = time.perf_counter()
    many.prepare()
    log.info("many tables: %d tables prepared in %.1f s", spec.tables, time.perf_counter() - t0)
    concurrent = many.job(many.names, 0)
    log.info("many tables, concurrent: %s", concurrent)
    sequential = many.job(many.names[: spec.sequential_tables], 1)
    log.info("many tables, sequential: %s", sequential)
    deltars = many.delta_rs()
    log.info("many tables, delta-rs: %s", deltars)
    return {
        "config": spec.name,
        "concurrency": int(spark.sparkContext.defaultParallelism),
        "arms": {"job concurrent": concurrent, "job sequential": sequential, "delta-rs": deltars},
    }
