"""The one place a Spark session is built.

Two profiles, same job code:

- ``local``: Delta (and, when present, s3a) jars fetched by ``make setup`` into ``.jars/`` and
  passed with ``spark.jars`` (nothing is downloaded at run time); local paths; ``s3://`` URIs
  are served by s3a so a moto server can stand in for S3 in tests.
- ``emr``: EMR Serverless ships Delta in the image under ``/usr/share/aws/delta/lib/``
  (``CDCLAKE_EMR_DELTA_LIB`` points elsewhere: the EMR-like sandbox test); the Glue Data
  Catalog is the metastore; ``s3://`` is EMRFS. Commits to S3 go through Delta's DynamoDB
  log store (multi-writer safe); the job run must name its table (:func:`log_store_conf`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Where the EMR image keeps Delta (EMR Serverless "Using Delta Lake"; the DynamoDB log store
# jar is listed beside them in EMR's Delta docs). The EMR-like sandbox test points
# CDCLAKE_EMR_DELTA_LIB at a local copy of the same three jars.
EMR_DELTA_LIB = "/usr/share/aws/delta/lib"
EMR_DELTA_LIB_ENV = "CDCLAKE_EMR_DELTA_LIB"
EMR_DELTA_JAR_NAMES = ("delta-spark.jar", "delta-storage.jar", "delta-storage-s3-dynamodb.jar")
DEFAULT_JARS_DIR = Path(__file__).resolve().parents[2] / ".jars"
# Spark + Delta classes mapped from an archive instead of loaded one by one at each JVM start
# (JDK class data sharing; built by ``make setup``: tools/spark_cds.py). Local JVMs only; one
# that cannot use the archive (other JDK or jars) silently starts without it.
CDS_ARCHIVE = DEFAULT_JARS_DIR / "spark-cds.jsa"

# Redshift Spectrum reads the symlink manifest, which Delta refuses to maintain with deletion
# vectors or column mapping on; with the manifest property set, Delta rewrites the manifests of
# the partitions a commit touched after every commit.
_DEFAULTS = "spark.databricks.delta.properties.defaults."
TABLE_DEFAULTS = {
    _DEFAULTS + "enableDeletionVectors": "false",
    _DEFAULTS + "columnMapping.mode": "none",
}
# Set on the lake tables only (bookkeeping tables need no manifest). The checkpoint interval is
# Delta's default, written down: readers without Spark (the catalog registration on Airflow
# workers, Athena) replay at most 9 JSON commits after the newest checkpoint, and the catalog
# reader is tested past a checkpoint at exactly this interval.
CHECKPOINT_INTERVAL = 10
LAKE_TABLE_PROPERTIES = {
    # Off: the job writes the manifests itself after each commit (cdclake.lake.manifest).
    "delta.compatibility.symlinkFormatManifest.enabled": "false",
    "delta.enableDeletionVectors": "false",
    "delta.checkpointInterval": str(CHECKPOINT_INTERVAL),
}

# Multi-writer-safe commits on S3: Delta's DynamoDB log store (Delta docs, "Storage
# configuration", multi-cluster setup). Every writer of a table must use it with the same
# DynamoDB table and region, or commits can be lost; EMRFS serves s3://, s3a:// is set too.
LOG_STORE_CLASS = "io.delta.storage.S3DynamoDBLogStore"
LOG_STORE_SCHEMES = ("s3", "s3a")
LOG_STORE_TABLE = "spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName"
LOG_STORE_REGION = "spark.io.delta.storage.S3DynamoDBLogStore.ddb.region"


class LogStoreNotConfiguredError(RuntimeError):
    """The emr profile refuses to start without the multi-writer-safe log store."""


def log_store_conf(table: str, region: str) -> dict[str, str]:
    """Spark settings that route commits to ``s3://``/``s3a://`` tables through DynamoDB.

    Example::

        log_store_conf("cdclake-dev-delta-log", "eu-west-1")
    """
    if not table or not region:
        raise ValueError("the DynamoDB log store needs a table name and a region")
    conf = {f"spark.delta.logStore.{s}.impl": LOG_STORE_CLASS for s in LOG_STORE_SCHEMES}
    conf[LOG_STORE_TABLE] = table
    conf[LOG_STORE_REGION] = region
    return conf


def emr_delta_lib() -> str:
    """The folder of the EMR image's Delta jars (``CDCLAKE_EMR_DELTA_LIB`` overrides it)."""
    return os.environ.get(EMR_DELTA_LIB_ENV) or EMR_DELTA_LIB


