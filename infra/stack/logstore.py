"""The DynamoDB table of Delta's multi-writer-safe S3 log store (``S3DynamoDBLogStore``).

Delta on S3 is single-writer by default: two drivers committing the same version can both
"succeed" and one commit is lost. With this log store every commit first claims its file name
with a conditional DynamoDB write, so a second writer fails and retries instead (Delta docs,
"Storage configuration", multi-cluster setup: key schema ``tablePath`` HASH / ``fileName``
RANGE, on-demand capacity, TTL on ``expireTime``). Only the EMR job role may use it.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.envconf import EnvConfig

# The calls S3DynamoDBLogStore 3.3.x makes (putItem, getItem, query, describeTable; it would
# call createTable only if the table were missing, and the stack creates it).
LOG_STORE_ACTIONS = [
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
]
TTL_ATTRIBUTE = "expireTime"


class DeltaLogStore(Construct):
    def __init__(self, scope: Construct, cid: str, *, env: EnvConfig, key: kms.IKey) -> None:
        super().__init__(scope, cid)
        self.table_name = env.resource_name("delta-log")
        self.region = env.region
        self.table = ddb.Table(
            self,
            "Table",
            table_name=self.table_name,
            partition_key=ddb.Attribute(name="tablePath", type=ddb.AttributeType.STRING),
            sort_key=ddb.Attribute(name="fileName", type=ddb.AttributeType.STRING),
            billing_mode=ddb.BillingMode.PAY_PER_REQUEST,
            # Delta sets expireTime a day after an entry completes; S3 alone then guards it.
            time_to_live_attribute=TTL_ATTRIBUTE,
            encryption=ddb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # Only short-lived commit claims live here (they expire after a day).
            removal_policy=RemovalPolicy.DESTROY,
        )

    def job_statement(self) -> iam.PolicyStatement:
        """What the job role needs: the log store's calls on this one table."""
        return iam.PolicyStatement(
            sid="DeltaLogStore", actions=LOG_STORE_ACTIONS, resources=[self.table.table_arn]
        )
