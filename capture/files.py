"""Writes the raw layer exactly as the DMS S3 target (Parquet) lays it out, using the job's own
naming functions (``cdclake.core.dms``), so the job reads the capture's files as DMS's.

* full load: ``<raw>/<schema>/<table>/LOAD00000001.parquet`` ... (hex counter); columns
  ``Op`` ('I', only with ``dms.full_load_has_op``), the timestamp column (the load's start
  time for every row), the change-sequence column ('' for load rows), then the source's;
* CDC: ``<raw>/<schema>/<table>/<commit hour folder>/<written time>.parquet``; columns ``Op``
  (I/U/D), commit time string, 35-digit change sequence, then the source's.

Every file is written under a hidden temp name, fsynced and renamed: the job never sees a
half-written file, and a file that exists is complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from capture.state import write_durably
from capture.typemap import PgType
from cdclake.core.config import DmsLayout, PipelineConfig, TableConfig
from cdclake.core.dms import cdc_file_name, classify, hour_folder, load_file_name
from cdclake.core.uris import local_dir


@dataclass(frozen=True)
class Columns:
    """The source columns of a file, in the source's order, with their types."""

    names: tuple[str, ...]
    types: tuple[PgType, ...]


@dataclass(frozen=True)
class Written:
    path: Path
    rows: int
    unrepresentable: int


def build_table(
    layout: DmsLayout,
    columns: Columns,
    dms_values: tuple[Sequence[str] | None, Sequence[str], Sequence[str]],
    rows: Sequence[tuple[str | None, ...]],
) -> tuple[pa.Table, int]:
    """One file's Arrow table: the DMS columns (``ops`` None = no Op column), then the source
    columns converted from text. Returns the table and the count of unrepresentable values."""
    ops, stamps, seqs = dms_values
    names: list[str] = []
    arrays: list[pa.Array] = []
    if ops is not None:
        names.append(layout.op_column)
        arrays.append(pa.array(ops, pa.string()))
    names.append(layout.timestamp_column)
    arrays.append(pa.array(stamps, pa.string()))
    if layout.change_sequence_column:
        names.append(layout.change_sequence_column)
        arrays.append(pa.array(seqs, pa.string()))
    by_column = list(zip(*rows, strict=True)) if rows else [() for _ in columns.names]
    bad = 0
    for name, type_, values in zip(columns.names, columns.types, by_column, strict=True):
        array, n_bad = type_.to_arrow(values, name)
        names.append(name)
        arrays.append(array)
        bad += n_bad
    return pa.Table.from_arrays(arrays, names=names), bad


class RawWriter:
    """Places and writes the files of the configured tables under ``raw_root``."""

    def __init__(self, cfg: PipelineConfig) -> None:
        self.cfg = cfg

    def table_dir(self, table: TableConfig) -> Path:
        return local_dir(self.cfg.raw_location(table))

    def load_files(self, table: TableConfig) -> list[Path]:
        """The LOAD files already at the table's root (a previous full load)."""
        folder = self.table_dir(table)
        if not folder.is_dir():
            return []
        return sorted(
            p for p in folder.iterdir() if classify(p.name, self.cfg.dms) == ("load", None)
        )

    def write_load(self, table: TableConfig, index: int, data: pa.Table) -> Path:
        path = self.table_dir(table) / load_file_name(index)
        _write(path, data)
        return path

    def write_cdc(
        self, table: TableConfig, hour: datetime, written_at: datetime, data: pa.Table
    ) -> Path:
        """A CDC file in the commit hour's folder, named by ``written_at`` (a later name if
        that one is taken: names are never reused, as a redelivery must not replace a file)."""
        folder = self.table_dir(table) / hour_folder(hour, self.cfg.dms)
        while (path := folder / cdc_file_name(written_at)).exists():
            written_at += timedelta(milliseconds=1)
        _write(path, data)
        return path


def _write(path: Path, data: pa.Table) -> None:
    write_durably(path, lambda tmp: pq.write_table(data, tmp))
