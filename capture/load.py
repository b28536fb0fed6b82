"""``init``: publication, slot with an exported snapshot, full load under that snapshot, start
position. ``drop``: remove the slot and the publication.

Why this order: the publication exists before the slot, so every change after the slot's
consistent point is published; each table is copied in one REPEATABLE READ transaction that
imports the slot's snapshot, so the LOAD files hold exactly the rows committed before the
consistent point and the stream delivers exactly the changes after it (nothing missed,
nothing twice). The load's timestamp is the database clock read before the slot is created
(DMS's UseTaskStartTimeForFullLoadTimestamp): a change the stream delivers committed after
it, so load rows sort before every change.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import psycopg2.extensions
from psycopg2 import errors as pg_errors
from psycopg2 import sql

from capture.errors import AlreadyInitializedError, CaptureError
from capture.files import Columns, RawWriter, build_table
from capture.options import Options
from capture.pgoutput import lsn_text, parse_lsn
from capture.source import (
    TableInfo,
    TypeResolver,
    check_capturable,
    check_server,
    connect,
    describe_table,
    qualified,
    server_now,
    until_slot_free,
)
from capture.state import CaptureState, load_state, save_state, state_path
from cdclake.core.config import PipelineConfig
from cdclake.core.dms import dms_timestamp

log = logging.getLogger(__name__)
FETCH_ROWS = 5_000


@dataclass(frozen=True)
class LoadedTable:
    table: str
    rows: int
    files: int
    unrepresentable: int


def initialize(cfg: PipelineConfig, opts: Options, *, force: bool = False) -> dict[str, Any]:
    """Set up the capture and write the full load. Returns a summary.

    ``force`` first drops an existing capture (its slot and publication) and replaces the
    LOAD files: the way back after a lost slot.
    """
    started = time.monotonic()
    writer = RawWriter(cfg)
    if not force:
        _refuse_existing(cfg, opts, writer)
    sql_conn = connect(opts.dsn)
    try:
        check_server(sql_conn)
        resolver = TypeResolver(sql_conn)
        infos = [describe_table(sql_conn, t, resolver) for t in cfg.tables]
        for info in infos:
            check_capturable(info, cfg.dms)
        if force:
            for names in _existing_names(opts):
                drop_capture(sql_conn, names)
            state_path(opts.state_dir).unlink(missing_ok=True)
        _create_publication(sql_conn, opts.publication, infos)
        try:
            state, loaded = _slot_and_load(cfg, opts, sql_conn, infos, writer)
        except BaseException:
            drop_capture(sql_conn, (opts.slot, opts.publication))
            raise
    finally:
        sql_conn.close()
    save_state(opts.state_dir, state)
    summary = {
        "command": "init",
        "slot": state.slot,
        "start_lsn": lsn_text(state.lsn),
        "load_timestamp": state.load_started_at,
        "tables": {t.table: vars(t) for t in loaded},
        "rows": sum(t.rows for t in loaded),
        "seconds": round(time.monotonic() - started, 3),
    }
    return summary


def _existing_names(opts: Options) -> list[tuple[str, str]]:
    """(slot, publication) of the options and of a saved state, if it names others."""
    names = [(opts.slot, opts.publication)]
    try:
        state = load_state(opts.state_dir)
    except CaptureError:
        return names
    return list(dict.fromkeys([*names, (state.slot, state.publication)]))


def _refuse_existing(cfg: PipelineConfig, opts: Options, writer: RawWriter) -> None:
    """Without ``--force``, never replace a capture or a full load that is already there."""
    if state_path(opts.state_dir).exists():
        raise AlreadyInitializedError(
            f"a capture is already set up ({state_path(opts.state_dir)}); "
            "use --force to drop it and load again"
        )
    for table in cfg.tables:
        if writer.load_files(table):
            raise AlreadyInitializedError(
                f"{writer.table_dir(table)} already holds LOAD files; use --force to replace them"
            )


def _create_publication(conn: Any, name: str, infos: list[TableInfo]) -> None:
    tables = sql.SQL(", ").join(qualified(i.table) for i in infos)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(name), tables)
            )
    except pg_errors.DuplicateObject as exc:
        raise AlreadyInitializedError(
            f"publication '{name}' already exists; use --force to drop it and load again"
        ) from exc


def _slot_and_load(
    cfg: PipelineConfig, opts: Options, sql_conn: Any, infos: list[TableInfo], writer: RawWriter
) -> tuple[CaptureState, list[LoadedTable]]:
    repl = connect(opts.dsn, replication=True)
    try:
        with repl.cursor() as cur:
            cur.execute("IDENTIFY_SYSTEM")
            system_id, _, _, dbname = cur.fetchone()
            load_ts = dms_timestamp(server_now(sql_conn))
            try:
                cur.execute(f"CREATE_REPLICATION_SLOT {opts.slot} LOGICAL pgoutput EXPORT_SNAPSHOT")
            except pg_errors.DuplicateObject as exc:
                raise AlreadyInitializedError(
                    f"replication slot '{opts.slot}' already exists; use --force to drop it"
                ) from exc
            _, consistent_point, snapshot, _ = cur.fetchone()
            # The snapshot lives while this connection stays idle: copy now, then close it.
            loaded = _copy_tables(cfg, opts, snapshot, load_ts, infos, writer)
    finally:
        repl.close()
    state = CaptureState(
        slot=opts.slot,
        publication=opts.publication,
        system_identifier=str(system_id),
        database=dbname,
        tables=tuple(t.qualified_name for t in cfg.tables),
        lsn=parse_lsn(consistent_point),
        load_started_at=load_ts,
        initialized_at=dms_timestamp(server_now(sql_conn)),
    )
    log.info("slot %s created at %s; full load stamped %s", opts.slot, consistent_point, load_ts)
    return state, loaded


def _copy_tables(
    cfg: PipelineConfig,
    opts: Options,
    snapshot: str,
    load_ts: str,
    infos: list[TableInfo],
    writer: RawWriter,
) -> list[LoadedTable]:
    conn = connect(opts.dsn)
    _raw_text(conn)
    conn.autocommit = False
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
        out = [_copy_table(cfg, opts, conn, load_ts, info, writer) for info in infos]
        conn.commit()
        return out
    finally:
        conn.close()


def _raw_text(conn: Any) -> None:
    """Make the connection return every value as the server's text output (the type's output
    function, as pgoutput sends it), never a Python object. ``col::text`` is not the same:
    ``true::text`` is 'true' where the output is 't', ``inet::text`` adds the netmask."""
    with conn.cursor() as cur:
        cur.execute("SELECT oid FROM pg_type")
        oids = tuple(r[0] for r in cur.fetchall())
    raw = psycopg2.extensions.new_type(oids, "CDCLAKE_TEXT", lambda value, cur: value)
    psycopg2.extensions.register_type(raw, conn)


def _copy_table(
    cfg: PipelineConfig, opts: Options, conn: Any, load_ts: str, info: TableInfo, writer: RawWriter
) -> LoadedTable:
    """Copy one table into LOAD files of about ``load_file_bytes`` of text each."""
    for old in writer.load_files(info.table):  # a reload replaces the previous full load
        old.unlink()
    cols = info.captured
    out = _LoadFiles(
        cfg,
        writer,
        info,
        Columns(tuple(c.name for c in cols), tuple(c.type for c in cols)),
        load_ts,
    )
    select = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(c.name) for c in cols),
        qualified(info.table),
    )
    with conn.cursor(name=f"cdclake_load_{info.table.name}"[:63]) as cur:
        cur.itersize = FETCH_ROWS
        cur.execute(select)
        for row in cur:
            out.add(row)
            if out.size >= opts.load_file_bytes:
                out.write()
    out.write()
    log.info("%s: loaded %d row(s) into %d file(s)", info.table.qualified_name, out.rows, out.files)
    return LoadedTable(info.table.qualified_name, out.rows, out.files, out.unrepresentable)


class _LoadFiles:
    """Rows of one table's full load, cut into LOAD files by size."""

    def __init__(
        self, cfg: PipelineConfig, writer: RawWriter, info: TableInfo, columns: Columns, ts: str
    ) -> None:
        self.cfg, self.writer, self.info, self.columns, self.ts = cfg, writer, info, columns, ts
        self.chunk: list[tuple[str | None, ...]] = []
        self.size = self.rows = self.files = self.unrepresentable = 0

    def add(self, row: tuple[str | None, ...]) -> None:
        self.chunk.append(row)
        self.size += sum(len(v) for v in row if v is not None) + 8 * len(row)

    def write(self) -> None:
        n = len(self.chunk)
        if not n:
            return
        ops = ["I"] * n if self.cfg.dms.full_load_has_op else None
        data, bad = build_table(
            self.cfg.dms, self.columns, (ops, [self.ts] * n, [""] * n), self.chunk
        )
        self.files += 1
        self.writer.write_load(self.info.table, self.files, data)
        self.rows += n
        self.unrepresentable += bad
        self.chunk, self.size = [], 0


