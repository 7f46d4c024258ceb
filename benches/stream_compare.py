#!/usr/bin/env python3
"""Throughput of the stream filter, side by side in one run:

1. `deepspark score --jsonl` against `deepspark eval` on the same hunk records (the filter
   should reach at least 0.8x eval's hunks/s: it parses and re-writes every record);
2. with pyspark installed, the Spark job (examples/spark/) scoring the same records on
   local[1] against local[2] (how close to 2x it scales on 2 cores).

    python3 benches/stream_compare.py HUNKS.jsonl[.gz] [--deepspark target/release/deepspark] [--limit N]

The input is a hunk file in the schema of the training data (e.g. one project of
../shared/data/jit/). Ends with `score/eval throughput ratio: X.XX` and, with pyspark,
`spark local[2]/local[1] speed-up: X.XX`.
"""
import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, **kw):
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, **kw)
    dt = time.perf_counter() - t
    if p.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.decode()[-2000:]}")
    return dt, p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hunks")
    ap.add_argument("--deepspark", default=os.path.join(ROOT, "target/release/deepspark"))
    ap.add_argument("--limit", type=int, default=4000, help="hunk records to use")
    a = ap.parse_args()
    opener = gzip.open if a.hunks.endswith(".gz") else open
    with opener(a.hunks, "rt") as f:
        lines = [l for _, l in zip(range(a.limit), f)]
    tmp = tempfile.mkdtemp(prefix="deepspark-stream-")
    data = os.path.join(tmp, "bench.hunks.jsonl")
    with open(data, "w") as f:
        f.writelines(lines)
    n = len(lines)
    threads = os.cpu_count()
    print(f"{n} hunk records, {threads} cores, {a.deepspark}")
    # One warm-up each (page cache, the model's first load), then the timed runs.
    timed([a.deepspark, "eval", "--data", data, "--split", "all"])
    eval_t, _ = timed([a.deepspark, "eval", "--data", data, "--split", "all"])
    with open(data, "rb") as f:
        score_t, out = timed([a.deepspark, "score", "--jsonl"], stdin=f)
    assert out.count(b"\n") == n, "one output line per record"
    print(f"eval:          {eval_t:6.2f}s  {n / eval_t:7.0f} hunks/s")
    print(f"score --jsonl: {score_t:6.2f}s  {n / score_t:7.0f} hunks/s")
    print(f"score/eval throughput ratio: {eval_t / score_t:.2f}")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        print("spark: skipped (pip install pyspark; Java 17)")
        return
    sys.path.insert(0, os.path.join(ROOT, "examples/spark"))
    import argparse as ap2
    import deepspark_spark as job
    from pyspark.sql import SparkSession

    times = {}
    for cores in (1, 2):
        spark = SparkSession.builder.master(f"local[{cores}]").config("spark.ui.enabled", "false").getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
        spark.sparkContext.addPyFile(job.__file__)
        best = None
        for _ in range(2):
            t = time.perf_counter()
            job.cmd_score(spark, ap2.Namespace(input=data, out=os.path.join(tmp, f"out{cores}"), deepspark=a.deepspark, partitions=cores))
            dt = time.perf_counter() - t
            best = dt if best is None else min(best, dt)
        spark.stop()
        times[cores] = best
        print(f"spark local[{cores}]: {best:6.2f}s  {n / best:7.0f} hunks/s ({n / best / cores:.0f} per core)")
    print(f"spark local[2]/local[1] speed-up: {times[1] / times[2]:.2f}")


if __name__ == "__main__":
    main()
