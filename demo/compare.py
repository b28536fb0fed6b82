"""The demo's final check: every lake table, read the way analysts read it (Spark SQL over the
tables registered in the local catalog under their Athena names), against the source's rows:
the same live columns with the expected types, and the same rows, key by key.

The expected side is the source: ``SELECT *`` from PostgreSQL, or the synthetic generator's
exact final state. A table that keeps a history is also checked version by version against the
source's timeline (:func:`compare_history`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cdclake.catalog.ddl import athena_table_name, history_table_name
from cdclake.core.config import PipelineConfig, TableConfig
from demo.scenario import HardCase

log = logging.getLogger(__name__)

Columns = list[tuple[str, str]]  # (name, Spark type as the Delta log writes it)


@dataclass
class TableCheck:
    table: str
    expected_rows: int
    actual_rows: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Expected:
    """What a table must hold: live columns and types, and rows as dicts by column name."""

    columns: Columns
    rows: list[dict[str, Any]]


def normalise(value: Any) -> Any:
    """Compare-ready value: aware UTC datetimes (PySpark hands back naive local ones)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value  # Decimal('1.50') == Decimal('1.5'); the column type pins the scale


def lake_tables(spark: Any, cfg: PipelineConfig) -> dict[str, Any]:
    """Register every table in the session's catalog and return each one's live columns as
    analysts query them: ``select * from <glue_database>.<schema>_<table>``."""
    from cdclake.catalog.register import register_tables

    register_tables(cfg, target="local", spark=spark)
    out = {}
    for t in cfg.tables:
        name = f"`{cfg.glue_database}`.`{athena_table_name(t)}`"  # validated config names
        df = spark.sql(f"select * from {name}")  # noqa: S608
        out[t.qualified_name] = df.select(*[c for c in df.columns if not c.startswith("_")])
    return out


def compare_table(
    df: Any, cfg: PipelineConfig, name: str, expected: Expected, cases: Sequence[HardCase] = ()
) -> TableCheck:
    """The lake table ``df`` (live columns) against ``expected``; problems name the keys (and
    the hard cases they belong to) that are missing, extra or different."""
    keys = cfg.table(name).primary_key
    problems: list[str] = []
    actual_cols = [(f.name, f.dataType.jsonValue()) for f in df.schema.fields]
    if actual_cols != expected.columns:
        problems.append(f"columns differ: expected {expected.columns}, lake has {actual_cols}")
    names = [n for n, _ in expected.columns if n in df.columns]
    actual = [{c: normalise(v) for c, v in r.asDict().items()} for r in df.select(*names).collect()]

    def by_key(rows: list[dict[str, Any]], side: str) -> dict[tuple, dict[str, Any]]:
        out: dict[tuple, dict[str, Any]] = {}
        for row in rows:
            k = tuple(row[c] for c in keys)
            if k in out:
                problems.append(f"{side} has key {k} twice")
            out[k] = row
        return out

    exp = by_key([{c: normalise(r.get(c)) for c in names} for r in expected.rows], "source")
    act = by_key(actual, "lake")
    missing = sorted(set(exp) - set(act))
    extra = sorted(set(act) - set(exp))
    differ = sorted(k for k in set(exp) & set(act) if exp[k] != act[k])
    labels = _cases_by_key(cases, name)
    for what, ks in (("missing from the lake", missing), ("not in the source", extra)):
        if ks:
            problems.append(f"{len(ks)} row(s) {what}: " + _describe_keys(ks, labels))
    if differ:
        problems.append(f"{len(differ)} row(s) differ: " + _describe_keys(differ, labels))
        for k in differ[:10]:
            diffs = {c: (exp[k][c], act[k][c]) for c in names if exp[k][c] != act[k][c]}
            problems.append(f"  key {k}: source vs lake {diffs}")
    for k in missing[:5]:
        problems.append(f"  missing {k}: source has {exp[k]}")
    for k in extra[:5]:
        problems.append(f"  extra {k}: lake has {act[k]}")
    return TableCheck(name, len(expected.rows), len(actual), problems)


