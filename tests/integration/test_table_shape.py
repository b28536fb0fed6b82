"""Guarantees "Readers see live rows only", "Cost follows the change" (partitioning and
pruning) and "Spectrum-ready" (the manifest)."""

import json
import os
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from pyspark.sql import types as T

from tests.integration.conftest import Lake, ts


def manifest_files(table_path: str) -> set[str]:
    out = set()
    for root, _, names in os.walk(Path(table_path) / "_symlink_format_manifest"):
        for n in names:
            if n == "manifest":
                out |= {
                    line.strip().removeprefix("file:")
                    for line in (Path(root) / n).read_text().splitlines()
                    if line.strip()
                }
    return out


def snapshot_files(spark, table_path: str) -> set[str]:
    return {
        f.removeprefix("file:") for f in spark.read.format("delta").load(table_path).inputFiles()
    }


def test_plain_read_shows_source_columns_and_types_and_live_rows(spark, tmp_path):
    schema = {
        "order_id": pa.int64(),
        "line_no": pa.int16(),
        "sale_date": pa.date32(),
        "price": pa.decimal128(10, 2),
        "created": pa.timestamp("us", tz="UTC"),
        "note": pa.string(),
        "card_number": pa.string(),
    }
    lake = Lake(
        spark,
        tmp_path,
        tables=[
            {
                "schema": "shop",
                "name": "lines",
                "primary_key": ["order_id", "line_no"],
                "partition_by": ["sale_date"],
                "drop_columns": ["card_number"],
            }
        ],
        schema=schema,
    )
    created = datetime(2026, 11, 1, 12, tzinfo=UTC)
    row = {"created": created, "note": "n", "card_number": "4111"}
    lake.w.load(
        [
            {"order_id": 1, "line_no": 1, "sale_date": date(2026, 11, 1), "price": Decimal("9.99")}
            | row,
            {"order_id": 1, "line_no": 2, "sale_date": date(2026, 11, 1), "price": Decimal("1.00")}
            | row,
            {"order_id": 2, "line_no": 1, "sale_date": date(2026, 11, 2), "price": Decimal("5.00")}
            | row,
        ]
    )
    lake.full()
    lake.w.cdc(
        "2026-11-22T10",
        [
            # composite-key delete with only the key columns
            {"Op": "D", "ts": ts(1), "seq": "1", "order_id": 1, "line_no": 2},
            # partition move of a composite-key row
            {
                "Op": "U",
                "ts": ts(2),
                "seq": "2",
                "order_id": 2,
                "line_no": 1,
                "sale_date": date(2026, 11, 3),
                "price": Decimal("6.50"),
            }
            | row,
        ],
    )
    lake.inc("2026-11-22T11")
    expected_schema = T.StructType(
        [
            T.StructField("order_id", T.LongType()),
            T.StructField("line_no", T.ShortType()),
            T.StructField("sale_date", T.DateType()),
            T.StructField("price", T.DecimalType(10, 2)),
            T.StructField("created", T.TimestampType()),
            T.StructField("note", T.StringType()),
        ]
    )
    lake.assert_rows(
        [
            (1, 1, date(2026, 11, 1), Decimal("9.99"), created, "n"),
            (2, 1, date(2026, 11, 3), Decimal("6.50"), created, "n"),
        ],
        schema=expected_schema,
    )
    full = lake.df(bookkeeping=True)
    extra = [c for c in full.columns if c not in expected_schema.fieldNames()]
    assert extra and all(c.startswith("_") for c in extra)
    assert "card_number" not in full.columns
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{lake.path}`").first()
    assert detail["partitionColumns"] == ["sale_date"]
    # The job keeps the manifests itself (cdclake.lake.manifest); Delta's hook is off.
    assert detail["properties"]["delta.compatibility.symlinkFormatManifest.enabled"] == "false"
    assert detail["properties"].get("delta.enableDeletionVectors", "false") == "false"
    assert sorted(p.name for p in Path(lake.path).glob("sale_date=*")) == [
        "sale_date=2026-11-01",
        "sale_date=2026-11-02",
        "sale_date=2026-11-03",
    ]
    assert manifest_files(lake.path) == snapshot_files(spark, lake.path)


def test_merge_rewrites_only_the_partitions_the_batch_touches(spark, tmp_path):
    lake = Lake(spark, tmp_path)
    parts = [f"p{i:02d}" for i in range(40)]
    lake.w.load([{"id": i, "p": parts[i % 40], "v": "x"} for i in range(400)])
    lake.full()
    before = snapshot_files(spark, lake.path)
    # id 5 lives in p05 and moves to p07 (key-only delete of id 6 in p06 is the 3rd partition)
    lake.w.cdc(
        "2026-11-22T10",
        [
            {"Op": "U", "ts": ts(1), "seq": "1", "id": 5, "p": "p07", "v": "moved"},
            {"Op": "D", "ts": ts(2), "seq": "2", "id": 6},
            {"Op": "I", "ts": ts(3), "seq": "3", "id": 1000, "p": "p07", "v": "new"},
        ],
    )
    rec = lake.inc("2026-11-22T11")
    assert (rec["rows_inserted"], rec["rows_updated"], rec["rows_deleted"]) == (1, 1, 1)
    after = snapshot_files(spark, lake.path)
    touched = {"p=p05", "p=p06", "p=p07"}
    removed, added = before - after, after - before
    assert removed and {Path(f).parent.name for f in removed} <= touched
    assert {Path(f).parent.name for f in added} <= touched
    untouched_before = {f for f in before if Path(f).parent.name not in touched}
    assert untouched_before <= after  # the other 37 partitions' files were not rewritten
    log = sorted((Path(lake.path) / "_delta_log").glob("*.json"))[-1]
    commit = [json.loads(line) for line in log.read_text().splitlines()]
    info = next(a["commitInfo"] for a in commit if "commitInfo" in a)
    assert info["operation"] == "MERGE"
    # The MERGE condition carries constant partition predicates (and the key range).
    assert re.search(r"p#\d+ IN \(p05,p06,p07\)", info["operationParameters"]["predicate"])
    assert manifest_files(lake.path) == snapshot_files(spark, lake.path)


def test_manifest_matches_snapshot_after_every_commit_including_emptied_partition(spark, tmp_path):
    lake = Lake(spark, tmp_path)
    lake.w.load([{"id": 1, "p": "a", "v": "x"}, {"id": 2, "p": "b", "v": "y"}])
    lake.full()
    assert manifest_files(lake.path) == snapshot_files(spark, lake.path)
    lake.w.cdc("2026-11-22T10", [{"Op": "D", "ts": ts(1), "seq": "1", "id": 2}])
    lake.inc("2026-11-22T11")
    assert manifest_files(lake.path) == snapshot_files(spark, lake.path)
    assert all("p=b" not in f for f in manifest_files(lake.path))
    lake.w.cdc(
        "2026-11-22T11",
        [{"Op": "U", "ts": ts(1, hour=11), "seq": "2", "id": 1, "p": "c", "v": "z"}],
    )
    lake.inc("2026-11-22T12")
    assert manifest_files(lake.path) == snapshot_files(spark, lake.path)
    lake.full()  # a reload replaces everything: the manifest follows
    assert manifest_files(lake.path) == snapshot_files(spark, lake.path)
