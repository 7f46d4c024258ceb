#!/usr/bin/env python3
"""A K-quant variant of ../shared/tools/big_random_gguf.py: a GGUF file in the shape of a model users run, with
SmolLM2-135M's tokenizer and chat template, its weights random K-quant super-blocks (random bytes, small f16
scales: every scale, minimum and bit pattern occurs) typed as llama.cpp's Q4_K_M types them (Q4_K; Q6_K for
token_embd, the output layer of these tied-embedding models, and for attn_v/ffn_down of the layers its
use_more_bits picks), or all Q4_K (--type q4_k). For speed only (the text it writes is noise); never commit the
file. gguf-py (0.19.0) cannot quantise to K-quants (NotImplementedError), hence the random blocks. Needs
`pip install gguf numpy`.

Shapes (--shape):
  smollm2-1.7b (default)  llama, 24 layers, width 2048, FFN 8192, 32 heads (32 for keys and values),
                          rope base 130000, tied embeddings; 1.06 GB as Q4_K_M.
  qwen2.5-coder-1.5b      qwen2, 28 layers, width 1536, FFN 8960, 12 heads, 2 key/value heads, f32 biases on
                          q/k/v, rope base 1e6, RMS epsilon 1e-6, context 32768, tied embeddings (as
                          Qwen2.5-Coder-1.5B's config.json has it: `tie_word_embeddings: true`, so no
                          output.weight); 0.85 GB as Q4_K_M, 1386M parameters. Its vocabulary is SmolLM2's 49152
                          tokens, not Qwen's 151936 (no Qwen tokenizer is at hand), so its embedding, which is
                          also the output layer, has 75M weights instead of 233M: the real Q4_K_M file is
                          about 0.13 GB larger and reads that much more per generated token, which this file
                          does not measure.

    python3 benches/kquant_gguf.py .models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/q4_k_m-1.7b.gguf
    python3 benches/kquant_gguf.py .models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/q4_k_m-qwen1.5b.gguf \\
        --shape qwen2.5-coder-1.5b
    python3 benches/lm_compare.py /tmp/q4_k_m-1.7b.gguf --tokens 32 --runs 2 --weights as-stored

What they measured, with the machine's load average beside it: README.md, the language model's speed.
"""
import argparse

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFWriter

# architecture, layers, width, FFN, heads, key/value heads, rope base, RMS epsilon, context, biases on q/k/v
SHAPES = {
    'smollm2-1.7b': dict(arch='llama', L=24, D=2048, F=8192, H=32, KV=32, rope=130000.0, eps=1e-5, ctx=8192,
                         bias=False, name='random-1.7b-shape'),
    'qwen2.5-coder-1.5b': dict(arch='qwen2', L=28, D=1536, F=8960, H=12, KV=2, rope=1e6, eps=1e-6, ctx=32768,
                               bias=True, name='random-qwen2.5-coder-1.5b-shape'),
}
V = 49152  # SmolLM2's vocabulary

ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
ap.add_argument('src', help="a GGUF file whose tokenizer is copied (SmolLM2-135M's)")
ap.add_argument('out', help='where to write the file (not in the repository)')
ap.add_argument('--shape', choices=SHAPES, default='smollm2-1.7b')
ap.add_argument('--type', choices=('q4_k_m', 'q4_k'), default='q4_k_m',
                help="q4_k_m: llama.cpp's Q4_K_M mixture of Q4_K and Q6_K; q4_k: every matrix Q4_K")
ap.add_argument('--pure', dest='type', action='store_const', const='q4_k', help='the same as --type q4_k')
ap.add_argument('--layers', type=int, help="fewer (or more) layers than the shape's, for quick checks")
args = ap.parse_args()
s = SHAPES[args.shape]
pure = args.type == 'q4_k'
L = args.layers or s['L']
D, F, H, KV = s['D'], s['F'], s['H'], s['KV']
r = GGUFReader(args.src)
w = GGUFWriter(args.out, s['arch'])
def field(name):
    f = r.fields[name]
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode('utf-8', 'replace') for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode('utf-8')
    return f.parts[f.data[0]].tolist()[0]
