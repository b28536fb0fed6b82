"""A throwaway PostgreSQL 15 cluster for tests, benchmarks and ``make run``.

The server refuses to run as root: as root, the cluster's files belong to the ``postgres``
OS user and ``initdb``/``pg_ctl`` run as that user; as anyone else they run directly. Data,
socket and log live in one temp folder; the server listens on a Unix socket in that folder
only (no TCP unless asked), with ``wal_level=logical`` and room for replication slots.

Example::

    with throwaway_cluster() as pg:
        conn = psycopg2.connect(pg.dsn)

Command line (for scripts)::

    python -m capture.pgcluster start DIR   # prints the DSN
    python -m capture.pgcluster stop DIR
"""

from __future__ import annotations

import argparse
import logging
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PG_BIN = Path(os.environ.get("CDCLAKE_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "cdclake"
SERVER_OS_USER = "postgres"  # who runs the server when we are root
# Throwaway: durability off for speed; logical decoding on; slots for several captures.
DEFAULT_SETTINGS: dict[str, str] = {
    "wal_level": "logical",
    "max_replication_slots": "10",
    "max_wal_senders": "10",
    "max_connections": "40",
    "shared_buffers": "64MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "timezone": "UTC",
    "log_min_messages": "warning",
}


class ClusterError(RuntimeError):
    """The throwaway cluster could not be created, started or stopped. Says why."""


@dataclass(frozen=True)
class Cluster:
    """A running cluster: its folder, socket folder and port, and how to connect."""

    base: Path
    port: int
    tcp: bool = False

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "sock"

    @property
    def log_file(self) -> Path:
        return self.base / "server.log"

    def dsn_for(self, dbname: str = "postgres") -> str:
        host = "127.0.0.1" if self.tcp else str(self.socket_dir)
        return f"host={host} port={self.port} user={SUPERUSER} dbname={dbname}"

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def stop(self, *, remove: bool = True) -> None:
        """Stop the server (immediate: nothing to keep) and remove its folder."""
        if (self.data_dir / "postmaster.pid").exists():
            _run_pg(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
                self.base,
            )
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)


def start_cluster(
    base: Path | None = None,
    *,
    settings: Mapping[str, str] | None = None,
    tcp: bool = False,
    server_env: Mapping[str, str] | None = None,
) -> Cluster:
    """initdb a new cluster in ``base`` (default: a new temp folder) and start it.

    ``settings`` override :data:`DEFAULT_SETTINGS`; ``server_env`` adds environment variables
    for the server process (e.g. ``LD_PRELOAD``/``FAKETIME`` for a faster clock).
    """
    if not (PG_BIN / "initdb").exists():
        raise ClusterError(
            f"PostgreSQL 15 is not installed ({PG_BIN / 'initdb'} is missing): "
            "run tools/ensure_postgres.sh"
        )
    base = Path(base) if base else Path(tempfile.mkdtemp(prefix="cdclake-pg-"))
    base.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(base=base.resolve(), port=_free_port() if tcp else 5432, tcp=tcp)
    cluster.socket_dir.mkdir(exist_ok=True)
    _hand_over(cluster.base)
    data = str(cluster.data_dir)
    initdb = ["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]
    _run_pg([str(PG_BIN / "initdb"), "-D", data, *initdb], cluster.base)
    _configure(cluster, {**DEFAULT_SETTINGS, **(settings or {})})
    pg_ctl = ["-l", str(cluster.log_file), "-w", "-t", "60", "start"]
    _run_pg([str(PG_BIN / "pg_ctl"), "-D", data, *pg_ctl], cluster.base, env=server_env)
    log.info("PostgreSQL cluster running in %s (%s)", cluster.base, cluster.dsn)
    return cluster


@contextmanager
def throwaway_cluster(**kwargs: object) -> Iterator[Cluster]:
    """:func:`start_cluster` as a context manager that always stops and removes it."""
    cluster = start_cluster(**kwargs)  # type: ignore[arg-type]
    try:
        yield cluster
    finally:
        cluster.stop()


def _configure(cluster: Cluster, settings: dict[str, str]) -> None:
    """Settings, where to listen (own socket folder; TCP on loopback only if asked)."""
    conf = settings | {
        "listen_addresses": "'127.0.0.1'" if cluster.tcp else "''",
        "port": str(cluster.port),
        "unix_socket_directories": f"'{cluster.socket_dir}'",
    }
    with (cluster.data_dir / "postgresql.auto.conf").open("a") as f:
        f.writelines(f"{k} = {_quote(v)}\n" for k, v in conf.items())


def _quote(value: str) -> str:
    return value if value.startswith("'") else f"'{value}'"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_root() -> bool:
    return os.geteuid() == 0


def _hand_over(base: Path) -> None:
    """As root, give the folder to the server's OS user (the server refuses root)."""
    if not _as_root():
        return
    try:
        pw = pwd.getpwnam(SERVER_OS_USER)
    except KeyError as exc:
        raise ClusterError(
            f"running as root, but there is no '{SERVER_OS_USER}' user to run the server as"
        ) from exc
    for path in (base, *base.rglob("*")):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    # mkdtemp made it 0700 for root; the server user must traverse it, root keeps access.
    base.chmod(0o700)


def _run_pg(args: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> None:
    full_env = {**os.environ, "LC_ALL": "C", **(env or {})}
    user = SERVER_OS_USER if _as_root() else None
    proc = subprocess.run(  # noqa: S603 - fixed binaries, arguments built here
        args, cwd=cwd, env=full_env, user=user, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-2000:]
        log_tail = ""
        logfile = cwd / "server.log"
        if logfile.exists():
            log_tail = "\nserver log:\n" + logfile.read_text(errors="replace")[-2000:]
        raise ClusterError(f"{Path(args[0]).name} failed ({proc.returncode}): {tail}{log_tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m capture.pgcluster", description=__doc__)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--tcp", action="store_true", help="also listen on 127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.action == "start":
            sys.stdout.write(start_cluster(args.dir, tcp=args.tcp).dsn + "\n")
        else:
            port = _port_of(args.dir)
            Cluster(base=args.dir.resolve(), port=port).stop(remove=False)
    except ClusterError as exc:
        log.error("%s", exc)
        return 1
    return 0


def _port_of(base: Path) -> int:
    conf = (base / "data" / "postgresql.auto.conf").read_text()
    ports = [ln.split("=", 1)[1].strip(" '\n") for ln in conf.splitlines() if ln.startswith("port")]
    return int(ports[-1]) if ports else 5432


if __name__ == "__main__":
    sys.exit(main())
