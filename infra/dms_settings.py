"""DMS settings generated from the pipeline config: S3 target endpoint, table mappings, task.

Pure functions returning plain dicts (CloudFormation property names), so tests compare them
with the config without synthesizing anything, and the stack puts them in the template as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cdclake.core.config import DmsLayout, PipelineConfig

# DMS always names the operation column "Op"; the job's op_column must say the same.
DMS_OP_COLUMN = "Op"
# Only the add-column rule can produce it; see aws-facts.md (35-digit string, ordered).
CHANGE_SEQ_EXPRESSION = "$AR_H_CHANGE_SEQ"


class DmsSettingsError(ValueError):
    """The pipeline config asks for a layout DMS cannot produce."""


def s3_target_settings(
    dms: DmsLayout,
    *,
    bucket_name: str,
    bucket_folder: str,
    kms_key_arn: Any,
    service_access_role_arn: Any,
    expected_bucket_owner: Any,
) -> dict[str, Any]:
    """``S3Settings`` of the DMS target endpoint that writes the files the job reads.

    ARNs and the account may be CloudFormation tokens. No ``DatePartitionTimezone``: folders
    are by UTC commit date, which the job's hour windows assume.
    """
    if dms.op_column != DMS_OP_COLUMN:
        raise DmsSettingsError(
            f"dms.op_column is '{dms.op_column}', but the DMS S3 target always writes "
            f"'{DMS_OP_COLUMN}'"
        )
    return {
        "BucketName": bucket_name,
        "BucketFolder": bucket_folder,
        "ServiceAccessRoleArn": service_access_role_arn,
        "ExpectedBucketOwner": expected_bucket_owner,
        "DataFormat": "parquet",
        "EncryptionMode": "SSE_KMS",
        "ServerSideEncryptionKmsKeyId": kms_key_arn,
        "IncludeOpForFullLoad": dms.full_load_has_op,
        "TimestampColumnName": dms.timestamp_column,
        "UseTaskStartTimeForFullLoadTimestamp": True,
        "DatePartitionEnabled": True,
        "DatePartitionSequence": dms.date_partition_sequence,
        "DatePartitionDelimiter": dms.date_partition_delimiter,
        # The job expects every I/U/D change (see aws-facts.md).
        "CdcInsertsOnly": False,
        "CdcInsertsAndUpdates": False,
        # About one file per table per minute.
        "CdcMaxBatchInterval": 60,
        "EnableStatistics": True,
    }


def table_mappings(cfg: PipelineConfig, full_lob_tables: Sequence[str] = ()) -> dict[str, Any]:
    """Table mappings: one selection rule per configured table, then transformations.

    ``drop_columns`` become ``remove-column`` rules so those columns (PII) never reach S3;
    the change-sequence column, when configured, comes from the ``$AR_H_CHANGE_SEQ`` rule;
    each of ``full_lob_tables`` (``schema.table``) gets a ``table-settings`` rule that
    replicates its LOBs in full LOB mode (the task's limited mode would fail on a value over
    ``LobMaxSize``).
    """
    unknown = sorted(set(full_lob_tables) - {t.qualified_name for t in cfg.tables})
    if unknown:
        raise DmsSettingsError(f"full_lob_tables: {unknown} are not tables of the pipeline config")
    rules: list[dict[str, Any]] = []

    def add(rule: dict[str, Any]) -> None:
        n = len(rules) + 1
        rules.append({"rule-id": str(n), "rule-name": f"{n}-{rule.pop('_name')}", **rule})

    for t in cfg.tables:
        add(
            {
                "_name": f"include-{t.schema}-{t.name}",
                "rule-type": "selection",
                "object-locator": {"schema-name": t.schema, "table-name": t.name},
                "rule-action": "include",
                "filters": [],
            }
        )
    for t in cfg.tables:
        for col in t.drop_columns:
            add(
                {
                    "_name": f"remove-{t.schema}-{t.name}-{col}",
                    "rule-type": "transformation",
                    "rule-target": "column",
                    "object-locator": {
                        "schema-name": t.schema,
                        "table-name": t.name,
                        "column-name": col,
                    },
                    "rule-action": "remove-column",
                }
            )
    for t in cfg.tables:
        if t.qualified_name in full_lob_tables:
            add(
                {
                    "_name": f"full-lob-{t.schema}-{t.name}",
                    "rule-type": "table-settings",
                    "object-locator": {"schema-name": t.schema, "table-name": t.name},
                    # unlimited + bulk-max-size 0: full LOB mode (no inline part).
                    "lob-settings": {"mode": "unlimited", "bulk-max-size": "0"},
                }
            )
    if cfg.dms.change_sequence_column:
        for schema in dict.fromkeys(t.schema for t in cfg.tables):
            add(
                {
                    "_name": f"change-seq-{schema}",
                    "rule-type": "transformation",
                    "rule-target": "column",
                    "object-locator": {"schema-name": schema, "table-name": "%"},
                    "rule-action": "add-column",
                    "value": cfg.dms.change_sequence_column,
                    "expression": CHANGE_SEQ_EXPRESSION,
                    "data-type": {"type": "string", "length": 50},
                }
            )
    return {"rules": rules}


def task_settings(lob_max_size_kb: int = 64) -> dict[str, Any]:
    """Replication task settings that keep DDL and errors safe for an S3 data lake.

    - LOBs (text, jsonb, bytea...) in limited LOB mode up to ``lob_max_size_kb``: DMS would
      truncate a longer value with only a log warning, so the source endpoint sets
      ``FailTasksOnLobTruncation`` (the task stops instead: infra/stack/dms.py).

    - Full load never drops or truncates what is already in S3 (``DO_NOTHING``): raw files
      are the job's history, and a reload only adds files.
    - A dropped or truncated source table does not delete raw files; ``ALTER TABLE`` is
      followed (new columns appear in later files, which the job handles).
    - Errors stop the task loudly instead of skipping rows (no silent data loss), and a
      selection that matches no table fails the task instead of replicating nothing.
    """
    return {
        "TargetMetadata": {
            "SupportLobs": True,
            "FullLobMode": False,
            "LimitedSizeLobMode": True,
            "LobMaxSize": lob_max_size_kb,
        },
        "FullLoadSettings": {
            "TargetTablePrepMode": "DO_NOTHING",
            "MaxFullLoadSubTasks": 8,
            "CommitRate": 10000,
        },
        "ChangeProcessingDdlHandlingPolicy": {
            "HandleSourceTableDropped": False,
            "HandleSourceTableTruncated": False,
            "HandleSourceTableAltered": True,
        },
        "ErrorBehavior": {
            "DataErrorPolicy": "STOP_TASK",
            "DataTruncationErrorPolicy": "STOP_TASK",
            "TableErrorPolicy": "STOP_TASK",
            "FailOnNoTablesCaptured": True,
            "RecoverableErrorCount": -1,
            "RecoverableErrorInterval": 5,
        },
        "Logging": {
            "EnableLogging": True,
            "LogComponents": [
                {"Id": c, "Severity": "LOGGER_SEVERITY_DEFAULT"}
                for c in (
                    "SOURCE_CAPTURE",
                    "SOURCE_UNLOAD",
                    "TARGET_LOAD",
                    "TARGET_APPLY",
                    "TASK_MANAGER",
                )
            ],
        },
    }
