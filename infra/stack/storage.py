"""The customer-managed KMS key and the four buckets (raw, curated, artifacts, logs)."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import layout
from infra.envconf import EnvConfig
from infra.stack.suppress import checkov_skip, nag_suppress

# Explicit KMS actions (no wildcards) for services that encrypt on the stack's behalf.
KMS_USE = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:DescribeKey",
]


class Storage(Construct):
    """KMS key with rotation; buckets with SSE-KMS + bucket keys, versioning, TLS-only
    policies, public access blocked, access logging and lifecycle rules."""

    def __init__(self, scope: Construct, cid: str, *, env: EnvConfig) -> None:
        super().__init__(scope, cid)
        names, ret = env.buckets, env.retention
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/cdclake-{env.name}",
            description=f"cdclake {env.name}: buckets, DMS, secrets, logs, alarms",
            enable_key_rotation=True,
            pending_window=Duration.days(30),
            removal_policy=RemovalPolicy.RETAIN,
        )
        # Key policies always name the key as "*" (it means this key).
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=KMS_USE,
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                        )
                    }
                },
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmAndEventDeliveryToEncryptedTopic",
                principals=[
                    iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                    iam.ServicePrincipal("events.amazonaws.com"),
                    iam.ServicePrincipal("dms.amazonaws.com"),
                ],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
            )
        )

        # Server access logs can only go to an SSE-S3 bucket (S3 does not deliver them to
        # SSE-KMS buckets); EMR logs in it are still SSE-KMS (encryptionKeyArn on the app).
        self.logs = s3.Bucket(
            self,
            "Logs",
            bucket_name=names.logs,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-logs",
                    expiration=Duration.days(ret.logs_days),
                    noncurrent_version_expiration=Duration.days(ret.noncurrent_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )
        why_no_log = "this is the access-log target; logging it into itself would loop"
        checkov_skip(self.logs, "CKV_AWS_18", why_no_log)
        nag_suppress(self.logs, "AwsSolutions-S1", why_no_log)

        def data_bucket(cid_: str, name: str, rules: list[s3.LifecycleRule]) -> s3.Bucket:
            return s3.Bucket(
                self,
                cid_,
                bucket_name=name,
                encryption=s3.BucketEncryption.KMS,
                encryption_key=self.key,
                bucket_key_enabled=True,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                enforce_ssl=True,
                minimum_tls_version=1.2,
                versioned=True,
                server_access_logs_bucket=self.logs,
                server_access_logs_prefix=f"{layout.ACCESS_LOGS_PREFIX}/{name}/",
                removal_policy=RemovalPolicy.RETAIN,
                lifecycle_rules=[
                    *rules,
                    s3.LifecycleRule(
                        id="noncurrent-and-multipart",
                        noncurrent_version_expiration=Duration.days(ret.noncurrent_days),
                        abort_incomplete_multipart_upload_after=Duration.days(7),
                    ),
                ],
            )

        self.raw = data_bucket(
            "Raw",
            names.raw,
            # Raw CDC files are the job's input; after raw_days only a DMS reload rebuilds them.
            [
                s3.LifecycleRule(
                    id="expire-raw-cdc",
                    prefix=f"{layout.RAW_FOLDER}/",
                    expiration=Duration.days(ret.raw_days),
                )
            ],
        )
        self.curated = data_bucket("Curated", names.curated, [])
        self.artifacts = data_bucket(
            "Artifacts",
            names.artifacts,
            [
                s3.LifecycleRule(
                    id="expire-athena-results",
                    prefix=f"{layout.ATHENA_RESULTS_PREFIX}/",
                    expiration=Duration.days(ret.athena_results_days),
                )
            ],
        )
