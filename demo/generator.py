"""Deterministic demo source: DMS-shaped Parquet files for the configured tables, and the exact
source state they must produce. Pure Python + pyarrow (no Spark).

API::

    src = DemoSource(cfg, seed=7, start=datetime(2026, 11, 22, 8, tzinfo=UTC), hours=6,
                     travel_rows=20_000, sales_rows=3_000, load_files=4)
    src.task_start            # datetime: DMS task start = full-load timestamp (on the hour, UTC)
    src.load_landed_at        # datetime: when the last LOAD file has landed
    src.end                   # datetime: end of the last CDC hour (task_start + hours)
    src.hours() -> list[datetime]            # start of each CDC hour, in order
    src.deliveries() -> list[Delivery]       # every file DMS writes, by (lands_at, path)
    src.write_landed(until) -> list[Delivery]  # write unwritten files with lands_at <= until
    src.write_all() -> list[Delivery]
    src.expected_rows("schema.table") -> list[dict]     # final source state, key order
    src.expected_schema("schema.table") -> pa.Schema    # final lake columns and types
    src.expected_table("schema.table") -> pa.Table
    src.hard_cases -> tuple[HardCase, ...]   # where each deliberate hard case is (see scenario.py)
    src.summary() -> dict[str, int]

The config must list ``travel_details`` (key ``trip_id``) and ``ticket_sales`` (key
``trip_id, seat_no``) in any schema; ``raw_root`` must be a local path. Expected rows leave out the
table's ``drop_columns`` (``card_number``) and include the column added mid-stream
(``distance_km``); values are Python objects: ``int``, ``str``, ``datetime`` (timezone-aware UTC),
``date``, ``Decimal``, ``None``.

The demo driver's schedule::

    src.write_landed(src.load_landed_at)          # then: full load (reads LOAD files)
    for h in src.hours():
        src.write_landed(h + timedelta(hours=1, minutes=2))   # then: incremental --until h+1h
    src.write_all()                               # then: final catch-up run; compare

What DMS writes, as reproduced here (DMS S3 target endpoint, Parquet, hourly folders):

* Full load: ``<raw>/<schema>/<table>/LOAD00000001.parquet`` ... (8-digit uppercase hex), one per
  key-range chunk. Columns: ``Op`` = 'I' only if ``dms.full_load_has_op``; the timestamp column =
  the task start time for every row (``UseTaskStartTimeForFullLoadTimestamp``); the change
  sequence column (if configured) = ''; then the source columns.
* CDC: ``<raw>/<schema>/<table>/<YYYY>s<MM>s<DD>s<HH>/YYYYMMDD-HHMMSSmmm.parquet`` where ``s`` is
  the configured delimiter, the folder is the UTC hour of the commit time of the rows inside and
  the file name is the time DMS wrote the file (the end of the minute of changes it holds, or
  later for cached changes, late files and re-deliveries). Columns: ``Op`` (I/U/D), the commit
  time string (``yyyy-MM-dd HH:mm:ss.SSSSSS``), the change sequence (35 digits: 16 from the
  commit time + a 19-digit counter over the whole task; string order = change order), then the
  source columns as of the newest change in the file. ``U`` = full after image; ``D`` of
  ``travel_details`` = key only; ``D`` of ``ticket_sales`` = full before image.
* ``Delivery.kind``: ``load``; ``cached`` (changes committed during the full load, written right
  after the table's load: they may land before another table's last LOAD file, as the tables
  load in parallel); ``cdc`` (one file per minute with changes, lands < 4 s after the minute);
  ``late`` (rows of hour H landing after hour H's run); ``duplicate`` (a task restart delivers a
  range of changes again, same Op/ts/seq/values, in new files with later names).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cdclake.core.config import PipelineConfig, TableConfig
from cdclake.core.dms import (
    cdc_file_name,
    change_sequence,
    dms_timestamp,
    hour_folder,
    load_file_name,
)
from cdclake.core.hours import floor_hour
from cdclake.core.uris import local_dir
from demo.scenario import (
    MIN_HOURS,
    MIN_SALES_ROWS,
    MIN_TRAVEL_ROWS,
    SALES,
    SALES_SPEC,
    TRAVEL,
    TRAVEL_SPEC,
    HardCase,
    Scenario,
    minute_of,
)
from demo.sourcedb import Change, Row, TableSpec

LOAD, CACHED, CDC, LATE, DUPLICATE = "load", "cached", "cdc", "late", "duplicate"
KINDS = (LOAD, CACHED, CDC, LATE, DUPLICATE)
DEFAULT_START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
_SPECS: dict[str, TableSpec] = {TRAVEL: TRAVEL_SPEC, SALES: SALES_SPEC}


@dataclass(frozen=True)
class Delivery:
    """One file DMS writes."""

    table: str  # qualified name schema.table
    path: str  # absolute path of the Parquet file
    lands_at: datetime  # wall-clock time the file appears in the raw bucket (UTC)
    kind: str  # 'load' | 'cached' | 'cdc' | 'late' | 'duplicate'
    hour: datetime | None  # commit-hour folder of a CDC file; None for LOAD files
    rows: int


@dataclass(frozen=True)
class _File:
    delivery: Delivery
    table: str  # bare table name
    columns: tuple[tuple[str, pa.DataType], ...]  # source columns in the file
    load_rows: tuple[Row, ...] = ()
    changes: tuple[Change, ...] = ()


class DemoSource:
    """The demo source database and the DMS task replicating it (see the module docstring)."""

    def __init__(
        self,
        cfg: PipelineConfig,
        *,
        seed: int = 7,
        start: datetime = DEFAULT_START,
        hours: int = 6,
        travel_rows: int = 20_000,
        sales_rows: int = 3_000,
        load_files: int = 4,
    ) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        start = start.astimezone(UTC)
        if start != start.replace(minute=0, second=0, microsecond=0):
            raise ValueError(f"start must be on a whole hour, got {start}")
        if hours < MIN_HOURS:
            raise ValueError(f"hours must be at least {MIN_HOURS} (the hard cases need them)")
        if travel_rows < MIN_TRAVEL_ROWS or sales_rows < MIN_SALES_ROWS:
            raise ValueError(
                f"need travel_rows >= {MIN_TRAVEL_ROWS} and sales_rows >= {MIN_SALES_ROWS}"
            )
        if load_files < 1:
            raise ValueError("load_files must be at least 1")
        self.cfg = cfg
        self._tables = _check_tables(cfg)
        self._roots = {name: local_dir(cfg.raw_location(t)) for name, t in self._tables.items()}
        self.task_start = start
        self.end = start + timedelta(hours=hours)
        self._n_hours = hours

        rng = random.Random(seed)
        scenario = Scenario(rng, start, hours, travel_rows, sales_rows, load_files)
        scenario.run()
        self._db = scenario.db
        self.column_added_at = scenario.alter_at
        self.restart = (scenario.restart_from, scenario.restart_at)
        self.hard_cases: tuple[HardCase, ...] = tuple(
            replace(c, table=self._tables[c.table].qualified_name) for c in scenario.cases
        )
        self._files = self._plan(scenario, rng)
        self.load_landed_at = max(
            f.delivery.lands_at for f in self._files if f.delivery.kind == LOAD
        )
        self._written: set[str] = set()

    # --- public API ------------------------------------------------------------------------
    def hours(self) -> list[datetime]:
        return [self.task_start + timedelta(hours=h) for h in range(self._n_hours)]

    def deliveries(self) -> list[Delivery]:
        return [f.delivery for f in self._files]

    def write_landed(self, until: datetime, *, skip_existing: bool = False) -> list[Delivery]:
        """Write every not-yet-written file with ``lands_at <= until`` (naive = UTC).

        ``skip_existing``: also skip files already on disk (a new instance continuing the
        deliveries of an earlier one, as each scheduled task does)."""
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        out = []
        for f in self._files:
            d = f.delivery
            if skip_existing and d.path not in self._written and Path(d.path).exists():
                self._written.add(d.path)
            if d.lands_at <= until and d.path not in self._written:
                self._write(f)
                self._written.add(d.path)
                out.append(d)
        return out

    def write_all(self) -> list[Delivery]:
        return self.write_landed(datetime.max.replace(tzinfo=UTC))

    def expected_rows(self, table: str) -> list[dict[str, Any]]:
        """The source state after all changes, minus ``drop_columns``, in key order."""
        name, drops = self._bare(table)
        cols = [c for c in self._db.column_names(name) if c not in drops]
        return [{c: r[c] for c in cols} for r in self._db.rows(name)]

    def expected_schema(self, table: str) -> pa.Schema:
        name, drops = self._bare(table)
        return pa.schema([pa.field(n, t) for n, t in self._db.columns(name) if n not in drops])

    def expected_table(self, table: str) -> pa.Table:
        return pa.Table.from_pylist(self.expected_rows(table), schema=self.expected_schema(table))

    def summary(self) -> dict[str, int]:
        """Counts of files per kind, CDC rows, and expected rows per table."""
        out: dict[str, int] = {f"files_{k}": 0 for k in KINDS}
        out["cdc_rows"] = out["load_rows"] = 0
        for f in self._files:
            out[f"files_{f.delivery.kind}"] += 1
            out["load_rows" if f.delivery.kind == LOAD else "cdc_rows"] += f.delivery.rows
        for t in self._tables.values():
            out[f"expected_{t.qualified_name}"] = len(self.expected_rows(t.qualified_name))
        return out

    # --- planning ---------------------------------------------------------------------------
    def _bare(self, table: str) -> tuple[str, tuple[str, ...]]:
        tc = self.cfg.table(table)
        return tc.name, tc.drop_columns

    def _plan(self, sc: Scenario, rng: random.Random) -> list[_File]:
        files: list[_File] = []
        taken: set[str] = set()
        for name in (TRAVEL, SALES):
            qn, root, spec = self._tables[name].qualified_name, self._roots[name], _SPECS[name]
            plan = sc.loads[name]
            for i, (rows, read_at) in enumerate(zip(sc.snapshots[name], plan.read_at, strict=True)):
                lands = read_at + timedelta(seconds=4, milliseconds=rng.randrange(0, 900))
                path = str(root / load_file_name(i + 1))
                taken.add(path)
                delivery = Delivery(qn, path, lands, LOAD, None, len(rows))
                files.append(_File(delivery, name, spec.columns, load_rows=tuple(rows)))

            changes = [c for c in self._db.changes if c.table == name]
            groups: dict[tuple[str, datetime], list[Change]] = {}
            for c in changes:
                minute = minute_of(c.commit)
                if c.commit < plan.done:
                    kind = CACHED
                elif (name, minute) in sc.late_windows:
                    kind = LATE
                else:
                    kind = CDC
                groups.setdefault((kind, minute), []).append(c)
            n_cached = 0
            for (kind, minute), group in groups.items():
                if kind == CACHED:
                    written = plan.done + timedelta(seconds=2, milliseconds=500 * n_cached)
                    n_cached += 1
                elif kind == LATE:
                    written = sc.late_windows[(name, minute)]
                else:
                    written = minute + timedelta(seconds=60, milliseconds=rng.randrange(40, 960))
                files.append(self._cdc_file(name, kind, group, written, rng, taken))

            start, stop = sc.restart_from, sc.restart_at
            by_hour: dict[datetime, list[Change]] = {}
            for c in changes:
                if start <= c.commit < stop:
                    by_hour.setdefault(floor_hour(c.commit), []).append(c)
            for j, (_, group) in enumerate(sorted(by_hour.items())):
                written = stop + timedelta(seconds=5, milliseconds=600 * j)
                files.append(self._cdc_file(name, DUPLICATE, group, written, rng, taken))
        files.sort(key=lambda f: (f.delivery.lands_at, f.delivery.path))
        return files

    def _cdc_file(
        self,
        name: str,
        kind: str,
        changes: list[Change],
        written: datetime,
        rng: random.Random,
        taken: set[str],
    ) -> _File:
        hour = floor_hour(changes[0].commit)
        for c in changes:  # the DMS layout rules the pipeline relies on
            if not (hour < c.commit < hour + timedelta(hours=1)):
                raise AssertionError(f"change at {c.commit} is not strictly inside {hour}")
        if written <= max(c.commit for c in changes):
            raise AssertionError(f"file written at {written} before its last commit")
        widest = max((c.columns for c in changes), key=len)
        columns = tuple((n, t) for n, t in self._db.columns(name) if n in widest)
        folder = hour_folder(hour, self.cfg.dms)
        while True:
            path = str(self._roots[name] / folder / cdc_file_name(written))
            if path not in taken:
                break
            written += timedelta(milliseconds=1)
        taken.add(path)
        lands = written + timedelta(milliseconds=rng.randrange(300, 2_500))
        delivery = Delivery(
            self._tables[name].qualified_name, path, lands, kind, hour, len(changes)
        )
        return _File(delivery, name, columns, changes=tuple(changes))

    # --- writing ------------------------------------------------------------------------------
    def _write(self, f: _File) -> None:
        dms = self.cfg.dms
        fields: list[pa.Field] = []
        arrays: list[pa.Array] = []

        def add(name: str, type_: pa.DataType, values: list[Any]) -> None:
            fields.append(pa.field(name, type_))
            arrays.append(pa.array(values, type=type_))

        if f.delivery.kind == LOAD:
            rows = list(f.load_rows)
            n = len(rows)
            if dms.full_load_has_op:
                add(dms.op_column, pa.string(), ["I"] * n)
            add(dms.timestamp_column, pa.string(), [dms_timestamp(self.task_start)] * n)
            if dms.change_sequence_column:
                add(dms.change_sequence_column, pa.string(), [""] * n)
        else:
            rows = [c.image for c in f.changes]
            add(dms.op_column, pa.string(), [c.op for c in f.changes])
            add(dms.timestamp_column, pa.string(), [dms_timestamp(c.commit) for c in f.changes])
            if dms.change_sequence_column:
                seqs = [change_sequence(c.commit, c.position) for c in f.changes]
                add(dms.change_sequence_column, pa.string(), seqs)
        for col, type_ in f.columns:
            add(col, type_, [r.get(col) for r in rows])
        table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
        path = Path(f.delivery.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)


def _check_tables(cfg: PipelineConfig) -> dict[str, TableConfig]:
    by_name: dict[str, TableConfig] = {}
    for t in cfg.tables:
        spec = _SPECS.get(t.name)
        if spec is None:
            raise ValueError(f"the demo source knows only {sorted(_SPECS)}, not {t.qualified_name}")
        if t.primary_key != spec.key:
            raise ValueError(
                f"{t.qualified_name}: the demo's key is {spec.key}, not {t.primary_key}"
            )
        if t.name in by_name:
            raise ValueError(f"{t.name} is configured in two schemas")
        by_name[t.name] = t
    missing = sorted(set(_SPECS) - set(by_name))
    if missing:
        raise ValueError(f"the demo source needs tables {missing} in the config")
    return by_name
