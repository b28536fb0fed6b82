import os
import tempfile

import pytest

os.environ.setdefault("CDCLAKE_SPARK_LOG_LEVEL", "ERROR")
# Airflow reads its home and settings once, when first imported (by the DAG tests): give the
# test run its own throw-away home and SQLite database, never ~/airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="cdclake-airflow-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# Each test process (pytest-xdist worker) gets its own Spark warehouse folder.
os.environ.setdefault("CDCLAKE_WAREHOUSE_DIR", tempfile.mkdtemp(prefix="cdclake-warehouse-"))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(os.path.dirname(__file__), "..", "dags")


# Tests are marked by what they start, so `make test-fast` can leave those out (pytest -m).
FIXTURE_MARKERS = {
    "spark": "spark",
    "airflow_db": "airflow",
    "moto": "moto",
    "moto_url": "moto",
    "moto_s3": "moto",
    "aws": "moto",
    "lake_on_s3": "moto",
    "synth": "cdk",
    "synths": "cdk",
}


# Mean seconds of a test by the costliest thing it starts (a CI run on 2026-12-04), to run
# the longest files first (see below).
COST = {"slow": 120, "airflow": 13, "spark": 11, "moto": 1.4, "cdk": 0.9, "postgres": 0.5}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
    # `make test` hands whole files to two workers in collection order
    # (--dist loadfile --no-loadscope-reorder): the costliest files first, so that the run does
    # not end with one worker on a long end-to-end test while the other idles. Stable: within a
    # file, and between files of equal cost, the collected order stays.
    cost: dict[object, float] = {}
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        cost[item.path] = cost.get(item.path, 0) + max(
            [0.04] + [COST[m] for m in marks if m in COST]
        )
    items.sort(key=lambda item: -cost[item.path])


@pytest.fixture(scope="session")
def spark():
    """One Spark session (local[2], UI off, few shuffle partitions, expressions interpreted:
    tiny tables, many query shapes) for the whole run. Generated code is exercised by the
    quick bench (which switches it back on) and the EMR-like sandbox (its own spark-submit)."""
    from cdclake.session import INTERPRETED_CONF, build_session

    session = build_session(
        "local", app_name="cdclake-tests", shuffle_partitions=2, extra=INTERPRETED_CONF
    )
    yield session
    session.stop()