w.add_name(f"{s['name']}-{args.type}")
w.add_context_length(s['ctx']); w.add_embedding_length(D); w.add_block_count(L); w.add_feed_forward_length(F)
w.add_head_count(H); w.add_head_count_kv(KV); w.add_rope_dimension_count(D // H); w.add_rope_freq_base(s['rope'])
w.add_layer_norm_rms_eps(s['eps']); w.add_file_type(14 if pure else 15)  # llama.cpp's MOSTLY_Q4_K_S / _M
w.add_tokenizer_model(field('tokenizer.ggml.model'))
try: w.add_tokenizer_pre(field('tokenizer.ggml.pre'))
except KeyError: pass
toks = field('tokenizer.ggml.tokens'); w.add_token_list(toks)
w.add_token_types(field('tokenizer.ggml.token_type')); w.add_token_merges(field('tokenizer.ggml.merges'))
for k, f in (('tokenizer.ggml.bos_token_id', w.add_bos_token_id), ('tokenizer.ggml.eos_token_id', w.add_eos_token_id),
             ('tokenizer.ggml.unknown_token_id', w.add_unk_token_id), ('tokenizer.ggml.padding_token_id', w.add_pad_token_id)):
    if k in r.fields: f(field(k))
if 'tokenizer.chat_template' in r.fields: w.add_chat_template(field('tokenizer.chat_template'))
assert len(toks) == V, len(toks)
rng = np.random.default_rng(0)
bias_rng = np.random.default_rng(1)  # apart, so the smollm2-1.7b file's blocks stay what they were
SIZE = {Q.Q4_K: 144, Q.Q6_K: 210}
def t(name, shape, qt=Q.Q4_K):
    if qt is None:
        w.add_tensor(name, np.ones(shape, dtype=np.float32)); return
    rows, cols = shape
    blocks = rng.integers(0, 256, size=(rows * cols // 256, SIZE[qt]), dtype=np.uint8)
    def f16s(lo, hi):
        return rng.uniform(lo, hi, size=blocks.shape[0]).astype(np.float16).view(np.uint8).reshape(-1, 2)
    if qt == Q.Q4_K:   # |w| up to ~0.06: d * 63 * 15 and dmin * 63
        blocks[:, 0:2] = f16s(3e-5, 7e-5); blocks[:, 2:4] = f16s(2e-4, 6e-4)
    else:              # d * 127 * 32
        blocks[:, 208:210] = f16s(8e-6, 2e-5)
    raw = blocks.reshape(rows, cols // 256 * SIZE[qt])
    w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qt)
def bias(name, n):  # llama.cpp keeps 1-D tensors in f32
    w.add_tensor(name, (bias_rng.standard_normal(n, dtype=np.float32) * 0.02))
def more_bits(i):
    return i < L // 8 or i >= 7 * L // 8 or (i - L // 8) % 3 == 2
kv = D // H * KV
t('token_embd.weight', (V, D), Q.Q4_K if pure else Q.Q6_K)
for i in range(L):
    p = f'blk.{i}.'
    big = Q.Q4_K if pure or not more_bits(i) else Q.Q6_K
    t(p + 'attn_norm.weight', (D,), None); t(p + 'ffn_norm.weight', (D,), None)
    t(p + 'attn_q.weight', (D, D)); t(p + 'attn_k.weight', (kv, D)); t(p + 'attn_v.weight', (kv, D), big)
    if s['bias']:
        bias(p + 'attn_q.bias', D); bias(p + 'attn_k.bias', kv); bias(p + 'attn_v.bias', kv)
    t(p + 'attn_output.weight', (D, D))
    t(p + 'ffn_gate.weight', (F, D)); t(p + 'ffn_up.weight', (F, D)); t(p + 'ffn_down.weight', (D, F), big)
t('output_norm.weight', (D,), None)
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
