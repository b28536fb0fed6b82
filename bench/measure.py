"""Untimed work around the arms: building and copying base tables, the expected state, what a
commit rewrote, and this machine's Parquet read/write rates (the floor)."""

from __future__ import annotations

import os
import shutil
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.data import (
    LOAD_TS,
    SCHEMA_NAME,
    SEQ_WIDTH,
    SOURCE_COLUMNS,
    TABLE_NAME,
    Batch,
    TableSpec,
    date_strings,
)

FINGERPRINT = f"count(*) as n, sum(hash({', '.join(SOURCE_COLUMNS)})::hugeint) as h"


def table_dir(curated: Path) -> Path:
    return curated / SCHEMA_NAME / TABLE_NAME


def base_batches(spec: TableSpec) -> pa.RecordBatchReader:
    """The base table's rows, one record batch per day (same values as
    :func:`bench.data.payload`), with the bookkeeping columns a full load leaves."""
    from bench.data import STATUSES, date_of

    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("customer_id", pa.int32()),
            ("amount", pa.float64()),
            ("status", pa.string()),
            ("note", pa.string()),
            ("_cdc_op", pa.string()),
            ("_cdc_commit_ts", pa.timestamp("us", tz="UTC")),
            ("_cdc_change_seq", pa.string()),
            ("_cdc_source_file", pa.string()),
            ("_cdc_row_pos", pa.int64()),
            ("event_date", pa.string()),
        ]
    )
    days = date_strings(np.arange(spec.partitions))
    load_ts = datetime.fromisoformat(LOAD_TS).replace(tzinfo=UTC)

    def batches():
        bounds = np.searchsorted(date_of(np.arange(spec.rows), spec), np.arange(spec.partitions))
        for day, lo in enumerate(bounds):
            hi = bounds[day + 1] if day + 1 < len(bounds) else spec.rows
            ids = np.arange(lo, hi, dtype=np.int64)
            n = len(ids)
            status = pa.DictionaryArray.from_arrays(
                pa.array(ids % 4, pa.int8()), pa.array(STATUSES)
            ).cast(pa.string())
            yield pa.record_batch(
                [
                    pa.array(ids),
                    pa.array((ids * 7919 % 100000).astype(np.int32)),
                    pa.array((ids * 31 % 100000).astype(np.float64) / 100.0),
                    status,
                    pc.binary_join_element_wise("order-", pc.cast(pa.array(ids), pa.string()), ""),
                    pa.array(["I"] * n, pa.string()),
                    pa.array([load_ts] * n, pa.timestamp("us", tz="UTC")),
                    pa.array(["0" * SEQ_WIDTH] * n, pa.string()),
                    pa.array(["LOAD00000001.parquet"] * n, pa.string()),
                    pa.array(ids),
                    pa.array([days[day]] * n, pa.string()),
                ],
                schema=schema,
            )

    return pa.RecordBatchReader.from_batches(schema, batches())


def build_base(spark, spec: TableSpec, curated: Path) -> None:
    """Write the table a full load of ``spec`` leaves: the lake table (key-contiguous files of
    about ``file_bytes``, manifests on) and the ledger's full-load record.

    delta-rs writes the rows (10M rows take Spark minutes on 2 cores and are not what is
    measured); Spark sets the lake properties, writes the manifest and the ledger.
    """
    from delta.tables import DeltaTable
    from deltalake import write_deltalake

    from cdclake.core.config import DmsLayout, PipelineConfig, TableConfig
    from cdclake.core.hours import parse_hour
    from cdclake.lake.bookkeeping import TableState
    from cdclake.lake.ledger import record_generation
    from cdclake.session import LAKE_TABLE_PROPERTIES

    path = str(table_dir(curated))
    write_deltalake(
        path, base_batches(spec), partition_by=["event_date"], target_file_size=spec.file_bytes
    )
    props = ", ".join(f"'{k}' = '{v}'" for k, v in LAKE_TABLE_PROPERTIES.items())
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({props})")
    DeltaTable.forPath(spark, path).generate("symlink_format_manifest")
    table = TableConfig(SCHEMA_NAME, TABLE_NAME, ("id",), ("event_date",))
    cfg = PipelineConfig(str(curated), str(curated), DmsLayout(), (table,))
    watermark = parse_hour(LOAD_TS[:13].replace(" ", "T"))
    record_generation(TableState(spark, cfg, table), "bench-load", watermark, "bench-load")


def without_manifest_property(spark, src: Path, dst: Path) -> None:
    """A copy of a base whose table does not maintain manifests (the blog's and the rewrite's
    tables: they regenerate the manifest themselves, or not at all)."""
    copy_tree(src, dst)
    spark.sql(
        f"ALTER TABLE delta.`{table_dir(dst)}` UNSET TBLPROPERTIES "
        "('delta.compatibility.symlinkFormatManifest.enabled')"
    )


def copy_tree(src: Path, dst: Path) -> None:
    """A private copy of a lake: data files hard-linked (Delta never changes a data file),
    everything else copied (logs, manifests and ``_last_checkpoint`` are rewritten in place)."""
    if dst.exists():
        shutil.rmtree(dst)
    for root, _, names in os.walk(src):
        out = dst / Path(root).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for n in names:
            data = (
                n.endswith(".parquet") or n.endswith(".parquet.crc")
            ) and "_delta_log" not in root
            (os.link if data else shutil.copy2)(Path(root) / n, out / n)


