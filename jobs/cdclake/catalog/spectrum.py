"""What Redshift Spectrum would read: the Parquet files the symlink manifests list, read
with pyarrow (not Spark), compared with the Delta snapshot. ``make spectrum-check`` and the
tests use it to prove the manifests equal the table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cdclake.catalog.deltalog import manifest_data_files, read_table_meta
from cdclake.catalog.types import arrow_type
from cdclake.core.hours import UTC
from cdclake.core.uris import local_path


@dataclass(frozen=True)
class SpectrumDiff:
    """Rows a Spectrum-style read of the manifests returns that the Delta snapshot does not
    (``extra``), and the other way round (``missing``). Both empty: equivalent."""

    table: str
    columns: tuple[str, ...]
    missing: tuple[tuple, ...]
    extra: tuple[tuple, ...]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.extra


def read_like_spectrum(store: Any, location: str) -> tuple[tuple[str, ...], list[tuple]]:
    """The rows Redshift Spectrum would return: every Parquet file listed in
    ``_symlink_format_manifest/``, read with pyarrow (not Spark), each file's partition values
    taken from its manifest folder, columns missing from older files read as null, every
    column cast to the table's type. Returns (column names in table order, rows)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = read_table_meta(store, location)
    schema = pa.schema([pa.field(f.name, arrow_type(f.type)) for f in meta.fields])
    parts = []
    for uri, values in manifest_data_files(store, location, meta.partition_columns):
        data = pq.read_table(io.BytesIO(store.read(_data_file(uri))))
        columns = []
        for field in schema:
            if field.name in meta.partition_columns:
                value = values[meta.partition_columns.index(field.name)]
                raw = pa.array([value] * data.num_rows, pa.string())
                columns.append(raw.cast(field.type))
            elif field.name in data.column_names:
                columns.append(data.column(field.name).cast(field.type))
            else:  # written before the column was added at the source
                columns.append(pa.nulls(data.num_rows, field.type))
        parts.append(pa.Table.from_arrays(columns, schema=schema))
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    rows = [tuple(r.values()) for r in table.to_pylist()]
    return tuple(schema.names), rows


def _data_file(uri: str) -> str:
    """A manifest line as a path the store reads. Delta writes Hadoop path strings, not
    percent-encoded URIs: the Hive-escaped folder (``p=x y%3Az``) is the literal name."""
    return local_path(uri)


def compare_rows(
    table: str, columns: Sequence[str], delta_rows: Sequence[tuple], spectrum_rows: Sequence[tuple]
) -> SpectrumDiff:
    """Multiset difference of two row lists (timestamps compared as UTC instants)."""
    want = Counter(_normalise(r) for r in delta_rows)
    got = Counter(_normalise(r) for r in spectrum_rows)
    return SpectrumDiff(
        table=table,
        columns=tuple(columns),
        missing=tuple(sorted((want - got).elements(), key=repr)),
        extra=tuple(sorted((got - want).elements(), key=repr)),
    )


def _normalise(row: Sequence[Any]) -> tuple:
    # PySpark returns naive local datetimes for timestamps, pyarrow aware UTC ones.
    return tuple(v.astimezone(UTC) if isinstance(v, datetime) else v for v in row)
