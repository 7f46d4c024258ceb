#!/usr/bin/env python3
"""Two deepspark builds' decode speed on one GGUF file, run in alternation: build A, build B,
A, B, ... so that whatever else the machine does falls on both. On a shared machine one build's
speed moves by 10-25% from one minute to the next, more than most changes to the kernels; a
difference is believable when one build wins most rounds, not when one pair of runs differs.

    python3 benches/lm_alternate.py FILE.gguf BEFORE_BINARY AFTER_BINARY [--rounds 6] [--tokens 128]

Each run is `deepspark model run FILE --max-tokens N --lm-weights as-stored --device cpu` on a
short prompt; it prints each round's decode tokens/s, then each build's median and how many
rounds the second build won. Files in the shapes users run: see `lm_compare.py`.
"""

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

PROMPT = "Review this change and list the bugs you find, one per line."


def decode(binary, gguf, tokens):
    cmd = [str(binary), "model", "run", str(gguf), "--prompt", PROMPT, "--max-tokens", str(tokens),
           "--lm-weights", "as-stored", "--device", "cpu"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"generated (\d+) tokens in [\d.]+s \(([\d.]+) tokens/s\)", out.stderr)
    if out.returncode != 0 or not m:
        sys.exit(f"{binary} failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return float(m[2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf", type=Path)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--tokens", type=int, default=128, help="tokens generated per run")
    args = ap.parse_args()
    for b in (args.before, args.after):
        if not b.exists():
            sys.exit(f"no {b}")
    runs = {"before": [], "after": []}
    for r in range(1, args.rounds + 1):
        a = decode(args.before, args.gguf, args.tokens)
        b = decode(args.after, args.gguf, args.tokens)
        runs["before"].append(a)
        runs["after"].append(b)
        print(f"round {r}: before {a:6.1f} tokens/s, after {b:6.1f} tokens/s", flush=True)
    wins = sum(b > a for a, b in zip(runs["before"], runs["after"]))
    before, after = statistics.median(runs["before"]), statistics.median(runs["after"])
    print(f"median decode tokens/s: before {before:.1f}, after {after:.1f} ({after / before - 1:+.1%})")
    print(f"rounds the after build won: {wins} of {args.rounds}")


if __name__ == "__main__":
    main()
