"""The MWAA runtime: the lock's Airflow environment is Airflow 3.0.6's published constraints, and
the DAG folder `make package` writes imports cleanly in a fresh venv built from exactly the
packaged ``requirements.txt`` (plus ``apache-airflow``, which MWAA's image has).

The venv runs on Python 3.12 when the machine has one (MWAA 3.0.6 does; ``CDCLAKE_MWAA_PYTHON``
points at one), else on the machine's Python. Its one rewrite: the requirements' constraints
URL (raw.githubusercontent.com is not reachable from CI) is replaced by the verbatim copy in
``infra/mwaa/``; everything else comes from PyPI (or uv's cache of it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from infra import layout
from infra.envconf import load_env
from infra.mwaa_runtime import (
    airflow_group_requirements,
    closure_mismatches,
    constraints_file,
    constraints_url,
    group_closure,
    normalize,
    read_constraints,
)
from infra.package import build
from infra.runtime import runtime_pins
from tests.runtime import clean_env, find_python, fresh_venv

DEPLOYMENT = {  # what `make deploy` uploads beside the DAGs (stack outputs)
    "EmrApplicationId": "00fabc123",
    "EmrJobRoleArn": "arn:aws:iam::123456789012:role/cdclake-prod-emr-job",
    "EmrLogUri": "s3://example-logs/emr/",
    "JobEntryPoint": "s3://example-artifacts/jobs/cdc_merge.py",
    "JobConfigUri": "s3://example-artifacts/conf/pipeline.yaml",
    "SparkSubmitParameters": "--py-files s3://example-artifacts/jobs/cdclake.zip",
    "DmsTaskArn": "arn:aws:dms:eu-west-1:123456789012:task:EXAMPLE",
    "AthenaWorkGroup": "cdclake-prod",
    "GlueDatabase": "cdc_lake",
    "AlarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:cdclake-prod-alarms",
}


def test_the_lock_is_airflow_3_0_6s_constraints():
    """Every distribution the airflow group installs has the version the constraints pin."""
    constraints = read_constraints()
    closure = group_closure()
    assert closure_mismatches(closure, constraints) == {}
    assert closure["apache-airflow"] == runtime_pins()["airflow"]
    # Only Airflow's own distributions are absent from its constraints file.
    assert {n for n in closure if n not in constraints} <= {
        "apache-airflow",
        "apache-airflow-core",
        "apache-airflow-task-sdk",
    }
    assert (constraints["apache-airflow-providers-amazon"], constraints["pyarrow"]) == (
        "9.12.0",
        "18.1.0",
    )


def test_requirements_are_pinned_to_the_constraints():
    constraints = read_constraints()
    for req in airflow_group_requirements():
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", req).groups()
        assert constraints[normalize(name)] == version, req
    assert constraints_file().read_text().splitlines()[2].strip("# ") == constraints_url()


def _checkpointed_table(path: Path) -> None:
    """A Delta table past a checkpoint, its early commits gone (written by delta-rs)."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    for i in range(3):
        data = pa.table({"id": [i], "p": ["a"], "v": ["x"]})
        write_deltalake(str(path), data, mode="append", partition_by=["p"])
    DeltaTable(str(path)).create_checkpoint()
    for old in (0, 1):
        (path / "_delta_log" / f"{old:020d}.json").unlink()


@pytest.mark.slow
@pytest.mark.airflow
def test_packaged_dags_import_in_a_fresh_mwaa_venv(tmp_path):
    pytest.importorskip("deltalake")
    env = load_env("prod")
    dist = build(env, tmp_path / "dist")
    dags = tmp_path / "dags"
    shutil.copytree(dist / layout.DAGS_PREFIX, dags)
    (dags / "cdclake_conf" / "deployment.json").write_text(json.dumps(DEPLOYMENT))

    requirements = (dist / layout.MWAA_REQUIREMENTS_KEY).read_text()
    assert f'--constraint "{constraints_url()}"' in requirements
    local = tmp_path / "requirements.txt"
    local.write_text(requirements.replace(constraints_url(), str(constraints_file())))

    python, _ = find_python(runtime_pins()["mwaa_python"], "CDCLAKE_MWAA_PYTHON")
    py = fresh_venv(
        tmp_path / "venv",
        python,
        f"apache-airflow=={runtime_pins()['airflow']}",  # what MWAA's image has
        "-r",
        str(local),
        args=("-c", str(constraints_file())),
    )
    table = tmp_path / "table"
    _checkpointed_table(table)
    home = tmp_path / "airflow-home"
    # Airflow 3's DAG processor and task runner put the bundle root (the DAG folder) on
    # sys.path (airflow/dag_processing/processor.py); the script does the same.
    script = f"""
import json, sys
sys.path.append({str(dags)!r})
from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder={str(dags)!r})
from cdclake.catalog.deltalog import LocalStore, read_table_meta
import pyarrow
meta = read_table_meta(LocalStore(), {str(table)!r})
print(json.dumps({{"errors": bag.import_errors, "dags": sorted(bag.dag_ids),
                   "python": "%d.%d" % sys.version_info[:2], "pyarrow": pyarrow.__version__,
                   "meta": [meta.version, [f.name for f in meta.fields]]}}), flush=True)
# Skip interpreter teardown: a library thread of this environment aborts it ("terminate called
# without an active exception") after the work above is done and reported.
import os; os._exit(0)
"""
    out = subprocess.run(  # noqa: S603 - the fresh venv's Python on our own script
        [str(py), "-c", script],
        env=clean_env(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CDCLAKE__TARGET="aws",  # as the stack configures MWAA
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"MWAA-like venv on Python {report['python']}")
    assert report["errors"] == {}
    assert report["dags"] == ["cdclake_full_load", "cdclake_hourly", "cdclake_maintenance"]
    assert report["pyarrow"] == "18.1.0"
    assert report["meta"] == [2, ["id", "p", "v"]]  # schema from the checkpoint, with pyarrow
