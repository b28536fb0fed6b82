"""`make deploy`'s order (infra/deploy.py) on a moto S3 server: MWAA's requirements.txt is in
the bucket before the stack names its version, a first deploy deploys twice, an unchanged
redeploy once; the writers' pool is created or left alone through MWAA's InvokeRestApi (moto
has no MWAA REST API: botocore's Stubber answers those calls, with the bodies checked against
Airflow 3.0.6's own pool models)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from infra import layout
from infra.deploy import deploy, ensure_pool, writers_pool
from infra.envconf import load_env
from infra.package import build
from tests.infra.test_infra_package import moto_s3, repo  # noqa: F401 - fixtures

ENV = "prod"  # MWAA enabled


def mwaa_client():
    return boto3.client(
        "mwaa", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def airflow_pool_models():
    from airflow.api_fastapi.core_api.datamodels.pools import PoolBody, PoolPatchBody

    return PoolBody, PoolPatchBody


def test_pool_bodies_are_what_airflow_3_accepts():
    body_model, patch_model = airflow_pool_models()
    body = writers_pool()
    parsed = body_model.model_validate(body)
    assert (parsed.pool, parsed.slots, parsed.include_deferred) == (body["name"], 1, True)
    patch = {"pool": body["name"], **{k: v for k, v in body.items() if k != "name"}}
    assert patch_model.model_validate(patch).include_deferred is True


def test_ensure_pool_updates_a_pool_that_drifted():
    client = mwaa_client()
    pool = writers_pool()
    with Stubber(client) as stub:
        stub.add_response(
            "invoke_rest_api",
            {"RestApiStatusCode": 200, "RestApiResponse": {**pool, "slots": 4}},
            {"Name": "env", "Path": f"/pools/{pool['name']}", "Method": "GET"},
        )
        patch = {"pool": pool["name"], **{k: v for k, v in pool.items() if k != "name"}}
        stub.add_response(
            "invoke_rest_api",
            {"RestApiStatusCode": 200, "RestApiResponse": pool},
            {"Name": "env", "Path": f"/pools/{pool['name']}", "Method": "PATCH", "Body": patch},
        )
        assert ensure_pool(client, "env", pool) == "updated"
        stub.assert_no_pending_responses()


def test_first_deploy_then_unchanged_redeploy(repo, tmp_path, moto_s3):  # noqa: F811
    env = load_env(ENV)
    dist = build(env, tmp_path / "dist", repo=repo)
    outputs_file = tmp_path / "outputs.json"
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name=env.region)
    bucket = env.buckets.artifacts
    contexts: list[dict[str, str]] = []

    def cdk_deploy(context: dict[str, str]) -> None:
        # What CloudFormation does for this test: the versioned bucket, the outputs file.
        contexts.append(context)
        if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": env.region}
            )
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        outputs_file.write_text(json.dumps({env.stack_name: {"EmrApplicationId": "00x"}}))

    pool = writers_pool()
    mwaa = mwaa_client()
    get = {"Name": f"cdclake-{ENV}-airflow", "Path": f"/pools/{pool['name']}", "Method": "GET"}

    def clients(name: str):
        return mwaa if name == "mwaa" else boto3.client(name, endpoint_url=moto_s3)

    with Stubber(mwaa) as stub:
        stub.add_client_error(
            "invoke_rest_api",
            service_error_code="RestApiClientException",
            http_status_code=404,
            modeled_fields={"RestApiStatusCode": 404, "RestApiResponse": {"detail": "no pool"}},
            expected_params=get,
        )
        stub.add_response(
            "invoke_rest_api",
            {"RestApiStatusCode": 201, "RestApiResponse": pool},
            {"Name": get["Name"], "Path": "/pools", "Method": "POST", "Body": pool},
        )
        first = deploy(env, dist, outputs_file, cdk_deploy, clients=clients, endpoint_url=moto_s3)
        stub.assert_no_pending_responses()

        version = first["requirements_version"]
        assert first == {"deploys": 2, "requirements_version": version, "pool": "created"}
        # No bucket yet: the first stack has no requirements; the second names the upload.
        assert contexts == [{}, {"mwaa_requirements_version": version}]
        body = s3.get_object(Bucket=bucket, Key=layout.MWAA_REQUIREMENTS_KEY, VersionId=version)
        assert body["Body"].read() == (dist / layout.MWAA_REQUIREMENTS_KEY).read_bytes()

        stub.add_response(
            "invoke_rest_api", {"RestApiStatusCode": 200, "RestApiResponse": pool}, get
        )
        contexts.clear()
        again = deploy(env, dist, outputs_file, cdk_deploy, clients=clients, endpoint_url=moto_s3)
        assert again == {"deploys": 1, "requirements_version": version, "pool": "unchanged"}
        assert contexts == [{"mwaa_requirements_version": version}]


def test_deploy_without_package_is_a_clear_error(tmp_path):
    from infra.package import PackageError

    with pytest.raises(PackageError, match="make package ENV=prod"):
        deploy(load_env(ENV), tmp_path / "nope", tmp_path / "o.json", print, clients=print)
