"""A Spectrum-style read (the Parquet files the symlink manifests list, read with pyarrow, partition
values from the manifest folders) returns exactly the Delta snapshot's rows after every kind of
change; and the local query/validate CLI works on the same lake."""

from __future__ import annotations

import re

import pyarrow as pa

from cdclake.catalog.deltalog import LocalStore
from cdclake.catalog.spectrum import read_like_spectrum
from cdclake.cli import query
from tests.integration.conftest import Lake, ts

SCHEMA = {"id": pa.int32(), "p": pa.string(), "v": pa.string(), "w": pa.int64()}
# A partition value Hive must escape in a path (space, colon, slash).
ODD = "x y:z/1"


def spectrum_rows(lake: Lake) -> list[tuple]:
    columns, rows = read_like_spectrum(LocalStore(), lake.path)
    keep = [i for i, c in enumerate(columns) if not c.startswith("_")]
    return sorted((tuple(r[i] for i in keep) for r in rows), key=repr)


def snapshot_rows(lake: Lake) -> list[tuple]:
    return sorted((tuple(r) for r in lake.df().collect()), key=repr)


def assert_equivalent(lake: Lake, expected: list[tuple]) -> None:
    """Spectrum-style read == Delta snapshot == expected rows (whole rows, all columns, including
    bookkeeping ones for the first comparison)."""
    columns, rows = read_like_spectrum(LocalStore(), lake.path)
    delta = lake.spark.read.format("delta").load(lake.path).select(*columns).collect()
    from cdclake.catalog.spectrum import compare_rows

    diff = compare_rows(lake.name, columns, [tuple(r) for r in delta], rows)
    assert diff.ok, (diff.missing[:5], diff.extra[:5])
    assert spectrum_rows(lake) == snapshot_rows(lake) == sorted(expected, key=repr)


# Once Airflow is imported in the same test process (the DAG tests), its logging config sends
# log records to stdout too: compare the CLI's report lines only.
_LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\dT")


def report(capsys) -> str:
    lines = capsys.readouterr().out.splitlines(keepends=True)
    return "".join(line for line in lines if not _LOG_LINE.match(line))


def test_manifests_match_the_snapshot_after_every_kind_of_change(spark, tmp_path, capsys):
    lake = Lake(spark, tmp_path, schema=SCHEMA)
    lake.w.load(
        [
            {"id": 1, "p": "a", "v": "one"},
            {"id": 2, "p": "b", "v": "two"},
            {"id": 3, "p": "a", "v": "three"},
            {"id": 4, "p": ODD, "v": "four"},
        ]
    )
    lake.full()
    assert_equivalent(lake, [(1, "a", "one"), (2, "b", "two"), (3, "a", "three"), (4, ODD, "four")])

    # Update, delete the only row of partition b, move a row a -> c, insert into a new partition.
    lake.w.cdc(
        "2026-11-22T10",
        [
            {"Op": "U", "ts": ts(1), "id": 1, "p": "a", "v": "uno"},
            {"Op": "D", "ts": ts(2), "id": 2},
            {"Op": "U", "ts": ts(3), "id": 3, "p": "c", "v": "three"},
            {"Op": "I", "ts": ts(4), "id": 5, "p": "d", "v": "five"},
        ],
    )
    lake.inc("2026-11-22T11")
    assert_equivalent(
        lake, [(1, "a", "uno"), (3, "c", "three"), (4, ODD, "four"), (5, "d", "five")]
    )

    # Schema drift: a column added at the source; older files lack it (null in both reads).
    lake.w.cdc(
        "2026-11-22T11",
        [
            {"Op": "U", "ts": ts(1, hour=11), "id": 1, "p": "a", "v": "uno", "w": 10},
            {"Op": "I", "ts": ts(2, hour=11), "id": 6, "p": ODD, "v": "six", "w": 60},
            {"Op": "D", "ts": ts(3, hour=11), "id": 4},
        ],
    )
    lake.inc("2026-11-22T12")
    expected = [
        (1, "a", "uno", 10),
        (3, "c", "three", None),
        (5, "d", "five", None),
        (6, ODD, "six", 60),
    ]
    assert_equivalent(lake, expected)

    # The same through the CLI, plus SQL and validation on the local catalog.
    config = str(tmp_path / "raw" / ".." / "pipeline.yaml")
    assert query.main(["--config", config, "--spectrum-check"], spark=spark) == 0
    sql = "select p, count(*) as n from s.t group by p order by p"
    assert query.main(["--config", config, "--sql", sql], spark=spark) == 0
    out = report(capsys)
    assert "spectrum check: ok" in out
    assert out.endswith(
        "p       | n\n--------+--\na       | 1\nc       | 1\nd       | 1\nx y:z/1 | 1\n(4 row(s))\n"
    )
    athena_names = "select count(*) as n from cdc_lake.s_t"
    assert query.main(["--config", config, "--sql", athena_names], spark=spark) == 0
    assert report(capsys).endswith("n\n-\n4\n(1 row(s))\n")

    as_of = ["--as-of", "2026-11-22T12:00:00+00:00"]
    assert query.main(["--config", config, "--validate", *as_of], spark=spark) == 0
    assert report(capsys) == "3/3 checks passed\n"
    # Much later: freshness fails. A duplicated key breaks uniqueness and the audit row count.
    late = ["--as-of", "2026-11-23T12:00:00Z"]
    assert query.main(["--config", config, "--validate", *late], spark=spark) == 1
    assert report(capsys) == "2/3 checks passed; failed: s.t:freshness\n"
    lake.df(bookkeeping=True).where("id = 1").write.format("delta").mode("append").save(lake.path)
    assert query.main(["--config", config, "--validate", *as_of], spark=spark) == 1
    assert report(capsys) == (
        "1/3 checks passed; failed: s.t:key_uniqueness, s.t:row_count_vs_audit\n"
    )
