"""Synthesize the stacks once per session (jsii + cdk-nag take ~30 s) and share the templates."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

REPO = Path(__file__).resolve().parents[2]

# What `make deploy` passes once requirements.txt is in the bucket (infra/deploy.py).
REQUIREMENTS_VERSION = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"

# A second pipeline config exercising the other DMS layouts: DASH folders, no change
# sequence column, no Op in full-load files, three tables.
ALT_CONFIG = {
    "version": 1,
    "raw_root": "../lakehouse/raw",
    "curated_root": "../lakehouse/curated",
    "glue_database": "alt_lake",
    "dms": {
        "date_partition_sequence": "YYYYMMDDHH",
        "date_partition_delimiter": "DASH",
        "timestamp_column": "commit_ts",
        "change_sequence_column": None,
        "op_column": "Op",
        "full_load_has_op": False,
    },
    "tables": [
        {
            "schema": "sales",
            "name": "orders",
            "primary_key": ["order_id"],
            "partition_by": ["order_date"],
        },
        {"schema": "sales", "name": "order_lines", "primary_key": ["order_id", "line_no"]},
        {
            "schema": "crm",
            "name": "customers",
            "primary_key": "customer_id",
            "drop_columns": ["email", "phone"],
        },
    ],
}


class Synth:
    """One synthesized environment: its env config, pipeline config and template."""

    def __init__(
        self,
        env_name: str,
        config_path: Path,
        outdir: Path,
        context: dict[str, str] | None = None,
    ) -> None:
        from infra.app import build_app
        from infra.envconf import load_env
        from infra.package import render_pipeline_config

        self.env = load_env(env_name)
        self.config_path = config_path
        _, self.cfg = render_pipeline_config(self.env, config_path)
        app, stack = build_app(
            self.env, pipeline_config=config_path, outdir=str(outdir), context=context
        )
        app.synth()
        self.template_path = outdir / f"{stack.stack_name}.template.json"
        self.template = json.loads(self.template_path.read_text())
        self.outdir = outdir

    def resources(self, rtype: str) -> dict[str, dict]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == rtype}

    def one(self, rtype: str, **props: object) -> dict:
        found = [
            v
            for v in self.resources(rtype).values()
            if all(v["Properties"].get(k) == val for k, val in props.items())
        ]
        assert len(found) == 1, f"expected one {rtype} with {props}, found {len(found)}"
        return found[0]["Properties"]


@pytest.fixture(scope="session")
def synths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synth]:
    alt = tmp_path_factory.mktemp("conf") / "pipeline.yaml"
    alt.write_text(yaml.safe_dump(ALT_CONFIG, sort_keys=False))
    out = tmp_path_factory.mktemp("cdk.out")
    return {
        # dev: the repo's pipeline config, no MWAA; prod: the alternative config, MWAA on.
        "dev": Synth("dev", REPO / "conf" / "pipeline.yaml", out / "dev"),
        "prod": Synth(
            "prod", alt, out / "prod", {"mwaa_requirements_version": REQUIREMENTS_VERSION}
        ),
    }


@pytest.fixture(scope="session", params=["dev", "prod"])
def synth(request: pytest.FixtureRequest, synths: dict[str, Synth]) -> Synth:
    return synths[request.param]
