"""What AWS DMS writes to S3, as pure functions: where files go, how they are named, and the
formats of its bookkeeping columns. No I/O.

DMS writes full-load files at the table root (``LOAD00000001.parquet``) and CDC files under
folders named by the UTC hour of the transaction commit, for example ``2026/11/22/10/`` (SLASH)
or ``2026-11-22-10/`` (DASH), named by the time they were written
(``20261122-100159123.parquet``). The demo generator and the PostgreSQL capture write exactly
this; the job reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from cdclake.core.config import DmsLayout
from cdclake.core.hours import UTC

LOAD = "load"
CDC = "cdc"
_LOAD_NAME = re.compile(r"^LOAD[0-9A-Fa-f]{8}\.parquet$")


@dataclass(frozen=True, order=True)
class RawFile:
    """One DMS output file. ``relative`` is the path below the table's raw folder."""

    relative: str
    path: str
    kind: str
    hour: datetime | None
    size: int = 0
    modified_ms: int = 0


def classify(relative: str, layout: DmsLayout) -> tuple[str, datetime | None] | None:
    """``(LOAD, None)``, ``(CDC, hour)`` or None for a file the job must not read.

    >>> classify("2026/11/22/10/20261122-100159123.parquet", DmsLayout())
    ('cdc', datetime.datetime(2026, 11, 22, 10, 0, tzinfo=datetime.timezone.utc))
    """
    parts = relative.split("/")
    name = parts[-1]
    if name.startswith((".", "_")) or not name.endswith(".parquet"):
        return None
    if len(parts) == 1:
        return (LOAD, None) if _LOAD_NAME.match(name) else None
    m = _folder_pattern(layout).match("/".join(parts[:-1]))
    if not m:
        return None
    try:
        year, month, day, hh = (int(g) for g in m.groups())
        hour = datetime(year, month, day, hh, tzinfo=UTC)
    except ValueError:  # e.g. month 13: not a DMS folder
        return None
    return CDC, hour


def _folder_pattern(layout: DmsLayout) -> re.Pattern[str]:
    sep = re.escape(layout.separator)
    return re.compile(rf"^(\d{{4}}){sep}(\d{{2}}){sep}(\d{{2}}){sep}(\d{{2}})$")


def hour_folder(hour: datetime, layout: DmsLayout) -> str:
    """The folder DMS uses for ``hour`` (inverse of :func:`classify`)."""
    s = layout.separator
    return f"{hour:%Y}{s}{hour:%m}{s}{hour:%d}{s}{hour:%H}"


def load_file_name(index: int) -> str:
    """The ``index``-th (1-based) full-load file: ``LOAD00000001.parquet``, hex counter."""
    return f"LOAD{index:08X}.parquet"


def cdc_file_name(written_at: datetime) -> str:
    """A CDC file named by the time it was written: ``20261122-100159123.parquet`` (UTC)."""
    t = written_at.astimezone(UTC)
    return f"{t:%Y%m%d-%H%M%S}{t.microsecond // 1000:03d}.parquet"


def dms_timestamp(t: datetime) -> str:
    """DMS's timestamp column format: ``yyyy-MM-dd HH:mm:ss.SSSSSS`` (UTC)."""
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def change_sequence(commit: datetime, counter: int) -> str:
    """``$AR_H_CHANGE_SEQ``'s shape: 16 digits of commit time + a 19-digit counter (35 digits,
    so string order is change order)."""
    t = commit.astimezone(UTC)
    return f"{t:%Y%m%d%H%M%S}{t.microsecond // 10_000:02d}{counter:019d}"
