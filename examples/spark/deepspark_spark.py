"""Run deepspark on Apache Spark: mine many repositories, or score a large set of diffs.

deepspark's two stream commands are the contract (see README.md, "Scale out"):
  deepspark mine -C REPO --jsonl   one repository's labelled history, as JSON lines
  deepspark score --jsonl          JSON lines in, the same lines with scores out, in order

This job only fans them out: one Spark task per repository for `mine`, and each partition
of the records piped through one `deepspark score --jsonl` for scoring (see pipe_score). Training stays on
one machine: `deepspark train --data` reads what `mine` wrote (as JSONL; see --jsonl-out).

  spark-submit --master local[*] --files target/release/deepspark \\
      examples/spark/deepspark_spark.py mine --repos repos.txt --out mined/
  spark-submit --master local[*] --files target/release/deepspark \\
      examples/spark/deepspark_spark.py score --input diffs.jsonl --out scored/

The binary is found, in order: --deepspark PATH, the file shipped with `--files`
(SparkFiles), `deepspark` on the executors' PATH. Repository paths must be readable by
the executors (a shared file system, or clones made there beforehand).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import zlib

from pyspark import SparkFiles
from pyspark.sql import SparkSession
from pyspark.sql import types as T

# The schema of the training data (../shared/data/README.md), as `deepspark mine` writes it.
COMMIT_SCHEMA = T.StructType(
    [
        T.StructField("commit_id", T.StringType()),
        T.StructField("project", T.StringType()),
        T.StructField("buggy", T.BooleanType()),
        T.StructField("fix", T.BooleanType()),
        T.StructField("fixed_by", T.ArrayType(T.StringType())),
        T.StructField("author_date", T.LongType()),
        T.StructField("subject", T.StringType()),
        T.StructField("diff", T.StringType()),
        T.StructField("diff_truncated", T.BooleanType()),
    ]
)
HUNK_SCHEMA = T.StructType(
    [
        T.StructField("commit_id", T.StringType()),
        T.StructField("project", T.StringType()),
        T.StructField("file", T.StringType()),
        T.StructField("hunk_header", T.StringType()),
        T.StructField("hunk", T.StringType()),
        T.StructField("commit_buggy", T.BooleanType()),
        T.StructField("hunk_label", T.IntegerType()),
    ]
)
# What `deepspark score --jsonl` adds (commit records get all of them, hunk records the first two).
SCORE_FIELDS = [
    T.StructField("risk", T.DoubleType()),
    T.StructField("logit", T.DoubleType()),
    T.StructField("p_clean", T.DoubleType()),
    T.StructField("verdict", T.StringType()),
    T.StructField("hunks", T.LongType()),
    T.StructField("max_hunk_risk", T.DoubleType()),
    T.StructField("error", T.StringType()),
    T.StructField("line", T.LongType()),
]


def find_binary(explicit):
    """The deepspark binary on this executor (called inside tasks)."""
    if explicit:
        return explicit
    try:
        shipped = SparkFiles.get("deepspark")
        if os.path.isfile(shipped):
            os.chmod(shipped, 0o755)
            return shipped
    except Exception:  # no SparkContext files on this executor
        pass
    found = shutil.which("deepspark")
    if not found:
        raise RuntimeError("deepspark not found: pass --deepspark PATH, ship it with --files, or put it on PATH")
    return found


def task_env(threads):
    """deepspark's environment in a task: as many threads as Spark gives the task cores
    (spark.task.cpus), not one per core of the machine, so tasks do not fight for cores."""
    return dict(os.environ, RAYON_NUM_THREADS=str(threads))


def task_cpus(spark):
    return int(spark.conf.get("spark.task.cpus", "1"))


def mine_one(binary, repo, at, grace_days, threads=1):
    """One task: `deepspark mine --jsonl` over one repository, its records as JSON strings."""
    cmd = [find_binary(binary), "mine", "--jsonl", "-C", repo, "--at", at]
    if grace_days is not None:
        cmd += ["--grace-days", str(grace_days)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, env=task_env(threads))
    if proc.returncode != 0:
        raise RuntimeError(f"deepspark mine failed on {repo}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode("utf-8").splitlines()


def cmd_mine(spark, args):
    with open(args.repos) as f:
        repos = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    binary, at, grace, threads = args.deepspark, args.at, args.grace_days, task_cpus(spark)
    # One partition per repository: one task each, as many in parallel as there are cores.
    lines = spark.sparkContext.parallelize(repos, max(1, len(repos))).flatMap(
        lambda repo: mine_one(binary, repo, at, grace, threads)
    )
    lines.cache()
    hunks = lines.filter(lambda l: "hunk_label" in json.loads(l))
    commits = lines.filter(lambda l: "hunk_label" not in json.loads(l))
    spark.read.schema(COMMIT_SCHEMA).json(commits).write.mode("overwrite").parquet(os.path.join(args.out, "commits"))
    spark.read.schema(HUNK_SCHEMA).json(hunks).write.mode("overwrite").parquet(os.path.join(args.out, "hunks"))
    if args.jsonl_out:
        lines.saveAsTextFile(args.jsonl_out)
    print(f"mined {len(repos)} repositories into {args.out}", file=sys.stderr)


def cmd_score(spark, args):
    sc = spark.sparkContext
    if args.input.endswith(".parquet") or _is_parquet_dir(args.input):
        df = spark.read.parquet(args.input)
        schema, records = df.schema, df.toJSON()
    else:
        records = sc.textFile(args.input)
        schema = spark.read.json(records).schema
    n = args.partitions or sc.defaultParallelism
    binary = args.deepspark
    # A commit's hunk records share its change features, so they must reach one
    # `deepspark score` in one run: partition by commit, keep input order inside each
    # partition, and number every record (`seq`) so the serial order can be restored.
    keyed = records.zipWithIndex().map(lambda p: ((_bucket(p[0], n), p[1]), _with_seq(p[0], p[1])))
    ordered = keyed.repartitionAndSortWithinPartitions(n, partitionFunc=lambda k: k[0]).values()
    threads = task_cpus(spark)
    piped = ordered.mapPartitions(lambda it: pipe_score(binary, it, threads))
    fields = list(schema.fields) + [f for f in SCORE_FIELDS if f.name not in schema.fieldNames()]
    if "seq" not in schema.fieldNames():
        fields.append(T.StructField("seq", T.LongType()))
    spark.read.schema(T.StructType(fields)).json(piped).write.mode("overwrite").parquet(args.out)
    print(f"scored {args.input} into {args.out}", file=sys.stderr)


def _is_parquet_dir(path):
    return os.path.isdir(path) and any(f.endswith(".parquet") for f in os.listdir(path))


def _bucket(line, n):
    """The partition of a record: by its commit, so a commit's records stay together."""
    try:
        key = json.loads(line).get("commit_id") or line
    except (ValueError, AttributeError):
        key = line
    return zlib.crc32(str(key).encode("utf-8")) % n


