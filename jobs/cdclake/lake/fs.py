"""Files through Hadoop's FileSystem: the same calls serve local paths, ``s3a://`` (tests
against moto) and EMRFS ``s3://`` on EMR Serverless."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession


def fs_and_path(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    """The Hadoop ``FileSystem`` serving ``uri`` and the ``Path`` of it."""
    jvm: Any = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
    return fs, path


def remove_tree(spark: SparkSession, uri: str) -> None:
    """Delete a folder and everything below it (no error when it does not exist)."""
    fs, path = fs_and_path(spark, uri)
    if fs.exists(path):
        fs.delete(path, True)


def list_tree(spark: SparkSession, uri: str) -> list[tuple[str, str, int, int]] | None:
    """Every file below ``uri`` as ``(path below uri, full URI, size, modified ms)``; None
    when the folder does not exist."""
    fs, path = fs_and_path(spark, uri)
    if not fs.exists(path):
        return None
    prefix = fs.makeQualified(path).toString().rstrip("/") + "/"
    out = []
    it = fs.listFiles(path, True)
    while it.hasNext():
        status = it.next()
        full = status.getPath().toString()
        relative = full[len(prefix) :] if full.startswith(prefix) else status.getPath().getName()
        out.append((relative, full, int(status.getLen()), int(status.getModificationTime())))
    return out
