#!/usr/bin/env python3
"""deepspark's risk network in PyTorch, on the same weights and inputs: scores and speed.

Runs `cargo bench --bench torch_inputs` (candle scores 256 synthetic hunks of the embedded
default model, timed, and writes the inputs), re-implements the network from
weights/model.safetensors in PyTorch, scores the same hunks in the same length-sorted
batches of 32 with the same number of threads, and prints the largest score difference and
the speed ratio (candle time / PyTorch time: <= 1.0 means deepspark is at least as fast).

    python3 benches/torch_compare.py [--threads N] [--write-reference]

--write-reference stores 16 of the inputs with PyTorch's logits in
tests/fixtures/torch_reference.json, which `cargo test` checks candle against
(model::tests in tests/cli/model.rs), so the comparison runs without PyTorch.
Skips with a message (exit 0) when PyTorch or safetensors is not installed.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

try:
    import torch
    from safetensors.torch import load_file
except ImportError as e:  # the comparison is optional
    print(f"skipped: {e.name} is not installed (pip install torch safetensors)")
    sys.exit(0)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def forward(w, cfg, ids, feats):
    """The network of src/model/net.rs (inference mode), for one padded batch."""
    b, t = ids.shape
    d, h = cfg["d_model"], cfg["n_heads"]
    dh = d // h
    mask = (ids >= 0).float()
    ids = ids.clamp(min=0)
    x = w["tok.weight"][ids] + w["pos.weight"][:t]
    bias = ((mask - 1.0) * 1e9).reshape(b, 1, 1, t)
    ln = torch.nn.functional.layer_norm
    lin = torch.nn.functional.linear
    for i in range(cfg["n_layers"]):
        p = lambda n: w[f"blocks.{i}.{n}"]
        y = ln(x, (d,), p("ln1.weight"), p("ln1.bias"), 1e-5)
        qkv = lin(y, p("qkv.weight"), p("qkv.bias")).reshape(b, t, 3, h, dh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + bias, dim=-1)
        ctx = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + lin(ctx, p("out.weight"), p("out.bias"))
        y = ln(x, (d,), p("ln2.weight"), p("ln2.bias"), 1e-5)
        x = x + lin(torch.nn.functional.gelu(lin(y, p("ff1.weight"), p("ff1.bias"))), p("ff2.weight"), p("ff2.bias"))
    x = ln(x, (d,), w["norm.weight"], w["norm.bias"], 1e-5)
    tok = lin(x, w["token_head.weight"], w["token_head.bias"]).squeeze(2)
    if cfg.get("bag"):
        tok = tok + w["bag.weight"][ids].squeeze(2)
    pooled = (tok * mask).sum(1) / mask.sum(1)
    return pooled + lin(feats, w["feature_head.weight"], w["feature_head.bias"]).squeeze(1)


def score(w, cfg, ids, feats, batch):
    """Length-sorted batches, padded with -1, as model::forward_batched does."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = [0.0] * len(ids)
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            chunk = order[s : s + batch]
            t = max(1, max(len(ids[i]) for i in chunk))
            x = torch.full((len(chunk), t), -1, dtype=torch.long)
            for r, i in enumerate(chunk):
                x[r, : len(ids[i])] = torch.tensor(ids[i])
                if not ids[i]:
                    x[r, 0] = 0
            f = torch.tensor([feats[i][: cfg["n_features"]] for i in chunk], dtype=torch.float32)
            for r, v in zip(chunk, forward(w, cfg, x, f).tolist()):
                out[r] = v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--write-reference", action="store_true")
    args = ap.parse_args()
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    path = os.path.join(ROOT, "target", "torch_inputs.json")
    env["DEEPSPARK_TORCH_INPUTS"] = path
    subprocess.run(["cargo", "bench", "--bench", "torch_inputs"], cwd=ROOT, env=env, check=True)
    doc = json.load(open(path))
    cfg = doc["config"]
    w = load_file(os.path.join(ROOT, "weights", "model.safetensors"))
    w = {k: v.float() for k, v in w.items()}
    torch.set_num_threads(args.threads)
    ids, feats = doc["ids"], doc["features"]
    score(w, cfg, ids, feats, doc["batch"])  # warm-up
    times, logits = [], None
    for _ in range(7):
        t0 = time.perf_counter()
        logits = score(w, cfg, ids, feats, doc["batch"])
        times.append(time.perf_counter() - t0)
    t_torch = sorted(times)[len(times) // 2]
    diff = max(abs(a - b) for a, b in zip(logits, doc["candle_logits"]))
    t_candle = doc["candle_seconds"]
    print(f"pytorch {torch.__version__}: {len(ids)} hunks in {t_torch * 1e3:.1f} ms (median of 7), "
          f"{len(ids) / t_torch:.0f} hunks/s, {args.threads} thread(s)")
    print(f"candle:  {t_candle * 1e3:.1f} ms, {len(ids) / t_candle:.0f} hunks/s")
    print(f"ratio candle/pytorch time: {t_candle / t_torch:.2f} (<= 1.0: deepspark at least as fast)")
    print(f"largest logit difference: {diff:.2e}")
    if args.write_reference:
        pick = list(range(0, len(ids), 16))
        ref = {
            "source": f"benches/torch_compare.py, PyTorch {torch.__version__}, weights/model.safetensors",
            "ids": [ids[i] for i in pick],
            "features": [feats[i] for i in pick],
            "logits": [logits[i] for i in pick],
        }
        out = os.path.join(ROOT, "tests", "fixtures", "torch_reference.json")
        with open(out, "w") as f:
            json.dump(ref, f)
        print(f"wrote {out}")
    if diff > 1e-3:
        sys.exit(f"scores differ by {diff}")


main()
