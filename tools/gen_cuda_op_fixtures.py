"""Write the expected values for tests/gpu/test_cuda_ops.c (kernels/cuda's ops).

Expected outputs come from torch only (float64 on the CPU), never from Tessera. Inputs are
float32 values, stored once as <name>.npy; the test rounds them on the GPU to the
precision P under test (F32, F16, BF16: round to nearest even, as torch's .to() does), and
the expected output <name>_<P>.npy is computed in float64 from the same rounded inputs.
Norm scales and shifts stay F32 (so are they on the GPU). Images are NHWC, conv weights
OHWI, as kernels/cuda/cuda.h wants them. Fixed seeds, small shapes; everything lands in
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


def make(seed):
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0, offset=0.0):   # float32 values, held exactly in float64
        x = torch.randn(*shape, generator=gen, dtype=torch.float64) * scale + offset
        return x.to(torch.float32).to(torch.float64)
    return randn


def as_p(x, p):
    """x (float32 values) rounded to precision p, as the GPU's cuda_convert does."""
    return x.to(torch.float32).to(PRECISIONS[p]).to(torch.float64)


def nhwc(x):   # NCHW -> NHWC
    return x.permute(0, 2, 3, 1).contiguous()


def gemm():
    r = make(1)
    M, N, K = 37, 53, 61
    a, b, bias = r(M, K), r(K, N), r(N)
    save("gemm_a", a)
    save("gemm_b", b)
    save("gemm_bt", b.t())                          # B stored [N, K]: the linear-layer case
    save("gemm_at", a.t())                          # A stored [K, M]
    save("gemm_bias", bias)
    ba, bb, bc = r(3, 9, 17), r(3, 17, 11), r(3, 9, 11)
    save("bmm_a", ba)
    save("bmm_b", bb)
    save("bmm_c", bc)
    for p in PRECISIONS:
        ab = as_p(a, p) @ as_p(b, p)
        save(f"gemm_ab_{p}", ab)
        if p != "f32":   # the same product written as F32: no output rounding
            save(f"gemm_ab_{p}_as_f32", ab)
        save(f"gemm_ab_bias_{p}", ab + as_p(bias, p))
        save(f"gemm_ab_bias_gelu_{p}", F.gelu(ab + as_p(bias, p), approximate="tanh"))
        # batched, with alpha and beta: out = 0.5 * a_i @ b_i + 2 * c_i
        save(f"bmm_out_{p}", 0.5 * torch.bmm(as_p(ba, p), as_p(bb, p)) + 2.0 * as_p(bc, p))


def conv():
    r = make(2)
    x = r(2, 8, 9, 11)                                # NCHW
    w3, b3 = r(16, 8, 3, 3, scale=0.3), r(16)
    w1, b1 = r(12, 8, 1, 1, scale=0.3), r(12)
    save("conv_x", nhwc(x))
    save("conv_w3", w3.permute(0, 2, 3, 1))        # OIHW -> OHWI
    save("conv_w3_oihw", w3)
    save("conv_b3", b3)
    save("conv_w1", w1.permute(0, 2, 3, 1))
    save("conv_b1", b1)
    for p in PRECISIONS:
        xp, w3p, b3p, w1p, b1p = (as_p(t, p) for t in (x, w3, b3, w1, b1))
        save(f"conv3_{p}", nhwc(F.conv2d(xp, w3p, b3p, padding=1)))
        save(f"conv3_s2_{p}", nhwc(F.conv2d(xp, w3p, b3p, stride=2, padding=1)))
        save(f"conv1_{p}", nhwc(F.conv2d(xp, w1p, b1p)))


def norms():
    r = make(3)
    x = r(2, 32, 6, 5, scale=2.0, offset=0.5)
    gamma, beta = r(32), r(32)                        # F32 on the GPU as well
    save("gn_x", nhwc(x))
    save("gn_gamma", gamma)
    save("gn_beta", beta)
    # a larger map (F32 only), so that each group's statistics span several blocks
    xb = r(1, 64, 32, 32, scale=3.0, offset=1.0)
    save("gn_big_x", nhwc(xb))
    save("gn_big_f32", nhwc(F.group_norm(xb, 8, None, None, eps=1e-6)))
    lx, lg, lb = r(7, 96), r(96), r(96)
    save("ln_x", lx)
    save("ln_gamma", lg)
    save("ln_beta", lb)
    lx2 = r(3, 1000, offset=4.0)
    save("ln_wide_x", lx2)
    for p in PRECISIONS:
        y = F.group_norm(as_p(x, p), 8, gamma, beta, eps=1e-5)
        save(f"gn_{p}", nhwc(y))
        save(f"gn_silu_{p}", nhwc(F.silu(y)))
        save(f"ln_{p}", F.layer_norm(as_p(lx, p), (96,), lg, lb, eps=1e-5))
        save(f"ln_wide_{p}", F.layer_norm(as_p(lx2, p), (1000,), None, None, eps=1e-6))


