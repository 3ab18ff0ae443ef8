#!/usr/bin/env python3
"""Write the expected values for tests/unit/test_ops.c and test_dtype.c.

Expected outputs come from torch / numpy only (never from Tessera). Fixed seeds, small
shapes; everything lands in tests/fixtures/ops/*.npy (the whole folder stays well under
2 MB). Run from the repository root:

    python3 tools/gen_op_fixtures.py

Conventions the C tests rely on:
  - F16 / BF16 tensors are stored as their raw bit patterns, widened to int32 (the .npy
    reader has no uint16).
  - "Hash" inputs (the large attention test) are not stored: both sides compute
    hash_floats(n, salt) = float32(uint32(i * 2654435761 + salt * 40503)) * 2^-32 - 0.5.
"""
import os
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "ops")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(1234)


def save(name, a):
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(a))


def randn(*shape, scale=1.0, offset=0.0):
    return (rng.standard_normal(shape) * scale + offset).astype(np.float32)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def f16_bits(a):
    return a.astype(np.float16).view(np.uint16).astype(np.int32)


def bf16_bits(a):
    return t(a).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16).astype(np.int32)


def bf16_values(a):
    return t(a).to(torch.bfloat16).float().numpy()


def hash_floats(n, salt):
    i = np.arange(n, dtype=np.uint64)
    u = ((i * np.uint64(2654435761) + np.uint64(salt * 40503)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return u.astype(np.float32) * np.float32(2.0 ** -32) - np.float32(0.5)


# ---- GEMM / linear --------------------------------------------------------
A, B = randn(5, 7), randn(7, 3)
save("gemm_a", A); save("gemm_b", B); save("gemm_c", A @ B)
C0 = randn(5, 3)
save("gemm_c0", C0)
save("gemm_tt", 0.5 * (A @ B) + 2.0 * C0)          # alpha .5, beta 2, A and B given transposed
BA, BB = randn(3, 4, 6), randn(3, 6, 5)
save("gemm_batched_a", BA); save("gemm_batched_b", BB); save("gemm_batched_c", BA @ BB)

# Products big enough for BLAS to use its threads (plain, then transposed);
# inputs are hash_floats (not stored).
A, B = hash_floats(150 * 400, 11).reshape(150, 400), hash_floats(400 * 40, 12).reshape(400, 40)
save("gemm_split_rows", A.astype(np.float64) @ B.astype(np.float64))
At, Bt = hash_floats(400 * 40, 13).reshape(400, 40), hash_floats(150 * 400, 14).reshape(150, 400)
save("gemm_split_cols_tt", At.T.astype(np.float64) @ Bt.T.astype(np.float64))

x = randn(6, 12)                                   # the C test also uses the first 2 rows alone
W = randn(10, 12, scale=0.3)
b = randn(10)
save("linear_x", x); save("linear_w", W); save("linear_b", b)
save("linear_y", F.linear(t(x), t(W), t(b)))
save("linear_w_f16", f16_bits(W))
save("linear_y_f16", F.linear(t(x), t(W.astype(np.float16).astype(np.float32)), t(b)))
save("linear_w_bf16", bf16_bits(W))
save("linear_b_bf16", bf16_bits(b))
save("linear_y_bf16", F.linear(t(x), t(bf16_values(W)), t(bf16_values(b))))

# ---- conv2d ----------------------------------------------------------------
# name: N, C, H, W, OC, KH, KW, stride (h, w), pad (h, w), groups, bias, weight dtype
conv_cases = [
    ("conv_basic",     2, 3, 7, 9, 4, 3, 3, (1, 1), (1, 1), 1, True, "f32"),
    ("conv_stride2",   1, 4, 9, 8, 6, 3, 3, (2, 2), (1, 1), 1, False, "f32"),
    ("conv_groups",    2, 4, 5, 6, 6, 3, 3, (1, 1), (1, 1), 2, True, "f32"),
    ("conv_1x1",       2, 8, 4, 3, 5, 1, 1, (1, 1), (0, 0), 1, True, "f32"),
    ("conv_rect",      1, 3, 6, 7, 2, 1, 3, (2, 1), (0, 1), 1, True, "f32"),
    ("conv_depthwise", 1, 4, 7, 7, 8, 3, 3, (2, 2), (0, 0), 4, True, "f32"),
    ("conv_oddpad",    1, 3, 8, 8, 5, 3, 3, (2, 2), (0, 0), 1, True, "f32"),
    ("conv_wide",      1, 32, 12, 10, 24, 3, 3, (1, 1), (1, 1), 1, True, "f16"),
    ("conv_bf16",      2, 6, 6, 5, 4, 3, 3, (1, 1), (1, 1), 1, True, "bf16"),
    ("conv_k4s2",      1, 3, 10, 10, 4, 4, 4, (2, 2), (1, 1), 1, False, "f32"),
]
params = []
for name, N, C, H, Wd, OC, KH, KW, s, p, g, has_b, wdt in conv_cases:
    xin = randn(N, C, H, Wd)
    w = randn(OC, C // g, KH, KW, scale=1.0 / np.sqrt(C // g * KH * KW))
    bias = randn(OC) if has_b else None
    if wdt == "f16":
        save(name + "_w", f16_bits(w)); w = w.astype(np.float16).astype(np.float32)
    elif wdt == "bf16":
        save(name + "_w", bf16_bits(w)); w = bf16_values(w)
    else:
        save(name + "_w", w)
    y = F.conv2d(t(xin), t(w), t(bias) if has_b else None, stride=s, padding=p, groups=g)
    save(name + "_x", xin); save(name + "_y", y)
    if has_b:
        save(name + "_b", bias)
    params.append([N, C, H, Wd, OC, KH, KW, s[0], s[1], p[0], p[1], g, int(has_b), {"f32": 0, "f16": 1, "bf16": 2}[wdt]])
save("conv_params", np.array(params, dtype=np.int32))
# Big enough (32 ch, 180x180) that im2col works in bands of output rows; hash inputs, and
# only every 97th output value is stored.
xin = hash_floats(32 * 180 * 180, 21).reshape(1, 32, 180, 180)
w = hash_floats(8 * 32 * 9, 22).reshape(8, 32, 3, 3) * np.float32(0.2)
save("conv_big_y_every97", F.conv2d(t(xin).double(), t(w).double(), padding=1).float().numpy().reshape(-1)[::97])
# Channels as the U-Net's and the VAE's (256 in and out, 12x11: odd width, 132 positions), the
# shape where the CPU's automatic choice takes Winograd F(2x2, 3x3); every 7th value stored.
xin = hash_floats(256 * 12 * 11, 41).reshape(1, 256, 12, 11)
w = hash_floats(256 * 256 * 9, 42).reshape(256, 256, 3, 3) * np.float32(0.05)
bias = hash_floats(256, 43)
save("conv_c256_y_every7", F.conv2d(t(xin).double(), t(w).double(), t(bias).double(), padding=1).float().numpy().reshape(-1)[::7])

# ---- normalisation -----------------------------------------------------------
x = randn(2, 8, 5, 3)
g, bta = randn(8), randn(8)
save("group_norm_x", x); save("group_norm_gamma", g); save("group_norm_beta", bta)
save("group_norm_y", F.group_norm(t(x), 4, t(g), t(bta), eps=1e-5))
xo = randn(2, 8, 15, scale=0.01, offset=1000.0)    # large mean, small spread: cancellation test
save("group_norm_offset_x", xo)
save("group_norm_offset_y", F.group_norm(t(xo).double(), 2, None, None, eps=1e-6).float())

x = randn(5, 33, scale=2.0, offset=0.5)
g, bta = randn(33), randn(33)
save("layer_norm_x", x); save("layer_norm_gamma", g); save("layer_norm_beta", bta)
save("layer_norm_y", F.layer_norm(t(x), (33,), t(g), t(bta), eps=1e-5))
save("layer_norm_plain_y", F.layer_norm(t(x), (33,), None, None, eps=1e-6))
save("layer_norm_bf16_gamma", bf16_bits(g))
save("layer_norm_bf16_y", F.layer_norm(t(x), (33,), t(bf16_values(g)), t(bta), eps=1e-5))

x = randn(4, 40, scale=3.0)
w = randn(40)
save("rms_norm_x", x); save("rms_norm_w", w)
save("rms_norm_y", F.rms_norm(t(x), (40,), t(w), eps=1e-6))
save("rms_norm_w_f16", f16_bits(w))
save("rms_norm_f16_y", F.rms_norm(t(x), (40,), t(w.astype(np.float16).astype(np.float32)), eps=1e-6))

# ---- activations -----------------------------------------------------------
# Typical range (scale ~8, so the 1e-5 tolerance is tight) and extremes, separately.
for name, x in [("act", np.concatenate([np.linspace(-8, 8, 997), [0.0, -0.0, 1e-8, -1e-8, 1e-30],
                                        rng.standard_normal(300) * 2.5]).astype(np.float32)),
                ("act_big", np.array([30, -30, 60, -60, 87.5, -87.5, 88, -88, 89, -89, 100, -100, 1e4, -1e4,
                                      3.9, -3.9, 4.0, -4.0, 4.1, -4.1, 5, -5, 9, -9], np.float32))]:
    save(name + "_x", x)
    save(name + "_silu", F.silu(t(x)))
    save(name + "_gelu_erf", F.gelu(t(x)))
    save(name + "_gelu_tanh", F.gelu(t(x), approximate="tanh"))
    save(name + "_quick_gelu", t(x) * torch.sigmoid(1.702 * t(x)))

x = randn(6, 37, scale=4.0)
x[2, 5] = 60.0                                  # a peaked row
x[3, :] += 500.0                                # large offset
x[4, 7:] = -np.inf                              # masked tail
save("softmax_x", x); save("softmax_y", torch.softmax(t(x), dim=-1))

x = randn(3, 40, scale=2.0)
hs, gate = t(x).chunk(2, dim=-1)
save("geglu_x", x); save("geglu_y", hs * F.gelu(gate))
gate, up = randn(3, 17, scale=2.0), randn(3, 17)
save("swiglu_gate", gate); save("swiglu_up", up); save("swiglu_y", F.silu(t(gate)) * t(up))

# ---- element-wise with broadcasting ----------------------------------------
a, b = randn(2, 3, 4, 5), randn(3, 1, 5)
save("bcast1_a", a); save("bcast1_b", b); save("bcast1_add", a + b); save("bcast1_mul", a * b)
a, b = randn(4, 1), randn(3)
save("bcast2_a", a); save("bcast2_b", b); save("bcast2_add", a + b); save("bcast2_mul", a * b)
a, b = randn(2, 4, 3), randn(4)                   # C views a transposed to [2, 3, 4]
save("bcast3_a", a); save("bcast3_b", b)
save("bcast3_add", a.transpose(0, 2, 1) + b); save("bcast3_mul", a.transpose(0, 2, 1) * b)
a, b = randn(2, 1, 6), randn(5, 1)               # both sides broadcast; b stored as bf16
save("bcast4_a", a); save("bcast4_b_bf16", bf16_bits(b))
save("bcast4_add", a + bf16_values(b)); save("bcast4_mul", a * bf16_values(b))

x, b = randn(4, 6), randn(6)
save("row_bias_x", x); save("row_bias_b", b); save("row_bias_y", x + b)
x, b = randn(2, 3, 10), randn(2, 3)
save("channel_bias_x", x); save("channel_bias_b", b); save("channel_bias_y", x + b[:, :, None])

# ---- layout ------------------------------------------------------------------
x = randn(2, 3, 4, 5)
save("upsample_x", x); save("upsample_y", F.interpolate(t(x), scale_factor=2, mode="nearest"))
p0, p1, p2 = randn(2, 3, 4), randn(2, 5, 4), randn(2, 1, 4)
save("concat_p0", p0); save("concat_p1", p1); save("concat_p2", p2)
save("concat_dim1", np.concatenate([p0, p1, p2], axis=1))
q0, q1 = randn(2, 3, 4), randn(2, 3, 2)
save("concat_q0", q0); save("concat_q1", q1); save("concat_dim2", np.concatenate([q0, q1], axis=2))
x = randn(2, 5, 12)
save("nchw_x", x); save("nhwc_y", x.transpose(0, 2, 1))

# ---- attention ----------------------------------------------------------------
def sdpa(q, k, v, heads, mask=None, scale=None, kv_heads=None):
    """q [B, Nq, H*D], k/v [B, Nkv, KVH*D] -> [B, Nq, H*D] through torch's scaled_dot_product_attention."""
    B, Nq, HD = q.shape
    D = HD // heads
    kv_heads = kv_heads or heads
    def split(a, h):
        return t(a).reshape(B, a.shape[1], h, D).transpose(1, 2).double()
    kk, vv = split(k, kv_heads), split(v, kv_heads)
    if kv_heads != heads:                       # grouped-query attention: repeat each k/v head
        kk, vv = kk.repeat_interleave(heads // kv_heads, 1), vv.repeat_interleave(heads // kv_heads, 1)
    o = F.scaled_dot_product_attention(split(q, heads), kk, vv,
                                       attn_mask=None if mask is None else t(mask).double(), scale=scale)
    return o.transpose(1, 2).reshape(B, Nq, HD).float()


def causal_mask(nq, nkv):
    """Aligned at the end: query i sees keys j <= i + nkv - nq (as with a KV cache)."""
    i, j = np.arange(nq)[:, None], np.arange(nkv)[None, :]
    return np.where(j <= i + nkv - nq, 0.0, -np.inf).astype(np.float32)


# name: batch, heads, head_dim, n_q, n_kv, kind
attn_cases = [
    ("attn_cross", 2, 3, 8, 10, 13, "plain"),
    ("attn_mask", 1, 2, 16, 9, 11, "mask"),
    ("attn_causal", 1, 2, 16, 300, 300, "causal"),
    ("attn_causal_kv", 2, 1, 8, 5, 9, "causal"),
    ("attn_fused", 1, 2, 40, 300, 300, "fused"),
    ("attn_gqa", 2, 6, 8, 7, 19, "gqa"),       # 6 query heads over 2 k/v heads, causal
]
attn_params = []
for name, B, H, D, nq, nkv, kind in attn_cases:
    HD = H * D
    mask = None
    if kind == "fused":                       # hash inputs (not stored), scaled by 3
        qkv = hash_floats(B * nq * 3 * HD, 31).reshape(B, nq, 3 * HD) * np.float32(3.0)
        q, k, v = qkv[:, :, :HD], qkv[:, :, HD:2 * HD], qkv[:, :, 2 * HD:]
    else:
        KVD = HD // 3 if kind == "gqa" else HD
        q, k, v = randn(B, nq, HD, scale=1.5), randn(B, nkv, KVD, scale=1.5), randn(B, nkv, KVD)
        save(name + "_q", q); save(name + "_k", k); save(name + "_v", v)
    if kind == "mask":
        mask = randn(nq, nkv, scale=2.0)
        mask[0, 3] = -np.inf
        mask[1, 2:] = -np.inf                  # a row that sees only two keys
        save(name + "_m", mask)
    if kind in ("causal", "gqa"):
        mask = causal_mask(nq, nkv)
    save(name + "_o", sdpa(q, k, v, H, mask, kv_heads=H // 3 if kind == "gqa" else None))
    attn_params.append([B, H, D, nq, nkv, {"plain": 0, "mask": 1, "causal": 2, "fused": 3, "gqa": 4}[kind]])
save("attn_params", np.array(attn_params, dtype=np.int32))

# Larger sizes from hash inputs; only every 61st query row is stored.
for name, H, D, nq, nkv, qscale in [("attn_big_cross", 2, 40, 4096, 77, 4.0), ("attn_big_self", 2, 64, 1024, 1024, 8.0)]:
    HD = H * D
    q = hash_floats(nq * HD, 1).reshape(1, nq, HD) * np.float32(qscale)
    k = hash_floats(nkv * HD, 2).reshape(1, nkv, HD)
    v = hash_floats(nkv * HD, 3).reshape(1, nkv, HD)
    o = sdpa(q, k, v, H).numpy()
    save(name + "_rows", o[0, ::61, :])

# ---- dtype conversions -------------------------------------------------------
f = np.float32
tricky = [0.0, -0.0, 1.0, -1.0, 0.1, 1.0 / 3, 65504.0, 65519.996, 65520.0, 65536.0, -70000.0, 1e10,
          1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 1.0 + 2.0 ** -11 + 2.0 ** -20,  # f16 ties / near ties
          2.0 ** -14, 2.0 ** -15, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -25, 2.0 ** -26, 1.5 * 2.0 ** -24,
          2.0 ** -14 - 2.0 ** -25, 6.1e-5, 5.96e-8, 1e-30, 1.4e-45, -1.4e-45, 1.1754942e-38,
          1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -8 + 2.0 ** -20,      # bf16 ties
          3.3895314e38, 3.4028235e38, -3.4028235e38, 1.0e38,
          np.inf, -np.inf, np.nan]
vals = np.concatenate([np.array(tricky, dtype=f), randn(200, scale=100.0), randn(100, scale=1e-4),
                       (rng.standard_normal(100) * 1e-6).astype(f)]).astype(f)
with np.errstate(over="ignore"):
    save("dtype_f32", vals)
    save("dtype_f16_bits", f16_bits(vals))
save("dtype_bf16_bits", bf16_bits(vals))
all_half = np.arange(65536, dtype=np.uint32).astype(np.uint16)
save("dtype_f16_all_f32", all_half.view(np.float16).astype(np.float32))
save("dtype_bf16_sample_f32", t(all_half[::7].copy().view(np.int16)).view(torch.bfloat16).float().numpy())

# ---- attention, both CPU paths (added with the small-head kernel; own generator so that
# nothing above changes): head_dim 12 takes the sgemm path (not a multiple of 8), 80 the
# small-head kernel with 16-wide column blocks and no 8-wide tail, over three key tiles (520
# keys) with a short last block of queries (13 = 2 x 6 + 1) and a mask that hides a whole
# key tile from one row.
rng2 = np.random.default_rng(4321)
attn_more = [("attn_d12", 1, 2, 12, 37, 300, "plain"), ("attn_d80", 1, 1, 80, 13, 520, "mask")]
more_params = []
for name, B, H, D, nq, nkv, kind in attn_more:
    HD = H * D
    q = (rng2.standard_normal((B, nq, HD)) * 1.5).astype(np.float32)
    k = (rng2.standard_normal((B, nkv, HD)) * 1.5).astype(np.float32)
    v = rng2.standard_normal((B, nkv, HD)).astype(np.float32)
    save(name + "_q", q); save(name + "_k", k); save(name + "_v", v)
    mask = None
    if kind == "mask":
        mask = (rng2.standard_normal((nq, nkv)) * 2.0).astype(np.float32)
        mask[2, :512] = -np.inf                  # row 2 sees only the last key tile
        save(name + "_m", mask)
    save(name + "_o", sdpa(q, k, v, H, mask))
    more_params.append([B, H, D, nq, nkv, {"plain": 0, "mask": 1}[kind]])
save("attn_more_params", np.array(more_params, dtype=np.int32))

total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
print(f"wrote {len(os.listdir(OUT))} files, {total / 1024:.0f} KiB, into {os.path.normpath(OUT)}")
