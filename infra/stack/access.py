"""IAM: one role per actor, each limited to its buckets/prefixes, Glue objects, key, task and
application; every role carries the stack's permissions boundary.

Statements are written out (no CDK ``grant*`` helpers) so the template shows exactly what each
actor may do, and :func:`boundary_policy` is the union of the actions the roles use.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdclake.core.metrics import NAMESPACE as METRIC_NAMESPACE
from infra import layout

# The job's CloudWatch namespace (see ARCHITECTURE / CONTRACTS).
JOB_METRIC_NAMESPACE = METRIC_NAMESPACE
KEY_USE = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]


def s3_list(bucket: s3.IBucket, prefix: str) -> iam.PolicyStatement:
    """ListBucket limited to one prefix (plus GetBucketLocation, which has no prefix)."""
    return iam.PolicyStatement(
        actions=["s3:ListBucket"],
        resources=[bucket.bucket_arn],
        conditions={"StringLike": {"s3:prefix": [f"{prefix}/*", prefix]}},
    )


def bucket_location(*buckets: s3.IBucket) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=["s3:GetBucketLocation"], resources=[b.bucket_arn for b in buckets]
    )


def key_use(key_arn: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=KEY_USE, resources=[key_arn])


def glue_arns(database: str) -> list[str]:
    base = f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}"
    return [f"{base}:catalog", f"{base}:database/{database}", f"{base}:table/{database}/*"]


def glue_default_db_arn() -> str:
    # Spark's Hive client looks up the 'default' database when it starts.
    return f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}:database/default"


GLUE_READ = [
    "glue:GetDatabase",
    "glue:GetDatabases",
    "glue:GetTable",
    "glue:GetTables",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:BatchGetPartition",
    "glue:GetUserDefinedFunctions",
]
GLUE_WRITE = [
    "glue:CreateTable",
    "glue:UpdateTable",
    "glue:DeleteTable",
    "glue:CreatePartition",
    "glue:BatchCreatePartition",
    "glue:UpdatePartition",
    "glue:DeletePartition",
    "glue:BatchDeletePartition",
    "glue:BatchUpdatePartition",
]


def role(
    scope: Construct,
    cid: str,
    *,
    name: str,
    principals: Iterable[iam.IPrincipal],
    statements: list[iam.PolicyStatement],
    description: str,
    conditions: dict | None = None,
) -> iam.Role:
    """A role with one inline policy; the boundary is applied stack-wide by the stack."""
    assumed_by: iam.IPrincipal = iam.CompositePrincipal(*principals)
    if conditions:
        assumed_by = iam.PrincipalWithConditions(assumed_by, conditions)
    return iam.Role(
        scope,
        cid,
        role_name=name,
        assumed_by=assumed_by,
        description=description,
        inline_policies={"access": iam.PolicyDocument(statements=statements)},
    )


def boundary_policy(
    scope: Construct, cid: str, *, name: str, roles: list[iam.Role]
) -> iam.ManagedPolicy:
    """Permissions boundary: allows only the actions the stack's roles use, in this region.

    A boundary grants nothing by itself; it caps what any role of the stack can ever be given
    (no iam:* but PassRole, no services the pipeline does not use, no other region). Resources
    are scoped by the roles' own policies, which is why its resource is "*".
    """
    actions: set[str] = set()
    stack = Stack.of(scope)
    for r in roles:
        for doc in _inline_docs(r):
            for st in doc.get("Statement", []):
                if st.get("Effect") == "Allow":
                    a = st["Action"]
                    actions.update([a] if isinstance(a, str) else a)
    return iam.ManagedPolicy(
        scope,
        cid,
        managed_policy_name=name,
        description="Permissions boundary of every role in the cdclake stack",
        statements=[
            iam.PolicyStatement(
                sid="CeilingForPipelineRoles",
                actions=sorted(actions),
                resources=["*"],
                conditions={"StringEquals": {"aws:RequestedRegion": [stack.region]}},
            ),
        ],
    )


def _inline_docs(r: iam.Role) -> list[dict]:
    cfn = r.node.default_child
    policies = Stack.of(r).resolve(cfn.policies) or []  # type: ignore[union-attr]
    return [p["policyDocument"] for p in policies]


def log_prefix_arn(bucket: s3.IBucket) -> str:
    return bucket.arn_for_objects(f"{layout.EMR_LOGS_PREFIX}/*")


# Why each statement that names a wildcard resource needs it, by statement Sid. The stack
# acknowledges cdk-nag's AwsSolutions-IAM5 findings from this table (a wildcard statement
# without an entry fails the synth), and tests/infra checks full "*" resources against it.
WILDCARD_REASONS: dict[str, str] = {
    "WriteRawCdcFiles": "DMS creates one object per table per minute under dms/<schema>/<table>/",
    "ReadRaw": "the job reads every raw CDC file under dms/",
    "ReadJobAndConfig": "the job reads its entry script, package zip and config "
    "under jobs/ and conf/",
    "WriteCurated": "the job rewrites Delta files and logs under lake/ (tables "
    "and _cdclake bookkeeping)",
    "WriteLogs": "EMR Serverless writes driver/executor logs under emr/<application>/<job run>/",
    "GlueTables": "the job manages the tables of its own Glue database (one per configured table)",
    "GlueForAthena": "Athena DDL (Spectrum/Athena tables, partitions) in the "
    "pipeline's Glue database",
    "JobMetrics": "cloudwatch:PutMetricData has no resource-level permissions; "
    "limited to namespace CdcLake",
    "ReadDags": "MWAA syncs every file under dags/ (and the DAGs read conf/)",
    "AirflowLogs": "MWAA creates its log groups airflow-<environment>-* itself",
    "CeleryQueues": "MWAA's Celery queues airflow-celery-* live in an AWS "
    "service account (AWS-documented policy)",
    "AccountPublicAccessCheck": "s3:GetAccountPublicAccessBlock is account-level: AWS requires '*'",
    "DescribeLogGroups": "logs:DescribeLogGroups has no resource-level permissions",
    "AirflowMetrics": "cloudwatch:PutMetricData has no resource-level permissions; "
    "limited to namespace AmazonMWAA",
    "RunJob": "job runs of the one EMR Serverless application: applications/<id>/jobruns/*",
    "DescribeDmsTasks": "dms:DescribeReplicationTasks has no resource-level permissions",
    "AthenaReadsCurated": "Athena reads the Delta files under lake/ with the caller's credentials",
    "AthenaResults": "Athena writes one result object per query under athena-results/",
    "Ec2NetworkInterfaces": "dms-vpc-role: EC2 Describe* and ENI creation have no "
    "resource-level permissions (same as the AWS managed AmazonDMSVPCManagementRole)",
    "DmsTaskLogs": "DMS names its log groups dms-tasks-<instance> and creates the streams itself",
    "CeilingForPipelineRoles": "permissions boundary: a ceiling that grants nothing by itself; "
    "it lists exactly the actions the roles use, and the roles' own policies scope the resources",
}


def nag_resource_string(value: object) -> str:
    """Render a resolved CloudFormation value the way cdk-nag names it in findings."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Ref" in value:
            return f"<{value['Ref']}>"
        if "Fn::GetAtt" in value:
            a, b = value["Fn::GetAtt"]
            return f"<{a}.{b}>"
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return sep.join(nag_resource_string(p) for p in parts)
    raise ValueError(f"cannot name resource {value!r}")


