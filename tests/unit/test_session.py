"""The one Spark session builder: profiles are pure settings (no JVM is started here)."""

import pytest

from cdclake.session import (
    LAKE_TABLE_PROPERTIES,
    LogStoreNotConfiguredError,
    check_log_store,
    local_cores,
    local_java_options,
    log_store_conf,
    session_conf,
)


@pytest.mark.parametrize(
    ("master", "cores"),
    [("local[2]", 2), ("local[4,3]", 4), ("local", 1), ("local[*]", None)],
)
def test_local_cores(master, cores):
    import os

    assert local_cores(master) == (cores or os.cpu_count())


def test_local_profile_replays_delta_logs_with_one_partition_per_core(monkeypatch, tmp_path):
    (tmp_path / "delta-spark_2.12-3.3.2.jar").touch()
    monkeypatch.setenv("CDCLAKE_SPARK_MASTER", "local[3]")
    conf = session_conf("local", jars_dir=tmp_path)
    assert conf["spark.master"] == "local[3]"
    assert conf["spark.databricks.delta.snapshotPartitions"] == "3"
    assert conf["spark.sql.session.timeZone"] == "UTC"


def test_emr_profile_uses_the_image_jars_and_glue(monkeypatch):
    monkeypatch.delenv("CDCLAKE_EMR_DELTA_LIB", raising=False)
    conf = session_conf("emr")
    lib = "/usr/share/aws/delta/lib"
    assert conf["spark.jars"] == (
        f"{lib}/delta-spark.jar,{lib}/delta-storage.jar,{lib}/delta-storage-s3-dynamodb.jar"
    )
    assert conf["spark.delta.logStore.s3.impl"] == "io.delta.storage.S3DynamoDBLogStore"
    monkeypatch.setenv("CDCLAKE_EMR_DELTA_LIB", "/sandbox/lib")  # the EMR-like sandbox
    assert session_conf("emr")["spark.jars"].startswith("/sandbox/lib/delta-spark.jar,")
    assert "spark.databricks.delta.snapshotPartitions" not in conf
    assert (
        "AWSGlueDataCatalogHiveClientFactory"
        in conf["spark.hadoop.hive.metastore.client.factory.class"]
    )
    with pytest.raises(ValueError, match="unknown Spark profile"):
        session_conf("yarn")


def test_emr_profile_refuses_to_write_s3_without_the_dynamodb_log_store():
    complete = log_store_conf("cdclake-dev-delta-log", "eu-west-1")
    check_log_store(complete)
    for key in complete:
        with pytest.raises(LogStoreNotConfiguredError, match=key.replace(".", r"\.")):
            check_log_store({k: v for k, v in complete.items() if k != key})
    with pytest.raises(ValueError, match="table name and a region"):
        log_store_conf("", "eu-west-1")


def test_lake_tables_checkpoint_at_an_explicit_interval():
    assert LAKE_TABLE_PROPERTIES["delta.checkpointInterval"] == "10"


def test_local_jvms_map_the_class_data_archive_only_when_setup_built_it(monkeypatch, tmp_path):
    (tmp_path / "delta-spark_2.12-3.3.2.jar").touch()
    archive = tmp_path / "spark-cds.jsa"
    monkeypatch.setenv("CDCLAKE_CDS_ARCHIVE", str(archive))
    # No archive: the JVM starts as Spark starts it (nothing to ignore).
    assert "spark.driver.extraJavaOptions" not in session_conf("local", jars_dir=tmp_path)
    assert local_java_options() == ""
    # The quick compiler alone, with the code cache tiered compilation would have had.
    short = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"
    assert local_java_options(short_lived=True) == short
    archive.write_bytes(b"x")
    opts = session_conf("local", jars_dir=tmp_path)["spark.driver.extraJavaOptions"].split()
    # A JVM that cannot use the archive must start anyway, silently: logging of it is off.
    assert opts == [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
    # Long-lived sessions keep the optimising compiler; a one-run spark-submit does not.
    assert "-XX:TieredStopAtLevel=1" in local_java_options(short_lived=True).split()
    assert "spark.driver.extraJavaOptions" not in session_conf("emr")
    # Settings the caller passes win (e.g. a test's own JVM properties).
    extra = {"spark.driver.extraJavaOptions": "-Dx=1"}
    conf = session_conf("local", jars_dir=tmp_path, extra=extra)
    assert conf["spark.driver.extraJavaOptions"] == "-Dx=1"
