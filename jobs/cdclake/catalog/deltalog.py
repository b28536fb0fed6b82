"""Read what the catalog needs from a Delta table without Spark: the current schema and
partition columns (from ``_delta_log``) and the partitions of the symlink manifest.

Runs wherever boto3 runs (an Airflow worker, a Lambda): local paths are read from disk,
``s3://``/``s3a://`` URIs through an S3 client. pyarrow is only needed when the newest
``metaData`` action lives in a Parquet checkpoint rather than in a later JSON commit (always,
once a table is past its first checkpoint and its early commits are cleaned up; MWAA gets
pyarrow from the packaged requirements.txt).

A missing object is the only read failure that means "not there": every other error (access
denied, throttling, a corrupt ``_last_checkpoint``) is raised, naming the location.

Example::

    store = store_for(location)
    meta = read_table_meta(store, location)
    parts = manifest_partitions(store, location, meta.partition_columns)
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from cdclake.core.uris import is_s3, local_path, split_s3

LOG_DIR = "_delta_log"
MANIFEST_DIR = "_symlink_format_manifest"
# Hive's name for a null partition value in a path (Delta writes the same).
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(?:\.\d{10}\.\d{10})?\.parquet$")
_PART = re.compile(r"^\d{20}\.checkpoint\.(\d{10})\.(\d{10})\.parquet$")


class DeltaLogError(RuntimeError):
    """The location holds no readable Delta table (names the location and what is wrong)."""


class Store(Protocol):
    """The two operations the catalog needs from storage."""

    def list(self, prefix: str, start_after: str | None = None) -> list[str]:
        """Full URIs of the objects under ``prefix`` (a folder URI), recursively, sorted."""
        ...

    def read(self, uri: str) -> bytes:
        """The object's bytes; :class:`FileNotFoundError` when there is no such object."""
        ...


class LocalStore:
    def list(self, prefix: str, start_after: str | None = None) -> list[str]:
        root = Path(local_path(prefix))
        if not root.is_dir():
            return []
        out = sorted(str(p) for p in root.rglob("*") if p.is_file())
        return [p for p in out if start_after is None or p > local_path(start_after)]

    def read(self, uri: str) -> bytes:
        return Path(local_path(uri)).read_bytes()


class S3Store:
    """S3 through boto3. URIs keep the scheme they were given (``s3://`` or ``s3a://``)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def list(self, prefix: str, start_after: str | None = None) -> list[str]:
        scheme, bucket, key = split_s3(prefix)
        key = key.rstrip("/") + "/"
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": key}
        if start_after:
            kwargs["StartAfter"] = split_s3(start_after)[2]
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            out += [f"{scheme}://{bucket}/{o['Key']}" for o in page.get("Contents", [])]
        return sorted(out)

    def read(self, uri: str) -> bytes:
        _, bucket, key = split_s3(uri)
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(uri) from exc


def store_for(uri: str, s3_client: Any = None) -> Store:
    """The store serving ``uri``; an S3 client is made (default chain) when none is given."""
    if is_s3(uri):
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        return S3Store(s3_client)
    return LocalStore()


@dataclass(frozen=True)
class Field:
    """One column: its name, Spark JSON type (a name or a nested dict) and nullability."""

    name: str
    type: Any
    nullable: bool = True


@dataclass(frozen=True)
class TableMeta:
    """A Delta table's current shape."""

    version: int
    fields: tuple[Field, ...]
    partition_columns: tuple[str, ...]
    configuration: Mapping[str, str]

    @property
    def data_fields(self) -> tuple[Field, ...]:
        """Columns stored in the Parquet files (partition columns live in the paths)."""
        return tuple(f for f in self.fields if f.name not in self.partition_columns)

    @property
    def partition_fields(self) -> tuple[Field, ...]:
        by_name = {f.name: f for f in self.fields}
        return tuple(by_name[p] for p in self.partition_columns)


def parse_metadata(action: Mapping[str, Any], version: int) -> TableMeta:
    """A ``metaData`` action (as in the log) as a :class:`TableMeta`."""
    schema = json.loads(action["schemaString"])
    fields = tuple(
        Field(f["name"], f["type"], bool(f.get("nullable", True))) for f in schema["fields"]
    )
    return TableMeta(
        version=version,
        fields=fields,
        partition_columns=tuple(action.get("partitionColumns") or ()),
        configuration=dict(action.get("configuration") or {}),
    )


