"""The capture's position and identity, in one small JSON file replaced atomically, and the
durable-write helpers both the state and the Parquet files use.

The position is the end LSN of the last transaction whose rows are all in fsynced files; a
restart skips transactions that ended at or before it. Saving it comes after the files and
before the acknowledgement to the server, so a crash anywhere loses nothing and at worst
delivers a range again, as identical rows in new files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from capture.errors import NotInitializedError, StateError
from capture.pgoutput import lsn_text, parse_lsn

STATE_FILE = "state.json"
VERSION = 1


@dataclass(frozen=True)
class CaptureState:
    """What ``init`` set up and where ``stream`` goes on from."""

    slot: str
    publication: str
    system_identifier: str  # the source cluster (IDENTIFY_SYSTEM)
    database: str
    tables: tuple[str, ...]  # qualified names, config order
    lsn: int  # restart after this position (end LSN of the last written transaction)
    load_started_at: str  # full-load timestamp (DMS timestamp format)
    initialized_at: str

    def advanced(self, lsn: int) -> CaptureState:
        return replace(self, lsn=lsn)


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def load_state(state_dir: Path) -> CaptureState:
    """The saved state, or :class:`NotInitializedError` when there is none."""
    path = state_path(state_dir)
    if not path.exists():
        raise NotInitializedError(
            f"no capture state in {state_dir}: run 'python -m capture init' first"
        )
    try:
        doc = json.loads(path.read_text())
        if doc.get("version") != VERSION:
            raise StateError(f"{path}: unsupported state version {doc.get('version')!r}")
        return CaptureState(
            slot=doc["slot"],
            publication=doc["publication"],
            system_identifier=doc["system_identifier"],
            database=doc["database"],
            tables=tuple(doc["tables"]),
            lsn=parse_lsn(doc["lsn"]),
            load_started_at=doc["load_started_at"],
            initialized_at=doc["initialized_at"],
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StateError(f"capture state {path} is unreadable: {exc}") from exc


def save_state(state_dir: Path, state: CaptureState) -> None:
    """Replace the state file atomically (temp file, fsync, rename, fsync folder)."""
    doc: dict[str, Any] = {"version": VERSION, **asdict(state)}
    doc["tables"] = list(state.tables)
    doc["lsn"] = lsn_text(state.lsn)
    text = json.dumps(doc, indent=2) + "\n"
    write_durably(state_path(state_dir), lambda tmp: tmp.write_text(text))


def write_durably(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` to a hidden temp name beside ``path``, fsync it, rename, fsync the folder.

    The temp name starts with ``.`` so the job's listing never picks up a half-written file.
    """
    make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(folder: Path) -> None:
    """``mkdir -p`` whose new folders survive a crash (each parent fsynced after its mkdir)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        fsync_dir(new.parent)
