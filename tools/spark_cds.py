"""Build a class-data-sharing archive of Spark + Delta for local JVMs (``make setup``).

A local ``spark-submit`` spends much of its start loading and verifying the same classes of
Spark, Scala and Delta, every time (each Airflow task of the local target starts one). The JVM
can map them from an archive instead (JDK's AppCDS, ``-XX:SharedArchiveFile``); this script
records one by running a small Delta workload (create, append, MERGE, read,
OPTIMIZE) under ``-XX:ArchiveClassesAtExit``. The archive is an optimisation only: a JVM that
cannot use it (another JDK, other jars) ignores it and starts as before.

    python tools/spark_cds.py [--archive .jars/spark-cds.jsa]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "jobs"))

from cdclake.session import CDS_ARCHIVE, interpreted, local_jars  # noqa: E402

log = logging.getLogger("spark_cds")


def workload(folder: str) -> None:
    """What a job run loads: a session, Delta create/append/MERGE/read/OPTIMIZE, JSON rows."""
    from delta.tables import DeltaTable

    from cdclake.session import build_session

    spark = build_session("local", app_name="cdclake-cds")
    path = f"{folder}/t"
    df = spark.range(100).selectExpr("id", "cast(id % 3 as string) as p", "now() as ts")
    df.write.format("delta").partitionBy("p").save(path)
    df.write.format("delta").mode("append").save(path)

    def merge() -> None:
        (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(df.alias("s"), "t.id = s.id and t.p = s.p")
            .whenMatchedUpdateAll(condition="s.ts > t.ts")
            .whenNotMatchedInsertAll()
            .execute()
        )

    merge()
    spark.read.format("delta").load(path).groupBy("p").count().collect()
    DeltaTable.forPath(spark, path).optimize().executeCompaction()
    df.write.parquet(f"{folder}/staged")
    spark.read.parquet(f"{folder}/staged").join(df, "id", "left_semi").count()
    spark.read.json(spark.sparkContext.parallelize(['{"a": 1}'])).collect()
    with interpreted(spark):  # the classes of the interpreted path too
        merge()
        spark.read.parquet(f"{folder}/staged").join(df, "id", "left_semi").count()
    spark.stop()


def build(archive: Path) -> int:
    spark_submit = Path(sys.executable).parent / "spark-submit"
    if not spark_submit.exists():
        import pyspark

        spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    with tempfile.TemporaryDirectory(prefix="cdclake-cds-") as folder:
        cmd = [
            str(spark_submit),
            "--master",
            "local[2]",
            "--jars",
            ",".join(local_jars()),
            "--conf",
            "spark.ui.enabled=false",
            "--driver-java-options",
            f"-XX:ArchiveClassesAtExit={partial} -Xlog:cds=off -Xlog:cds+dynamic=off",
            __file__,
            "--workload",
            folder,
        ]
        out = Path(folder) / "cds.log"
        with open(out, "w") as log_file:
            rc = subprocess.run(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT).returncode
        if rc != 0 or not partial.exists():
            # Not fatal: JVMs start without the archive, only slower.
            log.warning("no CDS archive (spark-submit exited %s):\n%s", rc, out.read_text()[-3000:])
            partial.unlink(missing_ok=True)
            return 0
    partial.replace(archive)
    log.info("CDS archive %s (%.0f MB)", archive, archive.stat().st_size / 1e6)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archive", type=Path, default=CDS_ARCHIVE)
    p.add_argument("--workload", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.workload:
        workload(args.workload)
        return 0
    return build(args.archive)


if __name__ == "__main__":
    sys.exit(main())
