"""The local target's catalog and checks inside real DAG runs (``dag.test()``), on a small lake
written with delta-rs: ``register_catalog`` writes the local catalog from the Delta log and
each ``validate.*`` task runs the validation queries in DuckDB, with no Spark session in the
process; freshness is judged at the run's own time (the plan's ``as_of``), so the same lake
passes a run whose time is close to its newest change and fails one hours later.

The merge is a stand-in ``spark-submit`` that does nothing (the lake is already written) and
``local_source`` is ``none``: these runs exercise the catalog and the checks, not the job."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from tests.dags.conftest import DAGS

LOADED = datetime(2026, 11, 22, 10, tzinfo=UTC)  # the full load's time: the newest change


@pytest.fixture
def lake(tmp_path, monkeypatch):
    """A one-table lake (3 live rows) and its audit (a full load at LOADED), and the DAG
    settings pointing at it."""
    from deltalake import write_deltalake

    from cdclake.core.config import load_config

    config = tmp_path / "pipeline.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "raw_root": str(tmp_path / "raw"),
                "curated_root": str(tmp_path / "curated"),
                "glue_database": "cdc_lake",
                "tables": [{"schema": "s", "name": "t", "primary_key": ["id"]}],
            }
        )
    )
    cfg = load_config(config)
    ts = pa.timestamp("us", tz="UTC")
    write_deltalake(
        cfg.table_location(cfg.tables[0]),
        pa.table(
            {
                "id": pa.array([1, 2, 3], pa.int32()),
                "v": ["a", "b", "c"],
                "_cdc_commit_ts": pa.array([LOADED] * 3, ts),
            }
        ),
    )
    write_deltalake(
        cfg.audit_location,
        pa.table(
            {
                "table": ["s.t"],
                "mode": ["full"],
                "status": ["succeeded"],
                "started_at": pa.array([LOADED], ts),
                "rows_inserted": [3],
                "rows_deleted": [0],
                "newest_change_ts": pa.array([LOADED], ts),
            }
        ),
    )
    load = tmp_path / "raw" / "s" / "t" / "LOAD00000001.parquet"
    load.parent.mkdir(parents=True)
    load.write_bytes(b"")  # wait_full_load only looks for the file
    fake_submit = tmp_path / "spark-submit"
    fake_submit.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(0)\n")
    fake_submit.chmod(0o755)
    for key, value in {
        "TARGET": "local",
        "PIPELINE_CONFIG": str(config),
        "LOCAL_SOURCE": "none",
        "SPARK_SUBMIT": str(fake_submit),
        "GRACE_MINUTES": "0",
        "RETRIES": "0",
    }.items():
        monkeypatch.setenv(f"AIRFLOW__CDCLAKE__{key}", value)
    return cfg


def dags():
    from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags


def states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def not_spark(*args, **kwargs):
    raise AssertionError("the local catalog and checks must not start a Spark session")


def test_hourly_checks_judge_freshness_at_the_interval_end(lake, airflow_db, monkeypatch):
    monkeypatch.setattr("cdclake.session.build_session", not_spark)
    hourly = dags()["cdclake_hourly"]
    # Logical date 12:00 -> interval [11:00, 12:00): the newest change is 2 h old. Green.
    fresh = hourly.test(logical_date=LOADED + timedelta(hours=2))
    assert fresh.state == "success", states(fresh)
    from cdclake.catalog.embedded import load_catalog

    assert set(load_catalog(lake)) == {"s.t", "cdc_lake.s_t", "cdc_lake.cdclake_audit"}
    # The same lake, an interval ending 5 h after the newest change: freshness fails, and only
    # freshness (the row count and the key check still pass).
    stale = hourly.test(logical_date=LOADED + timedelta(hours=5))
    assert stale.state == "failed"
    assert {k for k, v in states(stale).items() if v != "success"} == {"validate.t"}


def test_manual_full_load_without_a_logical_date_judges_at_its_trigger_time(
    lake, airflow_db, monkeypatch
):
    """Triggered from the UI/REST with no logical date: no data interval; the checks use the
    run's own time (``run_after``), not a fixed demo date and not the wall clock."""
    monkeypatch.setattr("cdclake.session.build_session", not_spark)
    full = dags()["cdclake_full_load"]
    fresh = full.test(logical_date=None, run_after=LOADED + timedelta(minutes=30))
    assert fresh.state == "success", states(fresh)
    assert fresh.data_interval_end is None
    stale = full.test(logical_date=None, run_after=LOADED + timedelta(hours=4))
    assert stale.state == "failed"
    assert {k for k, v in states(stale).items() if v != "success"} == {"validate.t"}


def test_register_catalog_is_idempotent_and_follows_schema_changes(lake):
    from deltalake import write_deltalake

    from cdclake.catalog.embedded import register

    first = register(lake)
    assert first[0] == {"table": "s.t", "s.t": "created", "cdc_lake.s_t": "created"}
    again = register(lake)
    assert again[0] == {"table": "s.t", "s.t": "unchanged", "cdc_lake.s_t": "unchanged"}
    extra = pa.table({"id": pa.array([4], pa.int32()), "v": ["d"], "w": [1]})
    write_deltalake(lake.table_location(lake.tables[0]), extra, mode="append", schema_mode="merge")
    drift = register(lake)
    assert drift[0] == {"table": "s.t", "s.t": "updated", "cdc_lake.s_t": "updated"}
    assert Path(lake.curated_root, "_catalog", "local.json").exists()


def test_a_table_without_delta_log_fails_registration_and_its_checks(lake, tmp_path):
    """A configured table nobody has written: registration names it (the others are still
    registered), and its checks cannot run against a catalog that lacks it."""
    from cdclake.catalog.embedded import failed_checks, load_catalog, register
    from cdclake.catalog.register import CatalogError
    from cdclake.core.config import load_config

    doc = yaml.safe_load(Path(lake.curated_root, "..", "pipeline.yaml").read_text())
    doc["tables"].append({"schema": "s", "name": "never", "primary_key": ["id"]})
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump(doc))
    cfg = load_config(config)
    with pytest.raises(CatalogError, match="s.never") as err:
        register(cfg)
    assert [r["table"] for r in err.value.results] == ["s.t", "_cdclake.audit"]
    assert "cdc_lake.s_never" not in load_catalog(cfg)
    assert failed_checks(cfg, "s.t", LOADED) == {}
    with pytest.raises(CatalogError, match="cdc_lake.s_never"):
        failed_checks(cfg, "s.never", LOADED)
