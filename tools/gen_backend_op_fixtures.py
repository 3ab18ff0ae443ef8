"""Write the expected values for tests/unit/test_backend_ops.c: ops.h's ops, as every backend
must compute them (F32 activations, NCHW images), checked on the CPU here and on a GPU by
tools/gpu-check.sh (the same program, `cuda` as its argument).

Expected outputs come from torch, numpy and diffusers only (float64 where the op is plain
math, float32 where the reference itself computes in float32, as diffusers does), never
from Tessera. Inputs are float32 values (weights that the test hands over as F16 are
F16-representable), small shapes, fixed seeds; everything lands in tests/fixtures/backend_ops/.
Run from the repository root:

    .venv/bin/python tools/gen_backend_op_fixtures.py
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "backend_ops")
os.makedirs(OUT, exist_ok=True)
gen = torch.Generator().manual_seed(20261128)


def save(name, a):
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(a.astype(np.float32)))


def randn(*shape, scale=1.0, f16=False):
    """float32 values (F16-representable when f16), returned in float64 for the math."""
    x = torch.randn(*shape, generator=gen, dtype=torch.float64) * scale
    x = x.to(torch.float16 if f16 else torch.float32)
    return x.to(torch.float64)


# ---- GEMM ---------------------------------------------------------------------
x, w, b = randn(5, 24), randn(16, 24, scale=0.3, f16=True), randn(16, f16=True)
save("linear_x", x), save("linear_w", w), save("linear_b", b), save("linear_y", x @ w.T + b)

a, bm, c0 = randn(6, 8), randn(5, 8), randn(6, 5)   # B stored [N, K]: C = 0.5 A B^T + 2 C0
save("gemm_a", a), save("gemm_bt", bm), save("gemm_c0", c0), save("gemm_c", 0.5 * a @ bm.T + 2 * c0)

wl, xl, cl0 = randn(16, 24, scale=0.3, f16=True), randn(2, 24, 10), randn(2, 16, 10)
save("wgemm_w", wl), save("wgemm_xl", xl), save("wgemm_cl0", cl0)
save("wgemm_left", torch.stack([wl @ xl[i] for i in range(2)]) + cl0)   # beta 1: accumulate
xr = randn(7, 24)
save("wgemm_xr", xr), save("wgemm_right", xr @ wl.T)

# ---- convolution ------------------------------------------------------------------
cx, cw, cb, cw1 = randn(2, 8, 9, 11), randn(16, 8, 3, 3, scale=0.2, f16=True), randn(16), randn(12, 8, 1, 1, scale=0.3)
save("conv_x", cx), save("conv_w3", cw), save("conv_b3", cb), save("conv_w1", cw1)
save("conv3", F.conv2d(cx, cw, cb, padding=1))
save("conv3_s2", F.conv2d(cx, cw, cb, stride=2, padding=1))
save("conv1", F.conv2d(cx, cw1))

# ---- normalisation ------------------------------------------------------------------
gx, gg, gb = randn(2, 32, 5, 7, scale=2.0), randn(32), randn(32)
gx = gx + 3.0   # an offset the statistics must survive
save("gn_x", gx), save("gn_gamma", gg), save("gn_beta", gb), save("gn_y", F.group_norm(gx, 8, gg, gb, eps=1e-5))
lx, lg, lb = randn(6, 40), randn(40), randn(40)
save("ln_x", lx), save("ln_gamma", lg), save("ln_beta", lb), save("ln_y", F.layer_norm(lx, (40,), lg, lb, eps=1e-5))
rw = randn(40)
save("rms_w", rw), save("rms_y", lx / torch.sqrt((lx * lx).mean(-1, keepdim=True) + 1e-6) * rw)
sx = randn(5, 33, scale=3.0)
save("softmax_x", sx), save("softmax_y", torch.softmax(sx, -1))

# ---- activations and element-wise ------------------------------------------------------
ux = randn(300, scale=3.0)
save("unary_x", ux)
save("silu", F.silu(ux)), save("gelu_erf", F.gelu(ux)), save("gelu_tanh", F.gelu(ux, approximate="tanh"))
save("quick_gelu", ux * torch.sigmoid(1.702 * ux)), save("relu", F.relu(ux))
save("clamp", ux.clamp(-0.5, 0.7)), save("scaled_tanh", torch.tanh(ux / 3.0) * 3.0)
save("affine", ux * 1.5 - 0.25), save("scale", ux * 0.75)
hx = randn(6, 40)
hidden, gate = hx.chunk(2, dim=-1)
save("geglu_x", hx), save("geglu_y", hidden * F.gelu(gate))   # diffusers GEGLU
sg, su = randn(6, 20), randn(6, 20)
save("swiglu_gate", sg), save("swiglu_up", su), save("swiglu_y", F.silu(sg) * su)
bx, bc, bn = randn(2, 6, 15), randn(6, f16=True), randn(2, 6)
save("cbias_x", bx), save("cbias_c", bc), save("cbias_n", bn)
save("cbias_yc", bx + bc[None, :, None]), save("cbias_yn", bx + bn[:, :, None])
rx, rb, ry = randn(5, 16), randn(16), randn(5, 16)
save("rbias_x", rx), save("rbias_b", rb), save("rbias_y", rx + rb), save("add_y", ry), save("add_xy", rx + ry)

# ---- layout -----------------------------------------------------------------------------
ix = randn(2, 3, 4, 5)
save("up_x", ix), save("up_y", F.interpolate(ix, scale_factor=2, mode="nearest"))
nx = randn(2, 6, 15)
save("nhwc_x", nx), save("nhwc_y", nx.permute(0, 2, 1))
kx = randn(3, 7, 9)
save("crop_x", kx), save("crop_y", kx[:, 2:6, 1:6])   # rows 2..5, columns 1..5
# diffusers AutoencoderKL.blend_v in float32: b[:, y] = a[:, -e + y] * (1 - y/e) + b[:, y] * (y/e)
fa, fb, e = randn(1, 3, 6, 5).float(), randn(1, 3, 6, 5).float(), 4
blended = fb.clone()
for y in range(e):
    blended[:, :, y, :] = fa[:, :, -e + y, :] * (1 - y / e) + fb[:, :, y, :] * (y / e)
save("fade_a", fa), save("fade_b", fb), save("fade_v", blended)
blended = fb.clone()
for xx in range(e):
    blended[:, :, :, xx] = fa[:, :, :, -e + xx] * (1 - xx / e) + fb[:, :, :, xx] * (xx / e)
save("fade_h", blended)
# diffusers' image post-processing: (x / 2 + 0.5).clamp(0, 1) in float32, then numpy_to_pil
img = (randn(3, 6, 7, scale=0.8)).float()
rgb = ((img / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
save("rgb_x", img), save("rgb_y", rgb.reshape(-1))
tab = randn(10, 12, f16=True)
rows = [3, 0, 9, 3]
save("gather_table", tab), save("gather_rows", np.array(rows)), save("gather_y", tab[rows]), save("gather_first", tab[:4])
ts = torch.tensor([1.0, 500.5, 999.0])
save("temb_t", ts)
save("temb_a", get_timestep_embedding(ts, 32, flip_sin_to_cos=True, downscale_freq_shift=0))
save("temb_b", get_timestep_embedding(ts, 33, flip_sin_to_cos=False, downscale_freq_shift=1))

# ---- attention ----------------------------------------------------------------------------
def sdpa(q, k, v, heads, kv_heads, causal):
    B, nq, _ = q.shape
    d = q.shape[-1] // heads
    qh = q.view(B, nq, heads, d).transpose(1, 2)
    kh = k.view(B, k.shape[1], kv_heads, d).transpose(1, 2).repeat_interleave(heads // kv_heads, dim=1)
    vh = v.view(B, v.shape[1], kv_heads, d).transpose(1, 2).repeat_interleave(heads // kv_heads, dim=1)
    o = F.scaled_dot_product_attention(qh, kh, vh, is_causal=causal)
    return o.transpose(1, 2).reshape(B, nq, heads * d)


q, k, v = randn(2, 10, 16), randn(2, 7, 16), randn(2, 7, 16)
save("attn_q", q), save("attn_k", k), save("attn_v", v), save("attn_y", sdpa(q, k, v, 2, 2, False))
q, k, v = randn(1, 9, 32), randn(1, 9, 16), randn(1, 9, 16)
save("gqa_q", q), save("gqa_k", k), save("gqa_v", v), save("gqa_y", sdpa(q, k, v, 4, 2, True))
q, k, v = randn(1, 12, 320, scale=0.2), randn(1, 9, 320, scale=0.2), randn(1, 9, 320)   # one head 320 wide (VAE-like)
save("wide_q", q), save("wide_k", k), save("wide_v", v), save("wide_y", sdpa(q, k, v, 1, 1, False))
q, k, v, mask = randn(2, 10, 16), randn(2, 7, 16), randn(2, 7, 16), randn(10, 7)
qh, kh, vh = (t.view(2, t.shape[1], 2, 8).transpose(1, 2) for t in (q, k, v))
masked = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask).transpose(1, 2).reshape(2, 10, 16)
save("mask_q", q), save("mask_k", k), save("mask_v", v), save("mask_m", mask), save("mask_y", masked)
# ---- the LLM's ops ------------------------------------------------------------------------
from gguf import quants, GGMLQuantizationType

def rope_ref(x, heads, hd, pos, inv_freq, neox):
    y = x.clone()
    half = hd // 2
    for r in range(x.shape[0]):
        ang = pos[r] * inv_freq   # float32 angles, as the CPU and device kernels form them
        c, s_ = torch.cos(ang.to(torch.float64)), torch.sin(ang.to(torch.float64))
        for h in range(heads):
            v = x[r, h * hd:(h + 1) * hd]
            i0 = torch.arange(half) if neox else 2 * torch.arange(half)
            i1 = i0 + half if neox else i0 + 1
            y[r, h * hd + i0] = v[i0] * c - v[i1] * s_
            y[r, h * hd + i1] = v[i0] * s_ + v[i1] * c
    return y


rx, rpos = randn(3, 16), [0, 5, 17]
inv = (1.0 / 10000.0 ** (torch.arange(0, 8, 2, dtype=torch.float64) / 8)).to(torch.float32)
rpos_t = torch.tensor(rpos, dtype=torch.float32)
save("rope_x", rx), save("rope_pos", np.array(rpos)), save("rope_freq", inv)
save("rope_neox", rope_ref(rx, 2, 8, rpos_t, inv, True)), save("rope_pairs", rope_ref(rx, 2, 8, rpos_t, inv, False))

# KV cache [seq 2][pos 6][kv_heads 2 x 8]; 3 query rows of 4 heads (grouped-query)
kc, vc, kq = randn(2, 6, 16), randn(2, 6, 16), randn(3, 32)
kseqs, kpos = [0, 1, 0], [2, 5, 0]
out = torch.zeros(3, 32, dtype=torch.float64)
for i in range(3):
    for h in range(4):
        g = h // 2
        keys = kc[kseqs[i], :kpos[i] + 1, g * 8:(g + 1) * 8]
        vals = vc[kseqs[i], :kpos[i] + 1, g * 8:(g + 1) * 8]
        w = torch.softmax(keys @ kq[i, h * 8:(h + 1) * 8] / math.sqrt(8), 0)
        out[i, h * 8:(h + 1) * 8] = w @ vals
save("kv_k", kc), save("kv_v", vc), save("kv_q", kq), save("kv_seqs", np.array(kseqs)), save("kv_pos", np.array(kpos))
save("kv_y", out)

# a Q8_0 matrix [16, 64] made by the gguf package; the expected product from its dequantize
wq = quants.quantize(randn(16, 64, scale=0.5).numpy().astype(np.float32), GGMLQuantizationType.Q8_0)
wd = torch.from_numpy(quants.dequantize(wq, GGMLQuantizationType.Q8_0).astype(np.float64))
qx = randn(3, 64)
save("q8_w", wq.reshape(-1)), save("q8_x", qx), save("q8_y", qx @ wd.T), save("q8_rows", wd[[2, 7]])
print("wrote", len(os.listdir(OUT)), "files to", os.path.normpath(OUT))
