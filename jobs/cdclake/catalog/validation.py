"""Validation queries per table and engine. Each returns rows only when its check fails, so a
scheduler (AthenaOperator + a row check) or the local runner treats "empty" as "pass".

Checks:

- ``key_uniqueness``: no primary key appears twice among the live rows;
- ``row_count_vs_audit``: the live row count equals what the job's audit records say it
  wrote (rows inserted minus rows deleted by succeeded runs since the newest succeeded full
  load). Athena and Spark only: Spectrum cannot read the audit table (it has no manifest);
- ``freshness``: the newest change applied to the table is at most ``max_age_hours`` older
  than ``as_of`` (default: the engine's clock; the DAGs pass the run's own time, see
  ``cdclake_dags.plan.check_time``; an offset is turned into UTC). Athena/Spark read it from
  the audit (deletes count too); Redshift from the newest ``_cdc_commit_ts`` among live rows.

Table names: Athena and Spark read ``<glue_database>.<schema>_<table>`` (the local catalog
registers the same names), Redshift the ``..._spectrum`` table in the external schema named
like the Glue database.

Example::

    for name, sql in validation_queries(cfg, cfg.tables[0], "athena").items():
        ...  # run it; any row means the check failed
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from cdclake.catalog.ddl import (
    AUDIT_TABLE,
    athena_table_name,
    history_spectrum_name,
    history_table_name,
    spectrum_table_name,
)
from cdclake.core.columns import COMMIT_TS, IS_CURRENT, ORDER_COLUMNS, VALID_FROM, VALID_TO
from cdclake.core.config import PipelineConfig, TableConfig

ENGINES = ("athena", "redshift", "spark")
DEFAULT_MAX_AGE_HOURS = 3
_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_TEMPLATE = re.compile(r"^\{\{[^'\\;]*\}\}$")  # an Airflow template, rendered before it runs


class ValidationError(ValueError):
    """Arguments a validation query cannot be built from."""


def _quote(engine: str, ident: str) -> str:
    return f"`{ident}`" if engine == "spark" else f'"{ident}"'


def _in_utc(text: str) -> str:
    """An ISO time with an offset as the same instant in UTC (``+00:00``); others unchanged.

    Engines disagree on an offset inside ``cast(... as timestamp)``: Spark converts the instant
    to its session's time zone, DuckDB (the local target's engine) drops the offset. In UTC,
    with the sessions in UTC, every engine reads the same instant.
    """
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:  # a template, or a form this Python does not parse: left as given
        return text
    return text if parsed.tzinfo is None else parsed.astimezone(timezone.utc).isoformat()


def _as_of(engine: str, as_of: str | datetime | None) -> str:
    if as_of is None:
        return {"athena": "current_timestamp", "spark": "current_timestamp()"}.get(
            engine, "getdate()"
        )
    text = as_of.isoformat() if isinstance(as_of, datetime) else str(as_of)
    if not (_ISO.match(text) or _TEMPLATE.match(text)):
        raise ValidationError(f"as_of '{text}' is not an ISO timestamp or an Airflow template")
    text = _in_utc(text) if _ISO.match(text) else text
    if engine == "athena":
        return f"from_iso8601_timestamp('{text}')"
    if engine == "spark":
        return f"cast('{text}' as timestamp)"
    return f"cast('{text}' as timestamptz)"


def _interval(engine: str, hours: int) -> str:
    if engine == "athena":
        return f"interval '{hours}' hour"
    if engine == "spark":
        return f"interval {hours} hours"
    return f"interval '{hours} hours'"


def validation_queries(
    cfg: PipelineConfig,
    table: TableConfig,
    engine: str,
    *,
    as_of: str | datetime | None = None,
    max_age_hours: int = DEFAULT_MAX_AGE_HOURS,
) -> dict[str, str]:
    """The checks for ``table`` on ``engine`` (``athena`` | ``redshift`` | ``spark``), by name.

    ``as_of``: the reference time of the freshness check (a datetime, an ISO string, or an
    Airflow template such as ``{{ data_interval_end }}``); default: the engine's clock.
    """
    if engine not in ENGINES:
        raise ValidationError(f"unknown engine '{engine}' (use one of {', '.join(ENGINES)})")
    if max_age_hours < 1:
        raise ValidationError(f"max_age_hours must be at least 1, got {max_age_hours}")
    db = cfg.glue_database
    live = (
        f"{db}.{spectrum_table_name(table) if engine == 'redshift' else athena_table_name(table)}"
    )
    audit = f"{db}.{AUDIT_TABLE}"
    name = f"'{table.qualified_name}'"
    tbl = _quote(engine, "table")
    keys = ", ".join(c.lower() for c in table.primary_key)
    key_lines = "".join(f"    {c.lower()},\n" for c in table.primary_key)
    cutoff = f"{_as_of(engine, as_of)} - {_interval(engine, max_age_hours)}"
    queries = {
        "key_uniqueness": (
            f"select\n{key_lines}    count(*) as copies\nfrom {live}\n"
            f"group by {keys}\nhaving count(*) > 1\n"  # nosec B608 - config identifiers
        )
    }
    if table.history:
        redshift = engine == "redshift"
        history = f"{db}.{history_spectrum_name(table) if redshift else history_table_name(table)}"
        queries.update(history_queries(table.primary_key, history, live))
    if engine == "redshift":
        queries["freshness"] = (
            # Identifiers from the validated config; as_of is checked against a pattern.
            f"select\n    {name} as checked_table,\n    max({COMMIT_TS}) as newest_change\n"  # nosec B608
            f"from {live}\nhaving max({COMMIT_TS}) is null or max({COMMIT_TS}) < {cutoff}\n"
        )
        return queries
    # Identifiers come from the validated config (no free text): S608 does not apply.
    queries["row_count_vs_audit"] = f"""with last_full_load as (
    select max(runs.started_at) as started_at
    from {audit} as runs
    where runs.{tbl} = {name} and runs.mode = 'full' and runs.status = 'succeeded'
),

