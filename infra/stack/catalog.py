"""Where the curated tables are queried: the Glue database and the Athena workgroup (engine
v3, configuration enforced, SSE-KMS results, per-query scan cutoff).

Its resources are created in the stack's scope (see ``infra/stack/pipeline_stack.py``).
"""

from __future__ import annotations

from aws_cdk import Aws, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import layout
from infra.envconf import EnvConfig


class Catalog(Construct):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        env: EnvConfig,
        database: str,
        key: kms.IKey,
        results_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, cid)
        stack = Stack.of(self)
        self.database_name = database
        self.database = glue.CfnDatabase(
            stack,
            "GlueDb",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=database,
                description="cdclake curated Delta tables",
                location_uri=env.buckets.curated_root,
            ),
        )
        self.workgroup_name = env.resource_name("analytics")
        self.workgroup = _workgroup(stack, self.workgroup_name, env, key, results_bucket)
        self.workgroup_arn = (
            f"arn:{Aws.PARTITION}:athena:{Aws.REGION}:{Aws.ACCOUNT_ID}"
            f":workgroup/{self.workgroup_name}"
        )


def _workgroup(
    scope: Construct, name: str, env: EnvConfig, key: kms.IKey, results_bucket: s3.IBucket
) -> athena.CfnWorkGroup:
    cfn = athena.CfnWorkGroup  # for its nested property types
    return athena.CfnWorkGroup(
        scope,
        "AthenaWorkGroup",
        name=name,
        description="cdclake queries; results encrypted with the stack key",
        state="ENABLED",
        recursive_delete_option=False,
        work_group_configuration=cfn.WorkGroupConfigurationProperty(
            enforce_work_group_configuration=True,
            publish_cloud_watch_metrics_enabled=True,
            bytes_scanned_cutoff_per_query=env.athena.bytes_scanned_cutoff,
            engine_version=cfn.EngineVersionProperty(
                selected_engine_version="Athena engine version 3"
            ),
            result_configuration=cfn.ResultConfigurationProperty(
                output_location=f"s3://{results_bucket.bucket_name}/{layout.ATHENA_RESULTS_PREFIX}/",
                expected_bucket_owner=Aws.ACCOUNT_ID,
                encryption_configuration=cfn.EncryptionConfigurationProperty(
                    encryption_option="SSE_KMS", kms_key=key.key_arn
                ),
            ),
        ),
    )
