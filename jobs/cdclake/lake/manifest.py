"""Redshift Spectrum's symlink manifests, kept by the job after each of its data commits.

Delta can maintain them itself (table property ``symlinkFormatManifest.enabled``), but its
post-commit hook joins the old and new snapshots' file lists in ~a dozen Spark jobs per
commit. Here a commit's manifests are derived on the driver from what changed: for every
partition the commit touched, new manifest = old manifest - removed files + added files, read
from the commit's own log entry. No Spark job. A run that dies between its commit and this
update leaves its run unfinished in the ledger, and the next run regenerates every manifest
from the snapshot (:func:`regenerate`), as daily maintenance also does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from cdclake.lake.fs import fs_and_path, read_text, write_text

MANIFEST_DIR = "_symlink_format_manifest"


def regenerate(spark: SparkSession, path: str) -> None:
    """Every manifest rewritten from the current snapshot (Delta's generator)."""
    DeltaTable.forPath(spark, path).generate("symlink_format_manifest")


def update(spark: SparkSession, path: str, actions: Iterable[dict[str, Any]]) -> int:
    """Apply one commit's ``add``/``remove`` actions to the manifests of the partitions it
    touched; returns how many manifests changed."""
    jvm: Any = spark.sparkContext._jvm
    fs, table = fs_and_path(spark, path)
    root = fs.makeQualified(table)
    changes: dict[str, tuple[set[str], set[str]]] = {}
    for action in actions:
        for kind in ("add", "remove"):
            if kind in action:
                # Log paths are URI-encoded and relative to the table: as Delta resolves them.
                rel = jvm.org.apache.hadoop.fs.Path(jvm.java.net.URI(action[kind]["path"]))
                full = jvm.org.apache.hadoop.fs.Path(root, rel)
                folder = str(rel.getParent().toString()) if rel.getParent() else ""
                added, removed = changes.setdefault(folder, (set(), set()))
                (added if kind == "add" else removed).add(str(full.toString()))
    for folder, (added, removed) in changes.items():
        manifest = "/".join(p for p in (path.rstrip("/"), MANIFEST_DIR, folder, "manifest") if p)
        old = set(read_text(spark, manifest).splitlines())
        lines = sorted((old - removed) | added)
        if lines:
            write_text(spark, manifest, "\n".join(lines) + "\n")
        else:  # the partition is empty now: Spectrum must not see it
            mfs, mpath = fs_and_path(spark, manifest.rsplit("/", 1)[0])
            mfs.delete(mpath, True)
    return len(changes)
