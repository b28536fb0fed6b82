"""The capture's own settings (everything else comes from the pipeline config)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from capture.errors import CaptureUsageError
from cdclake.core.config import PipelineConfig
from cdclake.core.uris import is_s3, local_dir

DEFAULT_NAME = "cdclake_capture"
STATE_FOLDER = "_capture"  # under raw_root; the job ignores names starting with '_'
_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")  # PostgreSQL's rule for slot names


@dataclass(frozen=True)
class Options:
    """How to reach the source and how often to write files.

    ``dsn`` may be empty: libpq then reads the ``PG*`` environment variables.
    """

    dsn: str
    state_dir: Path
    slot: str = DEFAULT_NAME
    publication: str = DEFAULT_NAME
    flush_seconds: float = 60.0  # DMS's CdcMaxBatchInterval default
    flush_rows: int = 100_000  # also bounds memory: big transactions are written in parts
    # Text per LOAD file (roughly); a file is built in memory, Python objects take ~4x.
    load_file_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for what, name in (("slot", self.slot), ("publication", self.publication)):
            if not _SLOT_NAME.match(name):
                raise CaptureUsageError(
                    f"--{what} '{name}': use 1-63 lowercase letters, digits or underscores"
                )
        if self.flush_seconds <= 0 or self.flush_rows < 1 or self.load_file_bytes < 1:
            raise CaptureUsageError("flush interval, flush rows and LOAD file size must be > 0")


def default_state_dir(cfg: PipelineConfig) -> Path:
    """``<raw_root>/_capture``: beside the raw files, outside every table's folder."""
    if is_s3(cfg.raw_root):
        raise CaptureUsageError(
            f"raw_root {cfg.raw_root} is on S3: the local capture writes local files only"
        )
    return local_dir(cfg.raw_root) / STATE_FOLDER
