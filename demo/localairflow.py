"""``make airflow``: a real Airflow 3.0.6 on this machine, running the DAGs of ``dags/`` on the
local target against a live local source, and ``make airflow-stop``.

    python -m demo.localairflow --config conf/pipeline.yaml start [--port 8080] [...]
    python -m demo.localairflow --config conf/pipeline.yaml status
    python -m demo.localairflow --config conf/pipeline.yaml stop
    python -m demo.localairflow --config conf/pipeline.yaml airflow dags list   # the CLI, set up

``start`` wipes the config's (local) raw and curated roots, as ``make run`` does, then:

1. **Source**: a throwaway PostgreSQL cluster (``capture/pgcluster.py``; Unix socket only, run
   as the ``postgres`` OS user when we are root) with the blog's two tables, on the real clock
   (``--source-clock`` runs it under libfaketime from a given time instead: the tests' way to
   make hours that are already closed), and :mod:`demo.liveworkload` committing a small
   transaction every ``--workload-interval`` seconds. The DAGs' ``check_source`` flushes what
   it committed through the capture (``local_source: postgres``).
2. **Metadata database**: a second throwaway cluster, database ``airflow``. PostgreSQL, not
   SQLite: the scheduler, the dag-processor, the triggerer, the API server and every
   LocalExecutor task process use the database at once, which SQLite (one writer, file locks)
   supports only for one-process-at-a-time use. A separate cluster, because the source's
   clock may be faked and Airflow compares times with the database's ``now()``.
3. ``airflow db migrate``, the writers' pool (:func:`cdclake_dags.pools.ensure_local_pool`),
   then the components, each in its own process group with a pid file: ``api-server`` on
   127.0.0.1 only (UI, REST API and the task execution API), ``scheduler`` (LocalExecutor),
   ``dag-processor``, ``triggerer``. Airflow 3.0.6's log servers (scheduler and triggerer) bind
   to every interface whatever the port setting, so both run with ``--skip-serve-logs``: every
   component shares this machine's log folder and the API server reads task logs from it.
4. Login: Airflow 3's SimpleAuthManager, user ``admin`` with a random password kept in
   ``<home>/passwords.json`` (``[core] simple_auth_manager_passwords_file``), printed at start.

Everything lives in ``<home>`` = ``<curated_root>/../local-airflow``: ``airflow.env`` (the
settings, for the CLI), ``pids/``, ``components/<name>.log`` (each component's output),
``logs/`` (task logs), ``state.json`` (URL, source DSN, where the two clusters are: each in a
new folder under the temp dir, which the ``postgres`` OS user can reach when we are root).

``stop`` ends exactly what ``start`` started: each component runs in its own session and its
pid file holds the pid and the process's start time, so ``stop`` signals every process of those
sessions (task processes and their spark-submit included: they stay in the scheduler's) and
nothing else, even when the pid has been reused; then both clusters (``pg_ctl stop``; their
folders are removed). The lake and the logs stay.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cdclake.core.config import ConfigError, PipelineConfig, load_config

log = logging.getLogger("cdclake.localairflow")

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOME_FOLDER = "local-airflow"
USER = "admin"
HOST = "127.0.0.1"
AIRFLOW_DB = "airflow"
CAPTURE_DSN_ENV = "CDCLAKE_CAPTURE_DSN"
DAG_IDS = ("cdclake_full_load", "cdclake_hourly", "cdclake_maintenance")
# Started in this order, stopped in the reverse one.
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "workload")
STOP_WAIT_S = 30.0
READY_TIMEOUT_S = 300.0


class LocalAirflowError(RuntimeError):
    """The local Airflow cannot be started or stopped; the message says why."""


@dataclass(frozen=True)
class Home:
    """The local Airflow's folder and what is in it."""

    root: Path

    @classmethod
    def for_config(cls, cfg: PipelineConfig) -> Home:
        from demo.run_demo import local_root

        return cls(local_root(cfg.curated_root).resolve().parent / HOME_FOLDER)

    @property
    def env_file(self) -> Path:
        return self.root / "airflow.env"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def passwords(self) -> Path:
        return self.root / "passwords.json"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def component_logs(self) -> Path:
        return self.root / "components"

    @property
    def task_logs(self) -> Path:
        return self.root / "logs"

    @property
    def source_cluster(self) -> Path:
        return self._cluster("source")

    @property
    def airflow_cluster(self) -> Path:
        return self._cluster("airflow")

    def _cluster(self, name: str) -> Path:
        # In a folder of its own under the temp dir: as root the server runs as the postgres
        # user, who may not traverse the lake's parents (a home or a test's tmp folder: 0700).
        where = self.state().get("clusters", {}).get(name)
        return Path(where) if where else self.root / f"pg-{name}"

    def pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def env(self) -> dict[str, str]:
        """The components' settings, as written to ``airflow.env``."""
        out = {}
        for line in self.env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            out[key] = shlex.split(value)[0] if value else ""
        return out


