"""The benchmark's matrix (:func:`default_plan`, :func:`quick_plan`), the config of a
benchmark lake and its Spark session: shared by ``bench.run`` and ``bench.loggrowth``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.data import SCHEMA_NAME, TABLE_NAME, BatchSpec, TableSpec


@dataclass(frozen=True)
class ManySpec:
    """Many tables in one hourly run: ``tables`` copies of a ``rows``-row table, each with its
    own ``fraction`` batch; the sequential baseline runs the first ``sequential_tables``."""

    tables: int = 100
    rows: int = 20_000
    fraction: float = 0.01
    sequential_tables: int = 12

    @property
    def name(self) -> str:
        return f"{self.tables} tables x {self.rows // 1000}k, {self.fraction * 100:g}% each"


ROOT = Path(__file__).resolve().parents[1]
SPARK_ARMS = ("job", "blog", "rewrite")


@dataclass(frozen=True)
class Config:
    table: TableSpec
    batch: BatchSpec
    arms: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.table.name} {self.batch.name}"


@dataclass(frozen=True)
class Plan:
    configs: tuple[Config, ...]
    reps: int
    log_marks: tuple[int, ...]
    big: str  # the ratios' 1%-hot configs (large / small table) and the same-size batch
    small: str
    same: str
    notes: tuple[str, ...] = field(default=())
    warmup: bool = True
    many: ManySpec | None = None  # the many-tables configuration (bench.many)


ALL = ("job", "blog", "rewrite", "delta-rs")
# Each arm's first run in the session, on a small table of the same shape (see Bench.warm_up).
WARMUP = Config(TableSpec(20_000, file_bytes=20_000), BatchSpec(0.01, "hot"), ALL)


def default_plan() -> Plan:
    m1, m10 = TableSpec(1_000_000), TableSpec(10_000_000)
    return Plan(
        configs=(
            Config(m1, BatchSpec(0.01, "hot"), ALL),
            Config(m1, BatchSpec(0.01, "tail"), ("job", "delta-rs")),
            Config(m1, BatchSpec(0.1, "hot"), ("job", "delta-rs")),
            Config(m10, BatchSpec(0.001, "hot"), ("job",)),
            Config(m10, BatchSpec(0.01, "hot"), ("job", "blog", "delta-rs")),
        ),
        reps=3,
        log_marks=(10, 100, 1000),
        big="10M 1% hot",
        small="1M 1% hot",
        same="10M 0.1% hot",
        many=ManySpec(),
        notes=(
            "- Cut to fit 10 minutes on 2 cores: the full rewrite runs at 1M / 1% hot only "
            "(it reads and writes the whole table whatever the batch, so 10M costs ~10x); "
            "0.1% batches run at 10M only (the same 10k changes as 1M 1%, for the "
            "scaling ratio); 10% and tail batches at 1M only, without the blog's approach, "
            "which runs at 1% hot (its MERGE scans the whole table whatever the batch). "
            "A 10% batch has more keys than the newest day holds: 'hot' then means the "
            "newest ~2.2 days.",
            "- Log growth: the commits between measured runs are written by delta-rs, each "
            "shaped like an hourly run (data: replace one file; ledger: +60 file records, "
            "compacted at 50 files as the job does; audit: +1 record); the measured runs are "
            "the job itself. 1,000 real job runs "
            "would take over an hour here.",
            "- What dominates the job's time (`python -m bench.profile`; idle machine, warm "
            "session, 1M rows, 1% hot, ~13 s): a run submits ~55 Spark jobs, one Parquet "
            "staging write and 4 Delta commits (tombstone append, data MERGE, ledger append, "
            "audit append) whatever the batch size. Delta's incremental symlink-manifest hook "
            "~2.3 s (14 jobs: it joins the old and new snapshots' file lists), the MERGE itself "
            "~2 s (find the touched files, rewrite them), classifying the batch against the "
            "table and the tombstones and staging it ~3.5 s, opening the table and the ledger "
            "(snapshot rebuilds, crash check) ~1.5 s, reading the batch ~0.8 s, the appends "
            "~1 s. The blog's arm runs one MERGE, no bookkeeping and no hook (it regenerates "
            "every manifest, ~1.4 s); delta-rs runs the same guarded MERGE in ~0.8 s at 10M.",
        ),
    )


def quick_plan() -> Plan:
    small = TableSpec(20_000, file_bytes=20_000)
    return Plan(
        configs=(Config(small, BatchSpec(0.01, "hot"), ALL),),
        reps=1,
        log_marks=(5, 10),
        big="20k 1% hot",
        small="20k 1% hot",
        same="20k 1% hot",
        many=ManySpec(tables=4, sequential_tables=2),
        notes=("- Quick (smoke) mode: one tiny table, one repetition; the numbers mean nothing.",),
    )


def write_config(
    path: Path,
    raw: Path,
    curated: Path,
    tables: list[str] | None = None,
    merge: dict | None = None,
) -> Path:
    """The pipeline config of a benchmark lake (tables partitioned by day; default: one)."""
    import yaml

    doc: dict = {
        "raw_root": str(raw),
        "curated_root": str(curated),
        "dms": {"timestamp_column": "dms_commit_ts", "change_sequence_column": "dms_change_seq"},
        "tables": [
            {
                "schema": SCHEMA_NAME,
                "name": name,
                "primary_key": ["id"],
                "partition_by": ["event_date"],
            }
            for name in tables or [TABLE_NAME]
        ],
    }
    if merge:
        doc["merge"] = merge
    path.write_text(yaml.safe_dump(doc))
    return path


def session():
    from cdclake.session import build_session

    return build_session("local", app_name="cdclake-bench")
