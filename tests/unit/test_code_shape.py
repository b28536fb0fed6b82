"""The code's shape, checked: no import cycles among the project's modules (imports inside
functions count), no private name imported from another module, the demo outside the job's
package, and no module of the job over ~300 lines without a reason at its top."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Top-level folder -> the folder its modules are imported from (PYTHONPATH entries).
PACKAGES = {"jobs": "jobs", "dags": "dags", "bench": ".", "infra": ".", "demo": ".", "capture": "."}
LONG_MODULE = 300


def modules() -> dict[str, Path]:
    out = {}
    for top, base in PACKAGES.items():
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT / base).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def resolve(name: str, mods: dict[str, Path]) -> str | None:
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(name: str, path: Path) -> Iterator[tuple[str, str]]:
    """(imported module, imported name) for every import in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ""
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                yield f"{base}.{alias.name}", alias.name


def graph() -> tuple[dict[str, set[str]], list[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for m, path in mods.items():
        for target, imported in imports(m, path):
            t = resolve(target, mods)
            if t is None or t == m:
                continue
            edges[m].add(t)
            if imported.startswith("_") and not imported.startswith("__"):
                private.append(f"{m} imports {imported} from {t}")
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            if comp:
                found.append(sorted([v, *comp]))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(graph()[0]) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_name_is_imported_across_modules():
    assert graph()[1] == []


def test_job_modules_are_short_or_say_why():
    long = []
    for path in sorted((ROOT / "jobs").rglob("*.py")):
        text = path.read_text()
        lines = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if lines > LONG_MODULE and "lines on purpose" not in doc.replace("\n", " "):
            long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert long == []


def test_the_demo_source_is_not_in_the_job_package():
    assert not (ROOT / "jobs" / "cdclake" / "demo").exists()
    assert not [p for p in (ROOT / "jobs").rglob("*.py") if "import demo" in p.read_text()]
