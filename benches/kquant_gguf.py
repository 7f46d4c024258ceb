#!/usr/bin/env python3
"""A K-quant variant of ../shared/tools/big_random_gguf.py: a GGUF file in SmolLM2-1.7B's shape (24 layers,
width 2048, FFN 8192, 32 heads) with SmolLM2-135M's tokenizer and chat template, its weights random K-quant
super-blocks (random bytes, small f16 scales: every scale, minimum and bit pattern occurs) typed as llama.cpp's
Q4_K_M types them (Q4_K; Q6_K for token_embd and for attn_v/ffn_down of the layers its use_more_bits picks), or
all Q4_K (--pure). For speed only (the text it writes is noise); never commit the file (about 1.06 GB).
gguf-py (0.19.0) cannot quantise to K-quants (NotImplementedError), hence the random blocks. Needs `pip install gguf numpy`.

    python3 benches/kquant_gguf.py .models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/q4_k_m-1.7b.gguf
    python3 benches/lm_compare.py /tmp/q4_k_m-1.7b.gguf --tokens 32 --runs 2 --weights as-stored
"""
import sys, numpy as np, gguf
from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType as Q
src, out = sys.argv[1], sys.argv[2]
pure = '--pure' in sys.argv
L = int(sys.argv[sys.argv.index('--layers') + 1]) if '--layers' in sys.argv else 24
D, F, H, KV, V = 2048, 8192, 32, 32, 49152
r = GGUFReader(src)
w = GGUFWriter(out, 'llama')
def field(name):
    f = r.fields[name]
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode('utf-8', 'replace') for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode('utf-8')
    return f.parts[f.data[0]].tolist()[0]
w.add_name('random-1.7b-shape-q4_k_m' if not pure else 'random-1.7b-shape-q4_k')
w.add_context_length(8192); w.add_embedding_length(D); w.add_block_count(L); w.add_feed_forward_length(F)
w.add_head_count(H); w.add_head_count_kv(KV); w.add_rope_dimension_count(D // H); w.add_rope_freq_base(130000.0)
w.add_layer_norm_rms_eps(1e-5); w.add_file_type(15 if not pure else 14)
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
def more_bits(i):
    return i < L // 8 or i >= 7 * L // 8 or (i - L // 8) % 3 == 2
t('token_embd.weight', (V, D), Q.Q4_K if pure else Q.Q6_K)
for i in range(L):
    p = f'blk.{i}.'
    big = Q.Q4_K if pure or not more_bits(i) else Q.Q6_K
    t(p + 'attn_norm.weight', (D,), None); t(p + 'ffn_norm.weight', (D,), None)
    t(p + 'attn_q.weight', (D, D)); t(p + 'attn_k.weight', (D * KV // H, D)); t(p + 'attn_v.weight', (D * KV // H, D), big)
    t(p + 'attn_output.weight', (D, D))
    t(p + 'ffn_gate.weight', (F, D)); t(p + 'ffn_up.weight', (F, D)); t(p + 'ffn_down.weight', (D, F), big)
t('output_norm.weight', (D,), None)
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
