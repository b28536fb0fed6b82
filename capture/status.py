"""``status``: is the capture healthy? Its state exists and matches the source, its slot exists
and still holds the WAL it needs; and how far behind the server it is.

Read-only: it neither streams nor acknowledges anything, so it can run beside ``stream``
(the local target's ``check_source`` and an operator's cron both use it).
"""

from __future__ import annotations

import logging
from datetime import UTC
from typing import Any

from capture.errors import StateError
from capture.options import Options
from capture.pgoutput import lsn_text
from capture.source import check_server, check_slot, connect, server_now
from capture.state import load_state
from cdclake.core.config import PipelineConfig

log = logging.getLogger(__name__)

_SLOT = """
SELECT s.active, s.wal_status, s.confirmed_flush_lsn::text,
       pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint,
       s.safe_wal_size, d.datname = current_database()
FROM pg_replication_slots s LEFT JOIN pg_database d ON d.oid = s.datoid
WHERE s.slot_name = %s
"""


def status(cfg: PipelineConfig, opts: Options) -> dict[str, Any]:
    """The capture's health as a summary; raises :class:`NotInitializedError`,
    :class:`StateError` or :class:`SlotLostError` (each says what to do) when it is not
    healthy."""
    state = load_state(opts.state_dir)
    configured = sorted(t.qualified_name for t in cfg.tables)
    if configured != sorted(state.tables):
        raise StateError(
            f"the configured tables {configured} differ from those the capture was set up for "
            f"{sorted(state.tables)}: run 'python -m capture init --force' (a new full load)"
        )
    conn = connect(opts.dsn)
    try:
        check_server(conn)
        check_slot(conn, state.slot)
        with conn.cursor() as cur:
            cur.execute(_SLOT, (state.slot,))
            active, wal_status, confirmed, retained, safe, same_db = cur.fetchone()
        if not same_db:
            raise StateError(
                f"replication slot '{state.slot}' belongs to another database than "
                f"{state.database}: wrong --dsn"
            )
        now = server_now(conn)
    finally:
        conn.close()
    summary = {
        "command": "status",
        "slot": state.slot,
        "publication": state.publication,
        "wal_status": wal_status,
        "active": bool(active),
        "position": lsn_text(state.lsn),
        "confirmed_flush_lsn": confirmed,
        "retained_wal_bytes": retained,
        # Bytes of WAL the server may still write before it invalidates the slot
        # (max_slot_wal_keep_size); None when unlimited.
        "safe_wal_bytes": safe,
        "server_time": now.astimezone(UTC).isoformat(),  # the source's clock
        "load_timestamp": state.load_started_at,
    }
    log.info(
        "capture %s healthy: slot %s (%s), position %s, %d byte(s) of WAL retained",
        state.database,
        state.slot,
        wal_status,
        summary["position"],
        retained or 0,
    )
    return summary
