"""The ``make run`` driver end to end on a small demo, through the local target of the Airflow
DAGs (``dag.test()``): the full-load DAG, one hourly DAG run per CDC hour plus one that catches
up the late files, and a backfill run of an earlier hour; every task of every run succeeds
(merge by local ``spark-submit``, catalog, validation) and the lake equals the generator's
expected state, table by table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from demo.run_demo import main

ROOT = Path(__file__).resolve().parents[2]
TABLES = ["delta_emr_source.travel_details", "delta_emr_source.ticket_sales"]


def write_config(tmp_path: Path, raw_root: str, curated_root: str) -> Path:
    """conf/pipeline.yaml with its roots replaced."""
    doc = yaml.safe_load((ROOT / "conf" / "pipeline.yaml").read_text())
    doc["raw_root"], doc["curated_root"] = raw_root, curated_root
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_refuses_s3_roots(tmp_path):
    cfg = write_config(tmp_path, "s3://raw-bucket/raw", "s3://lake-bucket/curated")
    assert main(["--config", str(cfg), "--hours", "4"]) == 2


@pytest.mark.slow
@pytest.mark.airflow
@pytest.mark.spark
def test_demo_run_reaches_the_source_state(tmp_path):
    cfg = write_config(tmp_path, str(tmp_path / "lake" / "raw"), str(tmp_path / "lake" / "curated"))
    stale = tmp_path / "lake" / "curated" / "leftover.txt"  # wiped before the demo starts
    stale.parent.mkdir(parents=True)
    stale.write_text("from an earlier demo")
    report_path = tmp_path / "report.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "jobs"), str(ROOT)])
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env["CDCLAKE_WAREHOUSE_DIR"] = str(tmp_path / "spark-warehouse")
    env["CDCLAKE_SPARK_LOG_LEVEL"] = "ERROR"
    cmd = [
        sys.executable,
        "-m",
        "demo.run_demo",
        "--config",
        str(cfg),
        "--hours",
        "4",
        "--travel-rows",
        "400",
        "--sales-rows",
        "150",
        "--report-json",
        str(report_path),
    ]
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    out = proc.stdout + proc.stderr[-5000:]
    assert proc.returncode == 0, out
    assert not stale.exists()

    report = json.loads(report_path.read_text())
    assert report["ok"], out
    labels = [r["label"] for r in report["runs"]]
    assert labels == [
        "full",
        "hour-08",
        "hour-09",
        "hour-10",
        "hour-11",
        "hour-12",
        "backfill-10",
    ]
    for run in report["runs"]:
        assert run["state"] == "success" and not run["failed_tasks"], run
        assert sorted(r["table"] for r in run["records"]) == sorted(TABLES), run
        assert all(r["status"] in ("succeeded", "noop") for r in run["records"]), run
    # The late files only the run after the last CDC hour can see were applied by it.
    catch_up = report["runs"][5]["records"]
    assert all(r["files"] >= 1 for r in catch_up), catch_up
    # The backfill re-read its hour and changed nothing.
    assert report["backfill_changed_nothing"]
    backfill = report["runs"][6]["records"]
    assert all(r["files"] > 0 for r in backfill), backfill
    assert all(
        r["rows_inserted"] == r["rows_updated"] == r["rows_deleted"] == 0 for r in backfill
    ), backfill

    tables = {t["table"]: t for t in report["tables"]}
    assert sorted(tables) == sorted(TABLES)
    for name, t in tables.items():
        assert t["equal"], (name, t["problems"])
        assert t["expected_rows"] == t["actual_rows"] > 0
        assert f"PASS  {name}" in proc.stdout
    assert "Demo PASSED" in proc.stdout
