"""Where DMS puts files, and the hour windows a run covers. Pure functions, no I/O.

DMS writes full-load files at the table root (``LOAD00000001.parquet``) and CDC files under
folders named by the UTC hour of the transaction commit, for example ``2026/11/22/10/`` (SLASH)
or ``2026-11-22-10/`` (DASH).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cdclake.config import DmsLayout

LOAD = "load"
CDC = "cdc"
HOUR = timedelta(hours=1)
_LOAD_NAME = re.compile(r"^LOAD[0-9A-Fa-f]{8}\.parquet$")


class HourArgumentError(ValueError):
    """A ``--since`` / ``--until`` value is not a whole UTC hour."""


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


def as_utc(dt: datetime | None) -> datetime | None:
    """PySpark returns timestamps as naive *local* datetimes; make them aware UTC."""
    if dt is None:
        return None
    return dt.astimezone(UTC)


def parse_hour(value: str, name: str = "hour") -> datetime:
    """Parse ``2026-11-22T11`` (or any ISO-8601 time on a whole hour) as a UTC hour.

    Offsets are converted to UTC; a naive value is taken as UTC (DMS folders are UTC).
    """
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}", text):
        text += ":00"
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise HourArgumentError(
            f"--{name} '{value}' is not a time like 2026-11-22T11 (UTC hour)"
        ) from exc
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    if (dt.minute, dt.second, dt.microsecond) != (0, 0, 0):
        raise HourArgumentError(f"--{name} '{value}' is not on a whole hour")
    return dt


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
