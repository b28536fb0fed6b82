"""The permissions boundary on every role of the stack (see ``access.boundary_policy``).

Create it after the last role: it is the union of the actions the roles use. Its policy is
created in the stack's scope (see ``infra/stack/pipeline_stack.py``).
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.envconf import EnvConfig
from infra.stack import access
from infra.stack.suppress import checkov_skip


class Boundary(Construct):
    def __init__(self, scope: Construct, cid: str, *, env: EnvConfig) -> None:
        super().__init__(scope, cid)
        stack = Stack.of(self)
        roles = [c for c in stack.node.find_all() if isinstance(c, iam.Role)]
        self.policy = access.boundary_policy(
            stack, "Boundary", name=env.resource_name("boundary"), roles=roles
        )
        iam.PermissionsBoundary.of(stack).apply(self.policy)
        why = (
            "permissions boundary: a ceiling, grants nothing itself; it lists exactly the "
            "actions the roles use, and the roles' own policies scope the resources"
        )
        for c in ("CKV_AWS_111", "CKV_AWS_109", "CKV_AWS_108"):
            checkov_skip(self.policy, c, why)
