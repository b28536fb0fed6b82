"""AWS DMS: replication instance, PostgreSQL source (Secrets Manager + TLS), S3 target whose
settings come from the pipeline config, and the full-load-and-cdc task."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_dms as dms
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct

from cdclake.core.config import PipelineConfig
from infra import dms_settings, layout
from infra.envconf import EnvConfig
from infra.runtime import REPO_ROOT
from infra.stack import access
from infra.stack.suppress import checkov_skip


class Dms(Construct):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        env: EnvConfig,
        cfg: PipelineConfig,
        key: kms.IKey,
        raw: s3.IBucket,
        secret: sm.ISecret,
        security_group: ec2.ISecurityGroup,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, cid)
        self.instance_id = env.resource_name("dms")
        self.task_id = env.resource_name("task")
        deps: list[iam.Role] = []
        if env.dms.create_service_roles:
            deps = self._service_roles()

        self.s3_role = access.role(
            self,
            "S3TargetRole",
            name=env.resource_name("dms-s3-target"),
            principals=[iam.ServicePrincipal("dms.amazonaws.com")],
            conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            description="DMS writes CDC Parquet files under raw/dms/",
            statements=[
                iam.PolicyStatement(
                    sid="WriteRawCdcFiles",
                    actions=["s3:PutObject", "s3:DeleteObject", "s3:PutObjectTagging"],
                    resources=[raw.arn_for_objects(f"{layout.RAW_FOLDER}/*")],
                ),
                access.s3_list(raw, layout.RAW_FOLDER),
                access.bucket_location(raw),
                access.key_use(key.key_arn),
            ],
        )
        self.secret_role = access.role(
            self,
            "SecretAccessRole",
            name=env.resource_name("dms-secret"),
            principals=[iam.ServicePrincipal(f"dms.{Aws.REGION}.amazonaws.com")],
            conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            description="DMS reads the source database credentials",
            statements=[
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    resources=[secret.secret_arn],
                ),
                iam.PolicyStatement(
                    actions=["kms:Decrypt", "kms:DescribeKey"],
                    resources=[key.key_arn],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": f"secretsmanager.{Aws.REGION}.amazonaws.com"
                        }
                    },
                ),
            ],
        )

        subnets = dms.CfnReplicationSubnetGroup(
            self,
            "SubnetGroup",
            replication_subnet_group_description=f"cdclake {env.name} DMS private subnets",
            replication_subnet_group_identifier=env.resource_name("dms-subnets"),
            subnet_ids=list(env.network.private_subnet_ids),
        )
        for d in deps:
            subnets.node.add_dependency(d)
        self.instance = dms.CfnReplicationInstance(
            self,
            "Instance",
            replication_instance_identifier=self.instance_id,
            replication_instance_class=env.dms.instance_class,
            allocated_storage=env.dms.allocated_storage_gb,
            multi_az=env.dms.multi_az,
            engine_version=env.dms.engine_version,
            publicly_accessible=False,
            auto_minor_version_upgrade=True,
            kms_key_id=key.key_arn,
            replication_subnet_group_identifier=subnets.ref,
            vpc_security_group_ids=[security_group.security_group_id],
        )
        # DMS writes task logs to this group; creating it first makes it encrypted and bounded.
        self.task_logs = logs.LogGroup(
            self,
            "TaskLogs",
            log_group_name=f"dms-tasks-{self.instance_id}",
            encryption_key=key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.task_logs.node.default_child.retention_in_days = log_retention_days  # type: ignore[union-attr]

        src = env.source
        cert_arn = None
        if src.ca_bundle_file:
            cert = dms.CfnCertificate(
                self,
                "SourceCa",
                certificate_identifier=env.resource_name("source-ca"),
                certificate_pem=(REPO_ROOT / Path(src.ca_bundle_file)).read_text(),
            )
            cert_arn = cert.ref
        self.source = dms.CfnEndpoint(
            self,
            "Source",
            endpoint_identifier=env.resource_name("source"),
            endpoint_type="source",
            engine_name=src.engine,
            database_name=src.database,
            ssl_mode=src.ssl_mode,
            certificate_arn=cert_arn,
            kms_key_id=key.key_arn,
            postgre_sql_settings=dms.CfnEndpoint.PostgreSqlSettingsProperty(
                secrets_manager_secret_id=secret.secret_arn,
                secrets_manager_access_role_arn=self.secret_role.role_arn,
                heartbeat_enable=True,
                capture_ddls=True,
                # Limited LOB mode truncates a value over LobMaxSize with only a log warning:
                # stop the task instead (env dms.lob_max_size_kb / full_lob_tables fix it).
                fail_tasks_on_lob_truncation=True,
            ),
        )
        self.target = dms.CfnEndpoint(
            self,
            "Target",
            endpoint_identifier=env.resource_name("raw-s3"),
            endpoint_type="target",
            engine_name="s3",
            kms_key_id=key.key_arn,
        )
        self.s3_settings = dms_settings.s3_target_settings(
            cfg.dms,
            bucket_name=raw.bucket_name,
            bucket_folder=layout.RAW_FOLDER,
            kms_key_arn=key.key_arn,
            service_access_role_arn=self.s3_role.role_arn,
            expected_bucket_owner=Aws.ACCOUNT_ID,
        )
        self.target.add_property_override("S3Settings", self.s3_settings)
        self.task = dms.CfnReplicationTask(
            self,
            "Task",
            replication_task_identifier=self.task_id,
            # The ARN (and the CloudWatch dimension) then ends in the same fixed name.
            resource_identifier=self.task_id,
            migration_type="full-load-and-cdc",
            replication_instance_arn=self.instance.ref,
            source_endpoint_arn=self.source.ref,
            target_endpoint_arn=self.target.ref,
            table_mappings=json.dumps(
                dms_settings.table_mappings(cfg, env.dms.full_lob_tables), sort_keys=True
            ),
            replication_task_settings=json.dumps(
                dms_settings.task_settings(env.dms.lob_max_size_kb), sort_keys=True
            ),
        )
        self.task.node.add_dependency(self.task_logs)
        for d in deps:
            self.task.node.add_dependency(d)

    @property
    def task_arn(self) -> str:
        return self.task.ref

    def _service_roles(self) -> list[iam.Role]:
        """dms-vpc-role and dms-cloudwatch-logs-role: names DMS requires, one per account."""
        vpc_role = access.role(
            self,
            "VpcRole",
            name="dms-vpc-role",
            principals=[iam.ServicePrincipal("dms.amazonaws.com")],
            conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            description="DMS manages the network interfaces of replication instances",
            statements=[
                iam.PolicyStatement(
                    sid="Ec2NetworkInterfaces",
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:DeleteNetworkInterface",
                        "ec2:ModifyNetworkInterfaceAttribute",
                        "ec2:DescribeAvailabilityZones",
                        "ec2:DescribeInternetGateways",
                        "ec2:DescribeSecurityGroups",
                        "ec2:DescribeSubnets",
                        "ec2:DescribeVpcs",
                        "ec2:DescribeDhcpOptions",
                        "ec2:DescribeNetworkInterfaces",
                    ],
                    resources=["*"],
                )
            ],
        )
        why = (
            "dms-vpc-role: EC2 Describe* and ENI actions on not-yet-existing interfaces "
            "do not support resource-level permissions (same as AmazonDMSVPCManagementRole)"
        )
        for c in ("CKV_AWS_111",):
            checkov_skip(vpc_role, c, why)
        logs_role = access.role(
            self,
            "CloudWatchLogsRole",
            name="dms-cloudwatch-logs-role",
            principals=[iam.ServicePrincipal("dms.amazonaws.com")],
            conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            description="DMS writes replication task logs",
            statements=[
                iam.PolicyStatement(
                    sid="DmsTaskLogs",
                    actions=[
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                        "logs:PutRetentionPolicy",
                    ],
                    resources=[
                        f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:dms-tasks-*",
                        f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:dms-tasks-*:log-stream:*",
                    ],
                ),
            ],
        )
        return [vpc_role, logs_role]
