"""Work beside a run (cdclake.job.beside): on another thread, with a clone of the session."""

from __future__ import annotations

import logging
import threading

import pytest

from cdclake.job.beside import beside

KEY = "spark.cdclake.test.beside"


def test_the_work_runs_on_its_own_thread_with_a_clone_of_the_session(spark):
    seen: dict[str, object] = {}

    def work(side):
        seen["thread"] = threading.current_thread().name
        seen["setting"] = side.conf.get(KEY)
        side.conf.set(KEY, "side")  # its own from now on
        active = side._jvm.org.apache.spark.sql.SparkSession.getActiveSession().get()
        seen["active"] = active.equals(side._jsparkSession)
        seen["same"] = side._jsparkSession.equals(spark._jsparkSession)
        seen["rows"] = side.range(3).count()

    spark.conf.set(KEY, "run")
    try:
        with beside(spark, "beside-test", work):
            spark.conf.set(KEY, "run, later")  # not seen by the clone made before
        assert spark.conf.get(KEY) == "run, later"
    finally:
        spark.conf.unset(KEY)
    assert seen == {
        "thread": "beside-test",
        "setting": "run",
        "active": True,
        "same": False,
        "rows": 3,
    }


def test_its_error_is_raised_after_the_statements_and_theirs_comes_first(spark, caplog):
    done = []

    def fails(side):
        raise ValueError("side failed")

    with pytest.raises(ValueError, match="side failed"):
        with beside(spark, "beside-test", fails):
            done.append("statements")
    assert done == ["statements"]
    with caplog.at_level(logging.ERROR, logger="cdclake.job.beside"):
        with pytest.raises(KeyError, match="statements failed"):
            with beside(spark, "beside-test", fails):
                raise KeyError("statements failed")
    assert "beside-test failed as well: ValueError('side failed')" in caplog.text
