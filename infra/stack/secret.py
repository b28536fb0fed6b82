"""The source database's credentials: generated, KMS-encrypted, retained, rotated by the
AWS-hosted PostgreSQL single-user function in the private subnets; DMS reads them by ARN.

Its resources are created in the stack's scope (see ``infra/stack/pipeline_stack.py``).
"""

from __future__ import annotations

import json

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct

from infra.envconf import EnvConfig
from infra.stack.network import Network

# Rotation must draw passwords from the same alphabet as the first one.
EXCLUDE_CHARACTERS = "\"'@/\\ :;%`"


class SourceSecret(Construct):
    def __init__(
        self, scope: Construct, cid: str, *, env: EnvConfig, key: kms.IKey, network: Network
    ) -> None:
        super().__init__(scope, cid)
        src = env.source
        self.secret = sm.Secret(
            Stack.of(self),
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
                exclude_characters=EXCLUDE_CHARACTERS,
                password_length=32,
            ),
        )
        self.secret.add_rotation_schedule(
            "Rotation",
            automatically_after=Duration.days(src.rotation_days),
            hosted_rotation=sm.HostedRotation.postgre_sql_single_user(
                function_name=env.resource_name("source-db-rotation"),
                vpc=network.vpc,
                vpc_subnets=network.subnets,
                security_groups=[network.rotation_sg],
                exclude_characters=EXCLUDE_CHARACTERS,
            ),
        )