def _with_seq(line, seq):
    """The record with its input position added; a line that is not an object passes as it
    is (its error record comes back without `seq`)."""
    try:
        rec = json.loads(line)
    except ValueError:
        return line
    if not isinstance(rec, dict):
        return line
    rec["seq"] = seq
    return json.dumps(rec)


def pipe_score(binary, lines, threads=1):
    """One partition through `deepspark score --jsonl`, in order: what `RDD.pipe` does, but
    with the binary found on the executor and deepspark's exit codes read (1: some lines
    became error records, which are in the output; anything else: the task fails, where
    `RDD.pipe(checkCode=False)` would lose the partition's records silently)."""
    proc = subprocess.Popen(
        [find_binary(binary), "score", "--jsonl"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=task_env(threads)
    )

    def feed():
        try:
            for line in lines:
                proc.stdin.write(line.encode("utf-8") + b"\n")
        except BrokenPipeError:
            pass
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    for out in proc.stdout:
        yield out.decode("utf-8").rstrip("\n")
    feeder.join()
    if proc.wait() not in (0, 1):
        raise RuntimeError(f"deepspark score --jsonl exited with {proc.returncode}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--deepspark", help="path of the deepspark binary on the executors")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("mine", help="mine each repository of a list, one task per repository")
    m.add_argument("--repos", required=True, help="file with one repository path per line")
    m.add_argument("--out", required=True, help="output folder: commits/ and hunks/ as Parquet")
    m.add_argument("--at", default="HEAD", help="mine each repository as of this revision")
    m.add_argument("--grace-days", type=int, help="as `deepspark mine --grace-days`")
    m.add_argument("--jsonl-out", help="also write the records as JSON lines (what `deepspark train --data` reads)")
    s = sub.add_parser("score", help="score JSONL or Parquet records through `deepspark score --jsonl`")
    s.add_argument("--input", required=True, help="JSON lines (file or folder) or a Parquet folder/file")
    s.add_argument("--out", required=True, help="output Parquet folder: the records, their scores, and seq (input order)")
    s.add_argument("--partitions", type=int, help="input partitions (default: the cluster's parallelism)")
    args = p.parse_args(argv)
    spark = SparkSession.builder.appName(f"deepspark-{args.command}").getOrCreate()
    try:
        {"mine": cmd_mine, "score": cmd_score}[args.command](spark, args)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