expected as (
    select coalesce(sum(runs.rows_inserted - runs.rows_deleted), 0) as n_rows
    from {audit} as runs
    cross join last_full_load
    where
        runs.{tbl} = {name}
        and runs.status = 'succeeded'
        and runs.started_at >= last_full_load.started_at
),

actual as (
    select count(*) as n_rows
    from {live}
)

select
    {name} as checked_table,
    actual.n_rows as actual_rows,
    expected.n_rows as expected_rows
from actual
cross join expected
where actual.n_rows != expected.n_rows
"""  # noqa: S608  # nosec B608
    queries["freshness"] = (
        f"select\n    {name} as checked_table,\n    max(runs.newest_change_ts) as newest_change\n"  # nosec B608
        f"from {audit} as runs\nwhere runs.{tbl} = {name} and runs.status = 'succeeded'\n"
        f"having max(runs.newest_change_ts) is null or max(runs.newest_change_ts) < {cutoff}\n"
    )  # nosec B608 - identifiers from the validated config, as_of checked by pattern
    return queries


def history_queries(keys: Any, history: str, live: str) -> dict[str, str]:
    """The history table's checks (the same SQL on every engine)."""
    keys = [k.lower() for k in keys]
    key_list = ", ".join(keys)
    key_lines = "".join(f"        {k},\n" for k in keys)
    order = [c.lower() for c in ORDER_COLUMNS]
    differs = "".join(f"\n    or hist.{c} != live.{c}" for c in order)
    on = " and ".join(f"hist.{k} = live.{k}" for k in keys)
    picked = "".join(f"        {c},\n" for c in [*keys, *order]).rstrip(",\n")
    either = ",\n".join(f"    coalesce(hist.{k}, live.{k}) as {k}" for k in keys)
    # Identifiers from the validated config; no free text.
    overlap = f"""with versions as (
    select
{key_lines}        {VALID_FROM},
        {VALID_TO},
        lead({VALID_FROM}) over (partition by {key_list} order by {VALID_FROM}) as next_valid_from
    from {history}
)

select
{key_lines.replace("        ", "    ")}    {VALID_FROM},
    {VALID_TO},
    next_valid_from
from versions
where
    {VALID_TO} <= {VALID_FROM}
    or (next_valid_from is not null and ({VALID_TO} is null or {VALID_TO} > next_valid_from))
"""  # noqa: S608  # nosec B608
    current = f"""select
{key_lines.replace("        ", "    ")}    count(*) as open_versions
from {history}
where {IS_CURRENT} or {VALID_TO} is null
group by {key_list}
having count(*) > 1 or min(case when {IS_CURRENT} and {VALID_TO} is null then 1 else 0 end) = 0
"""  # noqa: S608  # nosec B608
    versus = f"""with current_versions as (
    select
{picked}
    from {history}
    where {IS_CURRENT}
),

live_rows as (
    select
{picked}
    from {live}
)

select
    hist.{COMMIT_TS} as history_change_ts,
    live.{COMMIT_TS} as live_change_ts,
{either}
from current_versions as hist
full outer join live_rows as live on {on}
where
    hist.{keys[0]} is null
    or live.{keys[0]} is null{differs}
"""  # noqa: S608  # nosec B608
    return {
        "history_no_overlap": overlap,
        "history_one_current": current,
        "history_current_vs_live": versus,
    }


def all_validation_queries(
    cfg: PipelineConfig, engine: str, table_names: Any = None, **kwargs: Any
) -> dict[str, str]:
    """``{"<schema>.<table>:<check>": sql}`` for the selected tables."""
    return {
        f"{t.qualified_name}:{check}": sql
        for t in cfg.select_tables(table_names)
        for check, sql in validation_queries(cfg, t, engine, **kwargs).items()
    }