def elementwise():
    r = make(4)
    gx = r(10, 48)
    ux = r(2, 5, 3, 4)                                # NCHW
    ca, cb = r(2, 5, 3, 4), r(2, 7, 3, 4)
    aa, ab = r(1000), r(1000)
    bx, bb = r(2, 12, 16), r(2, 16)
    tx = r(2, 5, 21)                                  # [N, C, HW]
    for name, t in (("geglu_x", gx), ("up_x", nhwc(ux)), ("cat_a", nhwc(ca)), ("cat_b", nhwc(cb)),
                    ("add_a", aa), ("add_b", ab), ("bias_x", bx), ("bias_b", bb), ("perm_x", tx)):
        save(name, t)
    for p in PRECISIONS:
        a, g = as_p(gx, p).chunk(2, dim=-1)
        save(f"geglu_{p}", a * F.gelu(g))            # diffusers GEGLU: erf GELU
        save(f"up_{p}", nhwc(F.interpolate(as_p(ux, p), scale_factor=2.0, mode="nearest")))
        save(f"cat_{p}", nhwc(torch.cat([as_p(ca, p), as_p(cb, p)], dim=1)))
        save(f"add_{p}", as_p(aa, p) + as_p(ab, p))
        save(f"bias_{p}", as_p(bx, p) + as_p(bb, p)[:, None, :])
        save(f"perm_{p}", as_p(tx, p).permute(0, 2, 1))   # [N, HW, C]
        save(f"perm_back_{p}", as_p(tx, p))


def sdpa(q, k, v, heads, kv_heads, D, causal):
    """q [B, Nq, heads*D], k/v [B, Nk, kv_heads*D] -> [B, Nq, heads*D], float64."""
    B, Nq, Nk = q.shape[0], q.shape[1], k.shape[1]
    qh = q.reshape(B, Nq, heads, D).transpose(1, 2)
    kh = k.reshape(B, Nk, kv_heads, D).transpose(1, 2).repeat_interleave(heads // kv_heads, dim=1)
    vh = v.reshape(B, Nk, kv_heads, D).transpose(1, 2).repeat_interleave(heads // kv_heads, dim=1)
    mask = None
    if causal:   # key j visible from query i when j <= i + (Nk - Nq): aligned at the end
        i = torch.arange(Nq)[:, None]
        j = torch.arange(Nk)[None, :]
        mask = j <= i + (Nk - Nq)
    o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask)
    return o.transpose(1, 2).reshape(B, Nq, heads * D)


def attention():
    r = make(5)
    # plain: 3 heads of 40 (SD 1.5's first level), more keys than queries
    q, k, v = r(2, 37, 120), r(2, 45, 120), r(2, 45, 120)
    # self-attention out of one fused QKV projection: q, k, v are strided views
    qkv = r(2, 29, 3 * 128)
    # causal, grouped-query: 4 query heads over 2 key/value heads of 64, keys aligned at the end
    cq, ck, cv = r(1, 20, 256), r(1, 29, 128), r(1, 29, 128)
    # wide heads: 2 heads of 160 (SD 1.5's deepest level)
    wq, wk, wv = r(1, 50, 320), r(1, 70, 320), r(1, 70, 320)
    for name, t in (("attn_q", q), ("attn_k", k), ("attn_v", v), ("attn_qkv", qkv), ("attn_gqa_q", cq),
                    ("attn_gqa_k", ck), ("attn_gqa_v", cv), ("attn_wide_q", wq), ("attn_wide_k", wk),
                    ("attn_wide_v", wv)):
        save(name, t)
    for p in PRECISIONS:
        save(f"attn_{p}", sdpa(as_p(q, p), as_p(k, p), as_p(v, p), 3, 3, 40, False))
        f = as_p(qkv, p)
        save(f"attn_qkv_out_{p}", sdpa(f[..., :128], f[..., 128:256], f[..., 256:], 2, 2, 64, False))
        save(f"attn_gqa_{p}", sdpa(as_p(cq, p), as_p(ck, p), as_p(cv, p), 4, 2, 64, True))
        save(f"attn_wide_{p}", sdpa(as_p(wq, p), as_p(wk, p), as_p(wv, p), 2, 2, 160, False))


torch.set_default_dtype(torch.float64)
gemm()
conv()
norms()
elementwise()
attention()
print("wrote", len(os.listdir(OUT)), "files to", os.path.normpath(OUT))
