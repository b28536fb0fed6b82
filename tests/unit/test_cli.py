"""Command lines: argument and config errors (non-zero exit with a message, before any Spark
session), and the audit append shared by tables that finish together."""

import time

import pytest

from cdclake.cli.merge import EXIT_USAGE, main, parse_args


def write_cfg(tmp_path):
    p = tmp_path / "pipeline.yaml"
    p.write_text(
        "raw_root: raw\ncurated_root: cur\ntables:\n  - {schema: s, name: t, primary_key: [id]}\n"
    )
    return str(p)


class Boom:
    """Stands in for a Spark session: any use means the CLI went too far."""

    def __getattr__(self, name):
        raise AssertionError("spark must not be used on a usage error")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--load", "incremental"], "needs --until"),
        (["--load", "incremental", "--until", "2026-11-22T11:30"], "whole hour"),
        (["--load", "incremental", "--until", "soon"], "not a time"),
        (
            ["--load", "incremental", "--until", "2026-11-22T11", "--since", "2026-11-22T12"],
            "before",
        ),
        (["--load", "full", "--until", "2026-11-22T11"], "only apply"),
        (["--load", "sideways"], "invalid choice"),
        (["--load", "full", "--tables", "s.nope"], "not configured"),
        (["--load", "full", "--bogus"], "unrecognized"),
    ],
)
def test_usage_errors_exit_2_with_message(tmp_path, capsys, args, text):
    code = main(["--config", write_cfg(tmp_path), *args], spark=Boom())
    assert code == EXIT_USAGE
    assert text in capsys.readouterr().err


def test_missing_config_exits_2(tmp_path, capsys):
    assert (
        main(["--config", str(tmp_path / "x.yaml"), "--load", "full"], spark=Boom()) == EXIT_USAGE
    )
    assert "not found" in capsys.readouterr().err


def test_parse_args_builds_window():
    a = parse_args(
        [
            "--config",
            "c",
            "--load",
            "incremental",
            "--until",
            "2026-11-22T11",
            "--since",
            "2026-11-22T08",
            "--tables",
            "a.b, c.d",
        ]
    )
    assert (a.window.since.hour, a.window.until.hour) == (8, 11)
    assert a.table_names == ["a.b", "c.d"]


def test_a_backfill_past_the_tombstone_retention_is_refused_before_spark(tmp_path, capsys):
    from datetime import UTC, datetime, timedelta

    old = datetime.now(UTC) - timedelta(days=40)  # the default retention is 30 days
    args = ["--load", "incremental", "--until", f"{old + timedelta(hours=2):%Y-%m-%dT%H}"]
    args += ["--since", f"{old:%Y-%m-%dT%H}"]
    assert main(["--config", write_cfg(tmp_path), *args], spark=Boom()) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "older than the tombstones kept" in err and "--past-tombstone-retention" in err


def test_group_append_carries_what_arrived_during_a_write_in_the_next_one():
    import threading

    from cdclake.cli.scaffold import GroupAppend

    writes: list[list[str]] = []
    first_started, release = threading.Event(), threading.Event()

    def write(items: list[str]) -> None:
        writes.append(items)
        if len(writes) == 1:
            first_started.set()
            assert release.wait(10)

    group = GroupAppend(write)
    a = threading.Thread(target=group.add, args=("a",))
    a.start()
    assert first_started.wait(10)
    others = [threading.Thread(target=group.add, args=(x,)) for x in ("b", "c")]
    for t in others:
        t.start()
    deadline = time.monotonic() + 10
    while len(group._queue) < 2 and time.monotonic() < deadline:  # both waiting for their turn
        time.sleep(0.01)
    release.set()
    for t in [a, *others]:
        t.join(10)
        assert not t.is_alive()
    assert writes[0] == ["a"] and sorted(writes[1]) == ["b", "c"] and len(writes) == 2
    group.add("d")  # alone: a write of its own
    assert writes[2] == ["d"]


def test_group_append_gives_a_failed_write_error_to_every_item_it_carried():
    from cdclake.cli.scaffold import GroupAppend

    def write(items: list[str]) -> None:
        if "bad" in items:
            raise OSError("audit table unreachable")

    group = GroupAppend(write)
    with pytest.raises(OSError, match="unreachable"):
        group.add("bad")
    group.add("good")  # the next write is not poisoned
