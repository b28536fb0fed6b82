"""Invariants 1-3 as properties: any change stream, applied in any schedule, ends equal to the
source, and the table's history equal to the source's timeline.

Hypothesis draws a small source history for one table (``id`` key over 8 values, partition
``p`` over 3 values, ``v``): a snapshot (the full load), then transactions over 3-4 CDC hours.
A plain-Python model of the source database gives the expected table. The changes are written
as DMS files (1-3 per hour, rows in random order inside a file, some files delivered twice under
a new name) that become visible at random points of a random schedule of incremental runs
(reruns, backfills, hours whose files arrive after later hours were applied). After every run the
table must equal "latest change per key wins" over the files applied so far, and its history
(SCD type 2, every column tracked or only ``p``) the timeline of those changes replayed in commit
order; after the last run both must equal the source's, and one more identical run must be a
no-op.

Each example costs ~5 job runs of Spark, so the example count is small and fixed
(``derandomize``: CI always tries the same examples). Locally:

- ``CDCLAKE_HYPOTHESIS_EXAMPLES=50`` tries more examples;
- ``CDCLAKE_HYPOTHESIS_SHRINK=1`` shrinks a failure (off by default: each shrink step is several
  Spark runs; the unshrunk stream and schedule are printed by ``note`` anyway).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.job.decide import latest_per_key
from tests.dms import SEQ, TS
from tests.integration.conftest import SCHEMA, Lake

FIRST_HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)
# The full load's instant is the first CDC hour's first instant: a change committed at exactly
# that time still counts as newer than the snapshot (full-load rows sort first).
LOAD_TS = f"{FIRST_HOUR:%Y-%m-%d %H:%M:%S.%f}"
KEYS = range(8)
PARTS = ("a", "b", "c")
MAX_RUNS = 2  # random incremental runs before the final one (plus full load, final, no-op)

EXAMPLES = int(os.environ.get("CDCLAKE_HYPOTHESIS_EXAMPLES", "6"))
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
if os.environ.get("CDCLAKE_HYPOTHESIS_SHRINK"):
    PHASES.append(Phase.shrink)


# ---- the source history ---------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    op: str  # I | U | D
    key: int
    p: str | None  # None for D (key-only row)
    v: str | None
    ts: datetime
    seq: str  # 35 digits: commit time (16) + counter (19), strictly increasing

    def row(self) -> dict:
        ts = f"{self.ts:%Y-%m-%d %H:%M:%S.%f}"
        return {"Op": self.op, "ts": ts, "seq": self.seq, "id": self.key, "p": self.p, "v": self.v}

    def __repr__(self) -> str:
        after = "" if self.op == "D" else f" p={self.p} v={self.v}"
        return f"{self.op} id={self.key}{after} @{self.ts:%H:%M:%S.%f}#{int(self.seq[-19:])}"


@dataclass(frozen=True)
class DmsFile:
    hour: int  # index: FIRST_HOUR + hour
    name: str
    changes: tuple[Change, ...]  # in the file's row order
    slot: int  # written just before incremental run number `slot` (len(runs): the final run)


@dataclass(frozen=True)
class Run:
    until: int  # hour index: --until FIRST_HOUR + until
    since: int | None = None

    def args(self) -> dict:
        since = None if self.since is None else hour_arg(self.since)
        return {"until": hour_arg(self.until), "since": since}


@dataclass(frozen=True)
class Scenario:
    snapshot: dict[int, tuple[str, str]]  # id -> (p, v)
    hours: int
    files: tuple[DmsFile, ...]
    runs: tuple[Run, ...]
    source: dict[int, tuple[str, str]]  # the source table after every change
    tracked: tuple[str, ...]  # the history's tracked columns
    timeline: list[tuple]  # the source's history (see history_in_order)

    def describe(self) -> str:
        lines = [f"snapshot: {sorted(self.snapshot.items())}"]
        for f in sorted(self.files, key=lambda f: (f.slot, f.hour, f.name)):
            lines.append(f"before run {f.slot}: write {hour_arg(f.hour)}/{f.name}")
            lines += [f"    {c!r}" for c in f.changes]
        for i, r in enumerate(self.runs):
            lines.append(f"run {i}: inc({r.args()})")
        lines.append(f"run {len(self.runs)}: inc(until={hour_arg(self.hours)}) and again (noop)")
        lines.append(f"source: {sorted(self.source.items())}")
        lines.append(f"history tracks {self.tracked}")
        return "\n".join(lines)


def hour_arg(index: int) -> str:
    return f"{FIRST_HOUR + index * HOUR:%Y-%m-%dT%H}"


def apply_in_order(snapshot: dict, changes: Iterable[Change]) -> dict:
    """The source database: every change in commit order. I and U write the after-image (an
    upsert: the job inserts an update of a missing key), D removes the key if present. Over
    any subset of the changes this is also "the newest change per key wins"."""
    state = dict(snapshot)
    for c in sorted(set(changes), key=lambda c: (c.ts, c.seq)):
        if c.op == "D":
            state.pop(c.key, None)
        else:
            state[c.key] = (c.p, c.v)
    return state


def as_rows(state: dict) -> list[tuple]:
    return sorted((k, p, v) for k, (p, v) in state.items())


LOAD_SEQ = "0" * 35


def history_in_order(snapshot: dict, changes: Iterable[Change], tracked: tuple[str, ...]) -> list:
    """The source's history: the snapshot (at the load's time), then the changes replayed in
    commit order, one commit time at a time. After each commit time, a key whose row now
    differs in a tracked column from its current version (or that had none) gets a new
    version; a key whose row is gone has its version closed; otherwise the version takes the
    row's values in place. Rows: ``(id, p, v, valid_from, valid_to, is_current, op, commit
    ts, seq)`` of each version's newest change."""
    load = datetime.fromisoformat(LOAD_TS).replace(tzinfo=UTC)
    seed = [Change("I", k, p, v, load, LOAD_SEQ) for k, (p, v) in snapshot.items()]
    ordered = sorted(set(changes) | set(seed), key=lambda c: (c.ts, c.seq))
    versions: dict[int, list[list]] = {}
    for at in sorted({c.ts for c in ordered}):
        last = {c.key: c for c in ordered if c.ts == at}  # the last change of the instant
        for key, c in last.items():
            mine = versions.setdefault(key, [])
            current = mine[-1] if mine and mine[-1][4] is None else None
            row = {"p": c.p, "v": c.v}
            if c.op == "D":
                if current:
                    current[4] = at
            elif current is None or any(
                current[i] != row[n] for i, n in ((1, "p"), (2, "v")) if n in tracked
            ):
                if current:
                    current[4] = at
                mine.append([key, c.p, c.v, at, None, c.op, at, c.seq])
            else:
                current[1:3], current[5:8] = [c.p, c.v], [c.op, at, c.seq]
    return sorted(
        (k, p, v, f, t, t is None, op, ts, seq)
        for vs in versions.values()
        for k, p, v, f, t, op, ts, seq in vs
    )


