import os

import pytest

os.environ.setdefault("CDCLAKE_SPARK_LOG_LEVEL", "ERROR")


@pytest.fixture(scope="session")
def spark():
    """One Spark session (local[2], UI off, few shuffle partitions) for the whole run."""
    from cdclake.session import build_session

    session = build_session("local", app_name="cdclake-tests", shuffle_partitions=2)
    yield session
    session.stop()
