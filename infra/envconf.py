"""Per-environment values (``conf/env/<env>.yaml``): region, network, sizes, retention, alarms.

No account ids and no secrets: the account comes from the deploying credentials, the source
database password lives only in Secrets Manager.

Example::

    env = load_env("dev")
    env.buckets.raw  # 'acme-cdclake-dev-raw'
"""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.layout import Buckets
from infra.runtime import REPO_ROOT

ENV_DIR = REPO_ROOT / "conf" / "env"
_BUCKET_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]{1,40}[a-z0-9]$")
_ENV_NAME = re.compile(r"^[a-z][a-z0-9]{1,11}$")
_ID = {
    "vpc": re.compile(r"^vpc-[0-9a-f]{8,17}$"),
    "subnet": re.compile(r"^subnet-[0-9a-f]{8,17}$"),
    "sg": re.compile(r"^sg-[0-9a-f]{8,17}$"),
}
# An account id inside an ARN, or quoted as a string.
_ACCOUNT_ID = re.compile(r":\d{12}:|['\"]\d{12}['\"]")


class EnvConfigError(ValueError):
    """An environment file is missing or invalid. The message names the file and the key."""


@dataclass(frozen=True)
class Network:
    vpc_id: str
    private_subnet_ids: tuple[str, ...]
    # Security group of the source database: DMS gets an ingress rule on the database port.
    source_db_security_group_id: str | None = None


@dataclass(frozen=True)
class Source:
    host: str
    port: int
    database: str
    username: str
    engine: str = "aurora-postgresql"
    ssl_mode: str = "require"
    # PEM file of the CA bundle (path relative to the repo), imported as a DMS certificate;
    # needed for verify-ca / verify-full (e.g. the public RDS global bundle).
    ca_bundle_file: str | None = None
    rotation_days: int = 30


@dataclass(frozen=True)
class Dms:
    instance_class: str = "dms.t3.medium"
    allocated_storage_gb: int = 50
    multi_az: bool = False
    engine_version: str | None = None
    create_service_roles: bool = True  # dms-vpc-role / dms-cloudwatch-logs-role (once per account)
    # Large values (text, jsonb, bytea; DMS's LOBs). Limited LOB mode replicates values up to
    # lob_max_size_kb; the source endpoint fails the task on a longer one (never truncates).
    # Tables listed in full_lob_tables ("schema.table") use full LOB mode instead: no limit,
    # but DMS looks every LOB up at the source, one at a time (much slower).
    lob_max_size_kb: int = 64
    full_lob_tables: tuple[str, ...] = ()


@dataclass(frozen=True)
class Emr:
    architecture: str = "ARM64"
    max_cpu: str = "16 vCPU"
    max_memory: str = "64 GB"
    max_disk: str = "200 GB"
    idle_timeout_minutes: int = 15


@dataclass(frozen=True)
class Retention:
    raw_days: int = 90
    logs_days: int = 90
    noncurrent_days: int = 30
    log_group_days: int = 30
    athena_results_days: int = 30


@dataclass(frozen=True)
class Monitoring:
    alarm_email: str | None = None
    freshness_seconds: int = 3 * 3600
    quarantined_rows: int = 0
    cdc_latency_seconds: int = 900
    job_running_minutes: int = 55


@dataclass(frozen=True)
class Athena:
    bytes_scanned_cutoff: int = 10 * 1024**3


@dataclass(frozen=True)
class Mwaa:
    enabled: bool = False
    airflow_version: str = "3.0.6"
    environment_class: str = "mw1.small"
    max_workers: int = 2


@dataclass(frozen=True)
class EnvConfig:
    name: str
    region: str
    bucket_prefix: str
    network: Network
    source: Source
    dms: Dms = Dms()
    emr: Emr = Emr()
    retention: Retention = Retention()
    monitoring: Monitoring = Monitoring()
    athena: Athena = Athena()
    mwaa: Mwaa = Mwaa()

    @property
    def buckets(self) -> Buckets:
        return Buckets(self.bucket_prefix)

    @property
    def stack_name(self) -> str:
        return f"CdcLake-{self.name}"

    def resource_name(self, suffix: str) -> str:
        """Fixed names for resources that others reference by name (``cdclake-dev-task``)."""
        return f"cdclake-{self.name}-{suffix}"


def load_env(name: str, env_dir: Path = ENV_DIR) -> EnvConfig:
    """Read and validate ``<env_dir>/<name>.yaml``."""
    path = env_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in env_dir.glob("*.yaml"))) or "none"
        raise EnvConfigError(f"environment '{name}' has no file {path} (known: {known})")
    text = path.read_text()
    if _ACCOUNT_ID.search(text):
        raise EnvConfigError(
            f"{path}: looks like it holds an AWS account id; keep them out of conf/"
        )
    return parse_env(yaml.safe_load(text), str(path))


