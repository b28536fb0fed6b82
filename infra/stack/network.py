"""The existing VPC's private subnets and one security group per actor (DMS, EMR Serverless,
secret rotation, MWAA); none may leave the VPC but by HTTPS, and only DMS and rotation reach
the source database.

Like the other stack-level parts (see ``infra/stack/pipeline_stack.py``), its resources are
created in the stack's scope, so their logical IDs do not depend on this construct.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from infra.envconf import EnvConfig

HTTPS = ec2.Port.tcp(443)


class Network(Construct):
    def __init__(self, scope: Construct, cid: str, *, env: EnvConfig) -> None:
        super().__init__(scope, cid)
        self._stack = Stack.of(self)
        self._env_name = env.name
        net = env.network
        self.private_subnet_ids = list(net.private_subnet_ids)
        self.vpc = ec2.Vpc.from_vpc_attributes(
            self._stack,
            "Vpc",
            vpc_id=net.vpc_id,
            availability_zones=[f"az{i}" for i in range(len(net.private_subnet_ids))],
            private_subnet_ids=self.private_subnet_ids,
        )
        self.subnets = ec2.SubnetSelection(subnets=self.vpc.private_subnets)
        self.dms_sg = self.security_group("DmsSg", "DMS replication instance")
        self.emr_sg = self.security_group(
            "EmrSg",
            "EMR Serverless workers",
            within=(ec2.Port.all_tcp(), "Spark driver and executors"),
        )
        self.rotation_sg = self.security_group("RotationSg", "Secret rotation function")
        self._source_db_access(env, [(self.dms_sg, "DMS"), (self.rotation_sg, "secret rotation")])

    def security_group(
        self, cid: str, what: str, *, within: tuple[ec2.Port, str] | None = None
    ) -> ec2.SecurityGroup:
        """A group that allows HTTPS out (to AWS APIs) and, with ``within``, that port among
        its own members."""
        sg = ec2.SecurityGroup(
            self._stack,
            cid,
            vpc=self.vpc,
            description=f"cdclake {self._env_name}: {what}",
            allow_all_outbound=False,
        )
        sg.add_egress_rule(ec2.Peer.any_ipv4(), HTTPS, "HTTPS to AWS APIs (VPC endpoints or NAT)")
        if within:
            port, why = within
            sg.add_ingress_rule(sg, port, why)
            sg.add_egress_rule(sg, port, why)
        return sg

    def _source_db_access(
        self, env: EnvConfig, clients: list[tuple[ec2.SecurityGroup, str]]
    ) -> None:
        """Egress to the database port; ingress on the database's group when its id is known,
        otherwise egress to the VPC's CIDR."""
        port = ec2.Port.tcp(env.source.port)
        db_sg_id = env.network.source_db_security_group_id
        if db_sg_id:
            db_sg = ec2.SecurityGroup.from_security_group_id(
                self._stack, "SourceDbSg", db_sg_id, mutable=True
            )
            for sg, what in clients:
                sg.add_egress_rule(db_sg, port, f"{what} to the source database")
                db_sg.add_ingress_rule(sg, port, f"cdclake {env.name} {what}")
        else:
            for sg, what in clients:
                sg.add_egress_rule(
                    ec2.Peer.ipv4(self.vpc.vpc_cidr_block), port, f"{what} to the source database"
                )
