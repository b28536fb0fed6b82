"""DMS endpoint settings and table mappings follow the pipeline config (no synth needed)."""

from __future__ import annotations

import pytest

from cdclake.core.config import parse_config
from infra.dms_settings import DmsSettingsError, s3_target_settings, table_mappings, task_settings


def config(
    delimiter: str = "SLASH",
    seq: str | None = "dms_change_seq",
    op_in_full_load: bool = True,
    ts: str = "dms_commit_ts",
    op: str = "Op",
):
    return parse_config(
        {
            "raw_root": "s3://r/dms",
            "curated_root": "s3://c/lake",
            "dms": {
                "date_partition_sequence": "YYYYMMDDHH",
                "date_partition_delimiter": delimiter,
                "timestamp_column": ts,
                "change_sequence_column": seq,
                "op_column": op,
                "full_load_has_op": op_in_full_load,
            },
            "tables": [
                {"schema": "s1", "name": "a", "primary_key": ["id"]},
                {
                    "schema": "s2",
                    "name": "b",
                    "primary_key": ["k1", "k2"],
                    "drop_columns": ["card"],
                },
            ],
        }
    )


def settings(cfg):
    return s3_target_settings(
        cfg.dms,
        bucket_name="raw",
        bucket_folder="dms",
        kms_key_arn="key",
        service_access_role_arn="role",
        expected_bucket_owner="owner",
    )


@pytest.mark.parametrize(
    ("delimiter", "seq", "op_in_full_load", "ts"),
    [
        ("SLASH", "dms_change_seq", True, "dms_commit_ts"),
        ("DASH", None, True, "commit_ts"),
        ("UNDERSCORE", "seq", False, "ts"),
        ("NONE", None, False, "dms_commit_ts"),
    ],
)
def test_s3_target_settings_are_what_the_job_expects(delimiter, seq, op_in_full_load, ts):
    cfg = config(delimiter, seq, op_in_full_load, ts)
    assert settings(cfg) == {
        "BucketName": "raw",
        "BucketFolder": "dms",
        "ServiceAccessRoleArn": "role",
        "ExpectedBucketOwner": "owner",
        "DataFormat": "parquet",
        "EncryptionMode": "SSE_KMS",
        "ServerSideEncryptionKmsKeyId": "key",
        "IncludeOpForFullLoad": op_in_full_load,
        "TimestampColumnName": ts,
        "UseTaskStartTimeForFullLoadTimestamp": True,
        "DatePartitionEnabled": True,
        "DatePartitionSequence": "YYYYMMDDHH",
        "DatePartitionDelimiter": delimiter,
        "CdcInsertsOnly": False,
        "CdcInsertsAndUpdates": False,
        "CdcMaxBatchInterval": 60,
        "EnableStatistics": True,
    }
    assert "DatePartitionTimezone" not in settings(cfg)
    assert "PreserveTransactions" not in settings(cfg)


def test_op_column_other_than_op_is_refused():
    with pytest.raises(DmsSettingsError, match="always writes 'Op'"):
        settings(config(op="operation"))


def test_table_mappings_with_change_sequence():
    rules = table_mappings(config(seq="dms_change_seq"))["rules"]
    assert rules == [
        {
            "rule-id": "1",
            "rule-name": "1-include-s1-a",
            "rule-type": "selection",
            "object-locator": {"schema-name": "s1", "table-name": "a"},
            "rule-action": "include",
            "filters": [],
        },
        {
            "rule-id": "2",
            "rule-name": "2-include-s2-b",
            "rule-type": "selection",
            "object-locator": {"schema-name": "s2", "table-name": "b"},
            "rule-action": "include",
            "filters": [],
        },
        {
            "rule-id": "3",
            "rule-name": "3-remove-s2-b-card",
            "rule-type": "transformation",
            "rule-target": "column",
            "rule-action": "remove-column",
            "object-locator": {"schema-name": "s2", "table-name": "b", "column-name": "card"},
        },
        {
            "rule-id": "4",
            "rule-name": "4-change-seq-s1",
            "rule-type": "transformation",
            "rule-target": "column",
            "rule-action": "add-column",
            "object-locator": {"schema-name": "s1", "table-name": "%"},
            "value": "dms_change_seq",
            "expression": "$AR_H_CHANGE_SEQ",
            "data-type": {"type": "string", "length": 50},
        },
        {
            "rule-id": "5",
            "rule-name": "5-change-seq-s2",
            "rule-type": "transformation",
            "rule-target": "column",
            "rule-action": "add-column",
            "object-locator": {"schema-name": "s2", "table-name": "%"},
            "value": "dms_change_seq",
            "expression": "$AR_H_CHANGE_SEQ",
            "data-type": {"type": "string", "length": 50},
        },
    ]


def test_table_mappings_without_change_sequence_have_no_add_column_rule():
    rules = table_mappings(config(seq=None))["rules"]
    assert [r["rule-action"] for r in rules] == ["include", "include", "remove-column"]


def test_task_settings_keep_ddl_and_errors_safe():
    s = task_settings()
    assert s["FullLoadSettings"]["TargetTablePrepMode"] == "DO_NOTHING"
    assert s["ChangeProcessingDdlHandlingPolicy"] == {
        "HandleSourceTableDropped": False,
        "HandleSourceTableTruncated": False,
        "HandleSourceTableAltered": True,
    }
    assert s["ErrorBehavior"]["FailOnNoTablesCaptured"] is True
    assert s["ErrorBehavior"]["DataErrorPolicy"] == "STOP_TASK"
    assert s["Logging"]["EnableLogging"] is True


def test_lobs_never_truncate_silently():
    # Limited LOB mode up to the configured size; a longer value stops the task (the source
    # endpoint's FailTasksOnLobTruncation, checked on the template) instead of truncating.
    assert task_settings()["TargetMetadata"] == {
        "SupportLobs": True,
        "FullLobMode": False,
        "LimitedSizeLobMode": True,
        "LobMaxSize": 64,
    }
    assert task_settings(lob_max_size_kb=1024)["TargetMetadata"]["LobMaxSize"] == 1024


def test_full_lob_tables_get_a_table_settings_rule():
    cfg = config()
    big = cfg.tables[0].qualified_name
    rules = table_mappings(cfg, full_lob_tables=(big,))["rules"]
    settings = [r for r in rules if r["rule-type"] == "table-settings"]
    assert settings == [
        {
            "rule-id": settings[0]["rule-id"],
            "rule-name": f"{settings[0]['rule-id']}-full-lob-{big.replace('.', '-')}",
            "rule-type": "table-settings",
            "object-locator": dict(zip(("schema-name", "table-name"), big.split("."), strict=True)),
            "lob-settings": {"mode": "unlimited", "bulk-max-size": "0"},
        }
    ]
    assert [r["rule-id"] for r in rules] == [str(i) for i in range(1, len(rules) + 1)]
    with pytest.raises(DmsSettingsError, match="not tables of the pipeline config"):
        table_mappings(cfg, full_lob_tables=("nope.nope",))
