"""CDK app: ``python -m infra.app`` with ``-c env=<name>`` (or ``CDCLAKE_ENV``).

Synthesizes one stack, ``CdcLake-<env>``, from ``conf/env/<env>.yaml`` and the pipeline config
rendered for that env, with the cdk-nag AwsSolutions checks applied.
"""

from __future__ import annotations

import os
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.envconf import EnvConfig, load_env
from infra.package import render_pipeline_config
from infra.runtime import REPO_ROOT
from infra.stack.pipeline_stack import PipelineStack

# Feature flags the stack relies on (a cdk.json would hold them; the app sets them itself).
CONTEXT = {
    # Access-log delivery through a bucket policy (ACLs are disabled on every bucket).
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    "@aws-cdk/aws-kms:reduceCrossAccountRegionPolicyScope": True,
    "@aws-cdk/core:validateSnapshotRemovalPolicy": True,
    "@aws-cdk/aws-sns:enforceSslDefault": True,
}


def build_app(
    env: EnvConfig,
    *,
    pipeline_config: Path = REPO_ROOT / "conf" / "pipeline.yaml",
    outdir: str | None = None,
    nag: bool = True,
    context: dict[str, str] | None = None,
) -> tuple[cdk.App, PipelineStack]:
    """The app with the env's stack; ``context`` adds values such as
    ``mwaa_requirements_version`` (``make deploy`` passes it with ``-c``)."""
    app = cdk.App(outdir=outdir, context={**CONTEXT, **(context or {})}, analytics_reporting=False)
    _, cfg = render_pipeline_config(env, pipeline_config)
    stack = PipelineStack(
        app,
        env.stack_name,
        env_cfg=env,
        cfg=cfg,
        env=cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=env.region),
        description=f"cdclake CDC lakehouse pipeline ({env.name})",
        synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=True),
    )
    cdk.Tags.of(stack).add("project", "cdclake")
    cdk.Tags.of(stack).add("environment", env.name)
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app, stack


def main() -> None:
    probe = cdk.App()
    name = probe.node.try_get_context("env") or os.environ.get("CDCLAKE_ENV")
    if not name:
        raise SystemExit("choose an environment: -c env=dev (or CDCLAKE_ENV=dev)")
    # Every cdk.App reads the CLI's -c values itself (mwaa_requirements_version included).
    app, _ = build_app(load_env(name), outdir=probe.outdir)
    app.synth()


if __name__ == "__main__":
    main()
