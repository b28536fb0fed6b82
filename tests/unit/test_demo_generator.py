"""The demo source writes what DMS writes, and its expected state is what those files mean.

Checks read the written Parquet files back with pyarrow and replay them with a tiny reference
applier that is independent of the generator: order CDC rows by (commit ts, change seq, file
name, row position), latest change per key wins, D removes, full-load rows are older than every
CDC change.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from cdclake.core.config import PipelineConfig, parse_config
from demo import Delivery, DemoSource

ROOT = Path(__file__).resolve().parents[2]
TRAVEL = "delta_emr_source.travel_details"
SALES = "delta_emr_source.ticket_sales"
GRACE = timedelta(minutes=2)
HOUR = timedelta(hours=1)
SMALL = {"travel_rows": 600, "sales_rows": 300}
TS_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")
CDC_NAME = re.compile(r"^(\d{8})-(\d{6})(\d{3})\.parquet$")


def make_cfg(root: Path, **dms: Any) -> PipelineConfig:
    """conf/pipeline.yaml with the roots moved under ``root`` and DMS settings overridden."""
    doc = yaml.safe_load((ROOT / "conf" / "pipeline.yaml").read_text())
    doc["raw_root"] = str(root / "raw")
    doc["curated_root"] = str(root / "curated")
    doc["dms"] = {**doc.get("dms", {}), **dms}
    return parse_config(doc, base_dir=root)


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> DemoSource:
    """The default-sized demo (20,000 trips, 3,000 sales, 6 hours), all files written."""
    source = DemoSource(make_cfg(tmp_path_factory.mktemp("demo")))
    source.write_all()
    return source


@pytest.fixture(scope="module")
def files(src: DemoSource) -> dict[str, list[dict[str, Any]]]:
    """Rows of every written file, by path."""
    return {d.path: pq.read_table(d.path).to_pylist() for d in src.deliveries()}


def key_cols(cfg: PipelineConfig, table: str) -> tuple[str, ...]:
    return cfg.table(table).primary_key


def key_of(cfg: PipelineConfig, table: str, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c] for c in key_cols(cfg, table))


def cdc_rows(
    src: DemoSource,
    files: dict[str, list[dict[str, Any]]],
    table: str,
    kinds: tuple[str, ...] = ("cached", "cdc", "late", "duplicate"),
) -> list[tuple[tuple[str, str, str, int], Delivery, dict[str, Any]]]:
    """CDC rows in the total order (ts, seq, file name, row position)."""
    dms = src.cfg.dms
    out = []
    for d in src.deliveries():
        if d.table != table or d.kind not in kinds:
            continue
        for pos, r in enumerate(files[d.path]):
            seq = r.get(dms.change_sequence_column, "") if dms.change_sequence_column else ""
            out.append(((r[dms.timestamp_column], seq, Path(d.path).name, pos), d, r))
    out.sort(key=lambda x: x[0])
    return out


def replay(
    src: DemoSource,
    files: dict[str, list[dict[str, Any]]],
    table: str,
    skip: set[str] | None = None,
) -> list[dict[str, Any]]:
    """The reference applier: the state the delivered files describe."""
    cfg, dms = src.cfg, src.cfg.dms
    cols = src.expected_schema(table).names
    state: dict[tuple[Any, ...], dict[str, Any]] = {}
    for d in src.deliveries():
        if d.table == table and d.kind == "load":
            for r in files[d.path]:
                state[key_of(cfg, table, r)] = {c: r.get(c) for c in cols}
    for _, d, r in cdc_rows(src, files, table):
        if skip and d.path in skip:
            continue
        k = key_of(cfg, table, r)
        if r[dms.op_column] == "D":
            state.pop(k, None)
        else:
            state[k] = {c: r.get(c) for c in cols}
    return [state[k] for k in sorted(state)]


def read_all(src: DemoSource) -> dict[str, list[dict[str, Any]]]:
    return {d.path: pq.read_table(d.path).to_pylist() for d in src.deliveries()}


def name_time(path: str) -> datetime:
    m = CDC_NAME.match(Path(path).name)
    assert m, path
    return datetime.strptime(m.group(1) + m.group(2) + m.group(3), "%Y%m%d%H%M%S%f").replace(
        tzinfo=UTC
    )


def parse_ts(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


# --- layout ----------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", ["SLASH", "DASH", "UNDERSCORE", "NONE"])
def test_files_follow_the_dms_layout(tmp_path: Path, delimiter: str) -> None:
    cfg = make_cfg(tmp_path, date_partition_delimiter=delimiter)
    src = DemoSource(cfg, **SMALL)
    src.write_all()
    sep = re.escape(cfg.dms.separator)
    folder = re.compile(rf"^(\d{{4}}){sep}(\d{{2}}){sep}(\d{{2}}){sep}(\d{{2}})$")
    for table in (TRAVEL, SALES):
        root = Path(cfg.raw_location(cfg.table(table)))
        loads = [d for d in src.deliveries() if d.table == table and d.kind == "load"]
        assert [Path(d.path).name for d in loads] == [
            f"LOAD{i:08X}.parquet" for i in range(1, len(loads) + 1)
        ]
        assert len(loads) >= 2 and all(Path(d.path).parent == root for d in loads)
        for d in src.deliveries():
            if d.table != table or d.kind == "load":
                continue
            rel = Path(d.path).relative_to(root)
            m = folder.match(str(rel.parent))
            assert m, rel
            assert datetime(*map(int, m.groups()), tzinfo=UTC) == d.hour
            rows = pq.read_table(d.path).to_pylist()
            assert len(rows) == d.rows > 0
            commits = [parse_ts(r[cfg.dms.timestamp_column]) for r in rows]
            assert all(d.hour < c < d.hour + HOUR for c in commits)
            assert max(commits) < name_time(d.path) <= d.lands_at
    # every file on disk is a planned delivery and vice versa
    on_disk = {str(p) for p in Path(cfg.raw_root).rglob("*.parquet")}
    assert on_disk == {d.path for d in src.deliveries()}
    if delimiter == "SLASH":
        assert any("/2026/11/22/10/" in d.path for d in src.deliveries())
    if delimiter == "DASH":
        assert any("/2026-11-22-10/" in d.path for d in src.deliveries())


@pytest.mark.parametrize("with_op", [True, False])
def test_load_files_have_op_only_when_configured(tmp_path: Path, with_op: bool) -> None:
    cfg = make_cfg(tmp_path, full_load_has_op=with_op)
    src = DemoSource(cfg, **SMALL)
    src.write_landed(src.load_landed_at)
    loads = [d for d in src.deliveries() if d.kind == "load"]
    assert all(d.lands_at <= src.load_landed_at for d in loads)
    for d in loads:
        t = pq.read_table(d.path)
        assert (cfg.dms.op_column in t.column_names) is with_op
        if with_op:
            assert t.column_names[0] == "Op" and set(t.column("Op").to_pylist()) == {"I"}
        assert set(t.column(cfg.dms.timestamp_column).to_pylist()) == {"2026-11-22 08:00:00.000000"}
        assert set(t.column(cfg.dms.change_sequence_column).to_pylist()) == {""}
        if d.table == SALES:
            assert "card_number" in t.column_names  # the raw files hold the PII column


def test_without_change_sequence_column(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, change_sequence_column=None, full_load_has_op=False)
    src = DemoSource(cfg, **SMALL)
    src.write_all()
    data = read_all(src)
    for d in src.deliveries():
        assert "dms_change_seq" not in pq.read_schema(d.path).names
    for table in (TRAVEL, SALES):
        assert replay(src, data, table) == src.expected_rows(table)


def test_cdc_columns_formats_and_sequence(src: DemoSource, files: dict) -> None:
    dms = src.cfg.dms
    seen: dict[str, tuple] = {}
    for d in src.deliveries():
        if d.kind == "load":
            continue
        names = pq.read_schema(d.path).names
        assert names[:3] == [dms.op_column, dms.timestamp_column, dms.change_sequence_column]
        for r in files[d.path]:
            assert r["Op"] in ("I", "U", "D")
            assert TS_FORMAT.match(r[dms.timestamp_column])
            seq = r[dms.change_sequence_column]
            assert re.fullmatch(r"\d{35}", seq)
            ident = (d.table, r["Op"], r[dms.timestamp_column], tuple(sorted(r.items())))
            if d.kind != "duplicate":
                assert seq not in seen, "a change sequence is unique outside re-deliveries"
            seen[seq] = ident
    # string order of the change sequence = commit order (ties broken by the sequence)
    by_seq = sorted(seen)
    assert [seen[s][2] for s in by_seq] == sorted(seen[s][2] for s in by_seq)


def test_deletes_key_only_for_travel_full_image_for_sales(src: DemoSource, files: dict) -> None:
    travel_d = [r for _, _, r in cdc_rows(src, files, TRAVEL) if r["Op"] == "D"]
    assert len(travel_d) > 500  # the blog's delete of Los Angeles trips
    for r in travel_d:
        assert r["trip_id"] is not None
        assert all(r[c] is None for c in ("tstamp", "route_id", "destination", "source_location"))
        assert r.get("distance_km") is None
    sales_d = [r for _, _, r in cdc_rows(src, files, SALES) if r["Op"] == "D"]
    assert sales_d and all(
        None not in (r["sale_date"], r["price"], r["channel"], r["card_number"]) for r in sales_d
    )


# --- the files mean exactly the expected state -------------------------------------------------


@pytest.mark.parametrize("table", [TRAVEL, SALES])
def test_replay_of_all_deliveries_equals_expected_rows(
    src: DemoSource, files: dict, table: str
) -> None:
    expected = src.expected_rows(table)
    assert replay(src, files, table) == expected
    # late files matter: without them the state differs
    late = {d.path for d in src.deliveries() if d.kind == "late" and d.table == table}
    assert late and replay(src, files, table, skip=late) != expected
    # duplicates are harmless
    dups = {d.path for d in src.deliveries() if d.kind == "duplicate" and d.table == table}
    assert dups and replay(src, files, table, skip=dups) == expected


def test_expected_state_and_schema(src: DemoSource) -> None:
    assert src.expected_schema(TRAVEL) == pa.schema(
        [
            ("trip_id", pa.int32()),
            ("tstamp", pa.timestamp("us", tz="UTC")),
            ("route_id", pa.string()),
            ("destination", pa.string()),
            ("source_location", pa.string()),
            ("distance_km", pa.int32()),
        ]
    )
    assert src.expected_schema(SALES).names == [
        "trip_id",
        "seat_no",
        "sale_date",
        "price",
        "channel",
    ]
    travel = src.expected_rows(TRAVEL)
    sales = src.expected_rows(SALES)
    assert all(list(r) == src.expected_schema(TRAVEL).names for r in travel)
    assert all("card_number" not in r for r in sales)
    distances = [r["distance_km"] for r in travel]
    assert any(v is None for v in distances) and sum(v is not None for v in distances) > 50
    assert all(isinstance(r["tstamp"], datetime) and r["tstamp"].tzinfo for r in travel)
    assert 19_000 < len(travel) < 20_000 and 2_900 < len(sales) < 3_100
    assert src.expected_table(SALES).num_rows == len(sales)
    assert src.hours() == [datetime(2026, 11, 22, 8 + h, tzinfo=UTC) for h in range(6)]


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    def build(name: str, seed: int) -> tuple[DemoSource, dict[str, bytes]]:
        cfg = make_cfg(tmp_path / name)
        s = DemoSource(cfg, seed=seed, **SMALL)
        s.write_all()
        raw = Path(cfg.raw_root)
        return s, {str(p.relative_to(raw)): p.read_bytes() for p in raw.rglob("*.parquet")}

    a, bytes_a = build("a", 7)
    b, bytes_b = build("b", 7)
    _, bytes_c = build("c", 8)
    assert bytes_a == bytes_b
    assert [(d.lands_at, d.kind, d.rows) for d in a.deliveries()] == [
        (d.lands_at, d.kind, d.rows) for d in b.deliveries()
    ]
    assert a.expected_rows(TRAVEL) == b.expected_rows(TRAVEL)
    assert bytes_a != bytes_c


# --- hard cases ----------------------------------------------------------------------------------


def test_hard_cases_are_registered(src: DemoSource) -> None:
    names = {c.name for c in src.hard_cases}
    assert names >= {
        "tie_in_transaction",
        "insert_delete_insert_same_hour",
        "update_then_delete_later_hour",
        "partition_move",
        "late_file_next_hour",
        "late_file_after_next_run",
        "late_file_after_final_run",
        "duplicate_delivery",
        "cached_load_after",
        "cached_load_before",
        "added_column",
        "reinsert_after_delete",
        "blog_round",
    }


@pytest.mark.parametrize("table", [TRAVEL, SALES])
def test_ties_within_a_transaction(src: DemoSource, files: dict, table: str) -> None:
    by_ts: dict[str, list[tuple[str, tuple]]] = defaultdict(list)
    for _, _d, r in cdc_rows(src, files, table, kinds=("cached", "cdc", "late")):
        by_ts[r["dms_commit_ts"]].append((r["Op"], key_of(src.cfg, table, r)))
    tied = [ops for ops in by_ts.values() if len(ops) > 1]
    assert tied
    same_key = []
    for ops in tied:
        per_key: dict[tuple, list[str]] = defaultdict(list)
        for op, k in ops:
            per_key[k].append(op)
        same_key += [seq for seq in per_key.values() if len(seq) > 1]
    assert ["U", "U"] in same_key  # the same key updated twice at one commit time
    if table == TRAVEL:
        assert ["I", "U"] in same_key and ["U", "D"] in same_key
        assert max(len(ops) for ops in tied) >= 100  # the blog: one statement, many rows
    else:
        assert ["I", "D"] in same_key


@pytest.mark.parametrize("table", [TRAVEL, SALES])
def test_insert_delete_insert_within_one_hour(src: DemoSource, files: dict, table: str) -> None:
    ops: dict[tuple, list[str]] = defaultdict(list)
    for _, d, r in cdc_rows(src, files, table, kinds=("cached", "cdc", "late")):
        ops[(key_of(src.cfg, table, r), d.hour)].append(r["Op"])
    assert any("I,D,I" in ",".join(seq) for seq in ops.values())


def test_update_then_delete_in_a_later_hour_and_reinsert(src: DemoSource, files: dict) -> None:
    for table in (TRAVEL, SALES):
        history: dict[tuple, list[tuple[str, datetime]]] = defaultdict(list)
        for _, d, r in cdc_rows(src, files, table, kinds=("cached", "cdc", "late")):
            history[key_of(src.cfg, table, r)].append((r["Op"], d.hour))
        found = [
            h
            for h in history.values()
            if any(
                a[0] == "U" and b[0] == "D" and b[1] > a[1] for a, b in zip(h, h[1:], strict=False)
            )
        ]
        assert found, table
        if table == TRAVEL:
            ops = [",".join(op for op, _ in h) for h in history.values()]
            assert any("U,D,I" in s for s in ops)  # update, delete, then insert again


def test_key_only_deletes_hit_the_partitioned_table(src: DemoSource, files: dict) -> None:
    part = src.cfg.table(TRAVEL).partition_by
    assert part == ("route_id",)
    deletes = [r for _, _, r in cdc_rows(src, files, TRAVEL) if r["Op"] == "D"]
    assert deletes and all(r["route_id"] is None for r in deletes)


@pytest.mark.parametrize("table", [TRAVEL, SALES])
def test_updates_move_rows_between_partitions(src: DemoSource, files: dict, table: str) -> None:
    cfg = src.cfg
    part = cfg.table(table).partition_by[0]
    last: dict[tuple, Any] = {}
    for d in src.deliveries():
        if d.table == table and d.kind == "load":
            for r in files[d.path]:
                last[key_of(cfg, table, r)] = r[part]
    moves = 0
    for _, _, r in cdc_rows(src, files, table, kinds=("cached", "cdc", "late")):
        k = key_of(cfg, table, r)
        if r["Op"] == "U" and k in last and last[k] != r[part]:
            moves += 1
        if r["Op"] != "D":
            last[k] = r[part]
    assert moves >= 1


def test_late_files(src: DemoSource, files: dict) -> None:
    late = [d for d in src.deliveries() if d.kind == "late"]
    assert late
    for d in late:
        assert d.hour is not None and d.lands_at > d.hour + HOUR + GRACE  # missed its hour's run
    assert any(d.lands_at > d.hour + 2 * HOUR + GRACE for d in late)  # missed the next run too
    assert any(d.lands_at > src.end + GRACE for d in late)  # only a final catch-up sees it
    # every regular CDC file lands within the grace period after its hour
    for d in src.deliveries():
        if d.kind == "cdc":
            assert d.lands_at <= d.hour + HOUR + GRACE


def test_duplicate_deliveries(src: DemoSource, files: dict) -> None:
    def ident(d: Delivery, r: dict) -> tuple:
        return (d.table, d.hour, repr(sorted(r.items())))

    originals: dict[tuple, list[Delivery]] = defaultdict(list)
    for d in src.deliveries():
        if d.kind not in ("duplicate", "load"):
            for r in files[d.path]:
                originals[ident(d, r)].append(d)
    dups = [d for d in src.deliveries() if d.kind == "duplicate"]
    assert {d.table for d in dups} == {TRAVEL, SALES}
    for d in dups:
        for r in files[d.path]:
            (orig,) = originals[ident(d, r)]  # same Op, ts, seq and values, same folder
            assert Path(d.path).name > Path(orig.path).name and d.lands_at > orig.lands_at
    # re-delivered rows of an hour land after that hour's run
    assert any(d.lands_at > d.hour + HOUR + GRACE for d in dups)


@pytest.mark.parametrize("table", [TRAVEL, SALES])
def test_cached_changes_during_the_full_load(src: DemoSource, files: dict, table: str) -> None:
    cfg = src.cfg
    load: dict[tuple, dict] = {}
    load_end = max(d.lands_at for d in src.deliveries() if d.table == table and d.kind == "load")
    for d in src.deliveries():
        if d.table == table and d.kind == "load":
            for r in files[d.path]:
                load[key_of(cfg, table, r)] = r
    cached = [
        r
        for _, d, r in cdc_rows(src, files, table, kinds=("cached",))
        if parse_ts(r["dms_commit_ts"]) < load_end
    ]
    assert cached and all(parse_ts(r["dms_commit_ts"]) > src.task_start for r in cached)
    shown, not_shown = set(), set()
    source_cols = [c for c in src.expected_schema(table).names]
    for r in cached:
        k = key_of(cfg, table, r)
        if r["Op"] == "D":
            (not_shown if k in load else shown).add("D")
        else:
            after = {c: r.get(c) for c in source_cols}
            in_load = {c: load[k].get(c) for c in source_cols} if k in load else None
            (shown if in_load == after else not_shown).add(r["Op"])
    assert {"U", "D", "I"} <= shown and {"U", "D", "I"} <= not_shown


def test_added_column_appears_mid_stream(src: DemoSource, files: dict) -> None:
    with_col, without = [], []
    for d in src.deliveries():
        if d.table == TRAVEL and d.kind != "load":
            commits = [parse_ts(r["dms_commit_ts"]) for r in files[d.path]]
            names = pq.read_schema(d.path).names
            (with_col if "distance_km" in names else without).append((min(commits), max(commits)))
            if "distance_km" in names:
                assert pq.read_schema(d.path).field("distance_km").type == pa.int32()
    assert with_col and without
    assert max(hi for _, hi in without) < min(lo for lo, _ in with_col)
    for d in src.deliveries():
        if d.table == TRAVEL and d.kind == "load":
            assert "distance_km" not in pq.read_schema(d.path).names


def test_write_landed_follows_the_driver_schedule(tmp_path: Path) -> None:
    src = DemoSource(make_cfg(tmp_path), **SMALL)
    first = src.write_landed(src.load_landed_at)
    loads = [d for d in src.deliveries() if d.kind == "load"]
    assert set(loads) <= set(first) and {d.kind for d in first} <= {"load", "cached"}
    seen_by: dict[str, datetime] = {}
    for h in src.hours():
        landed = src.write_landed(h + HOUR + GRACE)
        assert all(d.lands_at <= h + HOUR + GRACE for d in landed)
        for d in landed:
            seen_by[d.path] = h
    final = src.write_all()
    assert src.write_all() == []
    written = {d.path for d in first} | set(seen_by) | {d.path for d in final}
    assert written == {d.path for d in src.deliveries()}
    late = [d for d in src.deliveries() if d.kind == "late"]
    assert any(d.path in seen_by and seen_by[d.path] >= d.hour + 2 * HOUR for d in late)
    assert any(d in final for d in late)
    dups = [d for d in src.deliveries() if d.kind == "duplicate"]
    assert any(seen_by[d.path] > d.hour for d in dups)


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    with pytest.raises(ValueError, match="whole hour"):
        DemoSource(cfg, start=datetime(2026, 11, 22, 8, 30, tzinfo=UTC), **SMALL)
    with pytest.raises(ValueError, match="hours"):
        DemoSource(cfg, hours=2, **SMALL)
    doc = yaml.safe_load((ROOT / "conf" / "pipeline.yaml").read_text())
    doc["raw_root"], doc["curated_root"] = "s3://bucket/raw", "s3://bucket/curated"
    with pytest.raises(ValueError, match="local"):
        DemoSource(parse_config(doc), **SMALL)


def test_hard_case_outcomes(src: DemoSource, files: dict) -> None:
    """The registry says what each deliberate key ends as; check it against the expected state."""
    present = {t: {key_of(src.cfg, t, r) for r in src.expected_rows(t)} for t in (TRAVEL, SALES)}
    cases = {(c.name, c.table): c for c in src.hard_cases}

    def keys(name: str, table: str) -> tuple:
        return cases[(name, table)].keys

    for table in (TRAVEL, SALES):
        assert all(k not in present[table] for k in keys("update_then_delete_later_hour", table))
        assert all(k in present[table] for k in keys("insert_delete_insert_same_hour", table))
    e, e2, n_tie, e3 = keys("tie_in_transaction", TRAVEL)
    assert {e, e2, n_tie} <= present[TRAVEL] and e3 not in present[TRAVEL]
    st, st_new = keys("tie_in_transaction", SALES)
    assert st in present[SALES] and st_new not in present[SALES]
    (m,) = keys("stale_change_after_delete", TRAVEL)
    assert m not in present[TRAVEL]
    assert set(keys("upsert_unknown_key", TRAVEL)) <= present[TRAVEL]
    assert set(keys("reinsert_after_delete", TRAVEL)) <= present[TRAVEL]

    # rows decided by a late file: the expected row is exactly the late file's row
    expected = {
        t: {key_of(src.cfg, t, r): r for r in src.expected_rows(t)} for t in (TRAVEL, SALES)
    }
    for name, table, final in (
        ("late_file_next_hour", TRAVEL, 2),  # U h and I n are final, U j is superseded
        ("late_file_after_final_run", SALES, 1),  # U y is final, U z superseded, D w final
    ):
        case_keys = keys(name, table)
        (late,) = [
            d
            for d in src.deliveries()
            if d.kind == "late" and d.table == table and d.hour == cases[(name, table)].hours[0]
        ]
        rows = {key_of(src.cfg, table, r): r for r in files[late.path]}
        assert set(rows) == set(case_keys)
        for k in case_keys[:final]:
            cols = src.expected_schema(table).names
            assert expected[table][k] == {c: rows[k].get(c) for c in cols}
        for k in case_keys[final:]:
            if rows[k]["Op"] == "D":
                assert k not in expected[table]
    (_, _, tw) = keys("late_file_after_final_run", SALES)
    assert tw not in present[SALES]
