"""The ``make run`` driver end to end on PostgreSQL (``--source postgres``, the default of
``make run``): a throwaway cluster, real transactions over two hours of its faked clock, the
capture in place of DMS (``check_source`` flushes it); the source is ``SELECT *`` of each
table. The helpers and the synthetic-source run are in test_local_target.py."""

from __future__ import annotations

import pytest

from tests.dags.test_local_target import TABLES, assert_runs_and_tables, run_demo


@pytest.mark.slow
@pytest.mark.airflow
@pytest.mark.spark
@pytest.mark.postgres
def test_postgres_run_reaches_the_source_state(tmp_path):
    proc, report = run_demo(
        tmp_path, "--source", "postgres", "--hours", "2", "--travel-rows", "200",
        "--sales-rows", "150", "--backfill-hour", "0",
    )  # fmt: skip
    assert report["source"] == "postgres"
    assert_runs_and_tables(proc, report, ["full", "hour-08", "hour-09", "backfill-08"])
    # Hour 08's run was made while the source's clock was still in hour 08; what it committed
    # afterwards landed in hour 08's folder late, and hour 09's run applied it.
    assert report["source_clock_at_runs"]["hour-08"].startswith("2026-11-22T08:")
    late = report["late_files"]
    assert sorted(name.split("/")[0] for name in late) == sorted(TABLES), late
    assert all("/2026/11/22/08/" in name for name in late), late
    assert all(r["files"] >= 2 for r in report["runs"][2]["records"])  # late + own hour
    assert "Late files (written into an hour's folder after that hour's run): 2" in proc.stdout
    assert set(report["hard_cases"]) >= {
        "changes_during_full_load",
        "ties_in_transaction",
        "insert_delete_insert",
        "interleaved_transactions",
        "rollbacks",
        "key_only_deletes",
        "blog_round",
        "primary_key_update",
        "partition_move",
        "added_column",
        "late_file",
        "late_file_followups",
    }
    assert report["capture_dropped"]  # slot and publication removed at the end