@dataclass(frozen=True)
class FileSet:
    """The live files of a Delta table (from delta-rs: path, bytes, rows, id range)."""

    paths: np.ndarray
    size: np.ndarray
    rows: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def files_of(table: Path) -> FileSet:
    from deltalake import DeltaTable

    t = pa.table(DeltaTable(str(table)).get_add_actions(flatten=True))
    return FileSet(
        paths=np.asarray(t.column("path").to_pylist(), dtype=object),
        size=t.column("size_bytes").to_numpy(),
        rows=t.column("num_records").to_numpy(),
        lo=t.column("min.id").to_numpy(),
        hi=t.column("max.id").to_numpy(),
    )


def live_files(table: Path) -> list[str]:
    from deltalake import DeltaTable

    return [u.removeprefix("file://") for u in DeltaTable(str(table)).file_uris()]


def _scan(paths: list[str]) -> str:
    listed = ", ".join(f"'{p}'" for p in paths)
    return f"read_parquet([{listed}], hive_partitioning = true, hive_types_autocast = false)"


def fingerprint(table: Path) -> tuple[int, int]:
    """Row count and an order-free hash sum of the live rows' source columns."""
    paths = live_files(table)
    if not paths:
        return (0, 0)
    row = duckdb.connect().execute(f"select {FINGERPRINT} from {_scan(paths)}").fetchone()  # noqa: S608 - generated SQL over local paths
    return int(row[0]), int(row[1] or 0)


def expected_fingerprint(base: Path, batch: Batch) -> tuple[int, int]:
    """The fingerprint the table must have after the batch: base rows whose key the batch
    does not change, plus the winning change of each key unless it is a delete."""
    con = duckdb.connect()
    con.register("changes", batch.changes)
    con.execute(
        """create table winners as select * from changes
            qualify row_number() over (partition by id order by dms_commit_ts desc,
                                       dms_change_seq desc) = 1"""
    )
    scan = _scan(live_files(base))
    kept = con.execute(
        f"""select {FINGERPRINT} from {scan} b
            where not exists (select 1 from winners w where w.id = b.id)"""  # noqa: S608
    ).fetchone()
    new = con.execute(f"select {FINGERPRINT} from winners where Op != 'D'").fetchone()  # noqa: S608
    return int(kept[0]) + int(new[0]), int(kept[1] or 0) + int(new[1] or 0)


def rewritten(base: FileSet, after: FileSet, matched_rows: int) -> dict[str, int]:
    """Files and bytes a commit replaced and added, and the rows it copied unchanged."""
    removed = ~np.isin(base.paths, after.paths)
    added = ~np.isin(after.paths, base.paths)
    return {
        "files_removed": int(removed.sum()),
        "files_added": int(added.sum()),
        "bytes_removed": int(base.size[removed].sum()),
        "bytes_written": int(after.size[added].sum()),
        "rows_copied": int(base.rows[removed].sum()) - matched_rows,
    }


def touched(base: FileSet, batch: Batch) -> np.ndarray:
    """Which base files hold a key the batch updates or deletes (files are key-contiguous,
    so the id range of each file decides)."""
    ops = batch.changes.column("Op").to_numpy(zero_copy_only=False)
    keys = np.unique(batch.changes.column("id").to_numpy()[ops != "I"])
    first = np.searchsorted(keys, base.lo, side="left")
    last = np.searchsorted(keys, base.hi, side="right")
    return last > first


@dataclass(frozen=True)
class Rates:
    read_bps: float
    write_bps: float


def parquet_rates(files: list[str], scratch: Path, reps: int = 3) -> Rates:
    """This machine's Parquet read and write rates (bytes of file per second, pyarrow with
    all cores, snappy like Spark), median of ``reps``, on the given base files."""
    scratch.mkdir(parents=True, exist_ok=True)
    size = sum(os.path.getsize(f) for f in files)
    reads, writes = [], []
    for i in range(reps):
        t0 = time.perf_counter()
        table = pa.concat_tables(pq.read_table(f) for f in files)
        reads.append(size / (time.perf_counter() - t0))
        out = scratch / f"rate-{i}.parquet"
        t0 = time.perf_counter()
        pq.write_table(table, out, compression="snappy")
        writes.append(out.stat().st_size / (time.perf_counter() - t0))
        out.unlink()
    return Rates(statistics.median(reads), statistics.median(writes))


def floor(base: FileSet, batch: Batch, batch_bytes: int, rates: Rates) -> dict[str, float]:
    """The least any copy-on-write engine must do on this machine: read the batch and every
    file holding a changed key, and write those files back (less deleted rows, plus the
    inserted rows at the same bytes per row)."""
    hit = touched(base, batch)
    read_bytes = int(base.size[hit].sum())
    rows = int(base.rows[hit].sum())
    per_row = read_bytes / rows if rows else float(base.size.sum() / max(base.rows.sum(), 1))
    rows_after = rows - batch.deleted_keys + batch.inserted_keys
    write_bytes = int(per_row * rows_after)
    seconds = (read_bytes + batch_bytes) / rates.read_bps + write_bytes / rates.write_bps
    return {
        "files_touched": int(hit.sum()),
        "bytes_read": read_bytes + batch_bytes,
        "bytes_written": write_bytes,
        "seconds": seconds,
    }
