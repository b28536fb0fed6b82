from pathlib import Path

import pytest

from cdclake.core.config import (
    ConfigFileNotFoundError,
    ConfigSyntaxError,
    DuplicateTableError,
    InvalidSettingError,
    MissingSettingError,
    UnknownSettingError,
    UnknownTableError,
    load_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[2]


def doc(**over):
    base = {
        "raw_root": "raw",
        "curated_root": "curated",
        "tables": [{"schema": "s", "name": "t", "primary_key": ["id"]}],
    }
    return base | over


def test_shipped_config_loads_and_resolves_paths_against_its_folder():
    cfg = load_config(ROOT / "conf" / "pipeline.yaml")
    assert cfg.raw_root == str(ROOT / "lakehouse" / "raw")
    travel = cfg.table("delta_emr_source.travel_details")
    assert travel.primary_key == ("trip_id",)
    assert travel.partition_by == ("route_id",)
    sales = cfg.table("delta_emr_source.ticket_sales")
    assert sales.primary_key == ("trip_id", "seat_no")
    assert sales.drop_columns == ("card_number",)
    assert cfg.table_location(travel) == f"{ROOT}/lakehouse/curated/delta_emr_source/travel_details"


def test_defaults_and_s3_roots_are_kept():
    cfg = parse_config(doc(raw_root="s3://raw-b/dms/", curated_root="s3://cur-b/lake"))
    assert cfg.raw_root == "s3://raw-b/dms"
    assert cfg.dms.date_partition_delimiter == "SLASH"
    assert cfg.dms.separator == "/"
    assert cfg.tables[0].partition_by == ()


@pytest.mark.parametrize(
    ("over", "error", "text"),
    [
        ({"raw_rot": "x"}, UnknownSettingError, "raw_rot"),
        ({"tables": []}, InvalidSettingError, "at least one table"),
        ({"dms": {"date_partition_delimiter": "COMMA"}}, InvalidSettingError, "COMMA"),
        ({"dms": {"date_partition_sequence": "YYYYMMDD"}}, InvalidSettingError, "hourly"),
        ({"dms": {"timestamp_column": "Op"}}, InvalidSettingError, "must differ"),
        ({"curated_root": "raw"}, InvalidSettingError, "must differ"),
        ({"raw_root": "gs://b/x"}, InvalidSettingError, "scheme"),
        ({"tables": [{"schema": "s", "name": "t"}]}, MissingSettingError, "primary_key"),
        (
            {"tables": [{"schema": "s", "name": "t", "primary_key": []}]},
            InvalidSettingError,
            "at least",
        ),
        (
            {
                "tables": [
                    {"schema": "s", "name": "t", "primary_key": ["id"], "drop_columns": ["id"]}
                ]
            },
            InvalidSettingError,
            "drop_columns",
        ),
        (
            {"tables": [{"schema": "s", "name": "t", "primary_key": ["_cdc_x"]}]},
            InvalidSettingError,
            "reserved",
        ),
        (
            {"tables": [{"schema": "s", "name": "t", "primary_key": ["id"], "partition_by": 3}]},
            InvalidSettingError,
            "expected list or str",
        ),
        (
            {"tables": [{"schema": "s", "name": "t", "primary_key": ["id"]}] * 2},
            DuplicateTableError,
            "listed twice",
        ),
        ({"dms": {"full_load_has_op": "yes"}}, InvalidSettingError, "expected bool"),
    ],
)
def test_invalid_configs_raise_named_errors(over, error, text):
    with pytest.raises(error, match=text):
        parse_config(doc(**over))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigFileNotFoundError):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tables: [unclosed\n")
    with pytest.raises(ConfigSyntaxError):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigSyntaxError, match="mapping"):
        load_config(bad)


def test_select_tables_checks_names():
    cfg = parse_config(doc())
    assert cfg.select_tables(None) == cfg.tables
    assert cfg.select_tables(["s.t"]) == cfg.tables
    with pytest.raises(UnknownTableError, match="s.nope"):
        cfg.select_tables(["s.nope"])


def test_maintenance_defaults_when_absent_and_shipped_values():
    from cdclake.core.config import MaintenanceConfig

    assert parse_config(doc()).maintenance == MaintenanceConfig(
        compact_recent_days=3,
        vacuum_retain_hours=336,
        tombstone_retention_days=30,
        quarantine_retention_days=90,
    )
    shipped = load_config(ROOT / "conf" / "pipeline.yaml").maintenance
    assert shipped == MaintenanceConfig()
    partial = parse_config(doc(maintenance={"vacuum_retain_hours": 168})).maintenance
    assert partial == MaintenanceConfig(vacuum_retain_hours=168)


@pytest.mark.parametrize(
    ("maintenance", "error", "text"),
    [
        ({"vacuum_retain_hours": 167}, "VacuumRetentionTooShortError", "168"),
        ({"vacuum_retain_hours": 0}, "InvalidSettingError", "at least 1"),
        ({"tombstone_retention_days": 6}, "TombstoneRetentionTooShortError", "resurrect|back"),
        ({"compact_recent_days": 0}, "InvalidSettingError", "at least 1"),
        ({"quarantine_retention_days": "90"}, "InvalidSettingError", "expected int"),
        ({"quarantine_retention_days": True}, "InvalidSettingError", "expected int"),
        ({"vacuum_retain": 400}, "UnknownSettingError", "vacuum_retain"),
        ("daily", "InvalidSettingError", "expected dict"),
    ],
)
def test_invalid_maintenance_settings_raise_named_errors(maintenance, error, text):
    import cdclake.core.config as config

    with pytest.raises(getattr(config, error), match=text):
        parse_config(doc(maintenance=maintenance))
    assert issubclass(getattr(config, error), config.ConfigError)


def test_merge_settings_where_zero_means_automatic_or_off():
    cfg = parse_config(doc(merge={"table_concurrency": 0, "interpreted_max_mb": 0})).merge
    assert (cfg.table_concurrency, cfg.interpreted_max_mb) == (0, 0)
    assert parse_config(doc()).merge.interpreted_max_mb == 64
    for name in ("table_concurrency", "interpreted_max_mb"):
        with pytest.raises(InvalidSettingError, match=f"{name}: must be at least 0, got -1"):
            parse_config(doc(merge={name: -1}))
    with pytest.raises(InvalidSettingError, match="lease_minutes: must be at least 1, got 0"):
        parse_config(doc(merge={"lease_minutes": 0}))
