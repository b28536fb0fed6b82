"""When a table's run has Spark interpret its expressions (pure: no JVM)."""

from __future__ import annotations

import pytest

from cdclake.job.context import interprets

MB = 2**20


@pytest.mark.parametrize(
    ("size", "batch", "max_mb", "expected"),
    [
        (40 * MB, 1 * MB, 64, True),  # a 1M-row table and its hourly batch
        (63 * MB, 1 * MB, 64, True),  # exactly at the limit
        (63 * MB, 1 * MB + 1, 64, False),
        (0, 2 * MB, 64, True),  # a first load of a small table
        (0, 65 * MB, 64, False),  # a large first load
        (400 * MB, 1 * MB, 64, False),  # a 10M-row table
        (1 * MB, 0, 0, False),  # 0: always compile
        (None, 0, 64, False),  # size unknown (no checksum): compile
    ],
)
def test_small_runs_interpret_and_large_or_unknown_ones_compile(size, batch, max_mb, expected):
    assert interprets(size, batch, max_mb) is expected
