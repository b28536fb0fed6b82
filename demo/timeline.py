"""The source's timeline of a table, for the demo's history check: every change the source
committed, as the capture (or the generator) wrote it to the raw folder, replayed in commit
order by plain Python (pyarrow only: no Spark, none of the job's code).

The loop is README "History tables" written out: the full load's rows are changes at the load's
time; per key and commit time the last change (by commit time, change sequence, file, row)
counts; a change opens a version when the key has no row or a tracked column differs from the
row before it, otherwise it updates the open version in place; a delete closes it. A version
holds its newest change's values; ``_valid_from`` is its first change's commit time,
``_valid_to`` the next version's or the delete's (None while current).

Rows the job quarantines (null key, unknown ``Op``, unreadable commit time) are left out, and
so are changes in CDC hours wholly before the full load (the job never applies those files).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow.parquet as pq

from cdclake.core.config import PipelineConfig, TableConfig
from cdclake.core.uris import local_dir

SEQ_WIDTH = 35
# (key, op, order = (commit time, change sequence, file, row), source values)
Change = tuple[tuple, str, tuple, dict[str, Any]]


def versions(cfg: PipelineConfig, table: TableConfig) -> list[dict[str, Any]]:
    """The table's versions: source columns plus ``_valid_from``, ``_valid_to``,
    ``_is_current`` (times as aware UTC datetimes)."""
    assert table.history is not None, f"{table.qualified_name} keeps no history"
    changes = list(read_changes(cfg, table))
    columns = sorted({c for *_, values in changes for c in values})
    tracked = table.history.tracked(columns, table.primary_key)
    last: dict[tuple, Change] = {}
    for change in sorted(changes, key=lambda c: c[2]):
        last[(change[0], change[2][0])] = change  # the last change of each key and instant
    out: list[dict[str, Any]] = []
    open_version: dict[tuple, dict[str, Any]] = {}
    row_before: dict[tuple, dict[str, Any]] = {}
    for key, op, order, values in sorted(last.values(), key=lambda c: c[2]):
        at, current = order[0], open_version.get(key)
        if op == "D":
            if current is not None:
                current["_valid_to"] = at
                del open_version[key]
            row_before.pop(key, None)
            continue
        row = {c: values.get(c) for c in columns}
        before = row_before.get(key)
        if current is None or before is None or any(row[c] != before[c] for c in tracked):
            if current is not None:
                current["_valid_to"] = at
            current = open_version[key] = {"_valid_from": at, "_valid_to": None}
            out.append(current)
        current.update(row)
        row_before[key] = row
    for v in out:
        v["_is_current"] = v["_valid_to"] is None
    return out


def read_changes(cfg: PipelineConfig, table: TableConfig) -> Iterator[Change]:
    """Every valid change in the table's raw folder: the LOAD files, then the CDC files of
    hours not wholly before the load."""
    root = local_dir(cfg.raw_location(table))
    files = sorted(root.rglob("*.parquet"))
    loads = [p for p in files if p.parent == root and p.name.startswith("LOAD")]
    load_changes = [c for p in loads for c in _changes(cfg, table, p, root, load=True)]
    yield from load_changes
    first_hour = min((c[2][0] for c in load_changes), default=None)
    if first_hour is not None:
        first_hour = first_hour.replace(minute=0, second=0, microsecond=0)
    for path in files:
        if path in loads:
            continue
        for change in _changes(cfg, table, path, root, load=False):
            if first_hour is None or change[2][0] >= first_hour:
                yield change


def _changes(
    cfg: PipelineConfig, table: TableConfig, path: Any, root: Any, *, load: bool
) -> Iterator[Change]:
    dms = cfg.dms
    skip = {*dms.dms_columns, *table.drop_columns}
    rel = path.relative_to(root).as_posix()
    for pos, r in enumerate(pq.read_table(path).to_pylist()):
        op = "I" if load and dms.op_column not in r else str(r.get(dms.op_column) or "")
        op = op.strip().upper()
        at = _commit_time(r.get(dms.timestamp_column))
        key = tuple(r.get(k) for k in table.primary_key)
        if at is None or any(k is None for k in key) or op not in ("I", "U", "D"):
            continue
        seq = ""
        if dms.change_sequence_column:
            seq = str(r.get(dms.change_sequence_column) or "").strip()
        values = {c: _utc(v) for c, v in r.items() if c not in skip}
        yield key, op, (at, seq.rjust(SEQ_WIDTH, "0"), rel, pos), values


def _utc(value: Any) -> Any:
    """Parquet timestamps without a zone are UTC wall time (as the capture and DMS write)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _commit_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return _utc(value)
    if not isinstance(value, str):
        return None
    try:
        return _utc(datetime.fromisoformat(value.strip().replace(" ", "T")))
    except ValueError:
        return None
