"""The one Airflow pool every task that writes lake tables runs in (``merge``, ``maintain``), in
all three DAGs and in backfills: Delta tables on S3 want one writer at a time, and
``max_active_runs`` is per DAG (a backfill, the daily maintenance and a full load would
otherwise run beside the hourly merge).

One slot, and deferred tasks hold it (``include_deferred``): the EMR wait is deferrable, and a
deferred merge that gave its slot back would let the next writer start while its job runs.

The pool is created by the project, never by hand: locally with :func:`ensure_local_pool`
(after ``airflow db migrate``), on MWAA by ``make deploy`` through MWAA's InvokeRestApi
(:func:`pool_api_body`; see ``infra/deploy.py``). No Airflow import at module level: the
deployment reads the definition without Airflow.
"""

from __future__ import annotations

from typing import Any

WRITERS_POOL = "cdclake_table_writers"
WRITERS_POOL_SLOTS = 1
WRITERS_POOL_DESCRIPTION = (
    "cdclake: one task at a time writes lake tables (merge, maintain; every DAG and backfill)"
)
INCLUDE_DEFERRED = True
# Task ids of the table writers in the three DAGs (both targets).
WRITER_TASKS = ("merge", "maintain")


def pool_api_body() -> dict[str, Any]:
    """The pool as Airflow 3's REST API takes it (``POST /pools``; ``PATCH`` takes the same
    fields with ``pool`` for ``name``)."""
    return {
        "name": WRITERS_POOL,
        "slots": WRITERS_POOL_SLOTS,
        "description": WRITERS_POOL_DESCRIPTION,
        "include_deferred": INCLUDE_DEFERRED,
    }


def ensure_local_pool() -> None:
    """Create or update the pool in this Airflow's metadata database (idempotent)."""
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(
        name=WRITERS_POOL,
        slots=WRITERS_POOL_SLOTS,
        description=WRITERS_POOL_DESCRIPTION,
        include_deferred=INCLUDE_DEFERRED,
    )