def drop_capture(conn: Any, names: tuple[str, str]) -> list[str]:
    """Drop the slot and the publication if they exist; returns what was dropped.

    A slot still in use after ``SLOT_RELEASE_WAIT`` seconds is refused: a capture is running.
    """
    slot, publication = names
    dropped = []
    with conn.cursor() as cur:

        def slot_row() -> tuple[Any, ...] | None:
            cur.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            return cur.fetchone()

        # A connection closed just before (a flush right before a reload) lets go a moment later.
        row = until_slot_free(slot_row, lambda r: r is not None and r[0] is not None)
        if row is not None:
            if row[0] is not None:
                raise CaptureError(
                    f"replication slot '{slot}' is in use by process {row[0]}: stop the "
                    "capture first"
                )
            cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            dropped.append(f"slot {slot}")
        cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
        if cur.fetchone():
            cur.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(publication)))
            dropped.append(f"publication {publication}")
    return dropped


def drop(opts: Options) -> dict[str, Any]:
    """``drop``: the slot and publication of the saved state (or of the options), and the
    state file. Raw files stay."""
    path = state_path(opts.state_dir)
    names = (opts.slot, opts.publication)
    if path.exists():
        state = load_state(opts.state_dir)
        names = (state.slot, state.publication)
    conn = connect(opts.dsn)
    try:
        dropped = drop_capture(conn, names)
    finally:
        conn.close()
    if path.exists():
        path.unlink()
    for what in dropped:
        log.info("dropped %s", what)
    return {"command": "drop", "dropped": dropped}
