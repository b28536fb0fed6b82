"""Airflow for the DAG tests: one migrated SQLite database per test run (its home is set in
tests/conftest.py before Airflow is imported), and the DAG folder importable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
if str(DAGS) not in sys.path:
    sys.path.insert(0, str(DAGS))


@pytest.fixture(scope="session")
def airflow_db():
    """``airflow db migrate`` once (dag.test() needs the metadata database)."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run(  # noqa: S603
        [str(airflow), "db", "migrate"], check=True, capture_output=True, timeout=300
    )
