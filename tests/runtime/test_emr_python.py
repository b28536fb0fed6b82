"""Everything shipped to EMR runs on the image's Python 3.9: a static check (vermin) of exactly
what `make package` puts in front of EMR Serverless (the two entry scripts and every file of the
job zip: the cdclake package and the vendored pure-Python PyYAML). No 3.9 interpreter is
needed; the EMR-like sandbox test also runs the job on 3.9 when the machine has one."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from infra import layout
from infra.envconf import load_env
from infra.package import build
from infra.runtime import runtime_pins

VERMIN = Path(sys.executable).parent / "vermin"


def shipped(tmp_path: Path) -> list[Path]:
    dist = build(load_env("dev"), tmp_path / "dist")
    unpacked = tmp_path / "zip"
    with zipfile.ZipFile(dist / layout.JOB_PACKAGE_KEY) as zf:
        zf.extractall(unpacked)
        names = zf.namelist()
    assert not [n for n in names if not n.endswith(".py") and ".dist-info/" not in n]
    entries = (layout.JOB_ENTRY_KEY, layout.MAINTENANCE_ENTRY_KEY, layout.RECONCILE_ENTRY_KEY)
    return [*(dist / key for key in entries), unpacked]


def vermin(*paths: Path) -> subprocess.CompletedProcess[str]:
    target = runtime_pins()["emr_python"]
    return subprocess.run(  # noqa: S603 - the locked vermin on our own files
        [
            str(VERMIN),
            f"-t={target}-",
            "--eval-annotations",
            "--violations",
            "--no-tips",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_everything_shipped_to_emr_runs_on_python_3_9(tmp_path):
    paths = shipped(tmp_path)
    files = [p for p in paths[-1].rglob("*.py")]
    assert any(p.parts[-2] == "yaml" for p in files) and any("cdclake" in p.parts for p in files)
    res = vermin(*paths)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_check_catches_a_3_10_feature(tmp_path):
    """The check would fail the build: a match statement (3.10) and zip(strict=) are found."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(x, a, b):\n"
        "    match x:\n"
        "        case 1:\n"
        "            return zip(a, b, strict=True)\n"
    )
    res = vermin(bad)
    assert res.returncode != 0 and "3.10" in res.stdout, res.stdout
