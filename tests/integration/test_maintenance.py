"""The maintenance job on a real Delta lake: compaction of recent partitions only, vacuum,
manifests, tombstone/quarantine expiry, idempotent rerun, and merging on afterwards.

One lake is built per module (three job runs around a clock mark ``t_mid``: partition ``a`` is
written before it, ``b`` after), maintained once with ``--now = t_mid + 3 days``, and the tests
then read what the run did, in file order.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdclake.cli.maintenance import main
from cdclake.cli.scaffold import EXIT_OK, EXIT_TABLE_FAILED
from cdclake.lake.bookkeeping import QUARANTINE_SCHEMA
from tests.dms import make_config
from tests.integration.conftest import SPARK_SCHEMA, Lake

MAINTENANCE = {
    "compact_recent_days": 3,
    "vacuum_retain_hours": 336,
    "tombstone_retention_days": 30,
    "quarantine_retention_days": 90,
}


def dms_ts(dt: datetime) -> str:
    return f"{dt:%Y-%m-%d %H:%M:%S}.000000"


def hour_arg(dt: datetime) -> str:
    return f"{dt:%Y-%m-%dT%H}"


def write_config(lake: Lake, **over) -> str:
    """The lake's config (as the merge job last wrote it) plus a maintenance section."""
    doc = yaml.safe_load((Path(lake.cfg.raw_root).parent / "pipeline.yaml").read_text())
    doc["maintenance"] = MAINTENANCE | over
    path = Path(lake.cfg.raw_root).parent / "maintenance.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def snapshot_files(spark, path: str) -> dict[str, set[str]]:
    """The snapshot's data files by partition folder (``p=a``)."""
    by_part: dict[str, set[str]] = {}
    for f in spark.read.format("delta").load(path).inputFiles():
        p = urlparse(f).path
        by_part.setdefault(Path(p).parent.name, set()).add(p)
    return by_part


def manifest_files(path: str) -> set[str]:
    lines: set[str] = set()
    for m in Path(path, "_symlink_format_manifest").glob("*/manifest"):
        lines |= {urlparse(x).path for x in m.read_text().split()}
    return lines


def sortable(df):
    """``df`` with its map columns as JSON text, entries in key order (Spark cannot sort or
    hash maps, and a map's entry order is not part of its value)."""

    def text(c: str):
        return F.to_json(F.map_from_entries(F.array_sort(F.map_entries(c)))).alias(c)

    return df.select(
        *(text(c) if isinstance(df.schema[c].dataType, T.MapType) else F.col(c) for c in df.columns)
    )


def frozen(spark, df):
    """A DataFrame that no longer reads the table (for before/after comparisons)."""
    return spark.createDataFrame(df.collect(), df.schema)


