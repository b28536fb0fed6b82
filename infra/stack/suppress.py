"""Written-down exceptions to the checks, kept next to the resource they are about.

``checkov_skip`` adds ``Metadata.checkov.skip`` to the CloudFormation resource (checkov reads it
there); ``nag_suppress`` acknowledges cdk-nag findings (v3: one acknowledgment per finding, e.g.
``AwsSolutions-IAM5[Resource::*]``). Both require a reason.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, CfnResource, Validations
from constructs import IConstruct


def _cfn(node: IConstruct) -> CfnResource:
    if isinstance(node, CfnResource):
        return node
    child = node.node.default_child
    if not isinstance(child, CfnResource):
        raise TypeError(f"{node.node.path} has no CloudFormation resource")
    return child


def checkov_skip(node: IConstruct, check_id: str, reason: str) -> None:
    if not reason.strip():
        raise ValueError(f"checkov skip {check_id} needs a reason")
    res = _cfn(node)
    meta: dict[str, Any] = res.get_metadata("checkov") or {"skip": []}
    meta["skip"].append({"id": check_id, "comment": reason})
    res.add_metadata("checkov", meta)


def nag_suppress(
    node: IConstruct, rule_id: str, reason: str, applies_to: list[str] | None = None
) -> None:
    if not reason.strip():
        raise ValueError(f"cdk-nag acknowledgment {rule_id} needs a reason")
    pack = f"{rule_id.split('-')[0]}::{rule_id}"
    ids = [f"{pack}[{a}]" for a in applies_to] if applies_to else [pack]
    Validations.of(node).acknowledge(*(Acknowledgment(id=i, reason=reason) for i in ids))
