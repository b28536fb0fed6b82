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


def read_text(spark: SparkSession, uri: str) -> str:
    """A small file's text ("" when it does not exist)."""
    fs, path = fs_and_path(spark, uri)
    if not fs.exists(path):
        return ""
    jvm: Any = spark.sparkContext._jvm
    stream = fs.open(path)
    try:
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write a small file whole (replacing it)."""
    fs, path = fs_and_path(spark, uri)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


# ---- Delta's LogStore: how Delta itself reads and atomically creates log entries ----------
def _log_store(spark: SparkSession) -> tuple[Any, Any, Any]:
    jvm: Any = spark.sparkContext._jvm
    store = jvm.org.apache.spark.sql.delta.storage.LogStore.apply(spark._jsparkSession)
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    return jvm, store, conf


def log_read(spark: SparkSession, uri: str) -> list[str]:
    """The lines of a log entry, read as Delta reads its commits."""
    jvm, store, conf = _log_store(spark)
    # One py4j call for the whole entry: fetching the lines one by one cost a round trip each
    # (~1 ms; a MERGE's commit has a line per file). A line never holds a newline: the store
    # split the file on them.
    text = str(store.read(jvm.org.apache.hadoop.fs.Path(uri), conf).mkString("\n"))
    return text.split("\n") if text else []


def log_create(spark: SparkSession, uri: str, lines: list[str]) -> bool:
    """Create a log entry if it does not exist yet, atomically (Delta's put-if-absent: the
    primitive its commits rely on); False when it exists already."""
    jvm, store, conf = _log_store(spark)
    path = jvm.org.apache.hadoop.fs.Path(uri)
    path.getFileSystem(conf).mkdirs(path.getParent())
    items = jvm.java.util.ArrayList()
    for line in lines:
        items.add(line)
    it = jvm.scala.collection.JavaConverters.asScalaIteratorConverter(items.iterator()).asScala()
    try:
        store.write(path, it, False, conf)
    except Exception as exc:
        if "FileAlreadyExists" in f"{exc} {getattr(exc, 'java_exception', '')}":
            return False
        raise
    return True
