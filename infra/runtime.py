"""The runtime the job is pinned to, read from ``pyproject.toml`` ``[tool.cdclake.runtime]``.

The EMR Serverless release label lives there once; the stack and the DAGs read it from here.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Delta ships in the EMR image; spark.jars.packages does not work on EMR Serverless.
DELTA_JARS = "/usr/share/aws/delta/lib/delta-spark.jar,/usr/share/aws/delta/lib/delta-storage.jar"
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


def spark_defaults() -> dict[str, str]:
    """Spark properties every run of the job needs on EMR Serverless (Delta + Glue catalog).

    They are set once on the application (``spark-defaults`` runtime configuration), and
    :func:`spark_submit_parameters` renders the same values for a StartJobRun call.
    """
    return {
        "spark.jars": DELTA_JARS,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.hadoop.hive.metastore.client.factory.class": GLUE_METASTORE_FACTORY,
    }


def spark_submit_parameters(py_files_uri: str) -> str:
    """``sparkSubmitParameters`` for StartJobRun: the package zip plus :func:`spark_defaults`.

    Example::

        spark_submit_parameters("s3://acme-cdclake-dev-artifacts/jobs/cdclake.zip")
    """
    confs = " ".join(f"--conf {k}={v}" for k, v in spark_defaults().items())
    return f"--py-files {py_files_uri} {confs}"