def compare_all(
    cfg: PipelineConfig, expected: dict[str, Expected], cases: Sequence[HardCase] = ()
) -> list[TableCheck]:
    """Every configured table through the SQL path against ``expected`` (by qualified name)."""
    from cdclake.session import INTERPRETED_CONF, build_session

    log.info("comparing the lake (Spark SQL over the local catalog) with the source")
    spark = build_session("local", app_name="cdclake-demo-check", extra=INTERPRETED_CONF)
    try:
        tables = lake_tables(spark, cfg)
    except Exception as exc:  # noqa: BLE001 - no readable lake is a FAIL, not a crash
        log.exception("could not register the lake tables")
        return [TableCheck(t.qualified_name, 0, 0, [f"{exc}"]) for t in cfg.tables]
    checks = []
    for t in cfg.tables:
        name = t.qualified_name
        try:
            checks.append(compare_table(tables[name], cfg, name, expected[name], cases))
        except Exception as exc:  # noqa: BLE001 - an unreadable table is a FAIL, not a crash
            log.exception("%s: could not compare", name)
            checks.append(TableCheck(name, 0, 0, [f"{type(exc).__name__}: {exc}"]))
    for t in cfg.tables:
        if t.history:
            label = f"{t.schema}.{t.history_name}"
            try:
                checks.append(compare_history(spark, cfg, t, expected[t.qualified_name]))
            except Exception as exc:  # noqa: BLE001 - an unreadable history is a FAIL
                log.exception("%s: could not compare", label)
                checks.append(TableCheck(label, 0, 0, [f"{type(exc).__name__}: {exc}"]))
    return checks


def compare_history(spark: Any, cfg: PipelineConfig, table: TableConfig, source: Expected):
    """The history table, read as analysts read it, against the source's timeline (every
    change the source committed, replayed in commit order: :mod:`demo.timeline`), whose
    current versions must in turn be the source's rows."""
    from demo.timeline import versions

    label = f"{table.schema}.{table.history_name}"
    keys = table.primary_key
    timeline = versions(cfg, table)
    names = [n for n, _ in source.columns]
    fields = [*names, "_valid_from", "_valid_to", "_is_current"]
    name = f"`{cfg.glue_database}`.`{history_table_name(table)}`"  # validated config names
    lake = [
        {c: normalise(v) for c, v in r.asDict().items()}
        for r in spark.sql(f"select * from {name}").select(*fields).collect()  # noqa: S608
    ]
    problems: list[str] = []
    exp = {(*(v[k] for k in keys), v["_valid_from"]): v for v in timeline}
    act = {(*(v[k] for k in keys), v["_valid_from"]): v for v in lake}
    if len(act) != len(lake):
        problems.append("the history has a key with two versions from the same time")
    missing, extra = sorted(set(exp) - set(act)), sorted(set(act) - set(exp))
    differ = sorted(
        k for k in set(exp) & set(act) if any(exp[k].get(c) != act[k][c] for c in fields)
    )
    for what, ks in (("missing from the history", missing), ("not in the timeline", extra)):
        if ks:
            problems.append(f"{len(ks)} version(s) {what}, first: {ks[:5]}")
    for k in differ[:10]:
        diffs = {c: (exp[k].get(c), act[k][c]) for c in fields if exp[k].get(c) != act[k][c]}
        problems.append(f"  version {k}: timeline vs history {diffs}")
    if differ:
        problems.insert(0, f"{len(differ)} version(s) differ")
    # The timeline is the capture's record of the source: it must end at the source's rows.
    current = {
        tuple(v[k] for k in keys): {c: v.get(c) for c in names}
        for v in timeline
        if v["_is_current"]
    }
    rows = {
        tuple(normalise(r.get(k)) for k in keys): {c: normalise(r.get(c)) for c in names}
        for r in source.rows
    }
    if current != rows:
        problems.append(
            f"the timeline's current versions are not the source's rows "
            f"({len(set(current) ^ set(rows))} key(s) differ)"
        )
    return TableCheck(label, len(timeline), len(lake), problems)


def _cases_by_key(cases: Sequence[HardCase], name: str) -> dict[tuple, list[str]]:
    out: dict[tuple, list[str]] = {}
    for case in cases:
        if case.table == name:
            for k in case.keys:
                out.setdefault(tuple(k), []).append(case.name)
    return out


def _describe_keys(keys: Sequence[tuple], cases: dict[tuple, list[str]], limit: int = 20) -> str:
    parts = []
    for k in keys[:limit]:
        label = "/".join(cases.get(k, [])) or "background"
        parts.append(f"{k} [{label}]")
    more = f" ... (+{len(keys) - limit})" if len(keys) > limit else ""
    return ", ".join(parts) + more
