"""The synthesized templates: DMS settings agree with the pipeline config, and the security
properties the issue asks for hold on every resource."""

from __future__ import annotations

import json
import re

from infra import layout
from infra.runtime import emr_release
from infra.stack.logstore import LOG_STORE_ACTIONS
from tests.infra.conftest import REQUIREMENTS_VERSION

ACCOUNT_ID = re.compile(r"(?<!\d)\d{12}(?!\d)")


def as_list(v):
    return v if isinstance(v, list) else [v]


# --- DMS against the pipeline config -------------------------------------------------------


def test_s3_target_endpoint_matches_pipeline_config(synth):
    cfg, s3 = synth.cfg, synth.one("AWS::DMS::Endpoint", EndpointType="target")["S3Settings"]
    raw_bucket, raw_folder = cfg.raw_root.removeprefix("s3://").split("/", 1)
    assert s3["BucketName"] == {
        "Ref": next(
            iter(
                k
                for k, v in synth.resources("AWS::S3::Bucket").items()
                if v["Properties"]["BucketName"] == raw_bucket
            )
        )
    }
    assert s3["BucketFolder"] == raw_folder
    assert s3["DataFormat"] == "parquet"
    assert s3["IncludeOpForFullLoad"] is cfg.dms.full_load_has_op
    assert s3["TimestampColumnName"] == cfg.dms.timestamp_column
    assert s3["UseTaskStartTimeForFullLoadTimestamp"] is True
    assert s3["DatePartitionEnabled"] is True
    assert s3["DatePartitionSequence"] == cfg.dms.date_partition_sequence
    assert s3["DatePartitionDelimiter"] == cfg.dms.date_partition_delimiter
    assert "DatePartitionTimezone" not in s3
    assert s3["EncryptionMode"] == "SSE_KMS" and "Fn::GetAtt" in s3["ServerSideEncryptionKmsKeyId"]
    assert s3["ExpectedBucketOwner"] == {"Ref": "AWS::AccountId"}
    assert cfg.dms.op_column == "Op"


def test_table_mappings_match_pipeline_config(synth):
    cfg = synth.cfg
    task = synth.one("AWS::DMS::ReplicationTask")
    assert task["MigrationType"] == "full-load-and-cdc"
    rules = json.loads(task["TableMappings"])["rules"]
    selected = {
        (r["object-locator"]["schema-name"], r["object-locator"]["table-name"])
        for r in rules
        if r["rule-type"] == "selection"
    }
    assert selected == {(t.schema, t.name) for t in cfg.tables}
    assert all(r["rule-action"] == "include" for r in rules if r["rule-type"] == "selection")
    added = [r for r in rules if r.get("rule-action") == "add-column"]
    if cfg.dms.change_sequence_column:
        assert {r["value"] for r in added} == {cfg.dms.change_sequence_column}
        assert {r["expression"] for r in added} == {"$AR_H_CHANGE_SEQ"}
        assert {r["object-locator"]["schema-name"] for r in added} == {t.schema for t in cfg.tables}
    else:
        assert added == []
    removed = {
        (
            r["object-locator"]["schema-name"],
            r["object-locator"]["table-name"],
            r["object-locator"]["column-name"],
        )
        for r in rules
        if r.get("rule-action") == "remove-column"
    }
    assert removed == {(t.schema, t.name, c) for t in cfg.tables for c in t.drop_columns}
    settings = json.loads(task["ReplicationTaskSettings"])
    assert settings["ChangeProcessingDdlHandlingPolicy"]["HandleSourceTableDropped"] is False
    assert settings["FullLoadSettings"]["TargetTablePrepMode"] == "DO_NOTHING"


def test_source_endpoint_uses_secrets_manager_and_tls(synth):
    src = synth.one("AWS::DMS::Endpoint", EndpointType="source")
    pg = src["PostgreSqlSettings"]
    assert (
        "Ref" in pg["SecretsManagerSecretId"] and "Fn::GetAtt" in pg["SecretsManagerAccessRoleArn"]
    )
    assert "Password" not in src and "Username" not in src
    # Limited LOB mode must stop the task on a value over LobMaxSize, never truncate it.
    assert pg["FailTasksOnLobTruncation"] is True
    assert src["SslMode"] in ("require", "verify-ca", "verify-full")
    rot = synth.one("AWS::SecretsManager::RotationSchedule")
    assert (
        rot["RotationRules"]["ScheduleExpression"] == f"rate({synth.env.source.rotation_days} days)"
    )
    assert "KmsKeyId" in synth.one("AWS::SecretsManager::Secret")


def test_replication_instance_is_private_and_encrypted(synth):
    inst = synth.one("AWS::DMS::ReplicationInstance")
    assert inst["PubliclyAccessible"] is False and "KmsKeyId" in inst


