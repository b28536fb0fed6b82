"""Build the deployable artifacts and upload them to the artifacts bucket.

``build`` lays out ``dist/<env>/`` exactly as the bucket will look (see :mod:`infra.layout`);
``upload`` copies that tree 1:1 (plus ``deployment.json`` from the stack outputs, when given).

What EMR gets needs nothing from the image but Spark, its Delta jars and Python (3.9): the job
package zip also carries the pure-Python part of every dependency the job imports
(:data:`VENDORED`: PyYAML, without its C extension). boto3 is the exception: botocore reads its
service models from the file system, so it cannot run from a ``--py-files`` zip; the job uses
the image's boto3 (see README "Runtime and versions"). MWAA gets ``mwaa/requirements.txt``
(:func:`infra.mwaa_runtime.requirements_txt`).

    python -m infra.package build --env dev
    python -m infra.package upload --env dev --outputs cdk.out/outputs-dev.json
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import logging
import shutil
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from cdclake.core.config import PipelineConfig, parse_config
from infra import layout
from infra.envconf import EnvConfig, load_env
from infra.mwaa_runtime import requirements_txt
from infra.runtime import REPO_ROOT

log = logging.getLogger("infra.package")
# Fixed timestamp so the same sources give a byte-identical zip.
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
# Distributions the job imports, shipped in the job zip: {distribution: its top-level packages}.
# Only their .py files go in (no compiled extension runs on EMR); license and metadata too.
VENDORED = {"PyYAML": ("yaml",)}


class PackageError(RuntimeError):
    """An input of the package is missing or invalid."""


def render_pipeline_config(env: EnvConfig, source: Path) -> tuple[str, PipelineConfig]:
    """The pipeline config with ``raw_root`` / ``curated_root`` set to the env's S3 roots.

    The result is validated with :func:`cdclake.config.parse_config` before it is returned.
    """
    data = yaml.safe_load(source.read_text())
    if not isinstance(data, dict):
        raise PackageError(f"{source}: not a mapping")
    data["raw_root"] = env.buckets.raw_root
    data["curated_root"] = env.buckets.curated_root
    cfg = parse_config(data, source=f"{source} (rendered for {env.name})")
    header = (
        f"# Rendered by `make package ENV={env.name}` from {source.name}; do not edit.\n"
        f"# raw_root / curated_root point at the '{env.name}' buckets.\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False), cfg


def build(env: EnvConfig, out: Path, repo: Path = REPO_ROOT, config: Path | None = None) -> Path:
    """Build ``out`` (emptied first) with the layout of the artifacts bucket."""
    entry = repo / "jobs" / "cdc_merge.py"
    package_dir = repo / "jobs" / "cdclake"
    config = config or repo / "conf" / "pipeline.yaml"
    for needed in (entry, package_dir / "__init__.py", config):
        if not needed.is_file():
            raise PackageError(f"cannot package: {needed} is missing")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    text, _ = render_pipeline_config(env, config)

    _write(out / layout.JOB_ENTRY_KEY, entry.read_bytes())
    for key in (layout.MAINTENANCE_ENTRY_KEY, layout.RECONCILE_ENTRY_KEY):
        other = repo / key  # the other entry points: same path in the repo as in the bucket
        if other.is_file():
            _write(out / key, other.read_bytes())
    _zip_package(package_dir, out / layout.JOB_PACKAGE_KEY, vendored=VENDORED)
    _write(out / layout.JOB_CONFIG_KEY, text.encode())
    _write(out / layout.MWAA_REQUIREMENTS_KEY, requirements_txt().encode())
    dags = repo / "dags"
    for src in _files(dags):
        _write(out / layout.DAGS_PREFIX / src.relative_to(dags), src.read_bytes())
    _write(out / layout.DAG_CONFIG_KEY, text.encode())
    for src in _files(package_dir):
        _write(out / layout.DAG_PACKAGE_PREFIX / src.relative_to(package_dir), src.read_bytes())
    log.info("built %s (%d files)", out, sum(1 for _ in _files(out)))
    return out


def upload(
    dist: Path,
    bucket: str,
    *,
    outputs: dict[str, Any] | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    only: set[str] | None = None,
) -> dict[str, str | None]:
    """Upload ``dist`` to ``bucket`` key for key; remove DAG files no longer in ``dist``.

    ``outputs`` (the stack outputs) is written to both deployment.json keys; ``only`` limits
    the upload to those keys (and removes nothing). A key whose object already has the same
    bytes is not written again (MWAA reinstalls requirements on every new object version).
    Returns ``{key: S3 version id}``.
    """
    import boto3  # deferred: building needs no AWS SDK

    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
    owner = boto3.client(
        "sts", endpoint_url=endpoint_url, region_name=region
    ).get_caller_identity()["Account"]
    bodies = {str(p.relative_to(dist)).replace("\\", "/"): p.read_bytes() for p in _files(dist)}
    if outputs is not None:
        doc = json.dumps(outputs, indent=2, sort_keys=True).encode()
        bodies[layout.DEPLOYMENT_KEY] = doc
        bodies[layout.DAG_DEPLOYMENT_KEY] = doc
    if only is not None:
        bodies = {k: v for k, v in bodies.items() if k in only}
    versions: dict[str, str | None] = {}
    for key, body in sorted(bodies.items()):
        versions[key] = _put_if_changed(s3, bucket, key, body, owner)
    if only is not None:
        return versions
    stale = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{layout.DAGS_PREFIX}/", ExpectedBucketOwner=owner
        )
        for o in page.get("Contents", [])
        if o["Key"] not in bodies and o["Key"] != layout.DAG_DEPLOYMENT_KEY
    ]
    for key in stale:
        s3.delete_object(Bucket=bucket, Key=key, ExpectedBucketOwner=owner)
    log.info(
        "uploaded %d objects to s3://%s, removed %d stale DAG files",
        len(bodies),
        bucket,
        len(stale),
    )
    return versions


def _put_if_changed(s3: Any, bucket: str, key: str, body: bytes, owner: str) -> str | None:
    """Put ``body`` unless the object already holds it; the object's version id either way."""
    digest = hashlib.sha256(body).hexdigest()
    try:
        head = s3.head_object(Bucket=bucket, Key=key, ExpectedBucketOwner=owner)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
        head = None
    if head is not None and head.get("Metadata", {}).get("sha256") == digest:
        return head.get("VersionId")
    put = s3.put_object(
        Bucket=bucket, Key=key, Body=body, ExpectedBucketOwner=owner, Metadata={"sha256": digest}
    )
    return put.get("VersionId")


