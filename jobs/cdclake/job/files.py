"""Step 1, choose files: list a table's raw folder and pick what a run applies.

A run covers a :class:`Window`: unapplied CDC files of hours before ``until`` (late files and
missed hours included), or with ``since`` every file of ``[since, until)`` again (backfill). A
full load takes the LOAD files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cdclake.core.config import DmsLayout
from cdclake.core.dms import CDC, LOAD, RawFile, classify, hour_folder
from cdclake.core.hours import HOUR, HourArgumentError, floor_hour
from cdclake.lake.fs import list_level

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """The CDC files a run covers: unapplied files in hours before ``until``; with ``since``,
    every file in ``[since, until)`` again (backfill)."""

    until: datetime
    since: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.since >= self.until:
            raise HourArgumentError(
                f"--since {self.since:%Y-%m-%dT%H} must be before --until {self.until:%Y-%m-%dT%H}"
            )

    def select(
        self, files: list[RawFile], applied: set[str], floor: datetime | None = None
    ) -> list[RawFile]:
        """Files to apply, in path order. ``floor``: hours wholly before it are skipped (they
        can only hold changes older than the last full load)."""
        chosen = []
        for f in files:
            if f.kind != CDC or f.hour is None or f.hour >= self.until:
                continue
            if floor is not None and f.hour + HOUR <= floor:
                continue
            backfill = self.since is not None and f.hour >= self.since
            if backfill or f.path not in applied:
                chosen.append(f)
        return sorted(chosen)


@dataclass(frozen=True)
class Choice:
    """The files a run applies, and what it leaves for the next run."""

    files: tuple[RawFile, ...]
    deferred: int  # unapplied files over the per-run caps (applied next run, oldest first)
    frontier: datetime  # the oldest hour that may still hold an unapplied file


def choose(
    window: Window,
    listed: list[RawFile],
    applied: set[str],
    floor: datetime | None,
    frontier: datetime | None,
    caps: tuple[int, int],
) -> Choice:
    """``window``'s files, oldest first, within ``caps`` (files, hours) for the files not yet
    applied (a backfill's re-applied files are never deferred: the operator asked for them)."""
    max_files, max_hours = caps
    chosen: list[RawFile] = []
    hours: set[datetime | None] = set()
    deferred: list[RawFile] = []
    for f in sorted(window.select(listed, applied, floor), key=lambda f: (f.hour, f.relative)):
        over = len(chosen) >= max_files or (f.hour not in hours and len(hours) >= max_hours)
        if over and f.path not in applied:
            deferred.append(f)
            continue
        chosen.append(f)
        hours.add(f.hour)
    if deferred:
        new_frontier = min(f.hour for f in deferred if f.hour is not None)
    else:
        new_frontier = max(window.until, frontier) if frontier else window.until
    return Choice(tuple(sorted(chosen)), len(deferred), new_frontier)


def listing_start(
    window: Window, frontier: datetime | None, floor: datetime | None, lookback: int
) -> datetime | None:
    """The oldest hour folder a run lists: the lookback before ``until`` (late files), back to
    the frontier (a backlog), ``since`` (a backfill), or the full load's hour when no
    incremental run has recorded a frontier yet (None: everything)."""
    if frontier is None:
        start = floor_hour(floor) if floor is not None else None
    else:
        start = min(frontier, window.until - lookback * HOUR)
    if window.since is not None and start is not None:
        start = min(start, window.since)
    return start


def list_cdc_files(
    spark: SparkSession, root: str, layout: DmsLayout, start: datetime | None
) -> list[RawFile]:
    """The CDC files under a table's raw folder in hour folders from ``start`` on (all when
    None): folders before it are pruned level by level, so the listing does not grow with
    the raw layer's retention."""
    first = hour_folder(start, layout) if start is not None else ""
    files: list[RawFile] = []
    pending = [""]
    while pending:
        rel = pending.pop()
        entries = list_level(spark, f"{root.rstrip('/')}/{rel}" if rel else root)
        if entries is None:
            if not rel:
                log.warning("raw folder %s does not exist (yet)", root)
            continue
        for name, is_dir, full, size, modified in entries:
            path = f"{rel}/{name}" if rel else name
            if is_dir:
                # Zero-padded folder names sort like their hours, level by level.
                if path >= first[: len(path)]:
                    pending.append(path)
            elif rel and (kind := classify(path, layout)) and kind[0] == CDC:
                files.append(RawFile(path, full, CDC, kind[1], size, modified))
    return sorted(files)


def list_load_files(spark: SparkSession, root: str, layout: DmsLayout) -> list[RawFile]:
    """The full-load files at the root of a table's raw folder."""
    entries = list_level(spark, root) or []
    out = []
    for name, is_dir, full, size, modified in entries:
        if not is_dir and (kind := classify(name, layout)) and kind[0] == LOAD:
            out.append(RawFile(name, full, LOAD, None, size, modified))
    return sorted(out)


def newest_load(
    spark: SparkSession, files: list[RawFile], layout: DmsLayout, name: str
) -> list[RawFile]:
    """The LOAD files of the newest full load only. DMS leaves an earlier load's files in
    place on a reload; every row of one load carries the same timestamp (the task's start
    time), so files whose rows are older belong to an earlier load and are left alone."""
    ts = F.col(layout.timestamp_column).cast("timestamp")
    rows = (
        spark.read.parquet(*(f.path for f in files))
        .select(F.col("_metadata.file_name").alias("file"), ts.alias("ts"))
        .groupBy("file")
        .agg(F.max("ts").alias("ts"))
        .collect()
    )
    loaded_at = {r["file"]: r["ts"] for r in rows}
    stamps = [t for t in loaded_at.values() if t is not None]
    if not stamps:
        return files
    newest = max(stamps)
    keep = [f for f in files if loaded_at.get(f.relative) in (newest, None)]
    if len(keep) < len(files):
        log.warning(
            "%s: %d LOAD file(s) belong to an earlier full load and are ignored (the newest "
            "load started at %s): %s",
            name,
            len(files) - len(keep),
            newest,
            ", ".join(f.relative for f in files if f not in keep)[:500],
        )
    return keep
