"""``stream``: read the slot from the saved position and write CDC files, flushing every
``flush_seconds`` or ``flush_rows``.

A flush, in crash order: (1) write and fsync one file per table and commit hour (named by
the database clock), (2) save the end LSN of the last complete transaction in the state file
(atomic rename), (3) confirm that LSN to the server (``send_feedback(flush_lsn=...)``), which
lets it recycle WAL. A crash before (2) redelivers those transactions after the restart as
identical rows in new files, as a DMS task restart does; the job collapses them.

Memory is bounded by ``flush_rows``: protocol 1 sends a transaction whole at commit, but its
commit time and LSN arrive first (Begin), so every row is final when it arrives and a big
transaction is simply written in several flushes. Its position is saved only once it is
complete, so a crash inside it redelivers it whole (identical rows again).

Positions are confirmed only for complete transactions, never for a keepalive that arrives
while one is open (psycopg2 forwards the confirmed position to a keepalive's only once
everything received has been confirmed).

``--until-idle`` emits a logical decoding message (a marker) when the stream starts and stops
once it comes back: every transaction committed before the start has then been received.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import time
import uuid
from dataclasses import dataclass
from types import FrameType
from typing import Any

from psycopg2 import errors as pg_errors

from capture.changes import ChangeBuffer
from capture.errors import SlotLostError, StateError
from capture.files import RawWriter, build_table
from capture.options import Options
from capture.pgoutput import (
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Relation,
    Truncate,
    Update,
    decode,
    lsn_text,
)
from capture.source import (
    TypeResolver,
    check_capturable,
    check_server,
    check_slot,
    connect,
    describe_table,
    server_now,
    until_slot_free,
)
from capture.state import CaptureState, load_state, save_state
from cdclake.core.config import PipelineConfig

log = logging.getLogger(__name__)
MARKER_PREFIX = "cdclake-capture"
# Test hook: die right after a flush's files are written, before the position is saved.
CRASH_AFTER_WRITE_ENV = "CDCLAKE_CAPTURE_CRASH_AFTER_WRITE"
_POLL_SECONDS = 0.5


@dataclass
class FlushStats:
    flushes: int = 0
    files: int = 0
    rows: int = 0
    unrepresentable: int = 0


def stream(cfg: PipelineConfig, opts: Options, *, until_idle: bool = False) -> dict[str, Any]:
    """Stream changes into CDC files until stopped (SIGTERM/SIGINT) or, with ``until_idle``,
    until everything committed before the start is written. Returns a summary."""
    state = load_state(opts.state_dir)
    _check_tables_match(cfg, state)
    sql_conn = connect(opts.dsn)
    try:
        check_server(sql_conn)
        check_slot(sql_conn, state.slot)
        resolver = TypeResolver(sql_conn)
        for table in cfg.tables:
            check_capturable(describe_table(sql_conn, table, resolver), cfg.dms)
        repl = connect(opts.dsn, replication=True)
        try:
            streamer = Streamer(cfg, opts, state, sql_conn, repl, resolver)
            return streamer.run(until_idle)
        finally:
            repl.close()
    finally:
        sql_conn.close()


def _check_tables_match(cfg: PipelineConfig, state: CaptureState) -> None:
    configured = tuple(t.qualified_name for t in cfg.tables)
    if set(configured) != set(state.tables):
        raise StateError(
            f"the configured tables {list(configured)} differ from those the capture was set up "
            f"for {list(state.tables)}: run 'python -m capture init --force' (a new full load)"
        )


class Streamer:
    """One streaming session: the replication cursor, the change buffer and the flushes."""

    def __init__(
        self,
        cfg: PipelineConfig,
        opts: Options,
        state: CaptureState,
        sql_conn: Any,
        repl: Any,
        resolver: TypeResolver,
    ) -> None:
        self.cfg, self.opts, self.state = cfg, opts, state
        self.sql, self.repl = sql_conn, repl
        self.writer = RawWriter(cfg)
        tables = {t.qualified_name: t for t in cfg.tables}
        self.changes = ChangeBuffer(tables, resolver.resolve, state.lsn)
        self.flushed = FlushStats()
        self.marker: str | None = None
        self.caught_up = False
        self.stopping = False
        self._last_flush = time.monotonic()
        self._messages = 0

    def run(self, until_idle: bool) -> dict[str, Any]:
        started = time.monotonic()
        cur = self.repl.cursor()
        self._start(cur, until_idle)
        previous = _install_stop_handlers(self)
        try:
            self._loop(cur, until_idle)
            self.flush(cur)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.summary(started, until_idle)

    def _start_replication(self, cur: Any, options: dict[str, str]) -> None:
        """Start streaming the slot; while another connection holds it (the previous run's,
        whose server process exits a moment after its client closed), try again for a while,
        then let the error say who holds it."""

        def attempt() -> Exception | None:
            try:
                cur.start_replication(
                    slot_name=self.state.slot,
                    decode=False,
                    start_lsn=self.state.lsn,
                    options=options,
                )
            except pg_errors.ObjectInUse as exc:
                return exc
            return None

        error = until_slot_free(attempt, lambda e: e is not None)
        if error is not None:
            raise error

    def _start(self, cur: Any, until_idle: bool) -> None:
        cur.execute("IDENTIFY_SYSTEM")
        system_id, _, _, dbname = cur.fetchone()
        if (str(system_id), dbname) != (self.state.system_identifier, self.state.database):
            raise StateError(
                f"the capture state belongs to database {self.state.database} of cluster "
                f"{self.state.system_identifier}, not {dbname} of {system_id}: wrong --dsn or "
                "--state-dir"
            )
        options = {"proto_version": "1", "publication_names": self.state.publication}
        if until_idle:
            options["messages"] = "true"
        try:
            self._start_replication(cur, options)
        except pg_errors.ObjectNotInPrerequisiteState as exc:
            raise _slot_lost(self.state.slot, exc) from exc
        except pg_errors.UndefinedObject as exc:
            raise _slot_lost(self.state.slot, exc) from exc
        # Confirm the saved position at once: psycopg2 then forwards it to keepalive positions
        # while idle (even if everything replayed was skipped), so the slot does not pin WAL.
        cur.send_feedback(write_lsn=self.state.lsn, flush_lsn=self.state.lsn, force=True)
        log.info("streaming slot %s from %s", self.state.slot, lsn_text(self.state.lsn))
        if until_idle:
            self.marker = uuid.uuid4().hex
            with self.sql.cursor() as c:
                c.execute(
                    "SELECT pg_logical_emit_message(false, %s, %s)", (MARKER_PREFIX, self.marker)
                )

    def _loop(self, cur: Any, until_idle: bool) -> None:
        while not self.stopping and not (until_idle and self.caught_up):
            try:
                msg = cur.read_message()
            except pg_errors.ObjectNotInPrerequisiteState as exc:
                raise _slot_lost(self.state.slot, exc) from exc
            if msg is not None:
                self._messages += 1
                self.handle(decode(msg.payload))
                if self.changes.buffered >= self.opts.flush_rows:
                    self.flush(cur)
                elif self._messages % 1000 == 0 and self._flush_due():
                    self.flush(cur)
                continue
            if self._flush_due():
                self.flush(cur)
            timeout = max(0.0, min(_POLL_SECONDS, self._seconds_to_flush()))
            select.select([cur], [], [], timeout)

    def handle(self, msg: object) -> None:
        """Route one decoded message to the change buffer."""
        ch = self.changes
        match msg:
            case Begin():
                ch.begin(msg)
            case Commit():
                ch.commit(msg)
            case Insert():
                ch.insert(msg)
            case Update():
                ch.update(msg)
            case Delete():
                ch.delete(msg)
            case Relation():
                ch.relation(msg)
            case Truncate():
                ch.truncate(msg.relids)
            case LogicalMessage(transactional=False, prefix=prefix, content=content, lsn=lsn):
                if prefix == MARKER_PREFIX and self.marker and content == self.marker.encode():
                    ch.advance(lsn)
                    self.caught_up = True

    def _flush_due(self) -> bool:
        return self._seconds_to_flush() <= 0

    def _seconds_to_flush(self) -> float:
        return self._last_flush + self.opts.flush_seconds - time.monotonic()

    def flush(self, cur: Any) -> None:
        """Write the buffered rows, then save and confirm the position (in that order)."""
        batches = self.changes.take()
        if batches:
            written_at = server_now(self.sql)
            for b in batches:
                ops, stamps, seqs, values = _split(b.rows)
                data, bad = build_table(self.cfg.dms, b.columns, (ops, stamps, seqs), values)
                path = self.writer.write_cdc(b.table, b.hour, written_at, data)
                log.debug("wrote %s (%d rows)", path, len(b.rows))
                self.flushed.files += 1
                self.flushed.rows += len(b.rows)
                self.flushed.unrepresentable += bad
            self.flushed.flushes += 1
            if os.environ.get(CRASH_AFTER_WRITE_ENV):
                os.kill(os.getpid(), signal.SIGKILL)
        lsn = self.changes.committed_lsn
        if lsn > self.state.lsn:
            self.state = self.state.advanced(lsn)
            save_state(self.opts.state_dir, self.state)
            cur.send_feedback(write_lsn=lsn, flush_lsn=lsn, force=True)
        self._last_flush = time.monotonic()

    def summary(self, started: float, until_idle: bool) -> dict[str, Any]:
        return {
            "command": "stream",
            "mode": "until-idle" if until_idle else "continuous",
            "position": lsn_text(self.state.lsn),
            **self.changes.stats.as_dict(),
            **vars(self.flushed),
            "seconds": round(time.monotonic() - started, 3),
        }


def _split(rows: list[Any]) -> tuple[list[str], list[str], list[str], list[Any]]:
    ops, stamps, seqs, values = (list(x) for x in zip(*rows, strict=True))
    return ops, stamps, seqs, values


def _slot_lost(slot: str, exc: Exception) -> SlotLostError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SlotLostError(
        f"replication slot '{slot}' can no longer be read ({detail}): changes were lost. "
        "Run a full load again: python -m capture init --force"
    )


def _install_stop_handlers(streamer: Streamer) -> dict[int, Any]:
    """SIGTERM/SIGINT finish the current flush and stop cleanly (main thread only)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: flushing and stopping", signum)
        streamer.stopping = True

    previous: dict[int, Any] = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, stop)
    except ValueError:  # not the main thread (e.g. a benchmark thread): no handlers
        pass
    return previous


def summary_line(summary: dict[str, Any]) -> str:
    return json.dumps(summary, sort_keys=True, default=str)
