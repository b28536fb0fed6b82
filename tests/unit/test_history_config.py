"""History settings (``history:`` per table): parsing, validation with named errors, and the
names and places they give the history table."""

from __future__ import annotations

import pytest

from cdclake.catalog.ddl import (
    DdlError,
    check_names,
    history_meta,
    history_spectrum_name,
    history_table_name,
)
from cdclake.catalog.deltalog import Field, TableMeta
from cdclake.core.config import (
    HistoryConfig,
    HistoryNameClashError,
    InvalidSettingError,
    UnknownSettingError,
    parse_config,
)


def cfg(history, tmp_path, **table):
    doc = {
        "raw_root": "raw",
        "curated_root": "cur",
        "tables": [
            {"schema": "s", "name": "t", "primary_key": ["id"], "partition_by": ["p"]}
            | {"drop_columns": ["secret"], "history": history}
            | table
        ],
    }
    return parse_config(doc, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (False, None),
        (True, HistoryConfig()),
        ({}, HistoryConfig()),
        ({"track_columns": ["v", "w"]}, HistoryConfig(track_columns=("v", "w"))),
        ({"except_columns": "note"}, HistoryConfig(except_columns=("note",))),
        ({"partition_by": []}, HistoryConfig(partition_by=())),
        ({"partition_by": ["day"]}, HistoryConfig(partition_by=("day",))),
    ],
)
def test_history_settings(tmp_path, history, expected):
    assert cfg(history, tmp_path).tables[0].history == expected


def test_off_by_default(tmp_path):
    doc = {
        "raw_root": "r",
        "curated_root": "c",
        "tables": [{"schema": "s", "name": "t", "primary_key": "id"}],
    }
    assert parse_config(doc, base_dir=tmp_path).tables[0].history is None


def test_places_and_partitions(tmp_path):
    c = cfg(True, tmp_path)
    t = c.tables[0]
    assert c.history_location(t) == f"{tmp_path}/cur/s/t_history"
    assert t.history_partition_by == ("p",)
    assert cfg({"partition_by": []}, tmp_path).tables[0].history_partition_by == ()
    assert (history_table_name(t), history_spectrum_name(t)) == (
        "s_t_history",
        "s_t_history_spectrum",
    )


@pytest.mark.parametrize(
    ("history", "error", "text"),
    [
        ("yes", InvalidSettingError, "expected bool or dict"),
        ({"track": ["v"]}, UnknownSettingError, "track"),
        ({"track_columns": ["v"], "except_columns": ["w"]}, InvalidSettingError, "not both"),
        ({"track_columns": []}, InvalidSettingError, "at least one"),
        ({"track_columns": ["id"]}, InvalidSettingError, "primary key"),
        ({"except_columns": ["secret"]}, InvalidSettingError, "drop_columns"),
        ({"partition_by": ["secret"]}, InvalidSettingError, "drop_columns"),
        ({"track_columns": ["Op"]}, InvalidSettingError, "not source columns"),
        ({"track_columns": ["_valid_from"]}, InvalidSettingError, "not source columns"),
        ({"track_columns": ["_cdc_op"]}, InvalidSettingError, "reserved"),
        ({"track_columns": ["v", "v"]}, InvalidSettingError, "twice"),
    ],
)
def test_bad_history_settings_are_named(tmp_path, history, error, text):
    with pytest.raises(error, match=text):
        cfg(history, tmp_path)


def test_a_history_may_not_take_another_tables_name(tmp_path):
    doc = {
        "raw_root": "raw",
        "curated_root": "cur",
        "tables": [
            {"schema": "s", "name": "t", "primary_key": ["id"], "history": True},
            {"schema": "s", "name": "t_history", "primary_key": ["id"]},
        ],
    }
    with pytest.raises(HistoryNameClashError, match="'s.t_history'"):
        parse_config(doc, base_dir=tmp_path)


def test_catalog_names_of_histories_may_not_clash(tmp_path):
    doc = {
        "raw_root": "raw",
        "curated_root": "cur",
        "tables": [
            {"schema": "a", "name": "b", "primary_key": ["id"], "history": True},
            {"schema": "a_b", "name": "history", "primary_key": ["id"]},
        ],
    }
    with pytest.raises(DdlError, match="'a.b_history' and 'a_b.history' both map to catalog name"):
        check_names(parse_config(doc, base_dir=tmp_path))


@pytest.mark.parametrize(
    ("history", "tracked"),
    [
        (HistoryConfig(), ["p", "v", "w"]),
        (HistoryConfig(track_columns=("w", "v")), ["v", "w"]),
        (HistoryConfig(except_columns=("v",)), ["p", "w"]),
    ],
)
def test_tracked_columns_never_include_the_key(history, tracked):
    assert history.tracked(["id", "p", "v", "w"], ["id"]) == tracked


def test_history_meta_follows_the_table():
    live = TableMeta(
        7,
        (
            Field("id", "integer"),
            Field("p", "string"),
            Field("_cdc_op", "string"),
            Field("_cdc_commit_ts", "timestamp"),
        ),
        ("p",),
        {},
    )
    meta = history_meta(live, ("p",))
    assert [(f.name, f.type) for f in meta.fields] == [
        ("id", "integer"),
        ("p", "string"),
        ("_valid_from", "timestamp"),
        ("_valid_to", "timestamp"),
        ("_is_current", "boolean"),
        ("_cdc_op", "string"),
        ("_cdc_commit_ts", "timestamp"),
    ]
    assert meta.partition_columns == ("p",)
