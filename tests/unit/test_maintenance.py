"""Pure parts of the maintenance job: cutoffs, partition predicates, arguments and exit codes
(no Spark session is started here)."""

from datetime import UTC, datetime, timedelta

import pytest

from cdclake.cli.maintenance import main, parse_args, parse_now
from cdclake.cli.scaffold import EXIT_USAGE, UsageError
from cdclake.core.config import MaintenanceConfig
from cdclake.core.sql import partition_predicate, sql_string
from cdclake.lake.maintenance import Cutoffs, cutoffs

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def test_cutoffs_are_derived_from_now():
    got = cutoffs(NOW, MaintenanceConfig(compact_recent_days=2, tombstone_retention_days=10))
    assert got == Cutoffs(
        compact_since=NOW - timedelta(days=2),
        tombstones_before=NOW - timedelta(days=10),
        quarantine_before=NOW - timedelta(days=90),
    )
    # A future --now never expires more than the wall clock allows.
    clamped = cutoffs(NOW + timedelta(days=5), MaintenanceConfig(), wall_clock=NOW)
    assert clamped.compact_since == NOW + timedelta(days=2)
    assert clamped.tombstones_before == NOW - timedelta(days=30)
    assert clamped.quarantine_before == NOW - timedelta(days=90)
    with pytest.raises(ValueError, match="timezone-aware"):
        cutoffs(datetime(2026, 11, 23), MaintenanceConfig())


@pytest.mark.parametrize(
    ("columns", "partitions", "expected"),
    [
        (["p"], [{"p": "b"}, {"p": "a"}], "(`p` = 'a') OR (`p` = 'b')"),
        (["p"], [{"p": None}, {"p": "a"}], "(`p` = 'a') OR (`p` IS NULL)"),
        (
            ["d", "r"],
            [{"d": "2026-11-22", "r": "7"}],
            "(`d` = '2026-11-22' AND `r` = '7')",
        ),
        (["p"], [{"p": "it's a \\ path"}], "(`p` = 'it\\'s a \\\\ path')"),
        (["we`ird"], [{"we`ird": "x"}], "(`we``ird` = 'x')"),
    ],
)
def test_partition_predicate(columns, partitions, expected):
    assert partition_predicate(columns, partitions) == expected


def test_partition_predicate_needs_columns_and_partitions():
    with pytest.raises(ValueError, match="column"):
        partition_predicate([], [{}])
    with pytest.raises(ValueError, match="partition"):
        partition_predicate(["p"], [])


def test_sql_string_escapes_quotes_and_backslashes():
    assert sql_string("a'b\\c") == "'a\\'b\\\\c'"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-23T00:00:00Z", NOW),
        ("2026-11-23T00:00", NOW),
        ("2026-11-23T01:00:00+01:00", NOW),
    ],
)
def test_parse_now_is_utc(value, expected):
    got = parse_now(value)
    assert got == expected
    assert got.tzinfo == UTC


def test_parse_now_defaults_to_the_wall_clock_and_rejects_junk():
    assert abs(parse_now(None) - datetime.now(UTC)) < timedelta(minutes=1)
    with pytest.raises(UsageError, match="not a time"):
        parse_now("tomorrow")


def test_parse_args_splits_tables():
    a = parse_args(["--config", "c", "--tables", "s.a, s.b,", "--dry-run"])
    assert a.table_names == ["s.a", "s.b"]
    assert a.dry_run is True


class Boom:
    """Stands in for a Spark session: any use means the CLI went too far."""

    def __getattr__(self, name):
        raise AssertionError("spark must not be used on a usage error")


def write_cfg(tmp_path, extra=""):
    p = tmp_path / "pipeline.yaml"
    p.write_text(
        "raw_root: raw\ncurated_root: cur\n"
        "tables:\n  - {schema: s, name: t, primary_key: [id]}\n" + extra
    )
    return str(p)


@pytest.mark.parametrize(
    ("args", "extra", "text"),
    [
        (["--now", "soon"], "", "not a time"),
        (["--tables", "s.nope"], "", "not configured"),
        (["--bogus"], "", "unrecognized"),
        (["--profile", "cloud"], "", "invalid choice"),
        ([], "maintenance: {vacuum_retain_hours: 24}\n", "below Delta's safety minimum"),
        ([], "maintenance: {tombstone_retention_days: 1}\n", "tombstone_retention_days"),
    ],
)
def test_usage_and_config_errors_exit_2_before_spark(tmp_path, capsys, args, extra, text):
    assert main(["--config", write_cfg(tmp_path, extra), *args], spark=Boom()) == EXIT_USAGE
    assert text in capsys.readouterr().err


def test_missing_config_exits_2(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "x.yaml")], spark=Boom()) == EXIT_USAGE
    assert "not found" in capsys.readouterr().err