def stack_outputs(path: Path, stack_name: str) -> dict[str, Any]:
    """The outputs of one stack from ``cdk deploy --outputs-file``."""
    data = json.loads(path.read_text())
    if stack_name not in data:
        raise PackageError(f"{path}: no outputs for stack {stack_name}")
    return dict(data[stack_name])


def _zip_package(src: Path, dest: Path, vendored: dict[str, tuple[str, ...]] | None = None) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    entries = {
        f"{src.name}/{f.relative_to(src).as_posix()}": f.read_bytes()
        for f in _files(src)
        if f.suffix not in (".pyc", ".pyo")
    }
    for dist_name, packages in (vendored or {}).items():
        entries.update(vendored_files(dist_name, packages))
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in sorted(entries.items()):
            info = zipfile.ZipInfo(name, _ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, body)


def vendored_files(dist_name: str, packages: tuple[str, ...]) -> dict[str, bytes]:
    """The installed distribution's pure-Python files of ``packages`` (plus its license and
    metadata), as ``{zip path: bytes}``. Raises if the distribution is not installed."""
    dist = importlib.metadata.distribution(dist_name)
    out: dict[str, bytes] = {}
    for f in dist.files or []:
        parts = f.parts
        is_code = parts[0] in packages and f.suffix == ".py"
        is_info = parts[0].endswith(".dist-info") and f.name in ("LICENSE", "METADATA")
        if is_code or is_info:
            out[f.as_posix()] = Path(str(f.locate())).read_bytes()
    if not any(k.split("/")[0] in packages for k in out):
        raise PackageError(f"{dist_name}: none of {packages} found in the installed distribution")
    return out


def _files(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for p in sorted(root.rglob("*")):
        if p.is_file() and not _SKIP_DIRS.intersection(p.relative_to(root).parts):
            yield p


def _write(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(prog="python -m infra.package", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build dist/<env>/")
    u = sub.add_parser("upload", help="upload dist/<env>/ to the artifacts bucket")
    for p in (b, u):
        p.add_argument("--env", required=True)
        p.add_argument("--dist", type=Path, help="default: dist/<env>")
    b.add_argument("--config", type=Path, default=REPO_ROOT / "conf" / "pipeline.yaml")
    u.add_argument("--outputs", type=Path, help="cdk deploy --outputs-file JSON")
    u.add_argument("--endpoint-url", help="S3 endpoint (tests: a moto server)")
    args = ap.parse_args(argv)
    env = load_env(args.env)
    dist = args.dist or REPO_ROOT / "dist" / env.name
    try:
        if args.cmd == "build":
            build(env, dist, config=args.config)
        else:
            if not dist.is_dir():
                raise PackageError(
                    f"{dist} does not exist: run `make package ENV={env.name}` first"
                )
            outputs = stack_outputs(args.outputs, env.stack_name) if args.outputs else None
            upload(
                dist,
                env.buckets.artifacts,
                outputs=outputs,
                endpoint_url=args.endpoint_url,
                region=env.region,
            )
    except (PackageError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