# --- EMR Serverless, Glue, Athena, MWAA ----------------------------------------------------


def test_emr_application(synth):
    app = synth.one("AWS::EMRServerless::Application")
    assert app["ReleaseLabel"] == emr_release()
    assert app["AutoStopConfiguration"]["Enabled"] is True
    assert set(app["MaximumCapacity"]) == {"Cpu", "Memory", "Disk"}
    assert app["NetworkConfiguration"]["SubnetIds"] == list(synth.env.network.private_subnet_ids)
    s3mon = app["MonitoringConfiguration"]["S3MonitoringConfiguration"]
    (logs_id,) = [
        k
        for k, v in synth.resources("AWS::S3::Bucket").items()
        if v["Properties"]["BucketName"] == synth.env.buckets.logs
    ]
    assert s3mon["LogUri"] == {
        "Fn::Join": ["", ["s3://", {"Ref": logs_id}, f"/{layout.EMR_LOGS_PREFIX}/"]]
    }
    assert "EncryptionKeyArn" in s3mon
    props = app["RuntimeConfiguration"][0]["Properties"]
    lib = "/usr/share/aws/delta/lib"
    assert props["spark.jars"] == (
        f"{lib}/delta-spark.jar,{lib}/delta-storage.jar,{lib}/delta-storage-s3-dynamodb.jar"
    )
    assert props["spark.submit.pyFiles"] == f"{lib}/delta-spark.jar"  # the Python `delta` module
    assert props["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert props["spark.delta.logStore.s3.impl"] == "io.delta.storage.S3DynamoDBLogStore"
    assert props["spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName"] == (
        f"cdclake-{synth.env.name}-delta-log"
    )
    assert props["spark.io.delta.storage.S3DynamoDBLogStore.ddb.region"] == synth.env.region


def test_spark_submit_parameters_carry_package_delta_python_and_log_store(synth):
    params = synth.template["Outputs"]["SparkSubmitParameters"]["Value"]
    zip_uri = f"s3://{synth.env.buckets.artifacts}/{layout.JOB_PACKAGE_KEY}"
    assert params.startswith(f"--py-files {zip_uri},/usr/share/aws/delta/lib/delta-spark.jar ")
    confs = dict(c.split("=", 1) for c in params.split(" --conf ")[1:])
    app = synth.one("AWS::EMRServerless::Application")["RuntimeConfiguration"][0]["Properties"]
    # Every job run carries the application's Delta, catalog and log store settings itself.
    assert confs == {k: v for k, v in app.items() if k != "spark.submit.pyFiles"}
    assert synth.template["Outputs"]["DeltaLogTable"]["Value"] == {
        "Ref": next(iter(synth.resources("AWS::DynamoDB::Table")))
    }


def test_delta_log_store_table(synth):
    table = synth.one("AWS::DynamoDB::Table")
    assert table["TableName"] == f"cdclake-{synth.env.name}-delta-log"
    assert table["KeySchema"] == [
        {"AttributeName": "tablePath", "KeyType": "HASH"},
        {"AttributeName": "fileName", "KeyType": "RANGE"},
    ]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expireTime", "Enabled": True}
    assert table["SSESpecification"]["SSEType"] == "KMS"
    assert "Fn::GetAtt" in table["SSESpecification"]["KMSMasterKeyId"]
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    # Only the EMR job role may use it, and only with the log store's calls.
    (table_id,) = synth.resources("AWS::DynamoDB::Table")
    users = [
        (rid, st)
        for rid, st in iam_statements(synth)
        if any(a.startswith("dynamodb:") for a in as_list(st["Action"]))
        and st.get("Sid") != "CeilingForPipelineRoles"
    ]
    assert [rid for rid, _ in users] == [
        next(k for k in synth.resources("AWS::IAM::Role") if k.startswith("EmrJobRole"))
    ]
    (st,) = [st for _, st in users]
    assert sorted(as_list(st["Action"])) == sorted(LOG_STORE_ACTIONS)
    assert as_list(st["Resource"]) == [{"Fn::GetAtt": [table_id, "Arn"]}]


def test_glue_database_and_athena_workgroup(synth):
    db = synth.one("AWS::Glue::Database")
    assert db["DatabaseInput"]["Name"] == synth.cfg.glue_database
    wg = synth.one("AWS::Athena::WorkGroup")["WorkGroupConfiguration"]
    assert wg["EnforceWorkGroupConfiguration"] is True
    assert wg["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"


def test_mwaa_is_private_with_logging_when_enabled(synth):
    envs = synth.resources("AWS::MWAA::Environment")
    assert len(envs) == (1 if synth.env.mwaa.enabled else 0)
    for e in envs.values():
        p = e["Properties"]
        assert p["WebserverAccessMode"] == "PRIVATE_ONLY"
        assert all(v["Enabled"] for v in p["LoggingConfiguration"].values())
        assert p["DagS3Path"] == layout.DAGS_PREFIX
        assert p["AirflowVersion"] == "3.0.6"
        # The packaged requirements.txt, at the version `make deploy` uploaded.
        assert p["RequirementsS3Path"] == layout.MWAA_REQUIREMENTS_KEY
        assert p["RequirementsS3ObjectVersion"] == REQUIREMENTS_VERSION


def test_mwaa_role_may_notify_the_alarm_topic(synth):
    (topic_id,) = synth.resources("AWS::SNS::Topic")
    (st,) = [st for _, st in iam_statements(synth) if st.get("Sid") == "NotifyFailedTasks"]
    assert st["Action"] == "sns:Publish" and st["Resource"] == {"Ref": topic_id}


def test_mwaa_scheduler_heartbeat_alarm(synth):
    alarms = [
        a["Properties"]
        for a in synth.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == "AmazonMWAA"
    ]
    if not synth.env.mwaa.enabled:
        assert alarms == []
        return
    (a,) = alarms
    assert a["MetricName"] == "SchedulerHeartbeat"
    assert sorted(a["Dimensions"], key=lambda d: d["Name"]) == [
        {"Name": "Environment", "Value": f"cdclake-{synth.env.name}-airflow"},
        {"Name": "Function", "Value": "Scheduler"},
    ]
    assert (a["Statistic"], a["Period"], a["Threshold"]) == ("Average", 300, 0)
    assert a["ComparisonOperator"] == "LessThanOrEqualToThreshold"
    assert a["TreatMissingData"] == "breaching"


# --- storage ---------------------------------------------------------------------------


def test_buckets_are_encrypted_versioned_private_logged(synth):
    buckets = {
        v["Properties"]["BucketName"]: v["Properties"]
        for v in synth.resources("AWS::S3::Bucket").values()
    }
    b = synth.env.buckets
    assert set(buckets) == {b.raw, b.curated, b.artifacts, b.logs}
    for name, p in buckets.items():
        assert p["VersioningConfiguration"]["Status"] == "Enabled"
        assert p["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        rule = p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        if name == b.logs:  # S3 delivers access logs only to SSE-S3 buckets
            assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
            assert "LoggingConfiguration" not in p
        else:
            assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
            assert "KMSMasterKeyID" in rule["ServerSideEncryptionByDefault"]
            assert rule["BucketKeyEnabled"] is True
            assert (
                p["LoggingConfiguration"]["LogFilePrefix"] == f"{layout.ACCESS_LOGS_PREFIX}/{name}/"
            )
        assert p["LifecycleConfiguration"]["Rules"]
    raw_rules = buckets[b.raw]["LifecycleConfiguration"]["Rules"]
    assert {
        "Id": "expire-raw-cdc",
        "Prefix": "dms/",
        "ExpirationInDays": synth.env.retention.raw_days,
        "Status": "Enabled",
    } in raw_rules
    assert any(
        r.get("ExpirationInDays") == synth.env.retention.logs_days
        for r in buckets[b.logs]["LifecycleConfiguration"]["Rules"]
    )


def test_every_bucket_policy_denies_plain_http(synth):
    policies = synth.resources("AWS::S3::BucketPolicy")
    assert len(policies) == 4
    for p in policies.values():
        denies = [
            s for s in p["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"
        ]
        assert any(
            s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            for s in denies
        )


def test_kms_key_rotates(synth):
    key = synth.one("AWS::KMS::Key")
    assert key["EnableKeyRotation"] is True
    assert "KmsMasterKeyId" in synth.one("AWS::SNS::Topic")
    assert "KmsKeyId" in synth.one("AWS::Logs::LogGroup")


# --- IAM -------------------------------------------------------------------------------


def iam_statements(synth):
    """(resource id, statement) for every identity policy statement in the template."""
    for rid, r in synth.template["Resources"].items():
        if r["Type"] == "AWS::IAM::Role":
            for pol in r["Properties"].get("Policies", []):
                for st in pol["PolicyDocument"]["Statement"]:
                    yield rid, st
        elif r["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            for st in r["Properties"]["PolicyDocument"]["Statement"]:
                yield rid, st


def test_every_role_has_the_permissions_boundary(synth):
    roles = synth.resources("AWS::IAM::Role")
    (boundary_id,) = synth.resources("AWS::IAM::ManagedPolicy")
    assert len(roles) >= 4
    for rid, r in roles.items():
        assert r["Properties"].get("PermissionsBoundary") == {"Ref": boundary_id}, rid


def test_pass_role_is_limited_by_passed_to_service(synth):
    passes = [
        st
        for _, st in iam_statements(synth)
        if st["Effect"] == "Allow" and "iam:PassRole" in as_list(st["Action"])
    ]
    assert passes
    for st in passes:
        if st.get("Sid") == "CeilingForPipelineRoles":
            continue  # the boundary only caps; the grant below carries the condition
        assert (
            st["Condition"]["StringEquals"]["iam:PassedToService"] == "emr-serverless.amazonaws.com"
        )
        assert all("Fn::GetAtt" in r for r in as_list(st["Resource"]))


def test_job_metrics_are_limited_to_the_cdclake_namespace(synth):
    (st,) = [st for _, st in iam_statements(synth) if st.get("Sid") == "JobMetrics"]
    assert st["Condition"] == {"StringEquals": {"cloudwatch:namespace": "CdcLake"}}


# Every Allow statement whose Action or Resource is a full wildcard, by Sid, and why AWS
# requires it. Anything not listed here fails the test.
WILDCARD_ALLOW_LIST = {
    "JobMetrics": "cloudwatch:PutMetricData has no resource-level permissions "
    "(namespace condition)",
    "AirflowMetrics": "cloudwatch:PutMetricData has no resource-level permissions "
    "(namespace condition)",
    "AccountPublicAccessCheck": "s3:GetAccountPublicAccessBlock is account-level (MWAA checks it)",
    "DescribeLogGroups": "logs:DescribeLogGroups has no resource-level permissions (MWAA)",
    "DescribeDmsTasks": "dms:DescribeReplicationTasks has no resource-level permissions",
    "Ec2NetworkInterfaces": "dms-vpc-role: EC2 Describe* / ENI creation have no "
    "resource-level permissions",
    "CeilingForPipelineRoles": "permissions boundary: grants nothing; caps the roles to the "
    "actions they use",
}


def test_no_wildcard_actions_or_resources_except_allow_listed(synth):
    seen = set()
    for rid, st in iam_statements(synth):
        if st["Effect"] != "Allow":
            continue
        actions = as_list(st.get("Action", []))
        assert not any(a == "*" or a.endswith(":*") for a in actions), (rid, st)
        if "*" in as_list(st.get("Resource", [])):
            assert st.get("Sid") in WILDCARD_ALLOW_LIST, (rid, st)
            seen.add(st["Sid"])
    expected = set(WILDCARD_ALLOW_LIST) - (
        {"Ec2NetworkInterfaces"} if not synth.env.dms.create_service_roles else set()
    )
    assert seen == expected, "allow-list entries that no longer apply should be removed"


def test_key_policy_wildcards_are_only_the_key_itself(synth):
    # Key policies must name the key as "*"; no principal may be "*".
    for st in synth.one("AWS::KMS::Key")["KeyPolicy"]["Statement"]:
        assert st["Resource"] == "*"
        assert st["Principal"] != "*" and st["Principal"].get("AWS") != "*"


# --- monitoring ------------------------------------------------------------------------


def test_alarms_cover_every_table_and_go_to_the_topic(synth):
    alarms = [a["Properties"] for a in synth.resources("AWS::CloudWatch::Alarm").values()]
    (topic_id,) = synth.resources("AWS::SNS::Topic")
    for a in alarms:
        assert a["AlarmActions"] == [{"Ref": topic_id}]
    job = {
        (a["MetricName"], a["Dimensions"][0]["Value"])
        for a in alarms
        if a.get("Namespace") == "CdcLake"
    }
    assert job == {
        (m, t.qualified_name)
        for m in ("FreshnessSeconds", "QuarantinedRows", "TableRunFailed")
        for t in synth.cfg.tables
    }
    dms = {a["MetricName"] for a in alarms if a.get("Namespace") == "AWS/DMS"}
    assert dms == {"CDCLatencySource", "CDCLatencyTarget"}
    emr = [m["Expression"] for a in alarms for m in a.get("Metrics", []) if "Expression" in m]
    assert any("FailedJobs" in json.dumps(e) for e in emr) and any(
        "RunningJobs" in json.dumps(e) for e in emr
    )
    sub = synth.one("AWS::DMS::EventSubscription")
    assert set(sub["EventCategories"]) == {"failure", "state change"}
    assert len(synth.resources("AWS::CloudWatch::Dashboard")) == 1
    assert len(synth.resources("AWS::Events::Rule")) == 1


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def test_no_account_ids_in_the_template(synth):
    # Numbers (like the Athena scan cutoff) may have 12 digits; account ids are strings.
    assert not [s for s in strings(synth.template) if ACCOUNT_ID.search(s)]
