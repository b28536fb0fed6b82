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

from cdclake.core.config import DmsLayout
from cdclake.core.dms import CDC, LOAD, RawFile, classify
from cdclake.core.hours import HOUR, HourArgumentError
from cdclake.lake.fs import list_tree

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


def list_raw_files(spark: SparkSession, root: str, layout: DmsLayout) -> list[RawFile]:
    """Every LOAD and CDC file under a table's raw folder (recursively), in path order."""
    listed = list_tree(spark, root)
    if listed is None:
        log.warning("raw folder %s does not exist (yet)", root)
        return []
    files, ignored = [], 0
    for relative, full, size, modified_ms in listed:
        kind = classify(relative, layout)
        if kind is None:
            ignored += 1
            continue
        files.append(RawFile(relative, full, kind[0], kind[1], size, modified_ms))
    if ignored:
        log.info("%s: ignored %d file(s) that are not DMS LOAD/CDC files", root, ignored)
    return sorted(files)


def load_files(files: list[RawFile]) -> list[RawFile]:
    """The full load's files."""
    return [f for f in files if f.kind == LOAD]
