"""The pipeline config: one YAML file, loaded into typed objects and validated on load.

Every other part of the product (the job, the DAGs, the DMS table mappings, the SQL) reads the
same file through :func:`load_config`, so a setting exists in exactly one place.

Over 300 lines on purpose: each section's typed object and its validating reader stand
together, so a setting's type, default and rules are read in one place.

Example::

    cfg = load_config("conf/pipeline.yaml")
    for table in cfg.select_tables(["delta_emr_source.travel_details"]):
        print(table.qualified_name, cfg.table_location(table))
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cdclake.core.columns import BOOKKEEPING_PREFIX, HISTORY_COLUMNS
from cdclake.core.uris import is_s3, join_uri

# DMS `DatePartitionDelimiter` values and the separator each puts between date parts.
DELIMITERS: dict[str, str] = {"SLASH": "/", "DASH": "-", "UNDERSCORE": "_", "NONE": ""}
# Only hourly folders let a run cover an exact [since, until) hour window.
SUPPORTED_SEQUENCES = ("YYYYMMDDHH",)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


class ConfigError(ValueError):
    """The pipeline config is missing, unreadable or invalid. The message says where."""


class ConfigFileNotFoundError(ConfigError):
    """The config path does not exist."""


class ConfigSyntaxError(ConfigError):
    """The file is not valid YAML or not a mapping at the top."""


class MissingSettingError(ConfigError):
    """A required setting is absent."""


class UnknownSettingError(ConfigError):
    """A setting name is not known (usually a typo)."""


class InvalidSettingError(ConfigError):
    """A setting has a value of the wrong type or outside its allowed values."""


class DuplicateTableError(ConfigError):
    """The same schema.table is configured twice."""


class UnknownTableError(ConfigError):
    """A table asked for (e.g. with --tables) is not in the config."""


class HistoryNameClashError(InvalidSettingError):
    """A table's history table (``<name>_history``) has the name of another configured table."""


class VacuumRetentionTooShortError(InvalidSettingError):
    """``maintenance.vacuum_retain_hours`` is below Delta's safety default (168 h)."""


class TombstoneRetentionTooShortError(InvalidSettingError):
    """``maintenance.tombstone_retention_days`` is below the minimum that keeps backfills safe."""


@dataclass(frozen=True)
class DmsLayout:
    """How the DMS S3 target endpoint writes files (must match its endpoint settings)."""

    date_partition_sequence: str = "YYYYMMDDHH"
    date_partition_delimiter: str = "SLASH"
    timestamp_column: str = "dms_commit_ts"
    change_sequence_column: str | None = "dms_change_seq"
    op_column: str = "Op"
    full_load_has_op: bool = True

    @property
    def separator(self) -> str:
        return DELIMITERS[self.date_partition_delimiter]

    @property
    def dms_columns(self) -> tuple[str, ...]:
        cols = [self.op_column, self.timestamp_column]
        if self.change_sequence_column:
            cols.append(self.change_sequence_column)
        return tuple(cols)


# Delta refuses VACUUM below `delta.deletedFileRetentionDuration` (7 days) unless its safety
# check is switched off; we never switch it off, so shorter values are config errors.
MIN_VACUUM_RETAIN_HOURS = 168
# A tombstone is what stops an older replayed change (backfill, DMS redelivery after a task
# restart) from resurrecting a deleted row: it must outlive every hour anyone may re-apply.
MIN_TOMBSTONE_RETENTION_DAYS = 7


@dataclass(frozen=True)
class MaintenanceConfig:
    """The daily maintenance job's settings (``maintenance:`` in the config; all optional)."""

    compact_recent_days: int = 3
    vacuum_retain_hours: int = 336
    tombstone_retention_days: int = 30
    quarantine_retention_days: int = 90