@st.composite
def scenarios(draw) -> Scenario:
    parts = st.sampled_from(PARTS)
    keys = st.sampled_from(KEYS)
    tracked = draw(st.sampled_from([("p", "v"), ("p",)]))
    snap = draw(st.dictionaries(keys, parts, max_size=len(KEYS)))
    snapshot = {k: (p, f"load{k}") for k, p in snap.items()}
    hours = draw(st.integers(3, 4))
    n_runs = draw(st.integers(1, MAX_RUNS))

    counter = 0
    history: list[Change] = []
    files: list[DmsFile] = []
    for h in range(hours):
        start = FIRST_HOUR + h * HOUR
        n_tx = draw(st.integers(1, 4))
        # Commit times inside the hour; edges and equal times across transactions are likely.
        second = st.one_of(st.sampled_from([0, 1, 1800, 3599]), st.integers(0, 3599))
        micros = st.sampled_from([0, 0, 1, 999_999])
        times = sorted(draw(st.lists(st.tuples(second, micros), min_size=n_tx, max_size=n_tx)))
        changes: list[Change] = []
        for sec, us in times:
            ts = start + timedelta(seconds=sec, microseconds=us)
            micros_epoch = int(ts.timestamp()) * 1_000_000 + ts.microsecond
            for _ in range(draw(st.integers(1, 5))):  # one transaction: same commit time
                counter += 1
                seq = f"{micros_epoch:016d}{counter:019d}"
                op, key = draw(st.sampled_from("IUD")), draw(keys)
                if op == "D":
                    changes.append(Change("D", key, None, None, ts, seq))
                else:
                    changes.append(Change(op, key, draw(parts), f"{op}{counter}", ts, seq))
        history += changes

        # DMS output: the hour's changes spread over 1-3 files, rows in any order in a file,
        # and at-least-once delivery (a file's rows again under another name).
        n_files = draw(st.integers(1, min(3, len(changes))))
        which = draw(
            st.lists(st.integers(0, n_files - 1), min_size=len(changes), max_size=len(changes))
        )
        groups = [
            [c for c, i in zip(changes, which, strict=True) if i == f] for f in range(n_files)
        ]
        copies: list[list[Change]] = []
        for g in (g for g in groups if g):
            copies.append(draw(st.permutations(g)))
            if draw(st.integers(0, 3)) == 3:
                copies.append(draw(st.permutations(g)))
        names = draw(st.permutations(range(len(copies))))
        for rows, rank in zip(copies, names, strict=True):
            name = f"{start:%Y%m%d-%H}{rank:02d}{h:02d}00000.parquet"
            slot = draw(st.integers(0, n_runs))
            files.append(DmsFile(h, name, tuple(rows), slot))

    runs: list[Run] = []
    for _ in range(n_runs):
        kind = draw(st.sampled_from(["next", "rerun", "backfill"]))
        if kind == "rerun" and runs:
            runs.append(runs[-1])
            continue
        # Mostly "catch up on everything", as the hourly DAG does; else an earlier hour.
        until = draw(st.one_of(st.just(hours), st.integers(1, hours)))
        since = draw(st.integers(0, until - 1)) if kind == "backfill" else None
        runs.append(Run(until, since))

    source = apply_in_order(snapshot, history)
    timeline = history_in_order(snapshot, history, tracked)
    return Scenario(snapshot, hours, tuple(files), tuple(runs), source, tracked, timeline)


