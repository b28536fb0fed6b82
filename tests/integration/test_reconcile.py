"""The reconciliation check: the lake against a source extract, per key, as of the extract's
moment; what DMS cannot capture (a TRUNCATE, a primary-key update) shows as keys extra in or
missing from the lake, and keys the lake changed after the moment are not judged."""

from __future__ import annotations

import json

from cdclake.cli.reconcile import main
from tests.dms import DmsTable, make_config, write_config
from tests.integration.conftest import Lake, ts

MOMENT = "2026-11-22 10:30:00.000000"  # the extract's: a DMS full load's task start


def lake_with_changes(spark, root) -> Lake:
    lake = Lake(spark, root / "lake")
    lake.w.load([{"id": i, "p": "a", "v": "x"} for i in (1, 2, 3)])
    lake.full()
    lake.w.cdc(
        "2026-11-22T10",
        [
            {"Op": "U", "ts": ts(1), "seq": "1", "id": 1, "p": "a", "v": "n"},
            {"Op": "D", "ts": ts(2), "seq": "2", "id": 2, "p": "a", "v": "x"},
            {"Op": "I", "ts": ts(3), "seq": "3", "id": 4, "p": "b", "v": "y"},
        ],
    )
    lake.inc("2026-11-22T11")
    return lake


def extract(lake: Lake, root, rows: list[dict]) -> str:
    """A source extract as a DMS full-load-only task writes it (LOAD files, stamped)."""
    cfg = make_config(root / "extract", [{"schema": "s", "name": "t", "primary_key": ["id"]}])
    DmsTable(cfg, lake.name, lake.w.schema).load(rows, ts=MOMENT)
    return cfg.raw_root


def reconcile(lake: Lake, root, where: str, *args: str) -> tuple[int, dict]:
    out = root / "reconcile.json"
    config = write_config(lake.cfg, root / "pipeline.yaml")
    code = main(
        ["--config", str(config), "--extract", where, "--summary-json", str(out), *args],
        spark=lake.spark,
    )
    return code, json.loads(out.read_text())[0]


def test_a_lake_equal_to_the_source_passes(spark, tmp_path):
    lake = lake_with_changes(spark, tmp_path)
    source = [
        {"id": 1, "p": "a", "v": "n"},
        {"id": 3, "p": "a", "v": "x"},
        {"id": 4, "p": "b", "v": "y"},
    ]
    code, rec = reconcile(lake, tmp_path, extract(lake, tmp_path, source))
    assert code == 0
    assert {k: rec[k] for k in ("status", "source_rows", "lake_rows", "equal")} == {
        "status": "succeeded",
        "source_rows": 3,
        "lake_rows": 3,
        "equal": 3,
    }
    assert rec["as_of"].startswith("2026-11-22T10:30:00")
    assert rec["columns_compared"] == ["id", "p", "v"]


def test_what_dms_missed_is_named_key_by_key(spark, tmp_path):
    lake = lake_with_changes(spark, tmp_path)
    # At the source: id 3 truncated away (DMS does not capture TRUNCATE), id 1 has another
    # value, id 5 arrived through a primary-key update DMS ignored.
    source = [
        {"id": 1, "p": "a", "v": "other"},
        {"id": 4, "p": "b", "v": "y"},
        {"id": 5, "p": "a", "v": "x"},
    ]
    code, rec = reconcile(lake, tmp_path, extract(lake, tmp_path, source))
    assert code == 1
    counts = ("equal", "different", "missing_in_lake", "extra_in_lake", "changed_since")
    assert [rec[k] for k in counts] == [1, 1, 1, 1, 0]
    assert rec["status"] == "failed" and "1 key(s) missing in the lake, 1 extra" in rec["error"]
    assert [json.loads(k) for k in rec["sample_keys"]] == [
        {"id": 1, "status": "different"},
        {"id": 3, "status": "extra_in_lake"},
        {"id": 5, "status": "missing_in_lake"},
    ]


def test_keys_the_lake_changed_after_the_moment_are_not_judged(spark, tmp_path):
    lake = lake_with_changes(spark, tmp_path)
    lake.w.cdc(
        "2026-11-22T10",
        [
            {"Op": "U", "ts": ts(45), "seq": "4", "id": 4, "p": "b", "v": "later"},
            {"Op": "D", "ts": ts(46), "seq": "5", "id": 3, "p": "a", "v": "x"},
        ],
    )
    lake.inc("2026-11-22T11")
    # The extract (as of 10:30) still has id 3 and id 4's old value: neither is a mismatch.
    source = [
        {"id": 1, "p": "a", "v": "n"},
        {"id": 3, "p": "a", "v": "x"},
        {"id": 4, "p": "b", "v": "y"},
    ]
    code, rec = reconcile(lake, tmp_path, extract(lake, tmp_path, source))
    assert (code, rec["equal"], rec["changed_since"]) == (0, 1, 2)
    # Given an earlier moment explicitly, id 1's update (10:01) is after it too.
    code, rec = reconcile(
        lake, tmp_path, extract(lake, tmp_path, source), "--as-of", "2026-11-22T10:00:00Z"
    )
    assert (code, rec["equal"], rec["changed_since"]) == (0, 0, 3)


def test_a_missing_extract_fails_the_table_and_names_the_folder(spark, tmp_path):
    lake = lake_with_changes(spark, tmp_path)
    code, rec = reconcile(lake, tmp_path, str(tmp_path / "nowhere"))
    assert code == 1 and "cannot read the extract at" in rec["error"]
