"""Fetch the JVM jars the local Spark profile needs from Maven Central with `mvn`.

Spark must not download anything at run time (EMR Serverless cannot either), so the setup step
copies the exact jars into `.jars/` once. Versions come from `[tool.cdclake.runtime]` in
pyproject.toml, the single place the runtime is pinned; this script refuses to run when that
table disagrees with the pyspark / delta-spark pins.

`io.delta:delta-storage-s3-dynamodb` (Delta's multi-writer-safe S3 log store, which EMR ships as
/usr/share/aws/delta/lib/delta-storage-s3-dynamodb.jar) depends on `delta-storage` and, as a
"provided" dependency, on the AWS SDK for Java v1 (`com.amazonaws:aws-java-sdk` 1.12.262 in
Delta's build.sbt): `aws-java-sdk-bundle` of the same version, fetched for s3a, carries its
DynamoDB client. Only the two-writer test needs it locally, so a registry without it is a
warning here, not a failed setup.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def runtime_pins(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    data = tomllib.loads(pyproject.read_text())
    runtime: dict[str, str] = dict(data["tool"]["cdclake"]["runtime"])
    deps = {
        m.group(1): m.group(2)
        for d in data["project"]["dependencies"]
        if (m := re.fullmatch(r"([a-z0-9-]+)==(\S+)", d))
    }
    if deps.get("pyspark") != runtime["spark"]:
        raise SystemExit(f"pyspark pin {deps.get('pyspark')} != runtime spark {runtime['spark']}")
    if deps.get("delta-spark") != runtime["delta"]:
        raise SystemExit(
            f"delta-spark pin {deps.get('delta-spark')} != runtime delta {runtime['delta']}"
        )
    return runtime


def artifacts(rt: dict[str, str], with_s3a: bool) -> list[str]:
    arts = [
        f"io.delta:delta-spark_{rt['scala']}:{rt['delta']}",
        f"io.delta:delta-storage:{rt['delta']}",
    ]
    if with_s3a:
        arts += [
            f"org.apache.hadoop:hadoop-aws:{rt['hadoop']}",
            f"com.amazonaws:aws-java-sdk-bundle:{rt['aws_java_sdk_bundle']}",
            *optional_artifacts(rt),
        ]
    return arts


def optional_artifacts(rt: dict[str, str]) -> list[str]:
    """Fetched when the registry has them; missing ones only skip the tests that need them."""
    return [f"io.delta:delta-storage-s3-dynamodb:{rt['delta']}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dest", default=str(ROOT / ".jars"))
    ap.add_argument("--no-s3a", action="store_true", help="skip hadoop-aws (only for s3a tests)")
    args = ap.parse_args()
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    rt = runtime_pins()
    optional = set(optional_artifacts(rt))
    for art in artifacts(rt, with_s3a=not args.no_s3a):
        _, name, version = art.split(":")
        if (dest / f"{name}-{version}.jar").exists():
            continue
        print(f"fetching {art}", flush=True)
        cmd = [
            "mvn",
            "-q",
            "-B",
            "dependency:copy",
            f"-Dartifact={art}",
            f"-DoutputDirectory={dest}",
        ]
        done = subprocess.run(cmd, check=art not in optional)
        if done.returncode != 0:
            print(
                f"WARNING: {art} is not available from the Maven registry; the tests that "
                "need it (two writers on the DynamoDB log store) will be skipped",
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