class Maintained:
    """The lake, its state before maintenance, and the run's summary."""

    def __init__(self, spark, root: Path) -> None:
        self.spark = spark
        self.lake = lake = Lake(spark, root)
        base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        self.base = base
        w = lake.w
        w.load(
            [
                {"id": 1, "p": "a", "v": "one"},
                {"id": 2, "p": "a", "v": "two"},
                {"id": 3, "p": "b", "v": "three"},
                {"id": 4, "p": "c", "v": "four"},
                {"id": 5, "p": "d", "v": "five"},
            ],
            ts=dms_ts(base - timedelta(days=60)),
        )
        lake.full()
        old = base - timedelta(days=40)
        w.cdc(
            hour_arg(old),
            [
                {"Op": "I", "ts": dms_ts(old), "id": 6, "p": "a", "v": "six"},
                {"Op": "D", "ts": dms_ts(old + timedelta(minutes=1)), "id": 4, "p": "c"},
            ],
        )
        lake.inc(hour_arg(old + timedelta(hours=1)))
        time.sleep(1.0)  # commits before the mark are "old", after it "recent"
        self.t_mid = datetime.now(UTC)
        time.sleep(1.0)
        recent = base - timedelta(hours=2)
        w.cdc(
            hour_arg(recent),
            [
                {"Op": "I", "ts": dms_ts(recent), "id": 7, "p": "b", "v": "seven"},
                {"Op": "D", "ts": dms_ts(recent + timedelta(minutes=1)), "id": 5, "p": "d"},
            ],
        )
        lake.inc(hour_arg(recent + timedelta(hours=1)))
        self.now = self.t_mid + timedelta(days=3)
        self.quarantine_path = lake.cfg.state_location(lake.cfg.table(lake.name), "quarantine")
        self.tombstone_path = lake.cfg.state_location(lake.cfg.table(lake.name), "tombstones")
        self._seed_quarantine()
        # Files no snapshot references (a crashed writer's output): one old, one fresh.
        self.junk_old = Path(lake.path, "p=b", "part-junk-old.snappy.parquet")
        self.junk_new = Path(lake.path, "p=b", "part-junk-new.snappy.parquet")
        for junk in (self.junk_old, self.junk_new):
            junk.write_bytes(b"not referenced")
        month_ago = time.time() - 30 * 86400
        os.utime(self.junk_old, (month_ago, month_ago))

        self.files_before = snapshot_files(spark, lake.path)
        self.rows_before = frozen(spark, lake.df(bookkeeping=True))
        audit = spark.read.format("delta").load(lake.cfg.audit_location)
        self.audit_files_before = len(audit.inputFiles())
        self.audit_before = frozen(spark, audit)
        self.version_before = lake.version()
        self.config = write_config(lake)
        self.summary_path = root / "maintenance.json"
        self.dry = self.run("--dry-run")
        self.version_after_dry = lake.version()
        self.audit_files_after_dry = self.audit_files()
        self.summary = self.run()

    def audit_files(self) -> int:
        return len(self.spark.read.format("delta").load(self.lake.cfg.audit_location).inputFiles())

    def _seed_quarantine(self) -> None:
        rows = [
            ("missing key", "old.parquet", 0, "{}", "r0", self.now - timedelta(days=100)),
            ("missing key", "new.parquet", 0, "{}", "r1", self.now - timedelta(days=10)),
        ]
        df = self.spark.createDataFrame(rows, QUARANTINE_SCHEMA)
        df.write.format("delta").mode("append").save(self.quarantine_path)

    def run(self, *extra: str, expect: int = EXIT_OK) -> dict:
        args = ["--config", self.config, "--now", self.now.isoformat()]
        args += ["--run-id", "m1", "--summary-json", str(self.summary_path), *extra]
        assert main(args, spark=self.spark) == expect
        (rec,) = json.loads(self.summary_path.read_text())
        return rec


@pytest.fixture(scope="module")
def maintained(spark, tmp_path_factory):
    return Maintained(spark, tmp_path_factory.mktemp("maint"))


def test_dry_run_reports_and_changes_nothing(maintained):
    m = maintained
    assert m.version_after_dry == m.version_before
    assert m.dry["dry_run"] is True
    assert m.dry["partitions_considered"] == 1  # b; d only lost its file (nothing to compact)
    assert m.dry["files_vacuumed"] == 1
    assert m.dry["tombstones_expired"] == 1
    assert m.dry["quarantine_expired"] == 1
    assert m.dry["manifest_regenerated"] is False


def test_compacts_recent_partition_only_and_keeps_rows(maintained):
    m, s = maintained, maintained.summary
    after = snapshot_files(m.spark, m.lake.path)
    assert len(m.files_before["p=b"]) > 1
    assert len(after["p=b"]) == 1
    assert len(m.files_before["p=a"]) > 1  # compactable, but written before the window
    assert after["p=a"] == m.files_before["p=a"]
    assert s["status"] == "succeeded"
    assert s["files_compacted"] == len(m.files_before["p=b"])
    assert s["files_written"] == 1
    assert s["bytes_compacted"] > 0 and s["bytes_written"] > 0
    assert set(s["timings"]) == {
        "compact",
        "vacuum",
        "manifest",
        "tombstones",
        "quarantine",
        "bookkeeping",
    }
    assert_df_equality(
        m.lake.df(bookkeeping=True), m.rows_before, ignore_row_order=True, ignore_nullable=True
    )


def test_bookkeeping_tables_are_compacted(maintained):
    m = maintained
    ledger = m.lake.cfg.state_location(m.lake.cfg.table(m.lake.name), "ledger")
    assert m.summary["bookkeeping_files_compacted"] >= 2  # one ledger file per job run
    assert len(m.spark.read.format("delta").load(ledger).inputFiles()) == 1


def test_the_shared_audit_table_is_compacted_once_and_keeps_its_records(maintained):
    m = maintained
    assert m.audit_files_before >= 3  # one small file per job run
    assert m.audit_files_after_dry == m.audit_files_before
    audit = m.spark.read.format("delta").load(m.lake.cfg.audit_location)
    assert len(audit.inputFiles()) == 1
    assert_df_equality(
        sortable(audit), sortable(m.audit_before), ignore_row_order=True, ignore_nullable=True
    )