# ---- the job on a fresh lake per example ----------------------------------------------------
def write_load(lake: Lake, snapshot: dict) -> None:
    rows = [{"id": k, "p": p, "v": v} for k, (p, v) in sorted(snapshot.items())]
    if rows:
        lake.w.load(rows, ts=LOAD_TS)
        return
    # An empty source table still gets a LOAD file with its columns (the helper needs a row).
    fields = [("Op", pa.string()), (TS, pa.string()), (SEQ, pa.string()), *SCHEMA.items()]
    schema = pa.schema([pa.field(n, t) for n, t in fields])
    lake.w.folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(schema.empty_table(), lake.w.folder / "LOAD00000001.parquet")


def write_files(lake: Lake, files: Iterable[DmsFile]) -> None:
    for f in files:
        lake.w.cdc(hour_arg(f.hour), [c.row() for c in f.changes], name=f.name)


def check_schedule(spark, scenario: Scenario) -> None:
    root = Path(tempfile.mkdtemp(prefix="cdclake-props-"))
    try:
        settings = True if scenario.tracked == ("p", "v") else {"track_columns": ["p"]}
        table = {"schema": "s", "name": "t", "primary_key": ["id"], "partition_by": ["p"]}
        lake = Lake(spark, root, tables=[table | {"history": settings}])
        write_load(lake, scenario.snapshot)
        assert lake.full()["status"] == "succeeded"

        visible: list[DmsFile] = []
        applied: set[DmsFile] = set()
        for i, run in enumerate(scenario.runs):
            new = [f for f in scenario.files if f.slot == i]
            write_files(lake, new)
            visible += new
            rec = lake.inc(**run.args())
            assert rec["status"] in ("succeeded", "noop"), rec
            applied |= {f for f in visible if f.hour < run.until}
            changes = [c for f in applied for c in f.changes]
            expected = apply_in_order(scenario.snapshot, changes)
            # One cheap read per step (chispa, below, for the final state).
            actual = sorted(tuple(r) for r in lake.df().collect())
            assert actual == as_rows(expected), f"after run {i} ({run.args()})"
            timeline = history_in_order(scenario.snapshot, changes, scenario.tracked)
            assert read_history(lake) == timeline, f"history after run {i} ({run.args()})"

        write_files(lake, [f for f in scenario.files if f.slot == len(scenario.runs)])
        final = hour_arg(scenario.hours)
        assert lake.inc(final)["status"] in ("succeeded", "noop")
        lake.assert_rows(as_rows(scenario.source))
        assert_df_equality(
            history_df(lake),
            spark.createDataFrame(scenario.timeline, HISTORY_SCHEMA),
            ignore_row_order=True,
            ignore_nullable=True,
        )
        again = lake.inc(final)
        assert again["status"] == "noop", again
        assert again["files"] == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


