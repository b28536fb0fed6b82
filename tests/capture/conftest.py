"""One throwaway PostgreSQL cluster per test process, a fresh database per test, and a harness
that runs the capture on it and compares what its files say with the database.

PostgreSQL missing is a failure (with the fix in the message), never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest
import yaml

from capture.cli import main as capture_main
from capture.pgcluster import Cluster, start_cluster
from cdclake.core.config import PipelineConfig, load_config
from cdclake.core.uris import local_dir
from tests.capture.lake_model import apply, comparable, lake_schema, parse_text, read_rows

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pg() -> Cluster:
    cluster = start_cluster()  # ClusterError (not installed, cannot start) fails the tests
    yield cluster
    cluster.stop()


class Source:
    """A test database with one capture (its own slot, publication and raw root)."""

    def __init__(self, pg: Cluster, root: Path) -> None:
        self.pg, self.root = pg, root
        self.name = f"t_{uuid.uuid4().hex[:10]}"
        admin = psycopg2.connect(pg.dsn)
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{self.name}"')
        admin.close()
        self.dsn = pg.dsn_for(self.name)
        self.conn = self.connect()
        self.config_path = root / "pipeline.yaml"
        self.summary_path = root / "summary.json"

    def connect(self, autocommit: bool = True) -> Any:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = autocommit
        return conn

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(query, args or None)
            return cur.fetchall() if cur.description else []

    def configure(self, tables: list[dict[str, Any]], **dms: Any) -> PipelineConfig:
        doc = {
            "raw_root": str(self.root / "raw"),
            "curated_root": str(self.root / "curated"),
            "dms": dms,
            "tables": tables,
        }
        self.config_path.write_text(yaml.safe_dump(doc))
        return self.cfg

    @property
    def cfg(self) -> PipelineConfig:
        return load_config(self.config_path)

    def args(self, command: str, *extra: str) -> list[str]:
        return [
            command,
            "--config",
            str(self.config_path),
            "--dsn",
            self.dsn,
            "--slot",
            self.name,
            "--publication",
            self.name,
            "--summary-json",
            str(self.summary_path),
            *extra,
        ]

    def capture(self, command: str, *extra: str) -> int:
        """Run ``python -m capture`` in this process; returns its exit status."""
        return capture_main(self.args(command, *extra))

    def summary(self) -> dict[str, Any]:
        return json.loads(self.summary_path.read_text())

    def spawn(self, command: str, *extra: str, env: dict[str, str] | None = None) -> Any:
        """Run the capture as a separate process (to kill it)."""
        full_env = {**os.environ, "PYTHONPATH": f"{REPO / 'jobs'}:{REPO}", **(env or {})}
        return subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "capture", *self.args(command, *extra)],
            cwd=REPO,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def table_dir(self, name: str) -> Path:
        cfg = self.cfg
        return local_dir(cfg.raw_location(cfg.table(name)))

    def lake(self, name: str) -> dict[tuple[Any, ...], dict[str, Any]]:
        """The table the files build (the job's semantics)."""
        cfg = self.cfg
        return apply(read_rows(self.table_dir(name), cfg.dms), cfg.table(name).primary_key)

    def db(self, name: str) -> dict[tuple[Any, ...], dict[str, Any]]:
        """``SELECT *`` of the table (minus drop_columns), typed as the files' columns."""
        cfg = self.cfg
        table = cfg.table(name)
        types = lake_schema(self.table_dir(name), cfg.dms)
        conn = self.text_connection()
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT * FROM {name}")
                cols = [d.name for d in cur.description]
                rows = cur.fetchall()
        finally:
            conn.close()
        out = {}
        for row in rows:
            values = {
                c: parse_text(v, types[c])
                for c, v in zip(cols, row, strict=True)
                if c not in table.drop_columns
            }
            out[tuple(values[k] for k in table.primary_key)] = values
        return out

    def text_connection(self) -> Any:
        """A connection returning every value as the server's text output."""
        conn = self.connect()
        conn.cursor().execute("SET timezone = 'UTC'; SET extra_float_digits = 3")
        oids = tuple(r[0] for r in self.sql("SELECT oid FROM pg_type"))
        raw = psycopg2.extensions.new_type(oids, "TEXT_ALL", lambda v, c: v)
        psycopg2.extensions.register_type(raw, conn)
        return conn

    def assert_lake_equals_db(self, name: str) -> None:
        lake, db = self.lake(name), self.db(name)
        assert sorted(lake) == sorted(db)
        for key, row in db.items():
            assert comparable(lake[key]) == comparable(row), key

    def close(self) -> None:
        self.sql(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE database = current_database() AND NOT active"
        )
        self.conn.close()
        admin = psycopg2.connect(self.pg.dsn)
        admin.autocommit = True
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def source(pg: Cluster, tmp_path: Path) -> Source:
    src = Source(pg, tmp_path)
    yield src
    src.close()
