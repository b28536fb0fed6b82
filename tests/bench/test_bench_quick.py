"""Smoke test of `make bench`: the quick matrix runs end to end in the test session's Spark,
every arm's result matches the expected table, and the outputs have their structure.
Timings are never asserted."""

import json

import pytest

from bench import run as bench_run
from bench.arms import PHASES
from cdclake.session import INTERPRETED_CONF, settings


@pytest.mark.slow
def test_quick_bench_writes_checked_results(spark, tmp_path, monkeypatch):
    monkeypatch.setattr(bench_run, "session", lambda: spark)
    out = tmp_path / "results"
    # The test session interprets expressions (tests/conftest.py); the bench runs with Spark's
    # defaults, as EMR does: the job chooses per table run (merge.interpreted_max_mb: these
    # tiny tables are interpreted), the other Spark arms generate code.
    with settings(spark, dict.fromkeys(INTERPRETED_CONF)):  # back to Spark's defaults
        doc = bench_run.run(bench_run.quick_plan(), out, tmp_path / "work", "quick", stop=False)

    assert {p.name for p in out.iterdir()} == {"results.json", "results.md", "results.png"}
    assert json.loads((out / "results.json").read_text())["ratios"] == doc["ratios"]
    arms = {r["arm"]: r for r in doc["results"]}
    assert set(arms) == {"job", "blog", "rewrite", "delta-rs"}
    for rec in arms.values():
        assert rec["status"] == "ok", rec
        assert set(rec["phases_median_s"]) == set(PHASES)
        assert rec["rewrite"]["files_added"] >= 1
    assert set(doc["ratios"]) == {
        "job_vs_blog_10M_1pct_hot",
        "job_vs_delta_rs_10M_1pct_hot",
        "bytes_rewritten_vs_floor",
        "job_vs_floor",
        "time_10M_vs_1M_same_batch",
        "commit_1000_vs_10",
        "many_tables_s_per_table",
        "many_tables_concurrent_vs_sequential",
    }
    assert all(r["value"] is not None for r in doc["ratios"].values())
    assert set(doc["log_growth"]["per_run"]) == {"5", "10"}
    # Many tables: every arm ran (and bench.many checked every table's rows after it).
    many = doc["many"]["arms"]
    assert {a: r["tables"] for a, r in many.items()} == {
        "job concurrent": 4,
        "job sequential": 2,
        "delta-rs": 4,
    }
    assert many["job concurrent"]["spark_jobs_per_table"] > 0
    md = (out / "results.md").read_text()
    assert "## Many tables in one hourly run" in md
    assert "## Ratios" in md and "| job |" not in md.split("## Per arm")[0]