# ---- processes ------------------------------------------------------------------------------
# A component is started in a new session (its pid is the session and process group id), and its
# pid file holds the pid and the process's start time: a recycled pid never matches. (Not an
# environment marker: setproctitle, which Airflow's components call, overwrites
# /proc/<pid>/environ.) Task processes and spark-submit stay in the scheduler's session.
def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first); None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    st = _stat(pid)
    return int(st[19]) if st else None


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] != "Z"  # a zombie has ended; nobody reaped it yet


def _session(sid: int) -> list[int]:
    """Live processes of session ``sid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) and st[0] != "Z":
            if int(st[3]) == sid:
                out.append(int(entry.name))
    return out


def _read_pid_file(path: Path) -> tuple[int, int] | None:
    try:
        pid, started = (int(v) for v in path.read_text().split())
    except (OSError, ValueError):
        return None
    return pid, started


def running_components(home: Home) -> dict[str, int]:
    """Components whose pid file names a live process (the one started, not a recycled pid)."""
    out = {}
    for name in COMPONENTS:
        entry = _read_pid_file(home.pid_file(name))
        if entry and _alive(entry[0]) and _start_time(entry[0]) == entry[1]:
            out[name] = entry[0]
    return out


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_gone(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not check():
            return True
        time.sleep(0.5)
    return not check()


def _end_session(name: str, sid: int) -> None:
    """SIGTERM every process of the component's session; SIGKILL what is left after a while."""
    members = _session(sid)
    if not members:
        return
    log.info("stopping %s (session %d, %d process(es))", name, sid, len(members))
    _signal(members, signal.SIGTERM)
    if not _wait_gone(lambda: _session(sid), STOP_WAIT_S):
        log.warning("%s did not stop in %.0f s: SIGKILL", name, STOP_WAIT_S)
        _signal(_session(sid), signal.SIGKILL)
        _wait_gone(lambda: _session(sid), 10)


