"""Work beside a table's run, on another thread of the same Spark application: a clone of
the run's session (its settings now, its own from then on) active on that thread.

Used for a table's history, written while the live table is decided and merged
(:func:`cdclake.job.history.alongside`), and for tables run side by side
(:mod:`cdclake.cli.merge`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


def clone(spark: Any) -> Any:
    """A session of the same application with ``spark``'s runtime settings as they are now
    and its own from then on (cache, catalog and jobs shared), for work on another thread
    that must neither see nor change the settings the first one sets meanwhile."""
    from pyspark.sql import SparkSession

    return SparkSession(spark.sparkContext, jsparkSession=spark._jsparkSession.cloneSession())


def activate(spark: Any) -> None:
    """Make ``spark`` the calling thread's active session: Delta's queries outside an action
    (snapshots, listings) run on the active one, with its settings."""
    spark._jvm.org.apache.spark.sql.SparkSession.setActiveSession(spark._jsparkSession)


@contextmanager
def beside(spark: Any, name: str, work: Callable[[Any], None]) -> Iterator[None]:
    """Run ``work`` on a thread of its own while the statements inside run, and wait for it
    however they end. ``work`` gets a :func:`clone` of ``spark`` (active on its thread), so
    neither side sees the runtime settings the other sets; the thread inherits the caller's
    job properties (scheduler pool). Its error is raised once the statements have ended
    without one of their own (with one, theirs is raised and this one logged)."""
    from pyspark import InheritableThread

    side = clone(spark)
    failed: list[BaseException] = []

    def run() -> None:
        activate(side)
        try:
            work(side)
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
            failed.append(exc)

    thread = InheritableThread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield
    except BaseException:
        thread.join()
        if failed:  # the statements' error is raised; this one is not lost
            log.error("%s failed as well: %r", name, failed[0], exc_info=failed[0])
        raise
    thread.join()
    if failed:
        raise failed[0]
