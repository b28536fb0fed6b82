from datetime import UTC, datetime

import pytest

from cdclake.core.config import DmsLayout
from cdclake.core.dms import CDC, LOAD, RawFile, classify, hour_folder
from cdclake.core.hours import HourArgumentError, parse_hour
from cdclake.job.files import Window

H10 = datetime(2026, 11, 22, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delimiter", "folder"),
    [
        ("SLASH", "2026/11/22/10"),
        ("DASH", "2026-11-22-10"),
        ("UNDERSCORE", "2026_11_22_10"),
        ("NONE", "2026112210"),
    ],
)
def test_cdc_folders_round_trip(delimiter, folder):
    layout = DmsLayout(date_partition_delimiter=delimiter)
    assert hour_folder(H10, layout) == folder
    assert classify(f"{folder}/20261122-100159123.parquet", layout) == (CDC, H10)


@pytest.mark.parametrize(
    "relative",
    [
        "LOAD00000001.parquet",
        "LOAD0000000A.parquet",
    ],
)
def test_load_files_at_root(relative):
    assert classify(relative, DmsLayout()) == (LOAD, None)


@pytest.mark.parametrize(
    "relative",
    [
        "2026-11-22-10/20261122-100159123.parquet",  # DASH folder under a SLASH layout
        "2026/13/22/10/x.parquet",  # not a date
        "2026/11/22/x.parquet",  # daily folder
        "2026/11/22/10/.x.parquet.crc",
        "2026/11/22/10/_SUCCESS",
        "notes.txt",
        "other.parquet",  # parquet at root that is not a LOAD file
        "sub/LOAD00000001.parquet",
    ],
)
def test_other_files_are_ignored(relative):
    assert classify(relative, DmsLayout()) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T11", datetime(2026, 11, 22, 11, tzinfo=UTC)),
        ("2026-11-22T11:00", datetime(2026, 11, 22, 11, tzinfo=UTC)),
        ("2026-11-22T11:00:00+00:00", datetime(2026, 11, 22, 11, tzinfo=UTC)),
        ("2026-11-22T12:00:00+01:00", datetime(2026, 11, 22, 11, tzinfo=UTC)),
        ("2026-11-22T11:00:00Z", datetime(2026, 11, 22, 11, tzinfo=UTC)),
    ],
)
def test_parse_hour(text, expected):
    assert parse_hour(text) == expected


@pytest.mark.parametrize("text", ["2026-11-22T11:30", "yesterday", "2026-11-22 11:00:01", ""])
def test_parse_hour_rejects(text):
    with pytest.raises(HourArgumentError):
        parse_hour(text, "until")


def f(hour: int, name: str = "a.parquet") -> RawFile:
    h = datetime(2026, 11, 22, hour, tzinfo=UTC)
    rel = f"2026/11/22/{hour:02d}/{name}"
    return RawFile(relative=rel, path=f"/raw/{rel}", kind=CDC, hour=h)


def test_window_selects_unapplied_files_before_until_including_late_ones():
    files = [f(8), f(9), f(9, "late.parquet"), f(10), f(11)]
    applied = {files[0].path, files[1].path}
    got = Window(until=datetime(2026, 11, 22, 11, tzinfo=UTC)).select(files, applied)
    assert [x.relative for x in got] == [
        "2026/11/22/09/late.parquet",
        "2026/11/22/10/a.parquet",
    ]


def test_window_since_reapplies_everything_in_range():
    files = [f(8), f(9), f(10)]
    applied = {x.path for x in files}
    w = Window(
        until=datetime(2026, 11, 22, 10, tzinfo=UTC), since=datetime(2026, 11, 22, 9, tzinfo=UTC)
    )
    assert [x.hour.hour for x in w.select(files, applied)] == [9]


def test_window_floor_skips_hours_before_the_full_load():
    files = [f(8), f(9), f(10)]
    floor = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
    got = Window(until=datetime(2026, 11, 22, 11, tzinfo=UTC)).select(files, set(), floor=floor)
    assert [x.hour.hour for x in got] == [9, 10]


def test_window_rejects_since_after_until():
    with pytest.raises(HourArgumentError, match="before"):
        Window(until=H10, since=H10)
