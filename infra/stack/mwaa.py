"""MWAA: the execution role of the hourly DAG (always created; its ARN is a stack output)
and, when ``mwaa.enabled``, the environment (private web server, all logs on, the packaged
``requirements.txt``).

MWAA installs ``requirements.txt`` only at a given S3 object version, and the file must exist
before the environment points at it: ``make deploy`` (``infra/deploy.py``) uploads it first and
passes its version as the context value ``mwaa_requirements_version``. Without that value (a
plain ``make synth``, the first deploy before the bucket exists) the environment is declared
without requirements and a warning says so.

Its resources are created in the stack's scope (see ``infra/stack/pipeline_stack.py``).
"""

from __future__ import annotations

from aws_cdk import Annotations, Aws, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_mwaa as mwaa
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra import layout, runtime
from infra.envconf import EnvConfig
from infra.stack import access
from infra.stack.catalog import Catalog
from infra.stack.emr import Emr
from infra.stack.network import Network
from infra.stack.storage import Storage
from infra.stack.suppress import checkov_skip


class Mwaa(Construct):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        env: EnvConfig,
        storage: Storage,
        network: Network,
        emr: Emr,
        dms_task_arn: str,
        catalog: Catalog,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, cid)
        stack = Stack.of(self)
        self.name = environment_name(env)
        self.role = access.role(
            stack,
            "MwaaRole",
            name=env.resource_name("mwaa"),
            principals=[
                iam.ServicePrincipal("airflow.amazonaws.com"),
                iam.ServicePrincipal("airflow-env.amazonaws.com"),
            ],
            conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            description="MWAA execution role: runs the hourly DAG (DMS, EMR Serverless, Athena)",
            statements=[
                *_environment_statements(self.name, storage.artifacts),
                *_service_statements(self.name),
                access.key_use(storage.key.key_arn),
                *_pipeline_statements(emr, dms_task_arn),
                *_athena_statements(catalog, storage),
                # Failed tasks notify the alarm topic (SnsNotifier; the key is above).
                iam.PolicyStatement(
                    sid="NotifyFailedTasks",
                    actions=["sns:Publish"],
                    resources=[alarm_topic.topic_arn],
                ),
            ],
        )
        checkov_skip(
            self.role,
            "CKV_AWS_111",
            "the only unscoped write is cloudwatch:PutMetricData (no resource-level "
            "permissions; limited to namespace AmazonMWAA by condition)",
        )
        self.environment = (
            self._environment(stack, env, storage, network) if env.mwaa.enabled else None
        )

    def _environment(
        self, scope: Construct, env: EnvConfig, storage: Storage, network: Network
    ) -> mwaa.CfnEnvironment:
        pinned = runtime.runtime_pins()["airflow"]
        if env.mwaa.airflow_version != pinned:
            raise ValueError(
                f"mwaa.airflow_version {env.mwaa.airflow_version} != the Airflow the DAGs are "
                f"pinned to ({pinned}, pyproject [tool.cdclake.runtime].airflow)"
            )
        requirements = self.node.try_get_context(REQUIREMENTS_VERSION_CONTEXT)
        if not requirements:
            Annotations.of(self).add_warning_v2(
                "cdclake:mwaa-requirements",
                f"no {REQUIREMENTS_VERSION_CONTEXT}: the MWAA environment is declared without "
                "requirements.txt (make deploy uploads it and deploys again with its version)",
            )
        sg = network.security_group(
            "MwaaSg",
            "MWAA environment",
            within=(ec2.Port.all_traffic(), "MWAA components talk to each other"),
        )
        log_cfg = mwaa.CfnEnvironment.ModuleLoggingConfigurationProperty(
            enabled=True, log_level="INFO"
        )
        return mwaa.CfnEnvironment(
            scope,
            "Airflow",
            name=self.name,
            airflow_version=env.mwaa.airflow_version,
            environment_class=env.mwaa.environment_class,
            max_workers=env.mwaa.max_workers,
            source_bucket_arn=storage.artifacts.bucket_arn,
            dag_s3_path=layout.DAGS_PREFIX,
            requirements_s3_path=layout.MWAA_REQUIREMENTS_KEY if requirements else None,
            requirements_s3_object_version=requirements or None,
            execution_role_arn=self.role.role_arn,
            kms_key=storage.key.key_arn,
            webserver_access_mode="PRIVATE_ONLY",
            network_configuration=mwaa.CfnEnvironment.NetworkConfigurationProperty(
                security_group_ids=[sg.security_group_id],
                # MWAA takes exactly two private subnets.
                subnet_ids=network.private_subnet_ids[:2],
            ),
            logging_configuration=mwaa.CfnEnvironment.LoggingConfigurationProperty(
                dag_processing_logs=log_cfg,
                scheduler_logs=log_cfg,
                task_logs=log_cfg,
                webserver_logs=log_cfg,
                worker_logs=log_cfg,
            ),
            # cdclake.target selects the DAGs' aws tasks (see dags/cdclake_dags/settings.py).
            airflow_configuration_options={"core.load_examples": "False", "cdclake.target": "aws"},
        )


REQUIREMENTS_VERSION_CONTEXT = "mwaa_requirements_version"


def environment_name(env: EnvConfig) -> str:
    return env.resource_name("airflow")


