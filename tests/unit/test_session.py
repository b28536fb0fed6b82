"""The one Spark session builder: profiles are pure settings (no JVM is started here)."""

import pytest

from cdclake.session import local_cores, session_conf


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


def test_emr_profile_uses_the_image_jars_and_glue():
    conf = session_conf("emr")
    assert conf["spark.jars"].startswith("/usr/share/aws/delta/lib/")
    assert "spark.databricks.delta.snapshotPartitions" not in conf
    assert (
        "AWSGlueDataCatalogHiveClientFactory"
        in conf["spark.hadoop.hive.metastore.client.factory.class"]
    )
    with pytest.raises(ValueError, match="unknown Spark profile"):
        session_conf("yarn")
