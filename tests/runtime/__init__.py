"""Tests of the runtimes the artifacts go to: EMR Serverless (an EMR-like sandbox), MWAA (a fresh
venv from the packaged requirements.txt), and two writers on the DynamoDB log store."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(found).is_file():
        raise RuntimeError("uv is needed (make setup installs it)")
    return found


def find_python(version: str, env_var: str) -> tuple[str, bool]:
    """An interpreter of ``version`` (``3.9``) if this machine has one, else this one.

    Looks at ``$<env_var>``, ``python<version>`` on PATH, then pyenv's versions folder. Returns
    (path, exact): ``exact`` is False when falling back to the machine's own Python.
    """
    candidates = [os.environ.get(env_var, ""), shutil.which(f"python{version}") or ""]
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"))
    for c in filter(None, candidates):
        try:
            out = subprocess.run(  # noqa: S603 - a local interpreter, asked its version
                [c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return c, True
    return sys._base_executable, False  # type: ignore[attr-defined]


def fresh_venv(path: Path, python: str, *requirements: str, args: tuple[str, ...] = ()) -> Path:
    """``uv venv`` + ``uv pip install`` (from uv's cache when it can, else PyPI); its Python."""
    subprocess.run(
        [uv(), "venv", "-q", "--no-config", "--python", python, str(path)], check=True, timeout=120
    )  # noqa: S603
    py = path / "bin" / "python"
    cmd = [uv(), "pip", "install", "-q", "--no-config", "--python", str(py), *args, *requirements]
    if subprocess.run([*cmd, "--offline"], capture_output=True, timeout=600).returncode != 0:  # noqa: S603
        subprocess.run(cmd, check=True, timeout=1800)  # noqa: S603
    return py


def clean_env(**extra: str) -> dict[str, str]:
    """A process environment without this venv: no PYTHONPATH, no VIRTUAL_ENV, no PYSPARK_*."""
    keep = ("PATH", "HOME", "JAVA_HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.update(extra)
    return env
