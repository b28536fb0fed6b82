"""Step 1's pure decisions (cdclake.job.files): which hour folders a run lists and which files
it applies, oldest first within the per-run caps, and the frontier it leaves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cdclake.core.dms import CDC, RawFile
from cdclake.job.files import Window, choose, listing_start

H = datetime(2026, 11, 22, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def cdc(hour: int, name: str = "a") -> RawFile:
    at = H + hour * HOUR
    rel = f"{at:%Y/%m/%d/%H}/{name}.parquet"
    return RawFile(rel, f"/raw/s/t/{rel}", CDC, at)


def test_a_catch_up_applies_the_oldest_files_first_and_defers_the_rest():
    files = [cdc(h, n) for h in (1, 2, 3, 4) for n in ("a", "b")]
    window = Window(until=H + 5 * HOUR)
    by_files = choose(window, files, set(), None, None, caps=(3, 100))
    assert [f.relative for f in by_files.files] == [f.relative for f in files[:3]]
    assert (by_files.deferred, by_files.frontier) == (5, H + 2 * HOUR)
    by_hours = choose(window, files, set(), None, None, caps=(100, 2))
    assert [f.hour for f in by_hours.files] == [H + HOUR] * 2 + [H + 2 * HOUR] * 2
    assert (by_hours.deferred, by_hours.frontier) == (4, H + 3 * HOUR)


def test_applied_files_are_skipped_and_the_frontier_moves_to_until():
    files = [cdc(1), cdc(2), cdc(6)]
    got = choose(Window(until=H + 5 * HOUR), files, {files[0].path}, None, H, caps=(10, 10))
    assert got.files == (files[1],) and got.deferred == 0
    assert got.frontier == H + 5 * HOUR
    # A backfill of old hours never moves the frontier back.
    old = choose(Window(until=H + 3 * HOUR, since=H), files, set(), None, H + 9 * HOUR, (10, 10))
    assert old.frontier == H + 9 * HOUR


def test_a_backfill_is_never_deferred():
    files = [cdc(1), cdc(2), cdc(3)]
    applied = {f.path for f in files}
    got = choose(Window(until=H + 4 * HOUR, since=H), files, applied, None, None, caps=(1, 1))
    assert got.files == tuple(files) and got.deferred == 0


def test_listing_starts_at_the_lookback_or_the_frontier_whichever_is_older():
    window = Window(until=H + 100 * HOUR)
    assert listing_start(window, H + 99 * HOUR, None, 72) == H + 28 * HOUR
    assert listing_start(window, H + 10 * HOUR, None, 72) == H + 10 * HOUR  # a backlog
    backfill = Window(until=H + 100 * HOUR, since=H + 5 * HOUR)
    assert listing_start(backfill, H + 99 * HOUR, None, 72) == H + 5 * HOUR
    # No frontier yet: from the full load's hour, or everything without one.
    assert listing_start(window, None, H + 7 * HOUR + timedelta(minutes=3), 72) == H + 7 * HOUR
    assert listing_start(window, None, None, 72) is None
