#!/usr/bin/env python3
"""Write the expected values for tests/gpu/test_cuda_ops.c (kernels/cuda's ops).

Expected outputs come from torch only (float64 on the CPU), never from Tessera. For each
precision P in f32, f16, bf16 the inputs are first rounded to P (so the GPU sees exactly
the values the reference saw) and stored widened to float32; the reference is computed
in float64 from those rounded inputs. Images are NHWC, conv weights OHWI, as
kernels/cuda/cuda.h wants them. Fixed seeds, small shapes; everything lands in
tests/fixtures/cuda/*.npy. Run from the repository root:

    .venv/bin/python tools/gen_cuda_op_fixtures.py
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "cuda")
os.makedirs(OUT, exist_ok=True)
PRECISIONS = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def save(name, a):
    a = a.detach().cpu().to(torch.float32).numpy() if isinstance(a, torch.Tensor) else a.astype(np.float32)
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(a))


def make(p, seed):
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        x = torch.randn(*shape, generator=gen, dtype=torch.float64) * scale
        return x.to(PRECISIONS[p]).to(torch.float64)   # rounded to P, then exact in f64
    return randn


def nhwc(x):   # NCHW -> NHWC
    return x.permute(0, 2, 3, 1).contiguous()


def nchw(x):
    return x.permute(0, 3, 1, 2).contiguous()


def gemm(p):
    r = make(p, 1)
    M, N, K = 37, 53, 61
    a, b, bias = r(M, K), r(K, N), r(N)
    save(f"gemm_a_{p}", a)
    save(f"gemm_b_{p}", b)
    save(f"gemm_bt_{p}", b.t())                       # B stored [N, K]: the linear-layer case
    save(f"gemm_at_{p}", a.t())                       # A stored [K, M]
    save(f"gemm_bias_{p}", bias)
    save(f"gemm_ab_{p}", a @ b)
    if p != "f32":   # the same product written as F32: no output rounding
        save(f"gemm_ab_{p}_as_f32", a @ b)
    save(f"gemm_ab_bias_{p}", a @ b + bias)
    save(f"gemm_ab_bias_gelu_{p}", F.gelu(a @ b + bias, approximate="tanh"))
    # batched, with alpha and beta: out = 0.5 * a_i @ b_i + 2 * c_i
    ba, bb, bc = r(3, 9, 17), r(3, 17, 11), r(3, 9, 11)
    save(f"bmm_a_{p}", ba)
    save(f"bmm_b_{p}", bb)
    save(f"bmm_c_{p}", bc)
    save(f"bmm_out_{p}", 0.5 * torch.bmm(ba, bb) + 2.0 * bc)


def conv(p):
    r = make(p, 2)
    x = r(2, 8, 9, 11)                                 # NCHW
    w3, b3 = r(16, 8, 3, 3, scale=0.3), r(16)
    w1, b1 = r(12, 8, 1, 1, scale=0.3), r(12)
    save(f"conv_x_{p}", nhwc(x))
    save(f"conv_w3_{p}", w3.permute(0, 2, 3, 1))     # OIHW -> OHWI
    save(f"conv_w3_oihw_{p}", w3)
    save(f"conv_b3_{p}", b3)
    save(f"conv_w1_{p}", w1.permute(0, 2, 3, 1))
    save(f"conv_b1_{p}", b1)
    save(f"conv3_{p}", nhwc(F.conv2d(x, w3, b3, padding=1)))
    save(f"conv3_s2_{p}", nhwc(F.conv2d(x, w3, b3, stride=2, padding=1)))
    save(f"conv1_{p}", nhwc(F.conv2d(x, w1, b1)))


def norms(p):
    r = make(p, 3)
    x = r(2, 32, 6, 5, scale=2.0) + 0.5
    gamma, beta = r(32), r(32)
    save(f"gn_x_{p}", nhwc(x))
    save(f"gn_gamma_{p}", gamma)
    save(f"gn_beta_{p}", beta)
    y = F.group_norm(x, 8, gamma, beta, eps=1e-5)
    save(f"gn_{p}", nhwc(y))
    save(f"gn_silu_{p}", nhwc(F.silu(y)))
    if p == "f32":   # a larger map, so that each group's statistics span several blocks
        xb = r(1, 64, 32, 32) * 3.0 + 1.0
        save("gn_big_x_f32", nhwc(xb))
        save("gn_big_f32", nhwc(F.group_norm(xb, 8, None, None, eps=1e-6)))
    lx, lg, lb = r(7, 96), r(96), r(96)
    save(f"ln_x_{p}", lx)
    save(f"ln_gamma_{p}", lg)
    save(f"ln_beta_{p}", lb)
    save(f"ln_{p}", F.layer_norm(lx, (96,), lg, lb, eps=1e-5))
    lx2 = r(3, 1000) + 4.0
    save(f"ln_wide_x_{p}", lx2)
    save(f"ln_wide_{p}", F.layer_norm(lx2, (1000,), None, None, eps=1e-6))


def elementwise(p):
    r = make(p, 4)
    gx = r(10, 48)
    save(f"geglu_x_{p}", gx)
    a, g = gx.chunk(2, dim=-1)
    save(f"geglu_{p}", a * F.gelu(g))                  # diffusers GEGLU: erf GELU
    ux = r(2, 5, 3, 4)                                 # NCHW
    save(f"up_x_{p}", nhwc(ux))
    save(f"up_{p}", nhwc(F.interpolate(ux, scale_factor=2.0, mode="nearest")))
    ca, cb = r(2, 5, 3, 4), r(2, 7, 3, 4)
    save(f"cat_a_{p}", nhwc(ca))
    save(f"cat_b_{p}", nhwc(cb))
    save(f"cat_{p}", nhwc(torch.cat([ca, cb], dim=1)))
    aa, ab = r(1000), r(1000)
    save(f"add_a_{p}", aa)
    save(f"add_b_{p}", ab)
    save(f"add_{p}", aa + ab)
    bx, bb = r(2, 12, 16), r(2, 16)
    save(f"bias_x_{p}", bx)
    save(f"bias_b_{p}", bb)
    save(f"bias_{p}", bx + bb[:, None, :])
    tx = r(2, 5, 21)                                   # [N, C, HW]
    save(f"perm_x_{p}", tx)
    save(f"perm_{p}", tx.permute(0, 2, 1))             # [N, HW, C]


def sdpa(q, k, v, heads, kv_heads, D, causal):
    """q [B, Nq, heads*D], k/v [B, Nk, kv_heads*D] -> [B, Nq, heads*D], float64."""
    B, Nq, Nk = q.shape[0], q.shape[1], k.shape[1]
    qh = q.view(B, Nq, heads, D).transpose(1, 2)
    kh = k.view(B, Nk, kv_heads, D).transpose(1, 2).repeat_interleave(heads // kv_heads, dim=1)
    vh = v.view(B, Nk, kv_heads, D).transpose(1, 2).repeat_interleave(heads // kv_heads, dim=1)
    mask = None
    if causal:   # key j visible from query i when j <= i + (Nk - Nq): aligned at the end
        i = torch.arange(Nq)[:, None]
        j = torch.arange(Nk)[None, :]
        mask = j <= i + (Nk - Nq)
    o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask)
    return o.transpose(1, 2).reshape(B, Nq, heads * D)


def attention(p):
    r = make(p, 5)
    # plain: 3 heads of 40 (SD 1.5's first level), more keys than queries
    q, k, v = r(2, 37, 120), r(2, 45, 120), r(2, 45, 120)
    save(f"attn_q_{p}", q)
    save(f"attn_k_{p}", k)
    save(f"attn_v_{p}", v)
    save(f"attn_{p}", sdpa(q, k, v, 3, 3, 40, False))
    # self-attention out of one fused QKV projection: q, k, v are strided views
    qkv = r(2, 29, 3 * 128)
    save(f"attn_qkv_{p}", qkv)
    save(f"attn_qkv_out_{p}", sdpa(qkv[..., :128], qkv[..., 128:256], qkv[..., 256:], 2, 2, 64, False))
    # causal, grouped-query: 4 query heads over 2 key/value heads of 64, keys aligned at the end
    cq, ck, cv = r(1, 20, 256), r(1, 29, 128), r(1, 29, 128)
    save(f"attn_gqa_q_{p}", cq)
    save(f"attn_gqa_k_{p}", ck)
    save(f"attn_gqa_v_{p}", cv)
    save(f"attn_gqa_{p}", sdpa(cq, ck, cv, 4, 2, 64, True))
    # wide heads: 2 heads of 160 (SD 1.5's deepest level)
    wq, wk, wv = r(1, 50, 320), r(1, 70, 320), r(1, 70, 320)
    save(f"attn_wide_q_{p}", wq)
    save(f"attn_wide_k_{p}", wk)
    save(f"attn_wide_v_{p}", wv)
    save(f"attn_wide_{p}", sdpa(wq, wk, wv, 2, 2, 160, False))


torch.set_default_dtype(torch.float64)
for p in PRECISIONS:
    gemm(p)
    conv(p)
    norms(p)
    elementwise(p)
    attention(p)
print("wrote", len(os.listdir(OUT)), "files to", os.path.normpath(OUT))
