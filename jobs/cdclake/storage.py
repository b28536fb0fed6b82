"""Thin I/O at the edges: listing DMS files and reading them, with errors that name the file.

Listing goes through Hadoop's FileSystem, so the same code serves local paths, ``s3a://``
(local tests against moto) and EMRFS ``s3://`` on EMR Serverless.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from cdclake.config import DmsLayout
from cdclake.layout import RawFile, classify

log = logging.getLogger(__name__)


class UnreadableInputError(RuntimeError):
    """A raw file cannot be read (corrupt, truncated, not Parquet). Names the file."""


class IncompatibleFilesError(RuntimeError):
    """Files of one batch disagree on a column's type. Names column, types and files."""


def _fs_and_path(spark: SparkSession, uri: str):
    jvm: Any = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
    return fs, path


def remove_tree(spark: SparkSession, uri: str) -> None:
    """Delete a folder and everything below it (no error when it does not exist)."""
    fs, path = _fs_and_path(spark, uri)
    if fs.exists(path):
        fs.delete(path, True)


def list_raw_files(spark: SparkSession, root: str, layout: DmsLayout) -> list[RawFile]:
    """Every LOAD and CDC file under a table's raw folder (recursively), in path order."""
    fs, path = _fs_and_path(spark, root)
    if not fs.exists(path):
        log.warning("raw folder %s does not exist (yet)", root)
        return []
    prefix = fs.makeQualified(path).toString().rstrip("/") + "/"
    files, ignored = [], 0
    it = fs.listFiles(path, True)
    while it.hasNext():
        status = it.next()
        full = status.getPath().toString()
        relative = full[len(prefix) :] if full.startswith(prefix) else status.getPath().getName()
        kind = classify(relative, layout)
        if kind is None:
            ignored += 1
            continue
        files.append(
            RawFile(
                relative=relative,
                path=full,
                kind=kind[0],
                hour=kind[1],
                size=int(status.getLen()),
                modified_ms=int(status.getModificationTime()),
            )
        )
    if ignored:
        log.info("%s: ignored %d file(s) that are not DMS LOAD/CDC files", root, ignored)
    return sorted(files)


def read_raw(spark: SparkSession, files: Sequence[RawFile]) -> DataFrame:
    """Read the files as one DataFrame (columns unioned by name) with Spark's ``_metadata``.

    Files written before a source ``ADD COLUMN`` simply lack the column (read as null).
    """
    paths = [f.path for f in files]
    try:
        df = spark.read.option("mergeSchema", "true").parquet(*paths)
        return df.select("*", "_metadata")
    except Exception as exc:  # noqa: BLE001 - re-raised with the offending file named
        raise diagnose(spark, files, exc) from exc


def diagnose(spark: SparkSession, files: Sequence[RawFile], exc: Exception) -> Exception:
    """Find which file (or which column across files) made a read fail."""
    schemas = {}
    for f in files:
        try:
            schemas[f.relative] = spark.read.parquet(f.path).schema
            spark.read.parquet(f.path).write.format("noop").mode("overwrite").save()
        except Exception as inner:  # noqa: BLE001
            first = str(inner).strip().splitlines()[0][:300]
            return UnreadableInputError(f"cannot read raw file {f.path}: {first}")
    types: dict[str, dict[str, list[str]]] = {}
    for rel, schema in schemas.items():
        for field in schema.fields:
            types.setdefault(field.name, {}).setdefault(field.dataType.simpleString(), []).append(
                rel
            )
    for col, by_type in types.items():
        if len(by_type) > 1:
            detail = "; ".join(f"{t} in {', '.join(fs[:3])}" for t, fs in sorted(by_type.items()))
            return IncompatibleFilesError(
                f"column '{col}' has different types across files ({detail}); nothing committed"
            )
    first = str(exc).strip().splitlines()[0][:500]
    return UnreadableInputError(f"cannot read the batch's raw files: {first}")