def parse_env(data: Any, source: str = "<env>") -> EnvConfig:
    top = _section(data, source, EnvConfig)
    name = top.get("name")
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise EnvConfigError(f"{source}: name: '{name}' must be 2-12 lowercase letters/digits")
    prefix = top.get("bucket_prefix")
    if not isinstance(prefix, str) or not _BUCKET_PREFIX.match(prefix):
        raise EnvConfigError(
            f"{source}: bucket_prefix: '{prefix}' is not a valid bucket name prefix"
        )
    if not isinstance(top.get("region"), str):
        raise EnvConfigError(f"{source}: region: required")
    network = Network(**_section(top.get("network"), f"{source}: network", Network))
    _check_id(network.vpc_id, "vpc", f"{source}: network.vpc_id")
    subnets = tuple(network.private_subnet_ids or ())
    if len(subnets) < 2:
        raise EnvConfigError(f"{source}: network.private_subnet_ids: give at least two (two AZs)")
    for s in subnets:
        _check_id(s, "subnet", f"{source}: network.private_subnet_ids")
    if network.source_db_security_group_id:
        _check_id(network.source_db_security_group_id, "sg", f"{source}: network")
    network = Network(network.vpc_id, subnets, network.source_db_security_group_id)
    src = Source(**_section(top.get("source"), f"{source}: source", Source))
    if src.ssl_mode not in ("require", "verify-ca", "verify-full"):
        raise EnvConfigError(
            f"{source}: source.ssl_mode: TLS is required (require|verify-ca|verify-full)"
        )
    if src.ssl_mode != "require" and not src.ca_bundle_file:
        raise EnvConfigError(
            f"{source}: source.ca_bundle_file is needed for ssl_mode {src.ssl_mode}"
        )
    if src.engine not in ("postgres", "aurora-postgresql"):
        raise EnvConfigError(
            f"{source}: source.engine: '{src.engine}' (postgres|aurora-postgresql)"
        )
    mon = Monitoring(**_section(top.get("monitoring", {}), f"{source}: monitoring", Monitoring))
    emr = Emr(**_section(top.get("emr", {}), f"{source}: emr", Emr))
    if emr.architecture not in ("ARM64", "X86_64"):
        raise EnvConfigError(f"{source}: emr.architecture: ARM64 or X86_64")
    return EnvConfig(
        name=name,
        region=top["region"],
        bucket_prefix=prefix,
        network=network,
        source=src,
        dms=_parse_dms(top.get("dms", {}), f"{source}: dms"),
        emr=emr,
        retention=Retention(
            **_section(top.get("retention", {}), f"{source}: retention", Retention)
        ),
        monitoring=mon,
        athena=Athena(**_section(top.get("athena", {}), f"{source}: athena", Athena)),
        mwaa=Mwaa(**_section(top.get("mwaa", {}), f"{source}: mwaa", Mwaa)),
    )


def _parse_dms(data: Any, where: str) -> Dms:
    dms = Dms(**_section(data, where, Dms))
    size = dms.lob_max_size_kb
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 102400:
        raise EnvConfigError(f"{where}.lob_max_size_kb: {size!r} (1..102400, DMS's limit)")
    tables = dms.full_lob_tables or ()
    if isinstance(tables, str) or not all(isinstance(t, str) and t.count(".") == 1 for t in tables):
        raise EnvConfigError(f"{where}.full_lob_tables: a list of 'schema.table' names")
    return Dms(**{**vars(dms), "full_lob_tables": tuple(tables)})


def _section(data: Any, where: str, cls: type) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise EnvConfigError(f"{where}: expected a mapping")
    allowed = set(cls.__dataclass_fields__)
    if unknown := sorted(set(data) - allowed):
        raise EnvConfigError(f"{where}: unknown setting(s) {unknown}; allowed: {sorted(allowed)}")
    fields = cls.__dataclass_fields__.items()
    required = {n for n, f in fields if f.default is MISSING and f.default_factory is MISSING}
    if missing := sorted(required - set(data)):
        raise EnvConfigError(f"{where}: required setting(s) {missing} missing")
    return dict(data)


def _check_id(value: Any, kind: str, where: str) -> None:
    if not isinstance(value, str) or not _ID[kind].match(value):
        raise EnvConfigError(f"{where}: '{value}' is not a {kind} id")
