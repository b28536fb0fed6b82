"""Every SQL file in sql/ passes sqlfluff with its folder's dialect (athena / redshift)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SQL = Path(__file__).resolve().parents[2] / "sql"


def test_sql_folders_have_a_dialect_each():
    for engine in ("athena", "redshift"):
        assert f"dialect = {engine}" in (SQL / engine / ".sqlfluff").read_text()
        assert list((SQL / engine).rglob("*.sql")), f"no SQL files for {engine}"


def test_sqlfluff_lint_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "sqlfluff", "lint", "athena", "redshift", "--nocolor"],
        cwd=SQL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
