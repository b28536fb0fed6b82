"""Test helpers: write DMS-shaped Parquet files and run the job on a temp lake."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cdclake.cli.merge import main
from cdclake.core.config import HistoryConfig, PipelineConfig, parse_config
from cdclake.core.dms import hour_folder
from cdclake.core.hours import parse_hour

TS = "dms_commit_ts"
SEQ = "dms_change_seq"


def config_doc(
    root: Path, tables: list[dict], merge: dict | None = None, **dms: Any
) -> dict[str, Any]:
    """The pipeline config document of a test lake under ``root``."""
    doc = {
        "raw_root": str(root / "raw"),
        "curated_root": str(root / "curated"),
        "dms": {"timestamp_column": TS, "change_sequence_column": SEQ, **dms},
        "tables": tables,
    }
    return doc | ({"merge": merge} if merge else {})


def make_config(
    root: Path, tables: list[dict], merge: dict | None = None, **dms: Any
) -> PipelineConfig:
    return parse_config(config_doc(root, tables, merge, **dms), base_dir=root)


@dataclass
class DmsTable:
    """Writes files for one table the way DMS does. ``schema`` maps source columns to types."""

    cfg: PipelineConfig
    qualified_name: str
    schema: dict[str, pa.DataType]
    _counter: int = field(default=0)

    @property
    def folder(self) -> Path:
        return Path(self.cfg.raw_location(self.cfg.table(self.qualified_name)))

    def _write(self, path: Path, rows: list[dict], extra: dict[str, pa.DataType]) -> Path:
        fields = [pa.field(n, t) for n, t in {**extra, **self.schema}.items()]
        present = {k for r in rows for k in r}
        fields = [f for f in fields if f.name in present or f.name in extra]
        table = pa.Table.from_pylist(rows, schema=pa.schema(fields))
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        return path

    def load(
        self,
        rows: list[dict],
        ts: str = "2026-11-22 08:00:00.000000",
        *,
        with_op: bool = True,
        number: int | None = None,
    ) -> Path:
        self._counter += 1
        name = f"LOAD{(number or self._counter):08X}.parquet"
        extra: dict[str, pa.DataType] = {"Op": pa.string()} if with_op else {}
        seq = self.cfg.dms.change_sequence_column
        extra |= {TS: pa.string()} | ({seq: pa.string()} if seq else {})
        full = [
            ({"Op": "I"} if with_op else {}) | {TS: ts} | ({seq: ""} if seq else {}) | r
            for r in rows
        ]
        return self._write(self.folder / name, full, extra)

    def cdc(self, hour: str, changes: list[dict], name: str | None = None) -> Path:
        """``changes``: dicts with ``Op``, ``ts`` (commit time string), optional ``seq``, and
        the source columns present in the file."""
        h = parse_hour(hour)
        if name is None:
            self._counter += 1
            name = f"{h:%Y%m%d-%H}{self._counter:04d}00000.parquet"
        seq = self.cfg.dms.change_sequence_column
        rows = []
        for c in changes:
            c = dict(c)
            row = {"Op": c.pop("Op"), TS: c.pop("ts")}
            value = c.pop("seq", None)
            if seq:
                row[seq] = value
            rows.append(row | c)
        extra = {"Op": pa.string(), TS: pa.string()} | ({seq: pa.string()} if seq else {})
        folder = self.folder / hour_folder(h, self.cfg.dms)
        return self._write(folder / name, rows, extra)


def write_config(cfg: PipelineConfig, path: Path | None = None) -> Path:
    """``cfg`` as a YAML file (default: next to the raw root); returns its path."""
    import dataclasses

    import yaml

    path = path or Path(cfg.raw_root).parent / "pipeline.yaml"
    doc = {
        "raw_root": cfg.raw_root,
        "curated_root": cfg.curated_root,
        "dms": dataclasses.asdict(cfg.dms),
        "tables": [
            {
                "schema": t.schema,
                "name": t.name,
                "primary_key": list(t.primary_key),
                "partition_by": list(t.partition_by),
                "drop_columns": list(t.drop_columns),
                "start_from": t.start_from,
                "history": history_doc(t.history),
            }
            for t in cfg.tables
        ],
        "maintenance": dataclasses.asdict(cfg.maintenance),
        "merge": dataclasses.asdict(cfg.merge),
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def history_doc(h: HistoryConfig | None) -> bool | dict:
    """A table's ``history:`` setting as the YAML file spells it."""
    if h is None:
        return False
    doc: dict[str, Any] = {k: list(v) for k, v in vars(h).items() if v}
    if h.partition_by is not None:
        doc["partition_by"] = list(h.partition_by)
    return doc or True


def run_job(spark, cfg: PipelineConfig, *args: str) -> int:
    """Run the CLI in-process on ``cfg`` (written to a temp YAML next to the raw root)."""
    return main(["--config", str(write_config(cfg)), *args], spark=spark)


def read_table(spark, cfg: PipelineConfig, name: str, bookkeeping: bool = False):
    df = spark.read.format("delta").load(cfg.table_location(cfg.table(name)))
    if not bookkeeping:
        df = df.select(*[c for c in df.columns if not c.startswith("_")])
    return df


def ts(s: str) -> datetime:
    return datetime.fromisoformat(s)