HISTORY_COLUMNS = ["id", "p", "v", "_valid_from", "_valid_to", "_is_current"]
HISTORY_COLUMNS += ["_cdc_op", "_cdc_commit_ts", "_cdc_change_seq"]
HISTORY_SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("p", T.StringType()),
        T.StructField("v", T.StringType()),
        T.StructField("_valid_from", T.TimestampType()),
        T.StructField("_valid_to", T.TimestampType()),
        T.StructField("_is_current", T.BooleanType()),
        T.StructField("_cdc_op", T.StringType()),
        T.StructField("_cdc_commit_ts", T.TimestampType()),
        T.StructField("_cdc_change_seq", T.StringType()),
    ]
)


def history_df(lake: Lake):
    path = lake.cfg.history_location(lake.cfg.table(lake.name))
    return lake.spark.read.format("delta").load(path).select(*HISTORY_COLUMNS)


def read_history(lake: Lake) -> list[tuple]:
    """The history's rows (times as UTC instants: PySpark hands back naive local ones)."""

    def utc(value):
        return value.astimezone(UTC) if isinstance(value, datetime) else value

    return sorted(tuple(utc(v) for v in r) for r in history_df(lake).collect())


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
    database=None,
    phases=PHASES,
)
@pytest.mark.slow
@given(scenario=scenarios())
def test_any_schedule_of_runs_ends_equal_to_the_source(spark, scenario):
    note(scenario.describe())
    check_schedule(spark, scenario)


# ---- the pure transform ---------------------------------------------------------------------
ORDER_SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("p", T.StringType()),
        T.StructField("v", T.StringType()),
        T.StructField("_cdc_commit_ts", T.TimestampType()),
        T.StructField("_cdc_change_seq", T.StringType()),
        T.StructField("_cdc_source_file", T.StringType()),
        T.StructField("_cdc_row_pos", T.LongType()),
    ]
)
SEQS = ["0" * 35, "0" * 34 + "1", "0" * 34 + "2", "0" * 33 + "10", "1" + "0" * 34]
FILES = ["2026/11/22/10/20261122-1000.parquet", "2026/11/22/10/20261122-1001.parquet"]


@st.composite
def change_batches(draw):
    """Rows with colliding keys and ties on every order column but the last; (file, position)
    is unique as it is in real input. Also a random split of the rows into two batches."""
    n = draw(st.integers(0, 30))
    rows, positions = [], {f: 0 for f in FILES}
    for i in range(n):
        f = draw(st.sampled_from(FILES))
        ts = FIRST_HOUR + timedelta(microseconds=draw(st.sampled_from([0, 1, 3_600_000_000])))
        rows.append(
            (
                draw(st.integers(0, 3)),
                draw(st.sampled_from(["a", "b"])),
                f"r{i}",
                ts,
                draw(st.sampled_from(SEQS)),
                f,
                positions[f],
            )
        )
        positions[f] += 1
    first = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    keys = draw(st.sampled_from([("id",), ("id", "p")]))
    return rows, first, list(keys)


def newest_per_key(rows: list[tuple], keys: list[str]) -> set[str]:
    idx = [ORDER_SCHEMA.fieldNames().index(k) for k in keys]
    best: dict[tuple, tuple] = {}
    for r in rows:
        k = tuple(r[i] for i in idx)
        if k not in best or r[3:] > best[k][3:]:
            best[k] = r
    return {r[2] for r in best.values()}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
    database=None,
)
@given(batch=change_batches())
def test_latest_per_key_matches_a_sort_and_does_not_depend_on_batching(spark, batch):
    rows, first, keys = batch
    expected = newest_per_key(rows, keys)
    # Deduplicating a batch first, then again together with the next batch, must pick the same
    # winners as one batch of everything (two runs of one hour each vs one run of two hours).
    # Both in one Spark job.
    a, b = ([r for r, x in zip(rows, first, strict=True) if x == side] for side in (True, False))
    once = latest_per_key(spark.createDataFrame(rows, ORDER_SCHEMA), keys)
    a_df, b_df = (spark.createDataFrame(part, ORDER_SCHEMA) for part in (a, b))
    twice = latest_per_key(latest_per_key(a_df, keys).unionByName(b_df), keys)
    both = once.select(F.lit("once").alias("how"), "v").union(twice.select(F.lit("twice"), "v"))
    got: dict[str, set[str]] = {"once": set(), "twice": set()}
    for r in both.collect():
        got[r["how"]].add(r["v"])
    assert got == {"once": expected, "twice": expected}
