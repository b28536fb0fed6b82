"""UTC hours: the unit of DMS's CDC folders, of the job's ``--since``/``--until`` and of the
hourly DAG's data intervals. Pure."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

# datetime.UTC is 3.11+; the job also runs on EMR Serverless's Python 3.9.
UTC = timezone.utc
HOUR = timedelta(hours=1)


class HourArgumentError(ValueError):
    """A ``--since`` / ``--until`` value is not a whole UTC hour."""


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


def hour_arg(t: datetime) -> str:
    """The job's hour argument (``2026-11-22T11``, UTC); inverse of :func:`parse_hour`.
    Refuses a time inside an hour."""
    t = t.astimezone(UTC)
    if t != t.replace(minute=0, second=0, microsecond=0):
        raise ValueError(f"{t.isoformat()} is not on a whole hour")
    return f"{t:%Y-%m-%dT%H}"


def floor_hour(t: datetime) -> datetime:
    """The UTC hour ``t`` falls in."""
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