def acknowledge_wildcards(stack: Stack) -> None:
    """Acknowledge each wildcard resource of each role/policy with its reason (see above)."""
    from aws_cdk import Acknowledgment, Validations

    for c in stack.node.find_all():
        cfn = c.node.default_child if isinstance(c, (iam.Role, iam.ManagedPolicy)) else None
        if cfn is None:
            continue
        if isinstance(c, iam.Role):
            docs = [p["policyDocument"] for p in stack.resolve(cfn.policies) or []]
        else:
            docs = [stack.resolve(cfn.policy_document)]
        acks: dict[str, str] = {}
        for doc in docs:
            for st in doc.get("Statement", []):
                res = st.get("Resource", [])
                for r in [res] if not isinstance(res, list) else res:
                    name = nag_resource_string(r)
                    if "*" not in name:
                        continue
                    sid = st.get("Sid")
                    if sid not in WILDCARD_REASONS:
                        raise ValueError(
                            f"{c.node.path}: statement {sid or '(no Sid)'} uses wildcard resource "
                            f"{name}: give it a Sid and a reason in WILDCARD_REASONS"
                        )
                    acks[f"AwsSolutions::AwsSolutions-IAM5[Resource::{name}]"] = WILDCARD_REASONS[
                        sid
                    ]
        if acks:
            Validations.of(c).acknowledge(
                *(Acknowledgment(id=k, reason=v) for k, v in acks.items())
            )
