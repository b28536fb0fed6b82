"""Named errors of the capture. Each message says what is wrong and what to do."""

from __future__ import annotations


class CaptureError(RuntimeError):
    """The capture cannot go on (exit status 1)."""


class CaptureUsageError(CaptureError):
    """Bad arguments or configuration (exit status 2)."""


class ProtocolError(CaptureError):
    """A pgoutput message could not be decoded."""


class SourceError(CaptureError):
    """The source database is not set up for capture (wal_level, privileges, version)."""


class UnsupportedTableError(CaptureError):
    """A configured table cannot be captured faithfully (missing, key, replica identity)."""


class UnchangedToastError(CaptureError):
    """An update left a TOASTed value out and there is no old row to take it from."""


class NotInitializedError(CaptureError):
    """``stream`` or ``drop`` found no capture state: run ``init`` first."""


class AlreadyInitializedError(CaptureError):
    """``init`` found an existing capture (state, slot or LOAD files): use ``--force``."""


class StateError(CaptureError):
    """The capture state file is unreadable or belongs to another database or config."""


class SlotLostError(CaptureError):
    """The replication slot is missing or invalidated: changes were lost, reload needed."""
