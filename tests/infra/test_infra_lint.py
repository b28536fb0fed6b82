"""The CI checks of the issue: cfn-lint, checkov, bandit, cdk-nag on the synthesized templates.

cdk-nag (AwsSolutions) runs inside every synth as a validation plugin: an unacknowledged finding
makes the synth raise, so the session fixture itself is the cdk-nag check; the test below reads
its report. checkov runs pinned through uvx (too heavy for the locked environment).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECKOV = "checkov==3.3.30"
# Outside the locked environment too: cfn-lint >= 1.48 needs PyYAML >= 6.0.3, the environment
# has Airflow 3.0.6's 6.0.2 (infra/infra.mk runs the same version).
CFN_LINT = "cfn-lint==1.58.0"


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, **kw)


@pytest.mark.skipif(shutil.which("uvx") is None, reason="uvx (part of uv) is needed for cfn-lint")
def test_cfn_lint_has_no_errors(synths):
    paths = [str(s.template_path) for s in synths.values()]
    res = run(["uvx", "--from", CFN_LINT, "cfn-lint", "--format", "parseable", *paths])
    errors = [line for line in res.stdout.splitlines() if ":E" in line]
    assert not errors, res.stdout + res.stderr
    assert res.returncode in (0, 4, 8, 12), res.stdout + res.stderr  # 4/8: warnings/info only


@pytest.mark.skipif(shutil.which("uvx") is None, reason="uvx (part of uv) is needed to run checkov")
def test_checkov_has_no_failed_checks(synths):
    results = []
    for s in synths.values():
        res = run(
            [
                "uvx",
                "--from",
                CHECKOV,
                "checkov",
                "-f",
                str(s.template_path),
                "--framework",
                "cloudformation",
                "--skip-download",
                "-o",
                "json",
            ],
            env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        )
        report = json.loads(res.stdout) if res.stdout.strip().startswith("{") else None
        assert report is not None, res.stdout[-2000:] + res.stderr[-2000:]
        failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
        assert failed == [], failed
        assert report["summary"]["passed"] > 100
        results.append(report)
    # Every skip is written next to its resource with a reason.
    for r in results:
        for c in r["results"].get("skipped_checks", []):
            assert c["check_result"].get("suppress_comment", "").strip(), c["check_id"]


def test_bandit_has_no_medium_or_high_findings():
    targets = [p for p in ("infra", "jobs", "dags", "tools") if (REPO / p).is_dir()]
    res = run([sys.executable, "-m", "bandit", "-q", "-r", *targets, "-ll", "-f", "json"])
    report = json.loads(res.stdout)
    assert report["results"] == [], json.dumps(report["results"], indent=1)[:4000]


def test_cdk_nag_ran_and_every_finding_is_acknowledged(synths):
    for s in synths.values():
        report = json.loads((s.outdir / "validation-report.json").read_text())
        (nag,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
        assert nag["conclusion"] == "success" and nag["violations"] == []
        for v in nag["suppressedViolations"]:
            assert v["reason"].strip(), v["ruleName"]
