"""Pure summaries of the measurements: per-arm statistics, the issue's five ratios, the
markdown table. The chart is the only I/O here (:func:`chart`)."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench import history
from bench.arms import PHASES

TARGETS = {
    "job_vs_blog_10M_1pct_hot": 0.5,
    "job_vs_delta_rs_10M_1pct_hot": 5.0,
    "bytes_rewritten_vs_floor": 1.2,
    "job_vs_floor": 10.0,
    "time_10M_vs_1M_same_batch": 1.5,
    "commit_1000_vs_10": 1.2,
    # Many tables in one hourly run (bench/many.py): seconds per table, amortised, with the
    # tables applied side by side; and that time over the one-after-another baseline's.
    "many_tables_s_per_table": 2.0,
    "many_tables_concurrent_vs_sequential": 0.25,
}


def summarize(reps: list[dict]) -> dict:
    """Median/min/max of total time and median per phase over repetitions (all correct)."""
    totals = [sum(r["phases"].values()) for r in reps]
    med = statistics.median(totals)
    return {
        "median_s": med,
        "min_s": min(totals),
        "max_s": max(totals),
        "phases_median_s": {p: statistics.median(r["phases"][p] for r in reps) for p in PHASES},
    }


def ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or not den else num / den


def _result(results: list[dict], config: str, arm: str, full: bool = False) -> dict | None:
    """The arm's correct result; ``full``: only one with phases and rewrite measurements
    (a ``partial`` result has checked times only, from a run cut short)."""
    ok = ("ok",) if full else ("ok", "partial")
    for r in results:
        if r["config"] == config and r["arm"] == arm and r["status"] in ok:
            return r
    return None


def ratios(
    results: list[dict],
    log_growth: dict,
    big: str,
    small: str,
    same: str,
    many: dict | None = None,
) -> dict:
    """The issue's ratios. ``big``/``small``: the 1%-hot configs at the large and small table
    sizes; ``same``: the large-table config with as many changes as ``small``; ``many``: the
    many-tables section (:func:`bench.many.run`)."""
    ours_big, blog_big = _result(results, big, "job"), _result(results, big, "blog")
    rs_big = _result(results, big, "delta-rs")
    arms = (many or {}).get("arms", {})
    concurrent, sequential = arms.get("job concurrent"), arms.get("job sequential")
    ours_small, ours_same = _result(results, small, "job"), _result(results, same, "job")
    # Bytes and floor need the full measurements: the large config's, else the small one's.
    ours_full = _result(results, big, "job", full=True) or _result(results, small, "job", True)
    per_run = log_growth.get("per_run", {})
    marks = sorted(per_run, key=int)
    values = {
        "job_vs_blog_10M_1pct_hot": ratio(
            ours_big and ours_big["median_s"], blog_big and blog_big["median_s"]
        ),
        "job_vs_delta_rs_10M_1pct_hot": ratio(
            ours_big and ours_big["median_s"], rs_big and rs_big["median_s"]
        ),
        "bytes_rewritten_vs_floor": ratio(
            ours_full and ours_full["rewrite"]["bytes_written"],
            ours_full and ours_full["floor"]["bytes_written"],
        ),
        "job_vs_floor": ratio(
            ours_full and ours_full["median_s"], ours_full and ours_full["floor"]["seconds"]
        ),
        "time_10M_vs_1M_same_batch": ratio(
            ours_same and ours_same["median_s"], ours_small and ours_small["median_s"]
        ),
        "commit_1000_vs_10": ratio(
            per_run[marks[-1]]["median_s"] if marks else None,
            per_run[marks[0]]["median_s"] if marks else None,
        ),
        "many_tables_s_per_table": concurrent and concurrent["s_per_table"],
        "many_tables_concurrent_vs_sequential": ratio(
            concurrent and concurrent["s_per_table"], sequential and sequential["s_per_table"]
        ),
    }
    out = {
        k: {"value": v, "target": TARGETS[k], "met": v is not None and v <= TARGETS[k]}
        for k, v in values.items()
    }
    if ours_full is not None:
        for k in ("bytes_rewritten_vs_floor", "job_vs_floor"):
            out[k]["config"] = ours_full["config"]
    return out


def _fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def markdown(doc: dict) -> str:
    """The results as a markdown page (tables + notes)."""
    env = doc["environment"]
    lines = [
        "# Benchmark: hourly-run cost",
        "",
        f"Run {doc['started_at']} ({doc['mode']} mode), {env['cpus']} cores, "
        f"{env['memory_gib']} GiB, {env['platform']}; Spark {env['spark']}, Delta "
        f"{env['delta_spark']}, delta-rs {env['deltalake']}. Load average before "
        f"{env['load_before']}, after {env['load_after']}. Whole run {doc['wall_s']:.0f} s; "
        f"JVM + Spark session start {doc['jvm_startup_s']:.1f} s (in no arm's time); "
        + (
            "each arm's first run in the session (class loading, JIT; on a 20k-row table "
            "unless the plan has none) was not reported: "
            + ", ".join(f"{a} {s:.1f} s" for a, s in doc["first_run_s"].items())
            if doc["first_run_s"]
            else "no run discarded: the first repetition includes class loading and JIT"
        )
        + ".",
        "",
        "## Ratios",
        "",
        "| ratio | value | target | |",
        "|---|---:|---:|---|",
    ]
    for name, r in doc["ratios"].items():
        mark = "met" if r["met"] else "**missed**"
        if r.get("config"):
            mark += f" (at {r['config']})"
        lines.append(f"| {name} | {_fmt(r['value'])} | ≤ {r['target']} | {mark} |")
    lines += history.section(doc)
    lines += many_section(doc)
    lines += [
        "",
        "## Per arm and configuration",
        "",
        "Seconds: median (min–max) of the repetitions; phases are medians. Rewritten = files "
        "replaced / bytes written by the commit; copied = unchanged rows rewritten.",
        "",
        "| config | arm | ok | median s (min–max) | "
        + " | ".join(PHASES)
        + " | keys/s | files rewritten | MB written | rows copied |",
        "|---|---|---|---:|" + "---:|" * len(PHASES) + "---:|---:|---:|---:|",
    ]
    for r in doc["results"]:
        if r["status"] == "partial":
            lines.append(
                f"| {r['config']} | {r['arm']} | yes | {_fmt(r['median_s'])} "
                f"({_fmt(r['min_s'])}–{_fmt(r['max_s'])}) |"
                + " — |" * len(PHASES)
                + f" {r['keys_per_s']:,.0f} | — | — | — |"
            )
            continue
        if r["status"] != "ok":
            lines.append(
                f"| {r['config']} | {r['arm']} | **{r['status']}** | — |"
                + " — |" * len(PHASES)
                + f" — | — | — | — |  {r.get('error', '')}"
            )
            continue
        ph = " | ".join(_fmt(r["phases_median_s"][p]) for p in PHASES)
        rw = r["rewrite"]
        lines.append(
            f"| {r['config']} | {r['arm']} | yes | {_fmt(r['median_s'])} "
            f"({_fmt(r['min_s'])}–{_fmt(r['max_s'])}) | {ph} | {r['keys_per_s']:,.0f} | "
            f"{rw['files_removed']}→{rw['files_added']} | {rw['bytes_written'] / 1e6:.1f} | "
            f"{rw['rows_copied']:,} |"
        )
    lines += [
        "",
        "## Floor (this machine's measured Parquet rates)",
        "",
        f"Read {doc['rates']['read_bps'] / 1e6:.0f} MB/s, write "
        f"{doc['rates']['write_bps'] / 1e6:.0f} MB/s (pyarrow, snappy, median of 3).",
        "",
        "| config | files touched | MB read | MB written | floor s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, f in doc["floors"].items():
        lines.append(
            f"| {name} | {f['files_touched']} | {f['bytes_read'] / 1e6:.1f} | "
            f"{f['bytes_written'] / 1e6:.1f} | {f['seconds']:.3f} |"
        )
    lg = doc["log_growth"]
    lines += ["", "## Log growth", ""]
    if lg.get("per_run"):
        lines += [
            f"One {lg['table_rows']:,}-row table; {lg['filler_commits']} filler commits "
            f"({lg['filler_seconds']} s), {lg['data_checkpoints']} checkpoints on the data table. "
            "At each mark one run is not timed: the first after the filler, which finds "
            "versions delta-rs wrote without a checksum file (an hourly job finds its own).",
            "",
            "| commit | median s | min s | max s |",
            "|---:|---:|---:|---:|",
        ]
        for mark, v in sorted(lg["per_run"].items(), key=lambda kv: int(kv[0])):
            lines.append(
                f"| {mark} | {_fmt(v['median_s'])} | {_fmt(v['min_s'])} | {_fmt(v['max_s'])} |"
            )
    lines += capture_section(doc)
    lines += ["", "## Notes", "", *doc["notes"], ""]
    return "\n".join(lines)


def many_section(doc: dict) -> list[str]:
    """Many tables in one hourly run (``bench.many``): per arm, wall time, seconds per table
    amortised and Spark jobs per table."""
    m = doc.get("many")
    if not m:
        return []
    lines = [
        "",
        f"## Many tables in one hourly run ({m['config']})",
        "",
        f"One `cdc_merge` run over every table (one Spark application, {m['concurrency']} "
        "tables at a time by default: its task slots); the sequential baseline "
        "(`merge.table_concurrency: 1`, as before) runs a subset of the tables, delta-rs "
        "applies the same guarded MERGE table by table. Every table checked after every arm.",
        "",
        "| arm | tables | wall s | s per table | Spark jobs per table |",
        "|---|---:|---:|---:|---:|",
    ]
    for arm, r in m["arms"].items():
        lines.append(
            f"| {arm} | {r['tables']} | {_fmt(r['wall_s'], 1)} | {_fmt(r['s_per_table'])} | "
            f"{_fmt(r['spark_jobs_per_table'], 1)} |"
        )
    return lines


def capture_section(doc: dict) -> list[str]:
    """The PostgreSQL capture's rates (``capture.bench``), when the run measured them."""
    c = doc.get("capture")
    if not c:
        return []
    lines = ["", "## Capture (PostgreSQL -> DMS-format files)", ""]
    if c["status"] != "ok":
        return [*lines, f"Not measured: {c.get('reason', c['status'])}"]
    lines += [
        f"`capture.bench.measure` on a throwaway PostgreSQL 15 cluster, {c['measured_at']} "
        f"(load average before: {c['load_before']}): a full load (`init`: slot, snapshot, "
        "LOAD files), then `stream --until-idle` over changes committed beforehand (receive, "
        "decode pgoutput, convert, write fsynced Parquet).",
        "",
        "| step | rows | seconds | rate |",
        "|---|---:|---:|---:|",
        f"| full load | {c['load_rows']:,} | {c['load_seconds']:.2f} | "
        f"{c['load_rows_per_s']:,} rows/s |",
        f"| stream ({c['transactions']} transactions, {c['files']} file(s)) | {c['changes']:,} | "
        f"{c['stream_seconds']:.2f} | {c['changes_per_s']:,} changes/s |",
    ]
    return lines


