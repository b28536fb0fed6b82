"""Register the lake's tables so query engines see exactly the current tables. Idempotent:
run it after every merge; a second run changes nothing.

``target="glue"`` (boto3 only, no Spark: runs on an Airflow worker). Per configured table, in
the configured Glue database (see :mod:`cdclake.catalog.ddl` for the names):

- Athena's native Delta table (``table_type=DELTA``) with the real columns and partition keys
  read from ``_delta_log`` (not Spark's placeholder ``col array<string>``);
- Redshift Spectrum's external table over ``_symlink_format_manifest/``, with one partition
  per manifest folder: new folders are added, vanished ones removed, and every partition's
  columns follow the table's (schema drift);

plus ``cdclake_audit`` (the job's audit, for Athena's validation queries) once it exists.

``target="local"``: the current Spark session's catalog gets ``<schema>.<table>`` (as the
source names it) and ``<glue_database>.<schema>_<table>`` (as Athena names it) over the same
Delta folders, so the same SQL runs locally and on Athena.

A failure names the table and the API error (:class:`CatalogError`); the other tables are
still registered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cdclake.catalog.ddl import AUDIT_LABEL, DdlError, check_names
from cdclake.catalog.deltalog import DeltaLogError
from cdclake.catalog.glue import GlueCallError, GlueRegistrar
from cdclake.core.config import PipelineConfig, TableConfig

log = logging.getLogger(__name__)

TARGETS = ("glue", "local")


class CatalogError(RuntimeError):
    """Registration failed. ``failures`` maps each failed table to its error; ``results``
    holds what the tables that succeeded did."""

    def __init__(
        self, message: str, failures: Mapping[str, str] | None = None, results: list | None = None
    ):
        super().__init__(message)
        self.failures = dict(failures or {})
        self.results = list(results or [])


def register_tables(
    cfg: PipelineConfig,
    table_names: Sequence[str] | None = None,
    *,
    target: str = "glue",
    **clients: Any,
) -> list[dict]:
    """Register ``table_names`` (default: all configured tables) and return one result per
    table. Clients: ``glue``/``s3`` (boto3; made from the default chain when absent) for
    ``glue``; ``spark`` (default: :func:`cdclake.session.build_session`) for ``local``.

    Raises :class:`CatalogError` after trying every table when any of them failed.
    """
    if target not in TARGETS:
        raise CatalogError(f"unknown catalog target '{target}' (use one of {', '.join(TARGETS)})")
    tables = cfg.select_tables(table_names)
    try:
        check_names(cfg)
    except DdlError as exc:
        raise CatalogError(str(exc)) from exc
    if target == "glue":
        register: Callable[[TableConfig | None], dict] = GlueRegistrar(cfg, clients).register
    else:
        from cdclake.catalog.local import LocalRegistrar

        register = LocalRegistrar(cfg, clients).register
    results, failures = [], {}
    for table in [*tables, None]:  # None: the audit table
        name = table.qualified_name if table else AUDIT_LABEL
        try:
            result = register(table)
        except (GlueCallError, DeltaLogError, DdlError) as exc:
            failures[name] = str(exc)
            log.error("%s: registration failed: %s", name, exc)
            continue
        if result:
            log.info("registered %s", result)
            results.append(result)
    if failures:
        detail = "; ".join(f"{n}: {e}" for n, e in failures.items())
        raise CatalogError(f"{len(failures)} table(s) failed: {detail}", failures, results)
    return results