def emr_delta_jars(lib: str | None = None) -> tuple[str, ...]:
    """The image's Delta jars: ``delta-spark``, ``delta-storage``, the DynamoDB log store."""
    root = (lib or emr_delta_lib()).rstrip("/")
    return tuple(f"{root}/{name}" for name in EMR_DELTA_JAR_NAMES)


# The image's own paths (what StartJobRun names); see infra/runtime.py.
EMR_DELTA_JARS = emr_delta_jars(EMR_DELTA_LIB)

COMMON_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # DMS timestamps are UTC strings; never let the machine's zone leak into parsing.
    "spark.sql.session.timeZone": "UTC",
    # Tables of one run are applied side by side, each in its own pool (cdclake.cli.merge).
    "spark.scheduler.mode": "FAIR",
    # A file that cannot be read must fail the table's run, never be skipped.
    "spark.sql.files.ignoreCorruptFiles": "false",
    "spark.sql.files.ignoreMissingFiles": "false",
    # New source columns are added by the MERGE itself (one commit), not by a separate ALTER.
    "spark.databricks.delta.schema.autoMerge.enabled": "true",
    # Keep Spark's own schema merging strict: we decide which type changes are safe.
    "spark.sql.parquet.mergeSchema": "false",
    **TABLE_DEFAULTS,
}


# Small runs spend more time generating and compiling Java (Janino) for each new query shape
# than running it. The job interprets the expressions of a table's run when its table and batch
# are small (merge.interpreted_max_mb, see cdclake.job.context.expressions), on EMR too; the
# tests' session (every test's schema is a new shape) and the local target's short-lived
# spark-submit interpret everything. Same results (Spark's own tests evaluate every expression
# both ways). Measured on the 2-core machine: a cold 20k-row hourly run 15.2 -> 12.9 s, 22
# integration tests 426 -> 308 s. Not for large data: there generated code makes scans fast.
INTERPRETED_CONF = {
    "spark.sql.codegen.wholeStage": "false",
    # SQLConf.CODEGEN_FACTORY_MODE (internal, read per plan): projections, predicates and
    # orderings use their interpreted implementations instead of trying codegen first.
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}


def local_jars(jars_dir: Path | None = None) -> list[str]:
    """The jars ``make setup`` fetched; fails with a clear message when they are missing."""
    d = Path(os.environ.get("CDCLAKE_JARS_DIR", jars_dir or DEFAULT_JARS_DIR))
    jars = sorted(str(p) for p in d.glob("*.jar"))
    if not any("delta-spark" in j for j in jars):
        raise RuntimeError(f"Delta jars not found in {d}: run `make setup` first")
    return jars