def spawn(home: Home, name: str, argv: list[str], env: dict[str, str]) -> int:
    """Start a component in its own session (process group), output to its log, pid file."""
    home.component_logs.mkdir(parents=True, exist_ok=True)
    home.pids.mkdir(parents=True, exist_ok=True)
    with open(home.component_logs / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own venv's executables, fixed arguments
            argv,
            cwd=home.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    home.pid_file(name).write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
    log.info("started %s (pid %d): %s", name, proc.pid, " ".join(argv))
    return proc.pid


def _log_tail(home: Home, name: str, lines: int = 30) -> str:
    path = home.component_logs / f"{name}.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ---- the REST API ---------------------------------------------------------------------------
class AirflowApi:
    """Airflow 3's public REST API (``/api/v2``) with a SimpleAuthManager login."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url.rstrip("/")
        self.user, self.password = user, password
        self.token: str | None = None

    def login(self) -> str:
        """``POST /auth/token`` (username, password) -> a JWT for ``Authorization: Bearer``."""
        body = self._call(
            "POST", "/auth/token", {"username": self.user, "password": self.password}, auth=False
        )
        self.token = str(body["access_token"])
        return self.token

    def get(self, path: str) -> Any:
        return self._call("GET", f"/api/v2{path}")

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", f"/api/v2{path}", body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("PATCH", f"/api/v2{path}", body)

    def _call(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        if not self.url.startswith(("http://", "https://")):
            raise LocalAirflowError(f"not an http URL: {self.url}")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token or self.login()}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - http(s) only
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise LocalAirflowError(f"{method} {path}: HTTP {exc.code} {detail}") from exc
        return json.loads(raw) if raw else None


def api_for(home: Home) -> AirflowApi:
    state = home.state()
    password = json.loads(home.passwords.read_text())[USER]
    return AirflowApi(state["url"], USER, password)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our loopback URL
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


# ---- start ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StartOptions:
    port: int = 8080
    grace_minutes: int = 5
    retries: int = 1
    retry_delay_minutes: int = 1
    workload_interval: float = 20.0  # 0: no workload
    source_clock: datetime | None = None  # None: the real clock
    travel_rows: int = 20_000
    sales_rows: int = 3_000
    seed: int = 7


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _start_clusters(home: Home, cfg: PipelineConfig, opts: StartOptions) -> dict[str, str]:
    """The source (tables seeded) and the metadata database; their DSNs."""
    import psycopg2

    from capture.pgcluster import start_cluster
    from demo.pgsource import DATABASE, SERVER_SETTINGS, PgSource, SourceClock, create_tables

    meta = start_cluster(home.airflow_cluster)
    _create_database(meta.dsn, AIRFLOW_DB)
    clock = SourceClock(home.source_cluster / "faketime", opts.source_clock or datetime.now(UTC))
    # The clock file only matters under libfaketime (a faked clock); else the real clock runs.
    server_env = clock.server_env() if opts.source_clock else None
    source = start_cluster(home.source_cluster, settings=SERVER_SETTINGS, server_env=server_env)
    _create_database(source.dsn, DATABASE)
    src = PgSource(source, clock, source.dsn_for(DATABASE))
    create_tables(src, cfg, opts.travel_rows, opts.sales_rows, opts.seed)
    conn = psycopg2.connect(src.dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT clock_timestamp()")
            log.info("source clock: %s", cur.fetchone()[0].isoformat())
    finally:
        conn.close()
    return {
        "source_dsn": src.dsn,
        "airflow_db_url": (
            f"postgresql+psycopg2://{_dsn_part(meta.dsn, 'user')}@/{AIRFLOW_DB}"
            f"?host={meta.socket_dir}&port={meta.port}"
        ),
    }


def _dsn_part(dsn: str, key: str) -> str:
    return dict(p.split("=", 1) for p in dsn.split())[key]


def _create_database(dsn: str, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        conn.cursor().execute(f"CREATE DATABASE {name}")  # fixed names
    finally:
        conn.close()


def component_env(
    home: Home,
    config_path: Path,
    opts: StartOptions,
    dsns: dict[str, str],
    secrets_: dict[str, str],
) -> dict[str, str]:
    """Every setting of the components: Airflow's, the ``[cdclake]`` section's, the marker."""
    url = f"http://{HOST}:{opts.port}"
    pythonpath = [str(REPO / "jobs"), str(REPO)]
    return {
        "AIRFLOW_HOME": str(home.root),
        "PYTHONPATH": os.pathsep.join(pythonpath),
        "PYSPARK_PYTHON": sys.executable,
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        # New DAGs start paused (Airflow's default, said out loud): unpause before triggering.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__FERNET_KEY": secrets_["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home.passwords),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": dsns["airflow_db_url"],
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(opts.port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secrets_["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets_["jwt_secret"],
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home.task_logs),
        "AIRFLOW__CDCLAKE__TARGET": "local",
        "AIRFLOW__CDCLAKE__PIPELINE_CONFIG": str(config_path),
        "AIRFLOW__CDCLAKE__LOCAL_SOURCE": "postgres",
        "AIRFLOW__CDCLAKE__GRACE_MINUTES": str(opts.grace_minutes),
        "AIRFLOW__CDCLAKE__RETRIES": str(opts.retries),
        "AIRFLOW__CDCLAKE__RETRY_DELAY_MINUTES": str(opts.retry_delay_minutes),
        CAPTURE_DSN_ENV: dsns["source_dsn"],
    }


def _new_secrets() -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {
        "fernet_key": Fernet.generate_key().decode(),
        "api_secret_key": secrets.token_urlsafe(32),
        # One signing key for every component: the scheduler signs the task tokens the API
        # server checks (each would make up its own otherwise).
        "jwt_secret": secrets.token_urlsafe(32),
    }


def _inherited_env() -> dict[str, str]:
    """This environment minus Airflow's variables: the caller's shell may set some (another
    AIRFLOW_HOME, a [cdclake] target); the local Airflow runs on its own settings only."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def _run_airflow(env: dict[str, str], *args: str, timeout: float = 600) -> None:
    proc = subprocess.run(  # noqa: S603 - the venv's airflow, fixed arguments
        [str(BIN / "airflow"), *args],
        env={**_inherited_env(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise LocalAirflowError(f"airflow {' '.join(args)} failed:\n{proc.stderr[-3000:]}")


def _create_pool(env: dict[str, str]) -> None:
    code = "from cdclake_dags.pools import ensure_local_pool; ensure_local_pool()"
    proc = subprocess.run(  # noqa: S603 - this interpreter, a fixed snippet
        [sys.executable, "-c", code],
        env={
            **_inherited_env(),
            **env,
            "PYTHONPATH": env["PYTHONPATH"] + os.pathsep + str(REPO / "dags"),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise LocalAirflowError(f"creating the writers' pool failed:\n{proc.stderr[-3000:]}")


def _wait(what: str, ready: Any, home: Home, watch: Sequence[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        dead = [n for n in watch if n not in running_components(home)]
        if dead:
            raise LocalAirflowError(
                f"{dead[0]} exited while waiting for {what}; its log "
                f"({home.component_logs / (dead[0] + '.log')}) ends:\n{_log_tail(home, dead[0])}"
            )
        time.sleep(2)
    raise LocalAirflowError(f"timed out after {timeout:.0f} s waiting for {what}")


def _dags_ready(api: AirflowApi) -> bool:
    try:
        errors = api.get("/importErrors")
    except (LocalAirflowError, OSError):
        return False
    if errors.get("total_entries"):
        raise LocalAirflowError(f"DAG import errors: {errors['import_errors']}")
    dags = api.get("/dags?dag_id_pattern=cdclake&limit=100")
    return {d["dag_id"] for d in dags["dags"]} >= set(DAG_IDS)


def start(config_path: Path, opts: StartOptions) -> Home:
    """Start everything (see module doc); on any failure, stop what was started."""
    from demo.run_demo import local_root, wipe

    cfg = load_config(config_path)
    home = Home.for_config(cfg)
    if running_components(home):
        raise LocalAirflowError(
            f"a local Airflow is already running from {home.root}: `make airflow-stop` first"
        )
    if not _port_free(opts.port):
        raise LocalAirflowError(f"port {opts.port} on {HOST} is in use: choose another (--port)")
    for root in (local_root(cfg.raw_root), local_root(cfg.curated_root), home.root):
        wipe(root)
    home.root.mkdir(parents=True)
    clusters = {
        n: tempfile.mkdtemp(prefix=f"cdclake-local-airflow-{n}-") for n in ("source", "airflow")
    }
    home.state_file.write_text(json.dumps({"clusters": clusters}, indent=2) + "\n")
    try:
        dsns = _start_clusters(home, cfg, opts)
        env = component_env(home, config_path, opts, dsns, _new_secrets())
        _write_private(home.env_file, "".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()))
        _write_private(home.passwords, json.dumps({USER: secrets.token_urlsafe(12)}) + "\n")
        url = env["AIRFLOW__API__BASE_URL"]
        home.state_file.write_text(
            json.dumps(
                {
                    "url": url,
                    "config": str(config_path),
                    "source_dsn": dsns["source_dsn"],
                    "source_clock": opts.source_clock.isoformat() if opts.source_clock else "real",
                    "started_at": datetime.now(UTC).isoformat(),
                    "clusters": clusters,
                },
                indent=2,
            )
            + "\n"
        )
        log.info("migrating the metadata database")
        _run_airflow(env, "db", "migrate")
        _create_pool(env)
        full_env = {**_inherited_env(), **env}
        airflow = str(BIN / "airflow")
        spawn(
            home,
            "api-server",
            [airflow, "api-server", "--host", HOST, "--port", str(opts.port), "--workers", "1"],
            full_env,
        )
        spawn(home, "scheduler", [airflow, "scheduler", "--skip-serve-logs"], full_env)
        spawn(home, "dag-processor", [airflow, "dag-processor"], full_env)
        spawn(home, "triggerer", [airflow, "triggerer", "--skip-serve-logs"], full_env)
        if opts.workload_interval > 0:
            spawn(
                home,
                "workload",
                [
                    sys.executable,
                    "-m",
                    "demo.liveworkload",
                    "--dsn",
                    dsns["source_dsn"],
                    "--config",
                    str(config_path),
                    "--interval",
                    str(opts.workload_interval),
                ],
                {**full_env, "PYTHONPATH": env["PYTHONPATH"]},
            )
        watch = ["api-server", "scheduler", "dag-processor", "triggerer"]
        _wait(
            "the API server",
            lambda: _http_ok(f"{url}/api/v2/monitor/health"),
            home,
            watch,
            READY_TIMEOUT_S,
        )
        api = api_for(home)
        _wait("the three DAGs", lambda: _dags_ready(api), home, watch, READY_TIMEOUT_S)
    except BaseException:
        log.error("start failed; stopping what was started")
        stop(home)
        raise
    return home


def set_source_clock(home: Home, when: datetime) -> None:
    """Move the source's clock to ``when`` (then it ticks on). Only a faked clock moves: a source
    started with ``--source-clock`` reads its offset file through libfaketime."""
    from demo.pgsource import SourceClock

    if home.state().get("source_clock") in (None, "real"):
        raise LocalAirflowError("the source runs on the real clock (start with --source-clock)")
    SourceClock(home.source_cluster / "faketime", when)


# ---- stop -----------------------------------------------------------------------------------
def stop(home: Home) -> list[str]:
    """Stop every component, every process left with this home's marker, both clusters."""
    from capture.pgcluster import Cluster, ClusterError

    stopped = []
    for name in reversed(COMPONENTS):
        path = home.pid_file(name)
        entry = _read_pid_file(path)
        if entry is None:
            continue
        pid, started = entry
        # The session outlives its leader: end its processes even if the leader has exited,
        # unless the pid was recycled by a process that is not ours (a new session leader).
        if not _alive(pid) or _start_time(pid) == started:
            if _session(pid):
                _end_session(name, pid)
                stopped.append(name)
        path.unlink()
    for name, base in (("source", home.source_cluster), ("metadata db", home.airflow_cluster)):
        if (base / "data").exists():
            try:
                Cluster(base=base, port=5432).stop(remove=True)
                stopped.append(f"{name} cluster")
            except ClusterError as exc:
                log.error("%s cluster in %s: %s", name, base, exc)
        elif base.is_relative_to(Path(tempfile.gettempdir())) and base.is_dir():
            shutil.rmtree(base, ignore_errors=True)  # made, never initialised
    return stopped


# ---- the command line -----------------------------------------------------------------------
def _emit(text: str = "") -> None:
    """Deliberate output of the command line (progress goes to the log on stderr)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def describe(home: Home, cfg: PipelineConfig) -> str:
    state = home.state()
    password = json.loads(home.passwords.read_text())[USER] if home.passwords.exists() else "?"
    url = state.get("url", "?")
    running = running_components(home)
    from demo.run_demo import local_root

    curated = local_root(cfg.curated_root)
    return "\n".join(
        [
            f"Local Airflow 3.0.6 from {home.root}",
            "  components: " + (", ".join(f"{n} ({p})" for n, p in running.items()) or "none"),
            f"  UI and REST API: {url}  (listens on {HOST} only)",
            f"  log in: user {USER}, password {password}",
            f"    (SimpleAuthManager; kept in {home.passwords})",
            f'  REST: POST {url}/auth/token {{"username": ..., "password": ...}} -> access_token,',
            f"        then 'Authorization: Bearer <access_token>' on {url}/api/v2/...",
            f"  source: PostgreSQL {state.get('source_dsn', '?')}",
            f"    clock {state.get('source_clock')}",
            "  DAGs start paused. First start: unpause cdclake_full_load and trigger it (no",
            "    parameters); when it succeeded, unpause cdclake_hourly (README: 'make airflow').",
            f"  CLI: make airflow-cli ARGS='dags list'   (settings: {home.env_file})",
            f"  logs: tasks {home.task_logs}, components {home.component_logs},",
            f"        jobs (spark-submit) {curated / '_runs'}",
            "  stop: make airflow-stop",
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m demo.localairflow", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--config", default="conf/pipeline.yaml", help="pipeline config (local roots)")
    p.add_argument("--log-level", default="INFO")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", help="start the source and Airflow (wipes the local lake)")
    s.add_argument("--port", type=int, default=StartOptions.port, help="API server port")
    s.add_argument("--grace-minutes", type=int, default=StartOptions.grace_minutes)
    s.add_argument("--retries", type=int, default=StartOptions.retries)
    s.add_argument(
        "--workload-interval",
        type=float,
        default=StartOptions.workload_interval,
        help="seconds between the workload's transactions (0: no workload)",
    )
    s.add_argument(
        "--source-clock",
        type=datetime.fromisoformat,
        default=None,
        help="run the source's clock from this time (libfaketime); default: real",
    )
    s.add_argument("--travel-rows", type=int, default=StartOptions.travel_rows)
    s.add_argument("--sales-rows", type=int, default=StartOptions.sales_rows)
    sub.add_parser("stop", help="stop what start started")
    sub.add_parser("status", help="what runs, where, how to log in")
    cli = sub.add_parser("airflow", help="run the airflow CLI with the local Airflow's settings")
    cli.add_argument("args", nargs=argparse.REMAINDER)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config_path = Path(args.config).resolve()
    try:
        cfg = load_config(config_path)
        home = Home.for_config(cfg)
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    if args.command == "airflow":
        if not home.env_file.exists():
            log.error("no local Airflow set up in %s: `make airflow` first", home.root)
            return 1
        os.execve(  # noqa: S606 - the venv's airflow, the user's own arguments
            BIN / "airflow",
            [str(BIN / "airflow"), *args.args],
            {**_inherited_env(), **home.env()},
        )
    if args.command == "stop":
        stopped = stop(home)
        _emit(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    if args.command == "status":
        _emit(describe(home, cfg))
        return 0 if running_components(home) else 1
    opts = StartOptions(
        port=args.port,
        grace_minutes=args.grace_minutes,
        retries=args.retries,
        workload_interval=args.workload_interval,
        source_clock=(
            args.source_clock.replace(tzinfo=args.source_clock.tzinfo or UTC)
            if args.source_clock
            else None
        ),
        travel_rows=args.travel_rows,
        sales_rows=args.sales_rows,
    )
    from capture.pgcluster import ClusterError
    from demo.pgsource import SourceSetupError

    try:
        home = start(config_path, opts)
    except (LocalAirflowError, ClusterError, SourceSetupError, ConfigError) as exc:
        log.error("%s", exc)
        return 1
    _emit(describe(home, cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