def test_a_failure_on_the_audit_table_fails_the_run_and_keeps_the_tables_results(
    maintained, monkeypatch
):
    import cdclake.lake.maintenance as maintenance

    def broken(*_):
        raise OSError("audit table unreachable")

    monkeypatch.setattr(maintenance, "maintain_audit", broken)
    rec = maintained.run(expect=EXIT_TABLE_FAILED)  # a rerun: the table itself is a noop
    assert rec["status"] in ("succeeded", "noop") and rec["error"] is None


def test_manifest_lists_exactly_the_snapshot_files(maintained):
    m = maintained
    assert m.summary["manifest_regenerated"] is True
    current = set().union(*snapshot_files(m.spark, m.lake.path).values())
    assert manifest_files(m.lake.path) == current


def test_vacuum_removes_old_unreferenced_files_and_keeps_newer(maintained):
    m = maintained
    assert m.summary["files_vacuumed"] == 1
    assert not m.junk_old.exists()
    assert m.junk_new.exists()
    # Files OPTIMIZE replaced stay for readers until the retention has passed.
    assert all(Path(f).exists() for f in m.files_before["p=b"])


def test_expires_only_old_tombstones_and_quarantine_rows(maintained):
    m, spark = maintained, maintained.spark
    assert m.summary["tombstones_expired"] == 1
    assert m.summary["quarantine_expired"] == 1
    tombs = spark.read.format("delta").load(m.tombstone_path).select("id")
    assert_df_equality(tombs, spark.createDataFrame([(5,)], "id int"), ignore_nullable=True)
    quarantine = spark.read.format("delta").load(m.quarantine_path).select("source_file")
    expected = spark.createDataFrame([("new.parquet",)], "source_file string")
    assert_df_equality(quarantine, expected, ignore_nullable=True)


def test_rerun_is_a_noop(maintained):
    m = maintained
    version, files = m.lake.version(), snapshot_files(m.spark, m.lake.path)
    again = m.run()
    assert again["status"] == "noop"
    for key in (
        "files_compacted",
        "files_vacuumed",
        "tombstones_expired",
        "quarantine_expired",
        "bookkeeping_files_compacted",
        "bookkeeping_files_vacuumed",
    ):
        assert again[key] == 0, key
    assert snapshot_files(m.spark, m.lake.path) == files
    new_ops = {
        r["operation"]
        for r in DeltaTable.forPath(m.spark, m.lake.path)
        .history()
        .where(f"version > {version}")
        .collect()
    }
    assert new_ops <= {"VACUUM START", "VACUUM END"}


def test_incremental_merge_still_works_after_maintenance(maintained):
    m = maintained
    hour = m.base - timedelta(hours=1)
    m.lake.w.cdc(
        hour_arg(hour),
        [
            {"Op": "U", "ts": dms_ts(hour), "id": 7, "p": "b", "v": "SEVEN"},
            {"Op": "I", "ts": dms_ts(hour), "id": 8, "p": "a", "v": "eight"},
            # Older than the kept tombstone of 5: must stay deleted.
            {"Op": "U", "ts": dms_ts(hour - timedelta(hours=2)), "id": 5, "p": "d", "v": "x"},
        ],
    )
    m.lake.inc(hour_arg(m.base))
    m.lake.assert_rows(
        [
            (1, "a", "one"),
            (2, "a", "two"),
            (3, "b", "three"),
            (6, "a", "six"),
            (7, "b", "SEVEN"),
            (8, "a", "eight"),
        ],
        SPARK_SCHEMA,
    )
    assert manifest_files(m.lake.path) == set().union(
        *snapshot_files(m.spark, m.lake.path).values()
    )


def test_a_failing_table_exits_1_and_the_others_still_run(spark, tmp_path):
    tables = [
        {"schema": "s", "name": "bad", "primary_key": ["id"]},
        {"schema": "s", "name": "empty", "primary_key": ["id"]},
    ]
    cfg = make_config(tmp_path, tables)
    log_dir = Path(cfg.table_location(cfg.table("s.bad")), "_delta_log")
    log_dir.mkdir(parents=True)
    (log_dir / f"{0:020d}.json").write_text("this is not a Delta log\n")
    doc = {"raw_root": cfg.raw_root, "curated_root": cfg.curated_root, "tables": tables}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "summary.json"
    code = main(["--config", str(path), "--summary-json", str(out)], spark=spark)
    assert code == EXIT_TABLE_FAILED
    recs = {r["table"]: r for r in json.loads(out.read_text())}
    assert recs["s.bad"]["status"] == "failed"
    assert "An error occurred while calling" not in recs["s.bad"]["error"]
    assert recs["s.empty"]["status"] == "noop"
