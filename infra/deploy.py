"""``make deploy``: the stack, the artifacts, MWAA's requirements and the writers' pool, in the
order each needs the other.

1. If the artifacts bucket exists, put ``mwaa/requirements.txt`` (only when its bytes
   changed: every new object version makes MWAA reinstall) and note its version.
2. ``cdk deploy`` with ``-c mwaa_requirements_version=<version>`` (see ``infra/stack/mwaa.py``).
3. Upload ``dist/<env>/`` and the stack outputs (DAGs, job, config, deployment.json).
4. First deploy with MWAA (the bucket did not exist in step 1): ``cdk deploy`` again, now with
   the requirements' version.
5. With MWAA: create or update the table writers' pool through MWAA's InvokeRestApi (the
   caller needs ``airflow:InvokeRestApi`` on the environment's Admin role).

    python -m infra.deploy --env prod --cdk "npx --yes aws-cdk@2.1148.1" --app "..." \
        --out cdk.out/prod
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from infra import layout
from infra.envconf import EnvConfig, load_env
from infra.package import PackageError, stack_outputs, upload
from infra.runtime import REPO_ROOT
from infra.stack.mwaa import REQUIREMENTS_VERSION_CONTEXT, environment_name

log = logging.getLogger("infra.deploy")
DAGS_DIR = REPO_ROOT / "dags"


class DeployError(RuntimeError):
    """A deploy step failed; the message says which and what to do."""


def writers_pool() -> dict[str, Any]:
    """The pool definition of the DAGs (``cdclake_dags.pools``), read without Airflow."""
    if str(DAGS_DIR) not in sys.path:
        sys.path.insert(0, str(DAGS_DIR))
    from cdclake_dags.pools import pool_api_body

    return pool_api_body()


def ensure_pool(mwaa: Any, environment: str, pool: dict[str, Any]) -> str:
    """Create the pool, or bring its slots/description/include_deferred to ``pool``.

    Uses Airflow 3's REST API (``/pools``) through MWAA's InvokeRestApi. Returns
    ``"created"``, ``"updated"`` or ``"unchanged"``.
    """
    name = pool["name"]
    try:
        current = mwaa.invoke_rest_api(Name=environment, Path=f"/pools/{name}", Method="GET")[
            "RestApiResponse"
        ]
    except mwaa.exceptions.RestApiClientException as exc:
        if exc.response.get("RestApiStatusCode") != 404:
            raise
        mwaa.invoke_rest_api(Name=environment, Path="/pools", Method="POST", Body=pool)
        return "created"
    wanted = {k: v for k, v in pool.items() if k != "name"}
    if all(current.get(k) == v for k, v in wanted.items()):
        return "unchanged"
    mwaa.invoke_rest_api(
        Name=environment, Path=f"/pools/{name}", Method="PATCH", Body={"pool": name, **wanted}
    )
    return "updated"


def bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise
    return True


def deploy(
    env: EnvConfig,
    dist: Path,
    outputs_file: Path,
    cdk_deploy: Callable[[dict[str, str]], None],
    *,
    clients: Callable[[str], Any],
    endpoint_url: str | None = None,
) -> dict[str, Any]:
    """Run the steps of the module docstring; ``cdk_deploy(context)`` deploys the stack and
    writes ``outputs_file``. Returns what happened (for the log and the tests)."""
    if not dist.is_dir():
        raise PackageError(f"{dist} does not exist: run `make package ENV={env.name}` first")
    bucket = env.buckets.artifacts
    req_key = layout.MWAA_REQUIREMENTS_KEY
    report: dict[str, Any] = {"deploys": 0}

    def upload_(**kw: Any) -> dict[str, str | None]:
        return upload(dist, bucket, endpoint_url=endpoint_url, region=env.region, **kw)

    version = None
    if env.mwaa.enabled and bucket_exists(clients("s3"), bucket):
        version = upload_(only={req_key})[req_key]
    context = {REQUIREMENTS_VERSION_CONTEXT: version} if version else {}
    cdk_deploy(context)
    report["deploys"] += 1
    versions = upload_(outputs=stack_outputs(outputs_file, env.stack_name))
    if env.mwaa.enabled:
        if versions.get(req_key) != version:
            cdk_deploy({REQUIREMENTS_VERSION_CONTEXT: str(versions[req_key])})
            report["deploys"] += 1
        report["requirements_version"] = versions.get(req_key)
        report["pool"] = ensure_pool(clients("mwaa"), environment_name(env), writers_pool())
    return report


def cdk_runner(cdk: str, app: str, out: Path, env: EnvConfig) -> Callable[[dict[str, str]], None]:
    """``cdk deploy`` of the env's stack with extra context values."""

    def run(context: dict[str, str]) -> None:
        cmd: list[str] = [
            *shlex.split(cdk),
            "deploy",
            env.stack_name,
            "--app",
            app,
            "-c",
            f"env={env.name}",
            "--output",
            str(out),
            "--require-approval",
            "broadening",
            "--outputs-file",
            str(out / "outputs.json"),
        ]
        for k, v in context.items():
            cmd += ["-c", f"{k}={v}"]
        log.info("running %s", " ".join(shlex.quote(c) for c in cmd))
        if subprocess.run(cmd, check=False).returncode != 0:  # noqa: S603 - our own CLI line
            raise DeployError(f"cdk deploy {env.stack_name} failed (see above)")

    return run


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__)
    ap.add_argument("--env", required=True)
    ap.add_argument("--dist", type=Path)
    ap.add_argument("--cdk", required=True, help="the CDK CLI command (pinned npx call)")
    ap.add_argument("--app", required=True, help="the CDK app command")
    ap.add_argument("--out", type=Path, required=True, help="cdk.out/<env>")
    args = ap.parse_args(argv)
    env = load_env(args.env)
    dist = args.dist or REPO_ROOT / "dist" / env.name

    import boto3

    try:
        report = deploy(
            env,
            dist,
            args.out / "outputs.json",
            cdk_runner(args.cdk, args.app, args.out, env),
            clients=lambda name: boto3.client(name, region_name=env.region),
        )
    except (DeployError, PackageError) as exc:
        log.error("%s", exc)
        return 1
    log.info("deployed: %s", json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