@dataclass(frozen=True)
class MergeConfig:
    """How merge runs share tables and bound their work (``merge:``; all optional)."""

    # A run holds a table's lease while it writes; a lease older than this belongs to a run
    # that died (keep it longer than the longest job run: EMR's executionTimeoutMinutes).
    lease_minutes: int = 180
    # Hour folders listed before the oldest hour not yet complete: how late a file may land in
    # an hour already applied and still be picked up by an hourly run.
    lookback_hours: int = 72
    # A catch-up after an outage applies the oldest files first, at most this many per run.
    max_files_per_run: int = 20000
    max_hours_per_run: int = 72
    # Tables applied at once by one run (0: as many as the Spark application has task slots).
    table_concurrency: int = 0
    # A table's run whose table (and history) plus batch are at most this many MB has Spark
    # interpret its expressions instead of compiling them: on small data compiling costs more
    # than it saves (a 1M-row, 40 MB table: 6.9 -> 4.9 s per hourly run); on large tables
    # compiled scans win (0: always compile).
    interpreted_max_mb: int = 64


# How a table's lake copy starts: from a DMS full load (the default), or from CDC alone (the
# table was empty when replication started, or its history before that is not wanted).
START_FROM = ("full_load", "cdc")


# The history table of ``<schema>.<table>`` is ``<schema>.<table>_history``.
HISTORY_SUFFIX = "_history"


@dataclass(frozen=True)
class HistoryConfig:
    """A table's history (SCD type 2) table: which source columns open a new version when
    they change (``track_columns``, or every column but ``except_columns``; default all),
    and its partition columns (``None``: the table's)."""

    track_columns: tuple[str, ...] = ()
    except_columns: tuple[str, ...] = ()
    partition_by: tuple[str, ...] | None = None

    def tracked(self, columns: Iterable[str], keys: Iterable[str]) -> list[str]:
        """Of the table's source ``columns``, those whose change opens a version (the key
        identifies the row, so it is never among them)."""
        skip = set(keys) | set(self.except_columns)
        if self.track_columns:
            return [c for c in columns if c in self.track_columns and c not in skip]
        return [c for c in columns if c not in skip]


@dataclass(frozen=True)
class TableConfig:
    """One replicated table: where it comes from and how it is keyed and partitioned."""

    schema: str
    name: str
    primary_key: tuple[str, ...]
    partition_by: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()
    start_from: str = "full_load"
    history: HistoryConfig | None = None  # None: no history table

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def history_name(self) -> str:
        return f"{self.name}{HISTORY_SUFFIX}"

    @property
    def history_partition_by(self) -> tuple[str, ...]:
        if self.history is None or self.history.partition_by is None:
            return self.partition_by
        return self.history.partition_by


@dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline config. Roots are absolute paths or URIs (``s3://...``)."""

    raw_root: str
    curated_root: str
    dms: DmsLayout
    tables: tuple[TableConfig, ...]
    glue_database: str = "cdc_lake"
    source_path: str | None = field(default=None, compare=False)
    maintenance: MaintenanceConfig = field(default_factory=MaintenanceConfig)
    merge: MergeConfig = field(default_factory=MergeConfig)

    def table(self, qualified_name: str) -> TableConfig:
        for t in self.tables:
            if t.qualified_name == qualified_name:
                return t
        known = ", ".join(t.qualified_name for t in self.tables)
        raise UnknownTableError(f"table '{qualified_name}' is not configured (known: {known})")

    def select_tables(self, names: Iterable[str] | None) -> tuple[TableConfig, ...]:
        """The configured tables, or only the named ones (in config order)."""
        if not names:
            return self.tables
        wanted = [n.strip() for n in names if n.strip()]
        for n in wanted:
            self.table(n)
        return tuple(t for t in self.tables if t.qualified_name in wanted)

    def raw_location(self, table: TableConfig) -> str:
        """Folder DMS writes the table's files to: ``<raw_root>/<schema>/<table>``."""
        return join_uri(self.raw_root, table.schema, table.name)

    def table_location(self, table: TableConfig) -> str:
        """The Delta table analysts query: ``<curated_root>/<schema>/<table>``."""
        return join_uri(self.curated_root, table.schema, table.name)

    def history_location(self, table: TableConfig) -> str:
        """The table's history (SCD type 2): ``<curated_root>/<schema>/<table>_history``."""
        return join_uri(self.curated_root, table.schema, table.history_name)

    def state_location(self, table: TableConfig, kind: str) -> str:
        """Bookkeeping Delta tables (ledger, tombstones, quarantine), kept beside the data."""
        return join_uri(self.curated_root, "_cdclake", table.schema, table.name, kind)

    @property
    def audit_location(self) -> str:
        return join_uri(self.curated_root, "_cdclake", "audit")


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate the pipeline config file. Raises a :class:`ConfigError` subclass.

    ``path`` is a local path or an ``s3://bucket/key`` URI (how the job is started on EMR
    Serverless); an S3 config's roots must be URIs, as there is no folder to resolve a
    relative root against.
    """
    if isinstance(path, str) and is_s3(path):
        text = _read_s3_text(path)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigSyntaxError(f"{path}: not valid YAML: {exc}") from exc
        return parse_config(data, source=path, relative_roots=False)
    p = Path(path)
    if not p.is_file():
        raise ConfigFileNotFoundError(f"pipeline config not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigSyntaxError(f"{p}: not valid YAML: {exc}") from exc
    return parse_config(data, base_dir=p.resolve().parent, source=str(p))


_S3_OBJECT_URI = re.compile(r"^s3a?://([^/]+)/(.*[^/])$", re.IGNORECASE)


def _read_s3_text(uri: str) -> str:
    """The text of an S3 object, fetched with boto3 (default credential chain and region;
    ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` are honoured by boto3 itself)."""
    m = _S3_OBJECT_URI.match(uri)
    if not m:
        raise ConfigFileNotFoundError(
            f"pipeline config URI '{uri}' does not name an object (use s3://bucket/key)"
        )
    bucket, key = m.groups()
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "NoSuchBucket", "404"):
            raise ConfigFileNotFoundError(f"pipeline config not found: {uri} ({code})") from exc
        hint = (
            " (without s3:ListBucket on the bucket a missing object also reads as AccessDenied)"
            if code == "AccessDenied"
            else ""
        )
        raise ConfigError(f"cannot read pipeline config {uri}: {code or exc}{hint}") from exc
    except BotoCoreError as exc:
        raise ConfigError(f"cannot read pipeline config {uri}: {exc}") from exc
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigSyntaxError(f"{uri}: not UTF-8 text: {exc}") from exc


def parse_config(
    data: Any,
    base_dir: Path | None = None,
    source: str = "<config>",
    *,
    relative_roots: bool = True,
) -> PipelineConfig:
    """Validate an already-parsed mapping (the YAML document).

    Relative roots are resolved against ``base_dir`` (default: the working directory), or
    rejected when ``relative_roots`` is false (a config read from S3).
    """
    if not isinstance(data, Mapping):
        raise ConfigSyntaxError(f"{source}: the top level must be a mapping of settings")
    r = _Reader(data, source)
    r.only(
        {
            "version",
            "raw_root",
            "curated_root",
            "glue_database",
            "dms",
            "tables",
            "maintenance",
            "merge",
        }
    )
    version = r.get("version", int, default=1)
    if version != 1:
        raise InvalidSettingError(f"{source}: version: unsupported config version {version}")
    base = (base_dir or Path.cwd()) if relative_roots else None
    raw_root = _resolve_root(r.get("raw_root", str), base, f"{source}: raw_root")
    curated_root = _resolve_root(r.get("curated_root", str), base, f"{source}: curated_root")
    if raw_root.rstrip("/") == curated_root.rstrip("/"):
        raise InvalidSettingError(f"{source}: raw_root and curated_root must differ")
    glue_database = r.get("glue_database", str, default="cdc_lake")
    dms = _parse_dms(r.sub("dms", required=False), f"{source}: dms")
    tables_raw = r.get("tables", list)
    if not tables_raw:
        raise InvalidSettingError(f"{source}: tables: configure at least one table")
    tables = tuple(_parse_table(t, f"{source}: tables[{i}]", dms) for i, t in enumerate(tables_raw))
    seen: set[str] = set()
    for t in tables:
        if t.qualified_name in seen:
            raise DuplicateTableError(f"{source}: tables: '{t.qualified_name}' is listed twice")
        seen.add(t.qualified_name)
    for t in tables:
        if t.history and f"{t.schema}.{t.history_name}" in seen:
            raise HistoryNameClashError(
                f"{source}: tables: the history of '{t.qualified_name}' would be "
                f"'{t.schema}.{t.history_name}', which is also a configured table"
            )
    return PipelineConfig(
        raw_root=raw_root,
        curated_root=curated_root,
        dms=dms,
        tables=tables,
        glue_database=glue_database,
        source_path=source,
        maintenance=_parse_maintenance(
            r.sub("maintenance", required=False), f"{source}: maintenance"
        ),
        merge=_parse_merge(r.sub("merge", required=False), f"{source}: merge"),
    )


def _resolve_root(value: str, base: Path | None, where: str = "root") -> str:
    if re.match(r"^[a-z][a-z0-9+.-]*://", value):
        if not re.match(r"^(s3|s3a|file)://", value):
            raise InvalidSettingError(
                f"unsupported storage scheme in '{value}' (use s3:// or a path)"
            )
        return value.rstrip("/")
    if base is None:
        if not Path(value).is_absolute():
            raise InvalidSettingError(
                f"{where}: '{value}' is a relative path, and a config read from S3 has no "
                "folder to resolve it against (use s3://bucket/prefix)"
            )
        return str(Path(value).resolve())
    return str((base / value).resolve())


def _parse_dms(data: Mapping[str, Any] | None, where: str) -> DmsLayout:
    if data is None:
        return DmsLayout()
    r = _Reader(data, where)
    r.only(
        {
            "date_partition_sequence",
            "date_partition_delimiter",
            "timestamp_column",
            "change_sequence_column",
            "op_column",
            "full_load_has_op",
        }
    )
    d = DmsLayout()
    seq = r.get("date_partition_sequence", str, default=d.date_partition_sequence)
    if seq not in SUPPORTED_SEQUENCES:
        raise InvalidSettingError(
            f"{where}.date_partition_sequence: '{seq}' is not supported; the job needs hourly "
            f"folders ({', '.join(SUPPORTED_SEQUENCES)})"
        )
    delim = r.get("date_partition_delimiter", str, default=d.date_partition_delimiter)
    if delim not in DELIMITERS:
        raise InvalidSettingError(
            f"{where}.date_partition_delimiter: '{delim}' is not one of {', '.join(DELIMITERS)}"
        )
    ts_col = _ident(r.get("timestamp_column", str, default=d.timestamp_column), where)
    seq_col = r.get("change_sequence_column", str, default=d.change_sequence_column, nullable=True)
    op_col = _ident(r.get("op_column", str, default=d.op_column), where)
    names = [ts_col, op_col] + ([_ident(seq_col, where)] if seq_col else [])
    if len(set(names)) != len(names):
        raise InvalidSettingError(f"{where}: op, timestamp and change sequence columns must differ")
    return DmsLayout(
        date_partition_sequence=seq,
        date_partition_delimiter=delim,
        timestamp_column=ts_col,
        change_sequence_column=seq_col,
        op_column=op_col,
        full_load_has_op=r.get("full_load_has_op", bool, default=d.full_load_has_op),
    )


def _parse_maintenance(data: Mapping[str, Any] | None, where: str) -> MaintenanceConfig:
    d = MaintenanceConfig()
    if data is None:
        return d
    r = _Reader(data, where)
    r.only(
        {
            "compact_recent_days",
            "vacuum_retain_hours",
            "tombstone_retention_days",
            "quarantine_retention_days",
        }
    )

    def positive(key: str, default: int) -> int:
        value = r.get(key, int, default=default)
        if value < 1:
            raise InvalidSettingError(f"{where}.{key}: must be at least 1, got {value}")
        return value

    m = MaintenanceConfig(
        compact_recent_days=positive("compact_recent_days", d.compact_recent_days),
        vacuum_retain_hours=positive("vacuum_retain_hours", d.vacuum_retain_hours),
        tombstone_retention_days=positive("tombstone_retention_days", d.tombstone_retention_days),
        quarantine_retention_days=positive(
            "quarantine_retention_days", d.quarantine_retention_days
        ),
    )
    if m.vacuum_retain_hours < MIN_VACUUM_RETAIN_HOURS:
        raise VacuumRetentionTooShortError(
            f"{where}.vacuum_retain_hours: {m.vacuum_retain_hours} is below Delta's safety "
            f"minimum of {MIN_VACUUM_RETAIN_HOURS} h; readers and time travel still need the "
            "files (the job never disables spark.databricks.delta.retentionDurationCheck)"
        )
    if m.tombstone_retention_days < MIN_TOMBSTONE_RETENTION_DAYS:
        raise TombstoneRetentionTooShortError(
            f"{where}.tombstone_retention_days: {m.tombstone_retention_days} is below the "
            f"minimum of {MIN_TOMBSTONE_RETENTION_DAYS} days; an expired tombstone lets a "
            "replayed older change bring a deleted row back, so keep tombstones longer than "
            "any backfill or late delivery"
        )
    return m


# merge: settings where 0 means "automatic" or "off".
ZERO_ALLOWED = ("table_concurrency", "interpreted_max_mb")


def _parse_merge(data: Mapping[str, Any] | None, where: str) -> MergeConfig:
    d = MergeConfig()
    if data is None:
        return d
    r = _Reader(data, where)
    r.only({f.name for f in fields(MergeConfig)})
    values = {}
    for f in fields(MergeConfig):
        value = r.get(f.name, int, default=getattr(d, f.name))
        least = 0 if f.name in ZERO_ALLOWED else 1
        if value < least:
            raise InvalidSettingError(f"{where}.{f.name}: must be at least {least}, got {value}")
        values[f.name] = value
    return MergeConfig(**values)


def _parse_table(data: Any, where: str, dms: DmsLayout) -> TableConfig:
    if not isinstance(data, Mapping):
        raise InvalidSettingError(f"{where}: each table must be a mapping")
    r = _Reader(data, where)
    r.only(
        {"schema", "name", "primary_key", "partition_by", "drop_columns", "start_from", "history"}
    )
    schema = _ident(r.get("schema", str), f"{where}.schema")
    name = _ident(r.get("name", str), f"{where}.name")
    where = f"{where} ({schema}.{name})"
    pk = _columns(r.get("primary_key", (list, str)), f"{where}.primary_key")
    if not pk:
        raise InvalidSettingError(f"{where}.primary_key: needs at least one column")
    parts = _columns(r.get("partition_by", (list, str), default=[]), f"{where}.partition_by")
    drops = _columns(r.get("drop_columns", (list, str), default=[]), f"{where}.drop_columns")
    for label, cols in (("primary_key", pk), ("partition_by", parts)):
        if clash := sorted(set(cols) & set(drops)):
            raise InvalidSettingError(
                f"{where}: {label} column(s) {clash} are also in drop_columns"
            )
        if clash := sorted(set(cols) & set(dms.dms_columns)):
            raise InvalidSettingError(f"{where}: {label} column(s) {clash} are DMS columns")
    start_from = r.get("start_from", str, default="full_load")
    if start_from not in START_FROM:
        raise InvalidSettingError(
            f"{where}.start_from: '{start_from}' is not one of {', '.join(START_FROM)}"
        )
    history = _parse_history(r, f"{where}.history", pk, drops, dms)
    return TableConfig(schema, name, pk, parts, drops, start_from, history)


def _parse_history(
    table: _Reader, where: str, keys: tuple[str, ...], drops: tuple[str, ...], dms: DmsLayout
) -> HistoryConfig | None:
    """``history: true`` (defaults), ``false`` / absent (none), or a mapping of settings."""
    value = table.get("history", (bool, dict), default=False)
    if value is False:
        return None
    if value is True:
        return HistoryConfig()
    r = _Reader(value, where)
    r.only({"track_columns", "except_columns", "partition_by"})
    track = _columns(r.get("track_columns", (list, str), default=[]), f"{where}.track_columns")
    skip = _columns(r.get("except_columns", (list, str), default=[]), f"{where}.except_columns")
    given = r.get("partition_by", (list, str), default=None, nullable=True)
    parts = None if given is None else _columns(given, f"{where}.partition_by")
    if track and skip:
        raise InvalidSettingError(f"{where}: set track_columns or except_columns, not both")
    if "track_columns" in value and not track:
        raise InvalidSettingError(f"{where}.track_columns: needs at least one column")
    for label, cols in (("track_columns", track), ("except_columns", skip)):
        if clash := sorted(set(cols) & set(keys)):
            raise InvalidSettingError(
                f"{where}.{label}: {clash} are primary key columns (the key identifies the "
                "row; it is never a tracked column)"
            )
    named: dict[str, tuple[str, ...]] = {
        "track_columns": track,
        "except_columns": skip,
        "partition_by": parts or (),
    }
    for label, cols in named.items():
        if clash := sorted(set(cols) & set(drops)):
            raise InvalidSettingError(f"{where}.{label}: {clash} are in drop_columns")
        if clash := sorted(set(cols) & (set(dms.dms_columns) | set(HISTORY_COLUMNS))):
            raise InvalidSettingError(f"{where}.{label}: {clash} are not source columns")
    return HistoryConfig(track, skip, parts)


def _columns(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value)
    cols = tuple(_ident(c, where) for c in items)
    if len(set(cols)) != len(cols):
        raise InvalidSettingError(f"{where}: a column is listed twice: {list(cols)}")
    for c in cols:
        if c.startswith(BOOKKEEPING_PREFIX):
            raise InvalidSettingError(
                f"{where}: '{c}' uses the reserved prefix {BOOKKEEPING_PREFIX}"
            )
    return cols


def _ident(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise InvalidSettingError(f"{where}: '{value}' is not a valid identifier")
    return value


class _Reader:
    """Typed access to one mapping of the YAML document, with the path in every message."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data, self.where = data, where

    def only(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            raise UnknownSettingError(
                f"{self.where}: unknown setting(s) {unknown}; allowed: {sorted(allowed)}"
            )

    _MISSING = object()

    def get(self, key: str, typ: Any, default: Any = _MISSING, nullable: bool = False) -> Any:
        if key not in self.data:
            if default is self._MISSING:
                raise MissingSettingError(f"{self.where}: required setting '{key}' is missing")
            return default
        value = self.data[key]
        if value is None and nullable:
            return None
        types = typ if isinstance(typ, tuple) else (typ,)
        # bool is an int in Python; do not accept `true` where a number is wanted.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join(t.__name__ for t in types)
            raise InvalidSettingError(
                f"{self.where}.{key}: expected {names}, got {type(value).__name__} ({value!r})"
            )
        return value

    def sub(self, key: str, required: bool = True) -> Mapping[str, Any] | None:
        if key not in self.data and not required:
            return None
        value = self.get(key, dict)
        return value
