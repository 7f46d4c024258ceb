"""Integration test of the Spark job on local[2] (run by tests/cli/spark.rs, or by hand):

  python examples/spark/test_job.py --deepspark target/debug/deepspark [--model DIR]

1. Three temporary repositories with scripted histories are mined by the job, one task
   each; the Parquet records must equal `deepspark mine --jsonl` run on each one alone.
2. Those records (hunks and commits, with a malformed line among them) are scored by the
   job in 3 partitions; ordered by `seq`, they must equal `deepspark score --jsonl` run
   serially on the same lines: same order, same numbers.
Exits non-zero with a message on the first difference.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepspark_spark as job  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402


def git(repo, *args, date=None):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=repo)
    if date is not None:
        stamp = f"{date} +0000"
        env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    env.update(GIT_AUTHOR_NAME="T", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="T", GIT_COMMITTER_EMAIL="t@example.com")
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)


def scripted_repo(root, k):
    """A history with a bug introduced and fixed 400 days later, k extra clean commits."""
    repo = os.path.join(root, f"repo{k}")
    os.makedirs(os.path.join(repo, "src"))
    git(repo, "init", "-q", "-b", "main")
    t = 1_700_000_000
    def commit(path, text, msg):
        nonlocal t
        t += 3600
        with open(os.path.join(repo, path), "w") as f:
            f.write(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", msg, date=t)
    commit("src/a.c", f"int f(int n) {{\n    int i = 1;\n    return n - i + {k};\n}}\n", "Add f")
    for j in range(k + 2):
        commit(f"src/b{j}.c", f"int b{j}(void) {{\n    return {j};\n}}\n", f"Add b{j}")
    t += 400 * 86400
    commit("src/a.c", f"int f(int n) {{\n    int i = 0;\n    return n - i + {k};\n}}\n", "Fix the start of f")
    commit("src/c.c", "int c(void) {\n    return 7;\n}\n", "Add c")
    return repo


def run(binary, args, stdin=None):
    p = subprocess.run([binary, *args], input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if p.returncode not in (0, 1):
        sys.exit(f"{binary} {' '.join(args)} exited {p.returncode}: {p.stderr.decode()}")
    return p.stdout.decode().splitlines()


def canonical(rows):
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--deepspark", required=True)
    a = p.parse_args()
    binary = os.path.abspath(a.deepspark)
    root = tempfile.mkdtemp(prefix="deepspark-spark-")
    repos = [scripted_repo(root, k) for k in range(3)]
    with open(os.path.join(root, "repos.txt"), "w") as f:
        f.write("\n".join(repos) + "\n")
    serial = [line for r in repos for line in run(binary, ["mine", "--jsonl", "-C", r])]
    assert any('"buggy":true' in l for l in serial), "the scripted bugs were not found"

    spark = SparkSession.builder.master("local[2]").appName("deepspark-test").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.addPyFile(job.__file__)
    try:
        out = os.path.join(root, "mined")
        job.cmd_mine(spark, argparse.Namespace(repos=os.path.join(root, "repos.txt"), out=out, deepspark=binary, at="HEAD", grace_days=None, jsonl_out=None))
        got = [r.asDict(recursive=True) for kind in ("commits", "hunks") for r in spark.read.parquet(os.path.join(out, kind)).collect()]
        want = [json.loads(l) for l in serial]
        if canonical(got) != canonical(want):
            sys.exit(f"mined records differ: {len(got)} from Spark, {len(want)} serially")
        print(f"mine: {len(got)} records from 3 repositories equal the serial runs")

        lines = serial[:]
        lines.insert(3, "{not json")
        data = os.path.join(root, "records.jsonl")
        with open(data, "w") as f:
            f.write("\n".join(lines) + "\n")
        expected = [json.loads(l) for l in run(binary, ["score", "--jsonl"], stdin=("\n".join(lines) + "\n").encode())]
        scored = os.path.join(root, "scored")
        job.cmd_score(spark, argparse.Namespace(input=data, out=scored, deepspark=binary, partitions=3))
        rows = [r.asDict(recursive=True) for r in spark.read.parquet(scored).collect()]
        errors = [r for r in rows if r.get("error")]
        rows = sorted((r for r in rows if not r.get("error")), key=lambda r: r["seq"])
        expected_ok = [e for e in expected if "error" not in e]
        if len(errors) != 1 or len(rows) != len(expected_ok):
            sys.exit(f"scored {len(rows)} records and {len(errors)} errors; serially {len(expected_ok)} and 1")
        for i, (g, e) in enumerate(zip(rows, expected_ok)):
            if g["commit_id"] != e["commit_id"] or g.get("file") != e.get("file"):
                sys.exit(f"record {i}: order differs ({g['commit_id']} vs {e['commit_id']})")
            for k in ("risk", "logit", "p_clean", "verdict", "hunks", "max_hunk_risk"):
                if e.get(k) != g.get(k) and not (k not in e and g.get(k) is None):
                    sys.exit(f"record {i}: {k} is {g.get(k)} from Spark, {e.get(k)} serially")
        print(f"score: {len(rows)} records in 3 partitions equal the serial run (order and numbers), 1 error record")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