def local_java_options(short_lived: bool = False) -> str:
    """JVM options of a local driver: the class-data archive when ``make setup`` built one,
    and for a short-lived ``spark-submit`` (one job run on small local data) the quick
    compiler only: C2's compile threads would compete with the job for two cores and pay off
    only in long runs. With C1 alone the JVM would size its code cache for the interpreter
    (48 MB), which Spark's generated code fills within a few runs ("Out of space in
    CodeCache"); it gets the tiered default (240 MB)."""
    path = Path(os.environ.get("CDCLAKE_CDS_ARCHIVE", CDS_ARCHIVE))
    opts = []
    if path.is_file():
        opts += [f"-XX:SharedArchiveFile={path}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
    if short_lived:
        opts += ["-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=240m"]
    return " ".join(opts)


def session_conf(
    profile: str,
    *,
    jars_dir: Path | None = None,
    shuffle_partitions: int = 8,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The Spark settings of a profile (pure: no JVM is started)."""
    conf = dict(COMMON_CONF)
    if profile == "local":
        master = os.environ.get("CDCLAKE_SPARK_MASTER", "local[2]")
        conf.update(
            {
                "spark.jars": ",".join(local_jars(jars_dir)),
                "spark.master": master,
                "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false",
                # Delta's default of 50 partitions for log replay is for clusters; locally one
                # per core (each run rebuilds the state of four small tables' logs).
                "spark.databricks.delta.snapshotPartitions": str(local_cores(master)),
                "spark.sql.shuffle.partitions": str(shuffle_partitions),
                "spark.default.parallelism": str(shuffle_partitions),
                "spark.driver.memory": os.environ.get("CDCLAKE_DRIVER_MEMORY", "2g"),
                # Same URIs as on AWS: s3:// is served by s3a locally (moto in tests).
                "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
                "spark.hadoop.fs.s3a.path.style.access": "true",
                "spark.sql.warehouse.dir": os.environ.get(
                    "CDCLAKE_WAREHOUSE_DIR", str(Path.cwd() / "spark-warehouse")
                ),
            }
        )
        java_options = local_java_options()
        if java_options:  # read when this process starts the JVM (pyspark's spark-submit)
            conf["spark.driver.extraJavaOptions"] = java_options
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
            conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(
                endpoint.startswith("https")
            ).lower()
            conf["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
                "com.amazonaws.auth.EnvironmentVariableCredentialsProvider"
            )
    elif profile == "emr":
        conf.update(
            {
                "spark.jars": ",".join(emr_delta_jars()),
                "spark.hadoop.hive.metastore.client.factory.class": (
                    "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory"
                ),
                # The table and region come with the job run (StartJobRun's
                # sparkSubmitParameters, the application's defaults); build_session checks them.
                **{f"spark.delta.logStore.{s}.impl": LOG_STORE_CLASS for s in LOG_STORE_SCHEMES},
            }
        )
    else:
        raise ValueError(f"unknown Spark profile '{profile}' (use 'local' or 'emr')")
    conf.update(extra or {})
    return conf


def local_cores(master: str) -> int:
    """Worker threads of a ``local[N]`` master (``local[*]``: this machine's cores)."""
    inside = master.partition("[")[2].partition("]")[0].split(",")[0]
    if inside == "*":
        return os.cpu_count() or 1
    return int(inside) if inside.isdigit() else 1


@contextmanager
def setting(spark: Any, key: str, value: str | None) -> Iterator[None]:
    """Set a runtime session setting for the statements inside (None: Spark's default), then
    restore the old value."""
    before = spark.conf.get(key, None)
    if value is None:
        spark.conf.unset(key)
    else:
        spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


@contextmanager
def settings(spark: Any, values: dict[str, str | None]) -> Iterator[None]:
    """:func:`setting` for each of ``values`` (None: Spark's default) for the statements
    inside, then the settings as they were."""
    with ExitStack() as stack:
        for key, value in values.items():
            stack.enter_context(setting(spark, key, value))
        yield


def interpreted(spark: Any) -> AbstractContextManager[None]:
    """:data:`INTERPRETED_CONF` for the statements inside, then the settings as they were."""
    return settings(spark, dict(INTERPRETED_CONF))


def detect_profile() -> str:
    """``emr`` when the EMR image's Delta jars are present, else ``local``."""
    forced = os.environ.get("CDCLAKE_PROFILE")
    if forced:
        return forced
    return "emr" if all(Path(j).exists() for j in emr_delta_jars()[:2]) else "local"


def check_log_store(conf: dict[str, str]) -> None:
    """Raise unless commits to S3 go through the DynamoDB log store with a named table."""
    missing = [
        f"spark.delta.logStore.{s}.impl={LOG_STORE_CLASS}"
        for s in LOG_STORE_SCHEMES
        if conf.get(f"spark.delta.logStore.{s}.impl") != LOG_STORE_CLASS
    ]
    missing += [f"{k}=<...>" for k in (LOG_STORE_TABLE, LOG_STORE_REGION) if not conf.get(k)]
    if missing:
        raise LogStoreNotConfiguredError(
            "the emr profile writes S3 tables only through Delta's DynamoDB log store (two "
            "writers on the default S3 log store can lose a commit silently); missing: "
            + ", ".join(missing)
            + ". Pass the stack output SparkSubmitParameters with the job run."
        )


def build_session(profile: str | None = None, app_name: str = "cdclake", **kwargs: Any):
    """Build (or reuse) the SparkSession for ``profile`` (auto-detected when None)."""
    from pyspark.sql import SparkSession

    profile = profile or detect_profile()
    builder = SparkSession.builder.appName(app_name)
    for key, value in session_conf(profile, **kwargs).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if profile == "emr":
        check_log_store(dict(spark.sparkContext.getConf().getAll()))
    spark.sparkContext.setLogLevel(os.environ.get("CDCLAKE_SPARK_LOG_LEVEL", "WARN"))
    log.info("spark session ready (profile=%s, version=%s)", profile, spark.version)
    return spark
