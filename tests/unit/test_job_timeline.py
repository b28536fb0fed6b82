"""The history's pure transforms on small frames: a set of changes as timelines of versions,
and the worklist against the versions held."""

from __future__ import annotations

from datetime import datetime

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from cdclake.core.hours import UTC
from cdclake.job.timeline import timeline, worklist

CHANGES = (
    "id int, v string, w string, _cdc_op string, _cdc_commit_ts timestamp, "
    "_cdc_change_seq string, _cdc_source_file string, _cdc_row_pos long, _cdc_origin int"
)
VERSIONS = "id int, v string, w string, _valid_from timestamp, _valid_to timestamp, _cdc_op string"


def t(minute: int) -> datetime:
    return datetime(2026, 11, 22, 10, minute, tzinfo=UTC)


def change(op, id, v, w, minute, seq, origin=0, file="f"):
    return (id, v, w, op, t(minute), f"{seq:035d}", file, seq, origin)


@pytest.fixture
def changes(spark):
    return spark.createDataFrame(
        [
            change("I", 1, "a", "x", 0, 1),
            change("U", 1, "a", "y", 1, 2),  # only w: the version is updated in place
            change("U", 1, "b", "y", 2, 3),
            change("U", 1, "c", "y", 2, 4),  # same instant: the last counts
            change("D", 1, None, None, 3, 5),
            change("U", 1, "c", "z", 4, 6),  # after a delete: a new version
            change("D", 2, None, None, 1, 7),  # a delete of a key without a version
            change("U", 3, "q", "q", 5, 8, origin=1),
            change("U", 3, "q", "q", 5, 8, origin=2),  # the same change from two places
        ],
        CHANGES,
    )


def test_timeline_collapses_opens_updates_in_place_and_closes(spark, changes):
    tl = timeline(changes, ["id"], ["v"])
    got = tl.where("_cdc_version").select("id", "v", "w", "_valid_from", "_valid_to", "_cdc_op")
    expected = spark.createDataFrame(
        [
            (1, "a", "y", t(0), t(2), "U"),
            (1, "c", "y", t(2), t(3), "U"),
            (1, "c", "z", t(4), None, "U"),
            (3, "q", "q", t(5), None, "U"),
        ],
        VERSIONS,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    # What is not a version's newest change is kept to be logged; of two copies, the logged one.
    rest = tl.where("not _cdc_version").select("id", "_cdc_row_pos", "_cdc_origin")
    expected_rest = spark.createDataFrame(
        [(1, 1, 0), (1, 5, 0), (2, 7, 0)], "id int, _cdc_row_pos long, _cdc_origin int"
    )
    assert_df_equality(rest, expected_rest, ignore_row_order=True, ignore_nullable=True)
    assert tl.where("id = 3").select("_cdc_origin").first()[0] == 2


def test_worklist_writes_only_what_differs(spark, changes):
    tl = timeline(changes, ["id"], ["v"])
    data = ["id", "v", "w"]
    cols = [*data, "_valid_from", "_valid_to", "_is_current", "_cdc_op", "_cdc_commit_ts"]
    cols += ["_cdc_change_seq", "_cdc_source_file", "_cdc_row_pos"]
    versions = tl.where("_cdc_version").select(*cols)
    # The history holds two of id 1's versions as they are, id 3's with another w, and a
    # version of id 1 from 10:03 that the changes no longer make.
    same = versions.where("id = 1 and _cdc_row_pos < 6")
    other = versions.where("id = 3").withColumn("w", F.lit("old"))
    gone = versions.where("_cdc_row_pos = 6")
    gone = gone.withColumn("_valid_from", F.col("_valid_from") - F.expr("interval 1 minute"))
    held = same.unionByName(other).unionByName(gone)
    work = worklist(tl, held, ["id"], data).select("id", "_valid_from", "_cdc_history_action")
    expected = spark.createDataFrame(
        [
            (1, t(4), "upsert"),
            (3, t(5), "upsert"),
            (3, t(5), "moved"),
            (1, t(3), "delete"),
            (1, None, "log"),
            (1, None, "log"),
            (2, None, "log"),
        ],
        "id int, _valid_from timestamp, _cdc_history_action string",
    )
    assert_df_equality(work, expected, ignore_row_order=True, ignore_nullable=True)
