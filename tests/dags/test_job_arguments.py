"""The argument lists the DAGs hand to the jobs are ones the jobs accept: each DAG's own
``plan`` task is called as Airflow calls it, and what it plans for every job task is parsed
with that job's own parser (a renamed or dropped option fails here, not in a scheduled run).

The jobs themselves run in the demo and sandbox tests; the reconcile task never runs there
(no source extract), so this is where its arguments are checked."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from cdclake.cli import maintenance, merge, reconcile
from tests.dags.test_dag_structure import load_dagbag

END = datetime(2026, 12, 5, 10, tzinfo=UTC)
EXTRACT = "s3://example-raw/reconcile"


def planned(dag, params: dict, run_type: str = "scheduled") -> dict:
    """The plan task's XCom: its callable given the context keys it names, as Airflow does."""
    call = dag.get_task("plan").python_callable
    context = {
        "run_id": f"{run_type}__2026-12-05T09:00:00+00:00",
        "params": params,
        "data_interval_start": END.replace(hour=9),
        "data_interval_end": END,
        "dag_run": SimpleNamespace(run_type=run_type, logical_date=END, run_after=END),
    }
    names = inspect.signature(call).parameters
    return call(**{k: v for k, v in context.items() if k in names})


@pytest.fixture(params=["local", "aws"])
def dags(request, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW__CDCLAKE__RECONCILE_EXTRACT", EXTRACT)
    return load_dagbag(monkeypatch, tmp_path, request.param).dags


@pytest.mark.parametrize("params", [{}, {"tables": ["delta_emr_source.travel_details"]}])
def test_hourly_and_backfill_arguments_parse_as_the_merge_job_reads_them(dags, params):
    hourly = dags["cdclake_hourly"]
    for run_type, since in (("scheduled", None), ("backfill", END.replace(hour=9))):
        a = merge.parse_args(planned(hourly, params, run_type)["args"])
        assert (a.load, a.window.until, a.window.since) == ("incremental", END, since)
        assert a.table_names == params.get("tables", [])
        assert a.run_id.startswith("cdclake_hourly")


def test_full_load_arguments_parse_as_the_merge_job_reads_them(dags):
    a = merge.parse_args(planned(dags["cdclake_full_load"], {})["args"])
    assert (a.load, a.window) == ("full", None)


def test_maintenance_and_reconcile_arguments_parse_as_their_jobs_read_them(dags):
    out = planned(dags["cdclake_maintenance"], {"tables": ["delta_emr_source.travel_details"]})
    m = maintenance.parse_args(out["args"])
    assert (m.now, m.table_names) == (END, ["delta_emr_source.travel_details"])
    r = reconcile.parser().parse_args(out["reconcile_args"])
    assert (r.extract, r.tables, r.run_id) == (EXTRACT, "delta_emr_source.travel_details", m.run_id)
    assert r.profile == m.profile
    # Local tasks write summaries (and logs) beside each other: never into the same file.
    assert r.summary_json is None or r.summary_json != m.summary_json