def _environment_statements(name: str, artifacts: s3.IBucket) -> list[iam.PolicyStatement]:
    """Airflow metrics of this environment; the DAG folder and the checks MWAA runs on it."""
    return [
        iam.PolicyStatement(
            sid="PublishAirflowMetrics",
            actions=["airflow:PublishMetrics"],
            resources=[
                f"arn:{Aws.PARTITION}:airflow:{Aws.REGION}:{Aws.ACCOUNT_ID}:environment/{name}"
            ],
        ),
        iam.PolicyStatement(
            sid="ReadDags",
            actions=["s3:GetObject", "s3:GetObjectVersion"],
            resources=[
                artifacts.arn_for_objects(f"{layout.DAGS_PREFIX}/*"),
                artifacts.arn_for_objects("conf/*"),
                artifacts.arn_for_objects(layout.MWAA_REQUIREMENTS_KEY),
            ],
        ),
        access.s3_list(artifacts, layout.DAGS_PREFIX),
        access.s3_list(artifacts, layout.MWAA_REQUIREMENTS_KEY.split("/")[0]),
        iam.PolicyStatement(
            sid="MwaaBucketChecks",
            actions=[
                "s3:GetBucketPublicAccessBlock",
                "s3:GetEncryptionConfiguration",
                "s3:GetBucketVersioning",
            ],
            resources=[artifacts.bucket_arn],
        ),
        iam.PolicyStatement(
            sid="AccountPublicAccessCheck",
            actions=["s3:GetAccountPublicAccessBlock"],
            resources=["*"],
        ),
    ]


def _service_statements(name: str) -> list[iam.PolicyStatement]:
    """Logs, metrics and Celery queues, as in AWS's documented execution-role policy."""
    return [
        iam.PolicyStatement(
            sid="AirflowLogs",
            actions=[
                "logs:CreateLogStream",
                "logs:CreateLogGroup",
                "logs:PutLogEvents",
                "logs:GetLogEvents",
                "logs:GetLogRecord",
                "logs:GetLogGroupFields",
                "logs:GetQueryResults",
            ],
            resources=[
                f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:airflow-{name}-*"
            ],
        ),
        iam.PolicyStatement(
            sid="DescribeLogGroups", actions=["logs:DescribeLogGroups"], resources=["*"]
        ),
        iam.PolicyStatement(
            sid="AirflowMetrics",
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": "AmazonMWAA"}},
        ),
        iam.PolicyStatement(
            sid="CeleryQueues",
            actions=[
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:ReceiveMessage",
                "sqs:SendMessage",
            ],
            resources=[f"arn:{Aws.PARTITION}:sqs:{Aws.REGION}:*:airflow-celery-*"],
        ),
    ]


def _pipeline_statements(emr: Emr, dms_task_arn: str) -> list[iam.PolicyStatement]:
    """Run the job on the one application (passing only its role) and drive the DMS task."""
    app_arn = emr.application_arn
    return [
        iam.PolicyStatement(
            sid="RunJob",
            actions=[
                "emr-serverless:StartJobRun",
                "emr-serverless:GetJobRun",
                "emr-serverless:CancelJobRun",
                "emr-serverless:GetApplication",
                "emr-serverless:StartApplication",
                "emr-serverless:GetDashboardForJobRun",
                "emr-serverless:TagResource",
                # The DAG finds earlier runs of a task to derive StartJobRun's clientToken.
                "emr-serverless:ListJobRuns",
            ],
            resources=[app_arn, f"{app_arn}/jobruns/*"],
        ),
        iam.PolicyStatement(
            sid="PassJobRoleToEmrServerlessOnly",
            actions=["iam:PassRole"],
            resources=[emr.job_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}},
        ),
        iam.PolicyStatement(
            sid="DmsTask",
            actions=[
                "dms:StartReplicationTask",
                "dms:StopReplicationTask",
                "dms:DescribeTableStatistics",
                "dms:ReloadTables",
            ],
            resources=[dms_task_arn],
        ),
        iam.PolicyStatement(
            sid="DescribeDmsTasks", actions=["dms:DescribeReplicationTasks"], resources=["*"]
        ),
    ]


def _athena_statements(catalog: Catalog, st: Storage) -> list[iam.PolicyStatement]:
    """Queries and DDL in the pipeline's workgroup and Glue database, over curated data."""
    return [
        iam.PolicyStatement(
            sid="Athena",
            actions=[
                "athena:StartQueryExecution",
                "athena:GetQueryExecution",
                "athena:GetQueryResults",
                "athena:StopQueryExecution",
                "athena:GetWorkGroup",
            ],
            resources=[catalog.workgroup_arn],
        ),
        iam.PolicyStatement(
            sid="GlueForAthena",
            actions=access.GLUE_READ
            + [
                "glue:CreateTable",
                "glue:UpdateTable",
                "glue:BatchCreatePartition",
                "glue:BatchDeletePartition",
                "glue:BatchUpdatePartition",
            ],
            resources=access.glue_arns(catalog.database_name),
        ),
        iam.PolicyStatement(
            sid="AthenaReadsCurated",
            actions=["s3:GetObject"],
            resources=[st.curated.arn_for_objects(f"{layout.CURATED_FOLDER}/*")],
        ),
        access.s3_list(st.curated, layout.CURATED_FOLDER),
        iam.PolicyStatement(
            sid="AthenaResults",
            actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[st.artifacts.arn_for_objects(f"{layout.ATHENA_RESULTS_PREFIX}/*")],
        ),
        access.s3_list(st.artifacts, layout.ATHENA_RESULTS_PREFIX),
        access.bucket_location(st.artifacts, st.curated),
    ]
