"""The stack of one environment: storage, secret, DMS, EMR Serverless, IAM, Glue, Athena,
optional MWAA, monitoring. Built from ``conf/env/<env>.yaml`` and the pipeline config."""

from __future__ import annotations

import json

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_emrserverless as emrs
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_mwaa as mwaa
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct

from cdclake.config import PipelineConfig
from infra import layout, runtime
from infra.envconf import EnvConfig
from infra.stack import access
from infra.stack.dms import Dms
from infra.stack.monitoring import Monitoring
from infra.stack.storage import Storage
from infra.stack.suppress import checkov_skip

HTTPS = ec2.Port.tcp(443)


class PipelineStack(Stack):
    def __init__(
        self, scope: Construct, cid: str, *, env_cfg: EnvConfig, cfg: PipelineConfig, **kw
    ) -> None:
        super().__init__(scope, cid, **kw)
        env, net = env_cfg, env_cfg.network
        self.env_cfg, self.cfg = env, cfg
        retention = env.retention.log_group_days
        self.storage = st = Storage(self, "Storage", env=env)
        key = st.key

        vpc = ec2.Vpc.from_vpc_attributes(
            self,
            "Vpc",
            vpc_id=net.vpc_id,
            availability_zones=[f"az{i}" for i in range(len(net.private_subnet_ids))],
            private_subnet_ids=list(net.private_subnet_ids),
        )
        subnets = ec2.SubnetSelection(subnets=vpc.private_subnets)
        dms_sg = self._sg("DmsSg", vpc, "DMS replication instance")
        emr_sg = self._sg("EmrSg", vpc, "EMR Serverless workers")
        emr_sg.add_ingress_rule(emr_sg, ec2.Port.all_tcp(), "Spark driver and executors")
        emr_sg.add_egress_rule(emr_sg, ec2.Port.all_tcp(), "Spark driver and executors")
        rotation_sg = self._sg("RotationSg", vpc, "Secret rotation function")
        port = ec2.Port.tcp(env.source.port)
        if net.source_db_security_group_id:
            db_sg = ec2.SecurityGroup.from_security_group_id(
                self, "SourceDbSg", net.source_db_security_group_id, mutable=True
            )
            for sg, what in ((dms_sg, "DMS"), (rotation_sg, "secret rotation")):
                sg.add_egress_rule(db_sg, port, f"{what} to the source database")
                db_sg.add_ingress_rule(sg, port, f"cdclake {env.name} {what}")
        else:
            for sg, what in ((dms_sg, "DMS"), (rotation_sg, "secret rotation")):
                sg.add_egress_rule(
                    ec2.Peer.ipv4(vpc.vpc_cidr_block), port, f"{what} to the source database"
                )

        # Source credentials: generated, KMS-encrypted, rotated; DMS reads them by ARN.
        src = env.source
        self.secret = sm.Secret(
            self,
            "SourceDbSecret",
            secret_name=f"cdclake/{env.name}/source-db",
            description="Replication user of the source database (read by DMS)",
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
            generate_secret_string=sm.SecretStringGenerator(
                secret_string_template=json.dumps(
                    {
                        "engine": "postgres",
                        "host": src.host,
                        "port": src.port,
                        "dbname": src.database,
                        "username": src.username,
                    }
                ),
                generate_string_key="password",
                exclude_characters="\"'@/\\ :;%`",
                password_length=32,
            ),
        )
        self.secret.add_rotation_schedule(
            "Rotation",
            automatically_after=Duration.days(src.rotation_days),
            hosted_rotation=sm.HostedRotation.postgre_sql_single_user(
                function_name=env.resource_name("source-db-rotation"),
                vpc=vpc,
                vpc_subnets=subnets,
                security_groups=[rotation_sg],
                exclude_characters="\"'@/\\ :;%`",
            ),
        )

        self.dms = Dms(
            self,
            "Dms",
            env=env,
            cfg=cfg,
            key=key,
            raw=st.raw,
            secret=self.secret,
            security_group=dms_sg,
            log_retention_days=retention,
        )

        # EMR Serverless on the release the job is pinned to (pyproject [tool.cdclake.runtime]).
        e = env.emr
        self.emr_log_uri = f"s3://{st.logs.bucket_name}/{layout.EMR_LOGS_PREFIX}/"
        self.emr = emrs.CfnApplication(
            self,
            "EmrApp",
            name=env.resource_name("spark"),
            release_label=runtime.emr_release(),
            type="Spark",
            architecture=e.architecture,
            auto_start_configuration=emrs.CfnApplication.AutoStartConfigurationProperty(
                enabled=True
            ),
            auto_stop_configuration=emrs.CfnApplication.AutoStopConfigurationProperty(
                enabled=True, idle_timeout_minutes=e.idle_timeout_minutes
            ),
            maximum_capacity=emrs.CfnApplication.MaximumAllowedResourcesProperty(
                cpu=e.max_cpu, memory=e.max_memory, disk=e.max_disk
            ),
            network_configuration=emrs.CfnApplication.NetworkConfigurationProperty(
                subnet_ids=list(net.private_subnet_ids),
                security_group_ids=[emr_sg.security_group_id],
            ),
            monitoring_configuration=emrs.CfnApplication.MonitoringConfigurationProperty(
                s3_monitoring_configuration=emrs.CfnApplication.S3MonitoringConfigurationProperty(
                    log_uri=self.emr_log_uri, encryption_key_arn=key.key_arn
                )
            ),
            runtime_configuration=[
                emrs.CfnApplication.ConfigurationObjectProperty(
                    classification="spark-defaults", properties=runtime.spark_defaults()
                )
            ],
        )
        app_arn = (
            f"arn:{Aws.PARTITION}:emr-serverless:{Aws.REGION}:{Aws.ACCOUNT_ID}"
            f":/applications/{self.emr.attr_application_id}"
        )

        db = cfg.glue_database
        self.glue_db = glue.CfnDatabase(
            self,
            "GlueDb",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=db,
                description="cdclake curated Delta tables",
                location_uri=env.buckets.curated_root,
            ),
        )

        self.emr_role = access.role(
            self,
            "EmrJobRole",
            name=env.resource_name("emr-job"),
            principals=[iam.ServicePrincipal("emr-serverless.amazonaws.com")],
            conditions={
                "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                "ArnLike": {"aws:SourceArn": app_arn},
            },
            description="Runtime role of the cdc_merge job on EMR Serverless",
            statements=[
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
                    actions=[
                        "s3:GetObject",
                        "s3:PutObject",
                        "s3:DeleteObject",
                        "s3:AbortMultipartUpload",
                    ],
                    resources=[
                        st.curated.arn_for_objects(f"{layout.CURATED_FOLDER}/*"),
                        st.curated.arn_for_objects(f"{layout.CURATED_FOLDER}_$folder$"),
                    ],
                ),
                access.s3_list(st.curated, layout.CURATED_FOLDER),
                iam.PolicyStatement(
                    sid="WriteLogs",
                    actions=["s3:PutObject"],
                    resources=[access.log_prefix_arn(st.logs)],
                ),
                access.bucket_location(st.raw, st.curated, st.artifacts, st.logs),
                iam.PolicyStatement(
                    sid="GlueTables",
                    actions=access.GLUE_READ + access.GLUE_WRITE,
                    resources=access.glue_arns(db),
                ),
                iam.PolicyStatement(
                    sid="GlueDefaultDb",
                    actions=["glue:GetDatabase"],
                    resources=[access.glue_default_db_arn()],
                ),
                access.key_use(key.key_arn),
                iam.PolicyStatement(
                    sid="JobMetrics",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={
                        "StringEquals": {"cloudwatch:namespace": access.JOB_METRIC_NAMESPACE}
                    },
                ),
            ],
        )

        self.athena_wg_name = env.resource_name("analytics")
        self.athena = athena.CfnWorkGroup(
            self,
            "AthenaWorkGroup",
            name=self.athena_wg_name,
            description="cdclake queries; results encrypted with the stack key",
            state="ENABLED",
            recursive_delete_option=False,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=env.athena.bytes_scanned_cutoff,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{st.artifacts.bucket_name}/{layout.ATHENA_RESULTS_PREFIX}/",
                    expected_bucket_owner=Aws.ACCOUNT_ID,
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=key.key_arn
                    ),
                ),
            ),
        )
        athena_arn = (
            f"arn:{Aws.PARTITION}:athena:{Aws.REGION}:{Aws.ACCOUNT_ID}"
            f":workgroup/{self.athena_wg_name}"
        )

        self.mwaa_name = env.resource_name("airflow")
        mwaa_logs = (
            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}"
            f":log-group:airflow-{self.mwaa_name}-*"
        )
        self.mwaa_role = access.role(
            self,
            "MwaaRole",
            name=env.resource_name("mwaa"),
            principals=[
                iam.ServicePrincipal("airflow.amazonaws.com"),
                iam.ServicePrincipal("airflow-env.amazonaws.com"),
            ],
            conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            description="MWAA execution role: runs the hourly DAG (DMS, EMR Serverless, Athena)",
            statements=[
                iam.PolicyStatement(
                    sid="PublishAirflowMetrics",
                    actions=["airflow:PublishMetrics"],
                    resources=[
                        f"arn:{Aws.PARTITION}:airflow:{Aws.REGION}:{Aws.ACCOUNT_ID}"
                        f":environment/{self.mwaa_name}"
                    ],
                ),
                iam.PolicyStatement(
                    sid="ReadDags",
                    actions=["s3:GetObject", "s3:GetObjectVersion"],
                    resources=[
                        st.artifacts.arn_for_objects(f"{layout.DAGS_PREFIX}/*"),
                        st.artifacts.arn_for_objects("conf/*"),
                    ],
                ),
                access.s3_list(st.artifacts, layout.DAGS_PREFIX),
                iam.PolicyStatement(
                    sid="MwaaBucketChecks",
                    actions=[
                        "s3:GetBucketPublicAccessBlock",
                        "s3:GetEncryptionConfiguration",
                        "s3:GetBucketVersioning",
                    ],
                    resources=[st.artifacts.bucket_arn],
                ),
                iam.PolicyStatement(
                    sid="AccountPublicAccessCheck",
                    actions=["s3:GetAccountPublicAccessBlock"],
                    resources=["*"],
                ),
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
                    resources=[mwaa_logs],
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
                access.key_use(key.key_arn),
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
                    resources=[self.emr_role.role_arn],
                    conditions={
                        "StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}
                    },
                ),
                iam.PolicyStatement(
                    sid="DmsTask",
                    actions=[
                        "dms:StartReplicationTask",
                        "dms:StopReplicationTask",
                        "dms:DescribeTableStatistics",
                        "dms:ReloadTables",
                    ],
                    resources=[self.dms.task_arn],
                ),
                iam.PolicyStatement(
                    sid="DescribeDmsTasks",
                    actions=["dms:DescribeReplicationTasks"],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="Athena",
                    actions=[
                        "athena:StartQueryExecution",
                        "athena:GetQueryExecution",
                        "athena:GetQueryResults",
                        "athena:StopQueryExecution",
                        "athena:GetWorkGroup",
                    ],
                    resources=[athena_arn],
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
                    resources=access.glue_arns(db),
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
            ],
        )
        checkov_skip(
            self.mwaa_role,
            "CKV_AWS_111",
            "the only unscoped write is cloudwatch:PutMetricData (no resource-level "
            "permissions; limited to namespace AmazonMWAA by condition)",
        )

        if env.mwaa.enabled:
            mwaa_sg = self._sg("MwaaSg", vpc, "MWAA environment")
            mwaa_sg.add_ingress_rule(
                mwaa_sg, ec2.Port.all_traffic(), "MWAA components talk to each other"
            )
            mwaa_sg.add_egress_rule(
                mwaa_sg, ec2.Port.all_traffic(), "MWAA components talk to each other"
            )
            level = "INFO"
            log_cfg = mwaa.CfnEnvironment.ModuleLoggingConfigurationProperty(
                enabled=True, log_level=level
            )
            self.airflow = mwaa.CfnEnvironment(
                self,
                "Airflow",
                name=self.mwaa_name,
                airflow_version=env.mwaa.airflow_version,
                environment_class=env.mwaa.environment_class,
                max_workers=env.mwaa.max_workers,
                source_bucket_arn=st.artifacts.bucket_arn,
                dag_s3_path=layout.DAGS_PREFIX,
                execution_role_arn=self.mwaa_role.role_arn,
                kms_key=key.key_arn,
                webserver_access_mode="PRIVATE_ONLY",
                network_configuration=mwaa.CfnEnvironment.NetworkConfigurationProperty(
                    security_group_ids=[mwaa_sg.security_group_id],
                    subnet_ids=list(net.private_subnet_ids[:2]),
                ),
                logging_configuration=mwaa.CfnEnvironment.LoggingConfigurationProperty(
                    dag_processing_logs=log_cfg,
                    scheduler_logs=log_cfg,
                    task_logs=log_cfg,
                    webserver_logs=log_cfg,
                    worker_logs=log_cfg,
                ),
                # cdclake.target selects the DAGs' aws tasks (see dags/cdclake_dags/settings.py).
                airflow_configuration_options={
                    "core.load_examples": "False",
                    "cdclake.target": "aws",
                },
            )

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            env=env,
            cfg=cfg,
            key=key,
            emr_application_id=self.emr.attr_application_id,
            dms_instance_id=self.dms.instance_id,
            dms_task_id=self.dms.task_id,
        )

        roles = [c for c in self.node.find_all() if isinstance(c, iam.Role)]
        self.boundary = access.boundary_policy(
            self, "Boundary", name=env.resource_name("boundary"), roles=roles
        )
        iam.PermissionsBoundary.of(self).apply(self.boundary)
        why = (
            "permissions boundary: a ceiling, grants nothing itself; it lists exactly the "
            "actions the roles use, and the roles' own policies scope the resources"
        )
        access.acknowledge_wildcards(self)
        for c in ("CKV_AWS_111", "CKV_AWS_109", "CKV_AWS_108"):
            checkov_skip(self.boundary, c, why)

        self._outputs()

    def _sg(self, cid: str, vpc: ec2.IVpc, what: str) -> ec2.SecurityGroup:
        sg = ec2.SecurityGroup(
            self,
            cid,
            vpc=vpc,
            description=f"cdclake {self.env_cfg.name}: {what}",
            allow_all_outbound=False,
        )
        sg.add_egress_rule(ec2.Peer.any_ipv4(), HTTPS, "HTTPS to AWS APIs (VPC endpoints or NAT)")
        return sg

    def _outputs(self) -> None:
        st, b = self.storage, self.env_cfg.buckets
        values = {
            "RawBucket": st.raw.bucket_name,
            "CuratedBucket": st.curated.bucket_name,
            "ArtifactsBucket": st.artifacts.bucket_name,
            "LogsBucket": st.logs.bucket_name,
            "KmsKeyArn": st.key.key_arn,
            "EmrApplicationId": self.emr.attr_application_id,
            "EmrJobRoleArn": self.emr_role.role_arn,
            "EmrLogUri": self.emr_log_uri,
            "EmrReleaseLabel": runtime.emr_release(),
            "JobEntryPoint": b.uri(b.artifacts, layout.JOB_ENTRY_KEY),
            "JobConfigUri": b.uri(b.artifacts, layout.JOB_CONFIG_KEY),
            "SparkSubmitParameters": runtime.spark_submit_parameters(
                b.uri(b.artifacts, layout.JOB_PACKAGE_KEY)
            ),
            "DmsTaskArn": self.dms.task_arn,
            "SourceSecretArn": self.secret.secret_arn,
            "GlueDatabase": self.cfg.glue_database,
            "AthenaWorkGroup": self.athena_wg_name,
            "AlarmTopicArn": self.monitoring.topic.topic_arn,
            "MwaaExecutionRoleArn": self.mwaa_role.role_arn,
            "Region": Aws.REGION,
        }
        for k, v in values.items():
            CfnOutput(self, f"Out{k}", value=v, key=k)