def read_table_meta(store: Store, location: str) -> TableMeta:
    """The schema and partition columns as of the table's newest commit."""
    log_dir = f"{location.rstrip('/')}/{LOG_DIR}"
    checkpoint_version = _last_checkpoint(store, log_dir)
    start_after = f"{log_dir}/{checkpoint_version:020d}" if checkpoint_version is not None else None
    names = [u.rsplit("/", 1)[-1] for u in store.list(log_dir, start_after)]
    if checkpoint_version is None:
        # _last_checkpoint is a hint Delta may not have written: the newest complete
        # checkpoint in the listing counts (early JSON commits may be cleaned up by then).
        checkpoint_version = _newest_checkpoint(names)
    commits = sorted(int(m.group(1)) for n in names if (m := _COMMIT.match(n)))
    if not commits and checkpoint_version is None:
        raise DeltaLogError(f"no Delta table at {location} (no commits in {LOG_DIR}/)")
    latest = max(commits, default=checkpoint_version or 0)
    # The newest metaData wins; later JSON commits are cheaper to read than the checkpoint.
    for v in reversed(commits):
        if checkpoint_version is not None and v <= checkpoint_version:
            break
        for line in store.read(f"{log_dir}/{v:020d}.json").decode("utf-8").splitlines():
            if line.strip() and "metaData" in (action := json.loads(line)):
                return parse_metadata(action["metaData"], latest)
    if checkpoint_version is None:
        raise DeltaLogError(f"{location}: no metaData action in {LOG_DIR}/")
    return parse_metadata(_checkpoint_metadata(store, log_dir, checkpoint_version), latest)


def _last_checkpoint(store: Store, log_dir: str) -> int | None:
    """The version ``_last_checkpoint`` names; None when the file does not exist."""
    uri = f"{log_dir}/_last_checkpoint"
    try:
        raw = store.read(uri)
    except FileNotFoundError:
        return None
    try:
        return int(json.loads(raw)["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DeltaLogError(f"{uri}: unreadable ({exc!r})") from exc


def _newest_checkpoint(names: list[str]) -> int | None:
    """The newest version with a complete checkpoint (every part of a multi-part one)."""
    parts: dict[int, set[str]] = {}
    for n in names:
        if m := _CHECKPOINT.match(n):
            parts.setdefault(int(m.group(1)), set()).add(n)
    for version in sorted(parts, reverse=True):
        found = parts[version]
        single = f"{version:020d}.checkpoint.parquet" in found
        multi = _PART.match(next(iter(found)))
        if single or (multi and len(found) == int(multi.group(2))):
            return version
    return None


def _checkpoint_metadata(store: Store, log_dir: str, version: int) -> Mapping[str, Any]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the worker's environment
        raise DeltaLogError(
            f"{log_dir}: the schema is in checkpoint {version}; reading it needs pyarrow"
        ) from exc
    prefix = f"{log_dir}/{version:020d}.checkpoint"
    parts = [
        u for u in store.list(log_dir, f"{log_dir}/{version - 1:020d}") if u.startswith(prefix)
    ]
    for uri in parts:
        table = pq.read_table(io.BytesIO(store.read(uri)), columns=["metaData"])
        for row in table.column("metaData").to_pylist():
            if row:
                return row
    raise DeltaLogError(f"{log_dir}: checkpoint {version} has no metaData action")


# ---- symlink manifest ------------------------------------------------------------------------
def parse_partition_path(relative: str, columns: tuple[str, ...]) -> tuple[str | None, ...]:
    """Partition values from a manifest folder such as ``p=a%2Fb/q=1`` (Hive escaping)."""
    parts = [s for s in relative.strip("/").split("/") if s]
    if len(parts) != len(columns):
        raise DeltaLogError(f"manifest folder '{relative}' does not match partitions {columns}")
    values: list[str | None] = []
    for col, part in zip(columns, parts):
        name, sep, value = part.partition("=")
        if not sep or unquote(name) != col:
            raise DeltaLogError(f"manifest folder '{relative}': expected '{col}=...' at '{part}'")
        values.append(None if value == NULL_PARTITION else unquote(value))
    return tuple(values)


def manifest_partitions(
    store: Store, location: str, columns: tuple[str, ...]
) -> dict[tuple[str | None, ...], str]:
    """Each partition of the manifest with its folder URI (what Spectrum reads).

    An unpartitioned table has one manifest; it maps to the empty tuple.
    """
    root = f"{location.rstrip('/')}/{MANIFEST_DIR}"
    out: dict[tuple[str | None, ...], str] = {}
    for uri in store.list(root):
        if not uri.endswith("/manifest"):
            continue
        folder = uri[: -len("/manifest")]
        relative = folder[len(root) :].strip("/")
        out[parse_partition_path(relative, columns) if columns else ()] = folder
    return out


def manifest_data_files(
    store: Store, location: str, columns: tuple[str, ...]
) -> list[tuple[str, tuple[str | None, ...]]]:
    """Every data file the manifests list, with its partition values (from the manifest's
    folder, which is how Spectrum assigns them)."""
    files = []
    for values, folder in sorted(manifest_partitions(store, location, columns).items(), key=str):
        text = store.read(f"{folder}/manifest").decode("utf-8")
        files += [(line.strip(), values) for line in text.splitlines() if line.strip()]
    return files
