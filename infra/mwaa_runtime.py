"""The MWAA runtime, written down: Airflow's published constraints for MWAA's Airflow and
Python, the lock pinned to them, and the ``requirements.txt`` the environment installs.

MWAA 3.0.6 runs Python 3.12 (aws/amazon-mwaa-docker-images ``images/airflow/3.0.6/
Dockerfile.base.j2``: ``PYTHON_VERSION=3.12.10``) and installs Airflow with
``constraints-3.0.6/constraints-3.12.txt`` (copied verbatim in that repository as
``images/airflow/3.0.6/etc/airflow_constraints.txt``; the same copy is kept here, see
:data:`CONSTRAINTS_FILE`, since only package registries are reachable from CI).

    python -m infra.mwaa_runtime requirements     # what `make package` writes
    python -m infra.mwaa_runtime pins             # [tool.uv] constraint-dependencies lines
    python -m infra.mwaa_runtime check            # the lock's Airflow closure vs the constraints
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from infra.runtime import REPO_ROOT, runtime_pins

CONSTRAINTS_DIR = Path(__file__).resolve().parent / "mwaa"
# The dependency group that is the Airflow environment (the DAGs and the catalog task).
AIRFLOW_GROUP = "airflow"
# What MWAA's image already carries and requirements.txt must not try to change.
BASE_IMAGE = ("apache-airflow",)


def normalize(name: str) -> str:
    """PEP 503 name: ``PyYAML`` and ``pyyaml`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints_url(pins: Mapping[str, str] | None = None) -> str:
    p = pins or runtime_pins()
    return (
        "https://raw.githubusercontent.com/apache/airflow/"
        f"constraints-{p['airflow']}/constraints-{p['mwaa_python']}.txt"
    )


def constraints_file(pins: Mapping[str, str] | None = None) -> Path:
    p = pins or runtime_pins()
    return CONSTRAINTS_DIR / f"constraints-{p['airflow']}-python{p['mwaa_python']}.txt"


def read_constraints(path: Path | None = None) -> dict[str, str]:
    """``{normalized name: version}`` of a constraints file."""
    out: dict[str, str] = {}
    for line in (path or constraints_file()).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==([^\s;#]+)", line.strip())
        if m:
            out[normalize(m.group(1))] = m.group(2)
    return out


def _lock(path: Path) -> dict[str, dict]:
    data = tomllib.loads(path.read_text())
    return {normalize(p["name"]): p for p in data["package"]}


def group_closure(
    lock_path: Path = REPO_ROOT / "uv.lock", group: str = AIRFLOW_GROUP, project: str = "cdclake"
) -> dict[str, str]:
    """Every distribution the lock installs for ``group`` (extras followed), with its version."""
    pkgs = _lock(lock_path)
    root = pkgs[normalize(project)]
    todo = [
        (normalize(d["name"]), tuple(d.get("extra", [])))
        for d in root.get("dev-dependencies", {}).get(group, [])
    ]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        pkg = pkgs[name]
        deps = list(pkg.get("dependencies", []))
        for extra in extras:
            deps += pkg.get("optional-dependencies", {}).get(extra, [])
        todo += [(normalize(d["name"]), tuple(d.get("extra", []))) for d in deps]
    return {name: pkgs[name]["version"] for name in sorted({n for n, _ in seen})}


def closure_mismatches(
    closure: Mapping[str, str], constraints: Mapping[str, str]
) -> dict[str, tuple[str, str]]:
    """``{name: (locked, constrained)}`` for every locked distribution the constraints pin
    to another version."""
    return {
        n: (v, constraints[n])
        for n, v in closure.items()
        if n in constraints and constraints[n] != v
    }


def airflow_group_requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """The ``airflow`` dependency group without what MWAA's image provides."""
    groups = tomllib.loads(pyproject.read_text())["dependency-groups"]
    reqs = []
    for req in groups[AIRFLOW_GROUP]:
        name = re.split(r"[\[=<>!~; ]", req, maxsplit=1)[0]
        if normalize(name) not in BASE_IMAGE:
            reqs.append(req)
    return reqs


def requirements_txt(pins: Mapping[str, str] | None = None) -> str:
    """MWAA's ``requirements.txt``: the constraints line, then the pinned requirements."""
    p = pins or runtime_pins()
    lines = [
        f"# MWAA requirements of cdclake: Airflow {p['airflow']} on Python {p['mwaa_python']}.",
        "# Written by `make package` from pyproject.toml's airflow group; do not edit.",
        f'--constraint "{constraints_url(p)}"',
        *airflow_group_requirements(),
    ]
    return "\n".join(lines) + "\n"


def pin_lines(names: Iterable[str], constraints: Mapping[str, str]) -> list[str]:
    """``name==version`` for the names the constraints pin (for ``constraint-dependencies``)."""
    return [f"{n}=={constraints[n]}" for n in sorted(set(names)) if n in constraints]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m infra.mwaa_runtime", description=__doc__)
    ap.add_argument("command", choices=["requirements", "pins", "check"])
    args = ap.parse_args(argv)
    constraints = read_constraints()
    closure = group_closure()
    out = sys.stdout
    if args.command == "requirements":
        out.write(requirements_txt())
    elif args.command == "pins":
        out.writelines(f'    "{line}",\n' for line in pin_lines(closure, constraints))
    else:
        bad = closure_mismatches(closure, constraints)
        out.writelines(
            f"{name}: locked {locked}, constraints {pinned}\n"
            for name, (locked, pinned) in sorted(bad.items())
        )
        unpinned = sorted(set(closure) - set(constraints))
        if unpinned:
            out.write("not in the constraints file (kept as locked): " + ", ".join(unpinned) + "\n")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
