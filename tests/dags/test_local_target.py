"""The ``make run`` driver end to end on small demos, through the local target of the Airflow
DAGs (``dag.test()``): the full-load DAG, one hourly DAG run per CDC hour, and a backfill run of
an earlier hour; every task of every run succeeds (merge by local ``spark-submit``, catalog,
validation) and the lake, read through Spark SQL over the local catalog, equals the source
table by table.

* on the synthetic generator (``--source demo``): plus one run that catches up its last late
  files; the source is the generator's exact expected state;
* on PostgreSQL (``--source postgres``): in test_local_target_postgres.py (its own file, so
  the two long runs can go to different test workers)."""

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
# Checked too, version by version against the source's timeline (conf: history on).
HISTORIES = ["delta_emr_source.travel_details_history"]


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
    assert main(["--config", str(cfg), "--source", "demo", "--hours", "4"]) == 2


def test_refuses_too_few_hours_for_postgres(tmp_path):
    cfg = write_config(tmp_path, str(tmp_path / "raw"), str(tmp_path / "curated"))
    assert main(["--config", str(cfg), "--source", "postgres", "--hours", "1"]) == 2


def run_demo(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``python -m demo.run_demo`` on a config under ``tmp_path``; its report."""
    cfg = write_config(tmp_path, str(tmp_path / "lake" / "raw"), str(tmp_path / "lake" / "curated"))
    report_path = tmp_path / "report.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "jobs"), str(ROOT)])
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env["CDCLAKE_WAREHOUSE_DIR"] = str(tmp_path / "spark-warehouse")
    env["CDCLAKE_SPARK_LOG_LEVEL"] = "ERROR"
    cmd = [sys.executable, "-m", "demo.run_demo", "--config", str(cfg), *args]
    cmd += ["--report-json", str(report_path)]
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    out = proc.stdout + proc.stderr[-5000:]
    assert proc.returncode == 0, out
    report = json.loads(report_path.read_text())
    assert report["ok"], out
    return proc, report


def assert_runs_and_tables(proc: subprocess.CompletedProcess, report: dict, labels: list[str]):
    assert [r["label"] for r in report["runs"]] == labels
    for run in report["runs"]:
        assert run["state"] == "success" and not run["failed_tasks"], run
        assert sorted(r["table"] for r in run["records"]) == sorted(TABLES), run
        assert all(r["status"] in ("succeeded", "noop") for r in run["records"]), run
    # The backfill re-read its hour and changed nothing.
    assert report["backfill_changed_nothing"]
    backfill = report["runs"][-1]["records"]
    assert all(r["files"] > 0 for r in backfill), backfill
    assert all(
        r["rows_inserted"] == r["rows_updated"] == r["rows_deleted"] == 0 for r in backfill
    ), backfill

    tables = {t["table"]: t for t in report["tables"]}
    assert sorted(tables) == sorted(TABLES + HISTORIES)
    for name, t in tables.items():
        assert t["equal"], (name, t["problems"])
        assert t["expected_rows"] == t["actual_rows"] > 0
        assert f"PASS  {name}" in proc.stdout
    assert "Demo PASSED" in proc.stdout


@pytest.mark.slow
@pytest.mark.airflow
@pytest.mark.spark
def test_demo_run_reaches_the_source_state(tmp_path):
    stale = tmp_path / "lake" / "curated" / "leftover.txt"  # wiped before the demo starts
    stale.parent.mkdir(parents=True)
    stale.write_text("from an earlier demo")
    proc, report = run_demo(
        tmp_path, "--source", "demo", "--hours", "4", "--travel-rows", "400", "--sales-rows", "150"
    )
    assert not stale.exists()
    assert report["source"] == "demo"
    labels = ["full", "hour-08", "hour-09", "hour-10", "hour-11", "hour-12", "backfill-10"]
    assert_runs_and_tables(proc, report, labels)
    # The late files only the run after the last CDC hour can see were applied by it.
    catch_up = report["runs"][5]["records"]
    assert all(r["files"] >= 1 for r in catch_up), catch_up
