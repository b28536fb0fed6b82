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


def remove_older(spark: SparkSession, uri: str, before_ms: int) -> list[str]:
    """Delete the entries directly below ``uri`` last modified before ``before_ms`` (epoch
    milliseconds): scratch left by runs that are certainly dead. Returns their names."""
    fs, path = fs_and_path(spark, uri)
    if not fs.exists(path):
        return []
    removed = []
    for status in fs.listStatus(path):
        if int(status.getModificationTime()) < before_ms:
            fs.delete(status.getPath(), True)
            removed.append(status.getPath().getName())
    return removed


def list_level(spark: SparkSession, uri: str) -> list[tuple[str, bool, str, int, int]] | None:
    """The entries directly below ``uri`` as ``(name, is_dir, full URI, size, modified ms)``;
    None when ``uri`` does not exist."""
    fs, path = fs_and_path(spark, uri)
    if not fs.exists(path):
        return None
    return [
        (
            s.getPath().getName(),
            bool(s.isDirectory()),
            s.getPath().toString(),
            int(s.getLen()),
            int(s.getModificationTime()),
        )
        for s in fs.listStatus(path)
    ]


def remove_if_empty(spark: SparkSession, uri: str) -> None:
    """Delete a folder when nothing is in it (a non-recursive delete refuses a folder that
    another run has just written into, so this never removes someone else's files)."""
    fs, path = fs_and_path(spark, uri)
    try:
        if fs.exists(path) and not fs.listStatus(path):
            fs.delete(path, False)
    except Exception:  # noqa: BLE001, S110 - not empty after all: leave it
        pass