def chart(doc: dict, path: Path) -> None:
    """Each arm's total per configuration with its phases stacked in proportion (linear axis)
    and the floor; many tables (seconds per table, amortised); log growth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in doc["results"] if r["status"] == "ok"]  # partial ones have no phases
    fig, (ax, ax_many, ax2) = plt.subplots(
        1, 3, figsize=(16, 6), gridspec_kw={"width_ratios": [4, 1, 1]}, constrained_layout=True
    )
    labels = [f"{r['config']}\n{r['arm']}" for r in ok]
    bottom = [0.0] * len(ok)
    for phase in PHASES:
        vals = [r["phases_median_s"][phase] for r in ok]
        ax.bar(range(len(ok)), vals, bottom=bottom, label=phase)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    floors = [doc["floors"][r["config"]]["seconds"] for r in ok]
    ax.scatter(range(len(ok)), floors, marker="_", s=400, color="black", label="floor", zorder=3)
    ax.set_xticks(range(len(ok)), labels, rotation=90, fontsize=7)
    ax.set_ylabel("seconds per hourly run (median; phases stacked)")
    ax.legend(fontsize=8)
    ax.set_title("Hourly run by arm and configuration (warm session)")
    many = (doc.get("many") or {}).get("arms", {})
    ax_many.bar(range(len(many)), [r["s_per_table"] for r in many.values()], color="tab:gray")
    ax_many.set_xticks(range(len(many)), list(many), rotation=90, fontsize=7)
    ax_many.set_ylabel("seconds per table (amortised)")
    ax_many.set_title((doc.get("many") or {}).get("config", "many tables: not run"), fontsize=9)
    per_run = doc["log_growth"].get("per_run", {})
    marks = sorted(per_run, key=int)
    ax2.plot([int(m) for m in marks], [per_run[m]["median_s"] for m in marks], marker="o")
    ax2.set_xscale("log")
    ax2.set_ylim(bottom=0)
    ax2.set_xlabel("commits in the log")
    ax2.set_ylabel("job seconds per run")
    ax2.set_title("Log growth")
    fig.savefig(path, dpi=110)
    plt.close(fig)
