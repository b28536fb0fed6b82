"""What a history table (SCD type 2) costs the hourly run: the same batch on the same base,
applied by the job with the table's history off and on, in the warm session; reported as the
ratio of the median wall times (issue 16's target: at most 1.5 at 10M rows, 1% hot).

The "on" lake is the base plus the history a full load with history on leaves (one current
version per row since the load), so the run measured is an ordinary hourly run, not the one
that starts a history. Each run is checked: the job succeeds, and with history on the current
versions are as many as the live rows.

Self-contained: :func:`measure` is called once by ``bench.run`` after the matrix (or alone:
``python -m bench.run --history-only``), and :func:`section` adds its lines to ``results.md``.
"""

from __future__ import annotations

import logging
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from bench.data import (
    BATCH_HOUR,
    LOAD_TS,
    SCHEMA_NAME,
    TABLE_NAME,
    BatchSpec,
    TableSpec,
    make_batch,
    write_dms_files,
)
from bench.measure import base_batches, copy_tree

log = logging.getLogger(__name__)
TARGET = 1.5


def measure(spark, work: Path, base: Path, spec: TableSpec, batch: BatchSpec, reps: int) -> dict:
    """Median wall time of the job with history off and on (``reps`` each, after one
    discarded warm-up pair), alternating so that drift on a shared machine hits both."""
    root = work / "history"
    raw = root / "raw"
    files = write_dms_files(make_batch(spec, batch), raw / SCHEMA_NAME / TABLE_NAME)
    with_history = root / "base"
    copy_tree(base, with_history)
    build_history(spark, spec, with_history)
    times: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(reps + 1):
        for arm, src in (("off", base), ("on", with_history)):
            lake = root / "rep"
            copy_tree(src, lake)
            wall = run_job(spark, root, raw, lake, history=arm == "on")
            if arm == "on":
                check(spark, lake)
            log.info("history %s rep %d: %.2f s", arm, i, wall)
            if i:
                times[arm].append(wall)
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    return {
        "config": f"{spec.name} {batch.name}",
        "batch_files": len(files),
        "off_s": off,
        "on_s": on,
        "reps_s": times,
        "ratio": on / off,
        "target": TARGET,
        "met": on / off <= TARGET,
    }


def build_history(spark, spec: TableSpec, curated: Path) -> None:
    """The history a full load with history on leaves: every base row one current version
    from the load's time (written by delta-rs, as the base is)."""
    from delta.tables import DeltaTable
    from deltalake import write_deltalake

    from cdclake.session import LAKE_TABLE_PROPERTIES

    ts = pa.timestamp("us", tz="UTC")
    load = datetime.fromisoformat(LOAD_TS).replace(tzinfo=UTC)
    rows = base_batches(spec)
    schema = rows.schema
    for name, dtype in (("_valid_from", ts), ("_valid_to", ts), ("_is_current", pa.bool_())):
        schema = schema.append(pa.field(name, dtype))

    def versions():
        for b in rows:
            extra = [pa.array([load] * b.num_rows, ts), pa.nulls(b.num_rows, ts)]
            extra.append(pa.array([True] * b.num_rows))
            yield pa.record_batch([*b.columns, *extra], schema=schema)

    path = str(curated / SCHEMA_NAME / f"{TABLE_NAME}_history")
    reader = pa.RecordBatchReader.from_batches(schema, versions())
    write_deltalake(path, reader, partition_by=["event_date"], target_file_size=spec.file_bytes)
    props = ", ".join(f"'{k}' = '{v}'" for k, v in LAKE_TABLE_PROPERTIES.items())
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({props})")
    DeltaTable.forPath(spark, path).generate("symlink_format_manifest")


def run_job(spark, root: Path, raw: Path, curated: Path, *, history: bool) -> float:
    """One incremental run of the batch's hour through the job's command line; wall time."""
    import yaml

    from cdclake.cli.merge import main

    config = root / f"pipeline-{'on' if history else 'off'}.yaml"
    table = {"schema": SCHEMA_NAME, "name": TABLE_NAME, "primary_key": ["id"]}
    table |= {"partition_by": ["event_date"], "history": history}
    doc = {
        "raw_root": str(raw),
        "curated_root": str(curated),
        "dms": {"timestamp_column": "dms_commit_ts", "change_sequence_column": "dms_change_seq"},
        "tables": [table],
    }
    config.write_text(yaml.safe_dump(doc))
    until = f"{BATCH_HOUR + timedelta(hours=1):%Y-%m-%dT%H}"
    args = ["--config", str(config), "--load", "incremental", "--until", until]
    t0 = time.perf_counter()
    status = main([*args, "--log-level", "WARNING"], spark=spark)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"job exited {status} (history {'on' if history else 'off'})")
    return wall


def check(spark, curated: Path) -> None:
    live = spark.read.format("delta").load(str(curated / SCHEMA_NAME / TABLE_NAME)).count()
    hist = spark.read.format("delta").load(str(curated / SCHEMA_NAME / f"{TABLE_NAME}_history"))
    current = hist.where("_is_current").count()
    if current != live:
        raise RuntimeError(f"history: {current} current versions, {live} live rows")


def section(doc: dict) -> list[str]:
    """The results.md lines (none when the history was not measured)."""
    h = doc.get("history")
    if not h:
        return []
    met = "met" if h["met"] else "missed"
    return [
        "",
        "## History tables",
        "",
        f"Run time with the table's history on ÷ off, {h['config']} (one hourly batch, warm "
        f"session, median of {len(h['reps_s']['on'])}): **{h['ratio']:.2f}** "
        f"({h['on_s']:.1f} s ÷ {h['off_s']:.1f} s; target ≤ {h['target']}, {met}).",
    ]
