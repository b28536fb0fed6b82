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


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def spark():
    """One Spark session (local[2], UI off, few shuffle partitions, expressions interpreted:
    tiny tables, many query shapes) for the whole run. Generated code is exercised by the
    quick bench and the EMR-like sandbox, which run the job with Spark's defaults."""
    from cdclake.session import INTERPRETED_CONF, build_session

    session = build_session(
        "local", app_name="cdclake-tests", shuffle_partitions=2, extra=INTERPRETED_CONF
    )
    yield session
    session.stop()
