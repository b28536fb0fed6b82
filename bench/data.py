"""Deterministic DMS-shaped benchmark data.

The table: ``id`` (primary key), ``event_date`` (partition, correlated with the key: ids are
spread over ``partitions`` consecutive days, newest day = highest ids), and a few payload
columns that are pure functions of the id. The base is written straight into the shape the
job's full load leaves (bookkeeping columns, ledger watermark): a 10M-row full load is not
what is measured.

A batch is one hour folder of CDC files: 70% updates, 20% inserts, 10% deletes of
``fraction * rows`` change records; some keys are updated several times and some updated
then deleted, always in commit order. Inserted keys change once, so the blog's approach
(which drops an update of a key the table lacks) stays correct and can be timed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

START_DATE = datetime(2026, 11, 1, tzinfo=UTC)
LOAD_TS = "2026-11-17 00:00:00.000000"
BATCH_HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)
SEQ_WIDTH = 35
SCHEMA_NAME, TABLE_NAME = "bench", "orders"
STATUSES = ("new", "paid", "shipped", "done")
SOURCE_COLUMNS = ("id", "event_date", "customer_id", "amount", "status", "note")
SOURCE_TYPES = {
    "id": pa.int64(),
    "event_date": pa.string(),
    "customer_id": pa.int32(),
    "amount": pa.float64(),
    "status": pa.string(),
    "note": pa.string(),
}


@dataclass(frozen=True)
class TableSpec:
    rows: int
    partitions: int = 16
    file_bytes: int = 1_000_000  # ~1 MB files: ~2 per partition at 1M, ~20 at 10M

    @property
    def name(self) -> str:
        return _human(self.rows)


@dataclass(frozen=True)
class BatchSpec:
    fraction: float
    skew: str  # "hot": newest partition only; "tail": 95% newest, 5% anywhere
    seed: int = 7

    @property
    def name(self) -> str:
        return f"{self.fraction * 100:g}% {self.skew}"


def _human(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def date_of(ids: np.ndarray, spec: TableSpec) -> np.ndarray:
    """Partition index of each id (ids past the table's end land in the newest day)."""
    return np.minimum(ids * spec.partitions // spec.rows, spec.partitions - 1)


def date_strings(index: np.ndarray) -> np.ndarray:
    days = [f"{START_DATE + timedelta(days=int(i)):%Y-%m-%d}" for i in range(int(index.max()) + 1)]
    return np.asarray(days, dtype=object)[index]


@dataclass(frozen=True)
class Batch:
    """One hour of changes, in commit order (``changes``), plus what it must do."""

    changes: pa.Table  # DMS columns + source columns, sorted by commit order
    hour: datetime
    updated_keys: int  # distinct existing keys left updated
    deleted_keys: int  # distinct existing keys deleted
    inserted_keys: int

    @property
    def unique_keys(self) -> int:
        return self.updated_keys + self.deleted_keys + self.inserted_keys


def make_batch(table: TableSpec, batch: BatchSpec, hour: datetime = BATCH_HOUR) -> Batch:
    """The batch's change records (pure: same specs, same batch)."""
    rng = np.random.default_rng(batch.seed + table.rows)
    n = max(10, round(table.rows * batch.fraction))
    n_upd, n_ins = round(n * 0.7), round(n * 0.2)
    n_del = n - n_upd - n_ins
    per_part = table.rows // table.partitions
    # Existing keys the batch touches: distinct, hot (newest day) or 95% hot + 5% anywhere.
    n_existing = round(n_upd * 6 / 7) + n_del  # ~1/7 of update records repeat a key
    # A batch larger than half the newest day spills into the days before it (10% of 16 days).
    hot_rows = max(per_part, 2 * n_existing)
    hot_lo = table.rows - hot_rows
    if batch.skew == "hot":
        existing = hot_lo + rng.choice(hot_rows, size=n_existing, replace=False)
    elif batch.skew == "tail":
        n_tail = round(n_existing * 0.05)
        hot = hot_lo + rng.choice(hot_rows, size=n_existing - n_tail, replace=False)
        tail = rng.choice(hot_lo, size=n_tail, replace=False)
        existing = np.concatenate([hot, tail])
    else:
        raise ValueError(f"unknown skew '{batch.skew}' (hot | tail)")
    existing = rng.permutation(existing)
    deleted = existing[:n_del]
    updated = existing[n_del:]
    # Updates: every updated key once, plus repeats; half the deleted keys are updated first.
    repeats = rng.choice(updated, size=n_upd - len(updated) - n_del // 2, replace=True)
    upd_keys = np.concatenate([updated, repeats, deleted[: n_del // 2]])
    ins_keys = np.arange(table.rows, table.rows + n_ins, dtype=np.int64)

    keys = np.concatenate([upd_keys, ins_keys, deleted]).astype(np.int64)
    ops = np.array(["U"] * len(upd_keys) + ["I"] * n_ins + ["D"] * n_del, dtype=object)
    t = rng.random(len(keys))
    # A delete comes after every update of its key.
    last_upd = {}
    for k, x in zip(upd_keys.tolist(), t[: len(upd_keys)].tolist(), strict=True):
        last_upd[k] = max(x, last_upd.get(k, 0.0))
    d0 = len(upd_keys) + n_ins
    for i, k in enumerate(deleted.tolist()):
        lo = last_upd.get(k, 0.0)
        t[d0 + i] = lo + (1.0 - lo) * t[d0 + i]
    order = np.argsort(t, kind="stable")
    keys, ops = keys[order], ops[order]
    version = np.arange(1, len(keys) + 1)
    changes = _rows(table, keys, ops, version, hour)
    return Batch(changes, hour, len(updated), n_del, n_ins)


def _rows(
    table: TableSpec, keys: np.ndarray, ops: np.ndarray, version: np.ndarray, hour: datetime
) -> pa.Table:
    n = len(keys)
    micros = (np.arange(n) * (3_599_000_000 // max(n, 1))).astype("int64")
    commit = [f"{hour + timedelta(microseconds=int(m)):%Y-%m-%d %H:%M:%S.%f}" for m in micros]
    first = int(f"{hour:%Y%m%d%H}") * 10**9
    seq = [f"{first + int(v):0{SEQ_WIDTH}d}" for v in version]
    base = payload(keys, table)
    changed = ops != "D"
    amount = np.where(changed & (ops == "U"), base["amount"] + version % 97 + 1.0, base["amount"])
    status = np.where(ops == "U", "updated", base["status"])
    note = np.where(
        ops == "U", np.char.add("rev-", version.astype(str)).astype(object), base["note"]
    )
    cols = {
        "Op": pa.array(ops.tolist(), pa.string()),
        "dms_commit_ts": pa.array(commit, pa.string()),
        "dms_change_seq": pa.array(seq, pa.string()),
        "id": pa.array(keys, pa.int64()),
        "event_date": pa.array(base["event_date"].tolist(), pa.string()),
        "customer_id": pa.array(base["customer_id"], pa.int32()),
        "amount": pa.array(amount, pa.float64()),
        "status": pa.array(status.tolist(), pa.string()),
        "note": pa.array(note.tolist(), pa.string()),
    }
    return pa.table(cols)


def payload(ids: np.ndarray, table: TableSpec) -> dict[str, np.ndarray]:
    """Source column values of a row as the base table (or an insert) has them."""
    ids = ids.astype(np.int64)
    return {
        "event_date": date_strings(date_of(ids, table)),
        "customer_id": (ids * 7919 % 100000).astype(np.int32),
        "amount": (ids * 31 % 100000).astype(np.float64) / 100.0,
        "status": np.asarray(STATUSES, dtype=object)[ids % 4],
        "note": np.char.add("order-", ids.astype(str)).astype(object),
    }


def write_dms_files(batch: Batch, folder: Path, files: int = 6) -> list[Path]:
    """Write the batch as DMS does: hour folder ``YYYY/MM/DD/HH``, one file per slice of time."""
    hour = folder / f"{batch.hour:%Y/%m/%d/%H}"
    hour.mkdir(parents=True, exist_ok=True)
    n = batch.changes.num_rows
    bounds = np.linspace(0, n, files + 1).astype(int)
    out = []
    for i in range(files):
        part = batch.changes.slice(bounds[i], bounds[i + 1] - bounds[i])
        if part.num_rows == 0:
            continue
        first = part.column("dms_commit_ts")[0].as_py()
        stamp = first.replace("-", "").replace(":", "").replace(" ", "-").replace(".", "")[:18]
        path = hour / f"{stamp}.parquet"
        pq.write_table(part, path)
        out.append(path)
    return out
