"""EMR Serverless: the Spark application on the release the job is pinned to (pyproject
``[tool.cdclake.runtime]``) and the job's runtime role.

Its resources are created in the stack's scope (see ``infra/stack/pipeline_stack.py``).
"""

from __future__ import annotations

from aws_cdk import Aws, Stack
from aws_cdk import aws_emrserverless as emrs
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra import layout, runtime
from infra.envconf import EnvConfig
from infra.stack import access
from infra.stack.logstore import DeltaLogStore
from infra.stack.network import Network
from infra.stack.storage import Storage


class Emr(Construct):
    """Auto-start/stop application with a capacity ceiling, private subnets, KMS-encrypted S3
    logs and Delta + Glue + DynamoDB log store Spark defaults; a role that reads raw, writes
    curated, manages the tables of ``glue_database`` and uses the log store's table."""

    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        env: EnvConfig,
        storage: Storage,
        network: Network,
        glue_database: str,
        log_store: DeltaLogStore,
    ) -> None:
        super().__init__(scope, cid)
        stack = Stack.of(self)
        self.log_uri = f"s3://{storage.logs.bucket_name}/{layout.EMR_LOGS_PREFIX}/"
        self.spark_defaults = runtime.spark_defaults(log_store.table_name, log_store.region)
        self.application = _application(
            stack, env, storage, network, self.log_uri, self.spark_defaults
        )
        self.application_id = self.application.attr_application_id
        self.application_arn = (
            f"arn:{Aws.PARTITION}:emr-serverless:{Aws.REGION}:{Aws.ACCOUNT_ID}"
            f":/applications/{self.application_id}"
        )
        self.job_role = access.role(
            stack,
            "EmrJobRole",
            name=env.resource_name("emr-job"),
            principals=[iam.ServicePrincipal("emr-serverless.amazonaws.com")],
            conditions={
                "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                "ArnLike": {"aws:SourceArn": self.application_arn},
            },
            description="Runtime role of the cdc_merge job on EMR Serverless",
            statements=[
                *_bucket_statements(storage),
                *_catalog_statements(storage, glue_database),
                log_store.job_statement(),
            ],
        )


def _application(
    scope: Construct,
    env: EnvConfig,
    storage: Storage,
    network: Network,
    log_uri: str,
    spark_defaults: dict[str, str],
) -> emrs.CfnApplication:
    e = env.emr
    cfn = emrs.CfnApplication  # for its nested property types
    return emrs.CfnApplication(
        scope,
        "EmrApp",
        name=env.resource_name("spark"),
        release_label=runtime.emr_release(),
        type="Spark",
        architecture=e.architecture,
        auto_start_configuration=cfn.AutoStartConfigurationProperty(enabled=True),
        auto_stop_configuration=cfn.AutoStopConfigurationProperty(
            enabled=True, idle_timeout_minutes=e.idle_timeout_minutes
        ),
        maximum_capacity=cfn.MaximumAllowedResourcesProperty(
            cpu=e.max_cpu, memory=e.max_memory, disk=e.max_disk
        ),
        network_configuration=cfn.NetworkConfigurationProperty(
            subnet_ids=network.private_subnet_ids,
            security_group_ids=[network.emr_sg.security_group_id],
        ),
        monitoring_configuration=cfn.MonitoringConfigurationProperty(
            s3_monitoring_configuration=cfn.S3MonitoringConfigurationProperty(
                log_uri=log_uri, encryption_key_arn=storage.key.key_arn
            )
        ),
        runtime_configuration=[
            cfn.ConfigurationObjectProperty(
                classification="spark-defaults", properties=spark_defaults
            )
        ],
    )


def _bucket_statements(st: Storage) -> list[iam.PolicyStatement]:
    """Read raw CDC files, the job and its config; write curated tables and EMR logs."""
    return [
        iam.PolicyStatement(
            sid="ReadRaw",
            actions=["s3:GetObject"],
            resources=[st.raw.arn_for_objects(f"{layout.RAW_FOLDER}/*")],
        ),
        access.s3_list(st.raw, layout.RAW_FOLDER),
        iam.PolicyStatement(
            sid="ReadJobAndConfig",
            actions=["s3:GetObject"],
            resources=[
                st.artifacts.arn_for_objects("jobs/*"),
                st.artifacts.arn_for_objects("conf/*"),
            ],
        ),
        iam.PolicyStatement(
            sid="WriteCurated",
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            resources=[
                st.curated.arn_for_objects(f"{layout.CURATED_FOLDER}/*"),
                st.curated.arn_for_objects(f"{layout.CURATED_FOLDER}_$folder$"),
            ],
        ),
        access.s3_list(st.curated, layout.CURATED_FOLDER),
        iam.PolicyStatement(
            sid="WriteLogs", actions=["s3:PutObject"], resources=[access.log_prefix_arn(st.logs)]
        ),
        access.bucket_location(st.raw, st.curated, st.artifacts, st.logs),
    ]


def _catalog_statements(st: Storage, database: str) -> list[iam.PolicyStatement]:
    """The tables of the pipeline's Glue database, the stack key, the job's own metrics."""
    return [
        iam.PolicyStatement(
            sid="GlueTables",
            actions=access.GLUE_READ + access.GLUE_WRITE,
            resources=access.glue_arns(database),
        ),
        iam.PolicyStatement(
            sid="GlueDefaultDb",
            actions=["glue:GetDatabase"],
            resources=[access.glue_default_db_arn()],
        ),
        access.key_use(st.key.key_arn),
        iam.PolicyStatement(
            sid="JobMetrics",
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": access.JOB_METRIC_NAMESPACE}},
        ),
    ]
