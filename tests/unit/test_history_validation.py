"""The history tables' validation queries: which engines get which, on which tables."""

from __future__ import annotations

import pytest

from cdclake.catalog.validation import validation_queries
from cdclake.core.config import parse_config

CHECKS = {"history_no_overlap", "history_one_current", "history_current_vs_live"}


@pytest.fixture
def cfg(tmp_path):
    tables = [
        {"schema": "s", "name": "sales", "primary_key": ["trip_id", "seat_no"], "history": True},
        {"schema": "s", "name": "plain", "primary_key": ["id"]},
    ]
    doc = {"raw_root": "raw", "curated_root": "cur", "glue_database": "db", "tables": tables}
    return parse_config(doc, base_dir=tmp_path)


@pytest.mark.parametrize("engine", ["athena", "redshift", "spark"])
def test_every_engine_checks_a_history(cfg, engine):
    sales, plain = cfg.tables
    assert CHECKS <= set(validation_queries(cfg, sales, engine))
    assert not CHECKS & set(validation_queries(cfg, plain, engine))


def test_engines_read_their_own_history_tables(cfg):
    athena = validation_queries(cfg, cfg.tables[0], "athena")
    redshift = validation_queries(cfg, cfg.tables[0], "redshift")
    assert "from db.s_sales_history\n" in athena["history_one_current"]
    assert "from db.s_sales_history_spectrum\n" in redshift["history_one_current"]
    assert "from db.s_sales_spectrum\n" in redshift["history_current_vs_live"]
    assert "partition by trip_id, seat_no order by _valid_from" in athena["history_no_overlap"]
    assert (
        "on hist.trip_id = live.trip_id and hist.seat_no = live.seat_no"
        in (athena["history_current_vs_live"])
    )
