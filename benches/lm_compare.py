#!/usr/bin/env python3
"""Prefill and decode speed of a GGUF model in deepspark and in llama.cpp, same file,
same prompt, same thread count, greedy.

    python3 benches/lm_compare.py PATH.gguf [--threads 2] [--tokens 64] [--runs 3]

Files in the shapes of SmolLM2-1.7B and Qwen2.5-Coder-1.5B (random Q4_K_M weights, never committed):

    python3 benches/kquant_gguf.py .models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/q4_k_m-1.7b.gguf
    python3 benches/kquant_gguf.py .models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/q4_k_m-qwen1.5b.gguf \\
        --shape qwen2.5-coder-1.5b

deepspark is timed through `deepspark model run` (the release binary, built first with
`cargo build --release`), once per weight format (`--lm-weights q8_0|f32|as-stored`); it
reports its own prefill and decode times on stderr. llama.cpp is timed through
llama-cpp-python when it is installed (`pip install llama-cpp-python` builds it from source,
many minutes on 2 cores); otherwise that half is skipped. The last two lines are always

    prefill tokens/s ratio candle/llama.cpp: X.XX
    decode tokens/s ratio candle/llama.cpp: X.XX

(`n/a` when llama.cpp was skipped), each with deepspark's best weight format for that figure
("candle": the name the issue that asked for it gave deepspark's in-process engine, which reads the
file through candle). The decode line stays last, as it was before the prefill line was added. The
best of --runs is kept for each figure.
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = (
    "Review this change and list the bugs you find, one per line, with the line they are on.\n\n"
    + "\n".join(
        [
            "def total(xs):",
            "    s = 0",
            "    for i in range(1, len(xs)):",
            "        s += xs[i]",
            "    return s",
            "",
            "def last(xs):",
            "    return xs[len(xs)]",
            "",
            "def load(path):",
            "    with open(path) as f:",
            "        return eval(f.read())",
            "",
            "def mean(xs):",
            "    return total(xs) / len(xs) if xs else 0",
            "",
            "def window(xs, k):",
            "    return [xs[i:i + k - 1] for i in range(len(xs) - k)]",
            "",
            "def parse(line):",
            "    key, value = line.split('=')",
            "    return key.strip(), int(value.strip())",
        ]
    )
)
# The ChatML prompt SmolLM2 and Qwen2 are trained on (what `deepspark model run` renders).
CHATML = f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"


def candle(binary, gguf, weights, threads, tokens):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), CANDLE_NUM_THREADS=str(threads))
    cmd = [str(binary), "model", "run", str(gguf), "--prompt", PROMPT, "--max-tokens", str(tokens),
           "--lm-weights", weights, "--device", "cpu"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    m = re.search(r"prompt (\d+) tokens in ([\d.]+)s \(([\d.]+) tokens/s\); generated (\d+) tokens in ([\d.]+)s "
                  r"\(([\d.]+) tokens/s\)", out.stderr)
    if not m:
        sys.exit(f"cannot read deepspark's timings from:\n{out.stderr}")
    return int(m[1]), float(m[3]), int(m[4]), float(m[6])


def llama_cpp(gguf, threads, tokens):
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(model_path=str(gguf), n_threads=threads, n_threads_batch=threads, n_ctx=2048, verbose=False)
    ids = llm.tokenize(CHATML.encode(), add_bos=False, special=True)
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    t1 = time.perf_counter()
    generated = 0
    for _ in range(tokens - 1):
        tok = llm.sample(top_k=1, temp=0.0)
        generated += 1
        llm.eval([tok])
    t2 = time.perf_counter()
    return len(ids), len(ids) / (t1 - t0), tokens, generated / (t2 - t1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64, help="tokens generated per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--binary", type=Path, default=ROOT / "target/release/deepspark")
    ap.add_argument("--weights", default="q8_0,f32,as-stored", help="deepspark weight formats to time")
    args = ap.parse_args()
    if not args.binary.exists():
        sys.exit(f"no {args.binary}: run `cargo build --release` first")
    print(f"model {args.gguf.name}, {args.threads} threads, {args.tokens} tokens generated, best of {args.runs}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other work on the machine slows both)")
    if args.threads > 1:
        print("note: CANDLE_NUM_THREADS sets deepspark's language-model threads (default: one per core); this script sets it")
    best_prefill, best_decode = 0.0, 0.0
    for w in args.weights.split(","):
        runs = [candle(args.binary, args.gguf, w, args.threads, args.tokens) for _ in range(args.runs)]
        prompt = runs[0][0]
        prefill = max(r[1] for r in runs)
        decode = max(r[3] for r in runs)
        best_prefill, best_decode = max(best_prefill, prefill), max(best_decode, decode)
        print(f"deepspark {w:<9} prompt {prompt} tokens: prefill {prefill:7.1f} tokens/s, decode {decode:6.1f} tokens/s")
    ref = None
    for _ in range(args.runs):
        r = llama_cpp(args.gguf, args.threads, args.tokens)
        if r is None:
            break
        ref = r if ref is None else (r[0], max(ref[1], r[1]), r[2], max(ref[3], r[3]))
    if ref is None:
        print("llama.cpp skipped: llama-cpp-python is not installed (pip install llama-cpp-python)")
        print("prefill tokens/s ratio candle/llama.cpp: n/a")
        print("decode tokens/s ratio candle/llama.cpp: n/a")
        return
    print(f"llama.cpp        prompt {ref[0]} tokens: prefill {ref[1]:7.1f} tokens/s, decode {ref[3]:6.1f} tokens/s")
    print(f"prefill tokens/s ratio candle/llama.cpp: {best_prefill / ref[1]:.2f}")
    print(f"decode tokens/s ratio candle/llama.cpp: {best_decode / ref[3]:.2f}")


if __name__ == "__main__":
    main()
