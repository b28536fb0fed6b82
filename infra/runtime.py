"""The runtime the job is pinned to, read from ``pyproject.toml`` ``[tool.cdclake.runtime]``.

The EMR Serverless release label lives there once; the stack and the DAGs read it from here.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

from cdclake.session import EMR_DELTA_JARS, EMR_DELTA_LIB, log_store_conf

REPO_ROOT = Path(__file__).resolve().parent.parent

# Delta ships in the EMR image; spark.jars.packages does not work on EMR Serverless.
DELTA_JARS = ",".join(EMR_DELTA_JARS)
# The Python `delta` module is inside delta-spark.jar (Delta's build packs python/delta into
# it): on the Python path only through spark.submit.pyFiles (--py-files), not spark.jars.
DELTA_PYTHON = f"{EMR_DELTA_LIB}/delta-spark.jar"
GLUE_METASTORE_FACTORY = "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory"


@cache
def runtime_pins(pyproject: Path = REPO_ROOT / "pyproject.toml") -> dict[str, str]:
    """The ``[tool.cdclake.runtime]`` table (emr_release, spark, delta, ...)."""
    data = tomllib.loads(pyproject.read_text())
    try:
        pins = data["tool"]["cdclake"]["runtime"]
    except KeyError as exc:
        raise KeyError(f"{pyproject}: [tool.cdclake.runtime] is missing") from exc
    if not str(pins.get("emr_release", "")).startswith("emr-"):
        raise ValueError(
            f"{pyproject}: [tool.cdclake.runtime].emr_release must look like emr-X.Y.Z"
        )
    return {k: str(v) for k, v in pins.items()}


def emr_release() -> str:
    """The EMR Serverless release label, e.g. ``emr-7.14.0``."""
    return runtime_pins()["emr_release"]


def spark_defaults(log_table: str, region: str) -> dict[str, str]:
    """Spark properties every job (merge, maintenance, full load) needs on EMR Serverless:
    Delta (jars, Python module, session extension and catalog), the Glue catalog, and the
    DynamoDB log store ``log_table`` in ``region`` for every commit to S3.

    They are set once on the application (``spark-defaults`` runtime configuration), and
    :func:`spark_submit_parameters` renders the same values for every StartJobRun call.
    """
    return {
        "spark.jars": DELTA_JARS,
        "spark.submit.pyFiles": DELTA_PYTHON,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.hadoop.hive.metastore.client.factory.class": GLUE_METASTORE_FACTORY,
        **log_store_conf(log_table, region),
    }


def spark_submit_parameters(py_files_uri: str, log_table: str, region: str) -> str:
    """``sparkSubmitParameters`` for StartJobRun: ``--py-files`` with the package zip (which
    carries PyYAML too) and the image's delta-spark.jar, then :func:`spark_defaults`.

    Example::

        spark_submit_parameters(
            "s3://acme-cdclake-dev-artifacts/jobs/cdclake.zip", "cdclake-dev-delta-log", "eu-west-1"
        )
    """
    confs = spark_defaults(log_table, region)
    py_files = f"{py_files_uri},{confs.pop('spark.submit.pyFiles')}"
    return f"--py-files {py_files} " + " ".join(f"--conf {k}={v}" for k, v in confs.items())
