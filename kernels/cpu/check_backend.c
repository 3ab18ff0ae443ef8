/*
 * check_backend.c — the `check` backend: the CPU's ops under a device's rules, so that a
 * machine without a GPU can still prove a model ready for one.
 *
 * Its memory is not host memory to its callers (host_memory is false: models must stage
 * their inputs and outputs with ts_stage_* and keep activations in ts_ctx_alloc / ts_arena_new
 * memory, as on CUDA), and every op first checks that each activation pointer it is given lies
 * inside memory this context allocated. A model that hands an op a host buffer fails here,
 * naming the op and the argument, where on a GPU it would read garbage or fault. Weights stay
 * host tensors (as the CUDA backend takes them); the ops ops.h says take host values
 * (timesteps, row ids, positions, sequence numbers, RoPE frequencies) are not checked for those. Its table has exactly the CUDA backend's
 * ops (kernels/cuda/cuda_backend.c), so what runs here uses nothing CUDA lacks.
 *
 * For tests (TESSERA_TEST_DEVICE=check runs the model parity tests this way); results are the
 * CPU's, bit for bit.
 */
#include "kernels/cpu/cpu.h"
#include "kernels/quant.h"

#include <stdlib.h>
#include <string.h>

/* The allocations of one context: few (a model's arena and scratch), so a plain list. */
struct check_memory {
    struct { const char *start; size_t bytes; } *block;
    int count, capacity;
};

static check_memory *memory_of(const ts_ctx *ctx) { return cpu_of(ctx)->check; }

static bool inside(const ts_ctx *ctx, const void *p, size_t bytes) {
    const check_memory *m = memory_of(ctx);
    const char *c = p;
    for (int i = 0; i < m->count; i++)
        if (c >= m->block[i].start && c + bytes <= m->block[i].start + m->block[i].bytes) return true;
    return false;
}

/* false (and the op fails, naming itself and the argument) unless [p, p + bytes) is ours */
static bool owned(ts_ctx *ctx, const void *p, size_t bytes, const char *op, const char *arg) {
    if (p && inside(ctx, p, bytes)) return true;
    ctx->failed = true;
    ts_fail("backend 'check': op '%s' got %s = %p (%zu bytes), which is not memory of this context: a model "
            "passed host memory where a device backend needs its own (ts_stage_in, ts_ctx_alloc)",
            op, arg, p, bytes);
    return false;
}

#define F(n) ((size_t)(n) * sizeof(float))
#define OWN(p, bytes) owned(ctx, p, bytes, op, #p)

/* ---- context and memory -------------------------------------------------------- */

static int check_context_init(ts_ctx *ctx, int device, int threads) {
    if (ts_backend_cpu.context_init(ctx, device, threads)) return -1;
    cpu_of(ctx)->check = ts_calloc(1, sizeof(check_memory));
    return 0;
}

static void check_context_free(ts_ctx *ctx) {
    check_memory *m = memory_of(ctx);
    if (m && m->count) log_warn("backend 'check': %d allocations never freed", m->count);
    if (m) free(m->block), free(m);
    ts_backend_cpu.context_free(ctx);
}

static void *check_alloc(ts_ctx *ctx, size_t bytes) {
    check_memory *m = memory_of(ctx);
    void *p = ts_aligned_alloc(bytes ? bytes : 1);
    if (m->count == m->capacity) {
        m->capacity = m->capacity ? 2 * m->capacity : 64;
        m->block = ts_realloc(m->block, (size_t)m->capacity * sizeof *m->block);
    }
    m->block[m->count].start = p, m->block[m->count].bytes = bytes;
    m->count++;
    return p;
}

static void check_free(ts_ctx *ctx, void *p) {
    check_memory *m = memory_of(ctx);
    for (int i = 0; i < m->count; i++)
        if (m->block[i].start == p) {
            m->block[i] = m->block[--m->count];
            free(p);
            return;
        }
    log_error("backend 'check': freeing %p, which this context did not allocate", p);
}

static int check_upload(ts_ctx *ctx, void *dst, const void *src, size_t bytes) {
    const char *op = "upload";
    if (!OWN(dst, bytes)) return -1;
    memmove(dst, src, bytes);
    return 0;
}

static int check_download(ts_ctx *ctx, void *dst, const void *src, size_t bytes) {
    const char *op = "download";
    if (!OWN(src, bytes)) return -1;
    memmove(dst, src, bytes);
    return 0;
}

static int check_threads(const ts_ctx *ctx) { return ts_backend_cpu.threads(ctx); }
static int check_synchronize(ts_ctx *ctx) { return ts_backend_cpu.synchronize(ctx); }

/* ---- the ops: check the pointers, then the CPU's op ---------------------------------- */

static void check_gemm(ts_ctx *ctx, bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc) {
    const char *op = "gemm";
    if (OWN(A, F(1)) && OWN(B, F(1)) && OWN(C, F((int64_t)(M - 1) * ldc + N)))
        cpu_gemm(ctx, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static void check_gemm_batched(ts_ctx *ctx, int count, bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
                               int lda, int64_t sa, const float *B, int ldb, int64_t sb, float beta, float *C, int ldc,
                               int64_t sc) {
    const char *op = "gemm_batched";
    if (OWN(A, F(1)) && OWN(B, F(1)) && OWN(C, F(1)))
        cpu_gemm_batched(ctx, count, ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc);
}

static int check_linear(ts_ctx *ctx, float *y, const float *x, int64_t rows, const tensor *W, const tensor *b) {
    const char *op = "linear";
    if (!W || W->ndim != 2) return cpu_linear(ctx, y, x, rows, W, b);   /* its own message */
    if (!OWN(x, F(rows * W->shape[1])) || !OWN(y, F(rows * W->shape[0]))) return -1;
    return cpu_linear(ctx, y, x, rows, W, b);
}

static int check_weight_gemm(ts_ctx *ctx, const tensor *W, const weight_gemm_params *p) {
    const char *op = "weight_gemm";
    const float *X = p->X;
    float *C = p->C;
    if (!OWN(X, F(1)) || !OWN(C, F(1))) return -1;
    return cpu_weight_gemm(ctx, W, p);
}

static int check_conv2d(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W, const tensor *weight,
                        const tensor *bias, conv2d_params p) {
    const char *op = "conv2d";
    if (!OWN(x, F((int64_t)N * C * H * W))) return -1;
    if (weight && weight->ndim == 4) {
        int OH, OW;
        conv2d_out_size(H, W, weight, p, &OH, &OW);
        if (!OWN(out, F((int64_t)N * weight->shape[0] * OH * OW))) return -1;
    }
    return cpu_conv2d(ctx, out, x, N, C, H, W, weight, bias, p);
}

static int check_group_norm(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW, int groups,
                            const tensor *gamma, const tensor *beta, float eps) {
    const char *op = "group_norm";
    if (!OWN(x, F(N * C * HW)) || !OWN(out, F(N * C * HW))) return -1;
    return cpu_group_norm(ctx, out, x, N, C, HW, groups, gamma, beta, eps);
}

static int check_layer_norm(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim, const tensor *gamma,
                            const tensor *beta, float eps) {
    const char *op = "layer_norm";
    if (!OWN(x, F(rows * dim)) || !OWN(out, F(rows * dim))) return -1;
    return cpu_layer_norm(ctx, out, x, rows, dim, gamma, beta, eps);
}

static int check_rms_norm(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim, const tensor *w, float eps) {
    const char *op = "rms_norm";
    if (!OWN(x, F(rows * dim)) || !OWN(out, F(rows * dim))) return -1;
    return cpu_rms_norm(ctx, out, x, rows, dim, w, eps);
}

static void check_softmax_rows(ts_ctx *ctx, float *x, int64_t rows, int n) {
    const char *op = "softmax_rows";
    if (OWN(x, F(rows * n))) cpu_softmax_rows(ctx, x, rows, n);
}

static void check_unary(ts_ctx *ctx, unary_op u, float *out, const float *x, int64_t n) {
    const char *op = "unary";
    if (OWN(x, F(n)) && OWN(out, F(n))) cpu_unary(ctx, u, out, x, n);
}

static void check_clamp(ts_ctx *ctx, float *out, const float *x, int64_t n, float lo, float hi) {
    const char *op = "clamp";
    if (OWN(x, F(n)) && OWN(out, F(n))) cpu_clamp(ctx, out, x, n, lo, hi);
}

static void check_scaled_tanh(ts_ctx *ctx, float *out, const float *x, int64_t n, float s) {
    const char *op = "scaled_tanh";
    if (OWN(x, F(n)) && OWN(out, F(n))) cpu_scaled_tanh(ctx, out, x, n, s);
}

static void check_geglu(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim) {
    const char *op = "geglu";
    if (OWN(x, F(rows * 2 * dim)) && OWN(out, F(rows * dim))) cpu_geglu(ctx, out, x, rows, dim);
}

static void check_swiglu(ts_ctx *ctx, float *out, const float *gate, const float *up, int64_t rows, int dim) {
    const char *op = "swiglu";
    if (OWN(gate, F(rows * dim)) && OWN(up, F(rows * dim)) && OWN(out, F(rows * dim))) cpu_swiglu(ctx, out, gate, up, rows, dim);
}

static void check_add_inplace(ts_ctx *ctx, float *x, const float *y, int64_t n) {
    const char *op = "add_inplace";
    if (OWN(x, F(n)) && OWN(y, F(n))) cpu_add_inplace(ctx, x, y, n);
}

static void check_scale_inplace(ts_ctx *ctx, float *x, float s, int64_t n) {
    const char *op = "scale_inplace";
    if (OWN(x, F(n))) cpu_scale_inplace(ctx, x, s, n);
}

static void check_affine(ts_ctx *ctx, float *x, int64_t n, float scale, float shift) {
    const char *op = "affine";
    if (OWN(x, F(n))) cpu_affine(ctx, x, n, scale, shift);
}

static void check_add_row_bias(ts_ctx *ctx, float *x, int64_t rows, int dim, const tensor *b) {
    const char *op = "add_row_bias";
    if (OWN(x, F(rows * dim))) cpu_add_row_bias(ctx, x, rows, dim, b);
}

static int check_add_channel_bias(ts_ctx *ctx, float *x, int N, int C, int64_t HW, const tensor *b) {
    const char *op = "add_channel_bias";
    if (!OWN(x, F(N * C * HW))) return -1;
    /* a per-image bias [N, C] is an activation (a time embedding): the context's memory */
    if (b && b->ndim == 2 && b->data) {
        const void *bias = b->data;
        if (!OWN(bias, F(N * C))) return -1;
    }
    return cpu_add_channel_bias(ctx, x, N, C, HW, b);
}

static void check_fill(ts_ctx *ctx, float *x, float v, int64_t n) {
    const char *op = "fill";
    if (OWN(x, F(n))) cpu_fill(ctx, x, v, n);
}

static void check_upsample(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W) {
    const char *op = "upsample_nearest2x";
    int64_t n = (int64_t)N * C * H * W;
    if (OWN(x, F(n)) && OWN(out, F(4 * n))) cpu_upsample_nearest2x(ctx, out, x, N, C, H, W);
}

static void check_nchw_to_nhwc(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW) {
    const char *op = "nchw_to_nhwc";
    if (OWN(x, F(N * C * HW)) && OWN(out, F(N * C * HW))) cpu_nchw_to_nhwc(ctx, out, x, N, C, HW);
}

static void check_nhwc_to_nchw(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW) {
    const char *op = "nhwc_to_nchw";
    if (OWN(x, F(N * C * HW)) && OWN(out, F(N * C * HW))) cpu_nhwc_to_nchw(ctx, out, x, N, C, HW);
}

static void check_copy_strided(ts_ctx *ctx, float *dst, const int64_t *ds, const float *src, const int64_t *ss,
                               const int64_t *shape) {
    const char *op = "copy_strided";
    if (shape[0] <= 0 || shape[1] <= 0 || shape[2] <= 0) return;
    int64_t dl = (shape[0] - 1) * ds[0] + (shape[1] - 1) * ds[1] + (shape[2] - 1) * ds[2] + 1;
    int64_t sl = (shape[0] - 1) * ss[0] + (shape[1] - 1) * ss[1] + (shape[2] - 1) * ss[2] + 1;
    if (OWN(dst, F(dl)) && OWN(src, F(sl))) cpu_copy_strided(ctx, dst, ds, src, ss, shape);
}

static void check_crossfade(ts_ctx *ctx, float *b, int64_t b_plane, int64_t b_row, const float *a, int64_t a_plane,
                            int64_t a_row, int planes, int rows, int cols, int extent, bool along_rows) {
    const char *op = "crossfade";
    if (OWN(a, F(1)) && OWN(b, F(1)))
        cpu_crossfade(ctx, b, b_plane, b_row, a, a_plane, a_row, planes, rows, cols, extent, along_rows);
}

static void check_rgb8(ts_ctx *ctx, uint8_t *rgb, const float *image, int C, int64_t hw, float scale, float offset) {
    const char *op = "rgb8_from_planes";
    if (OWN(image, F(C * hw)) && OWN(rgb, (size_t)(3 * hw))) cpu_rgb8_from_planes(ctx, rgb, image, C, hw, scale, offset);
}

static void check_copy(ts_ctx *ctx, float *dst, const float *src, int64_t n) {
    const char *op = "copy_floats";
    if (n > 0 && OWN(dst, F(n)) && OWN(src, F(n))) cpu_copy(ctx, dst, src, n);
}

static int check_gather_rows(ts_ctx *ctx, float *out, const tensor *table, const int32_t *rows, int n) {
    const char *op = "gather_rows";
    if (!table || table->ndim != 2) return cpu_gather_rows(ctx, out, table, rows, n);
    if (!OWN(out, F((int64_t)n * table->shape[1]))) return -1;
    return cpu_gather_rows(ctx, out, table, rows, n);
}

static void check_timestep_embedding(ts_ctx *ctx, float *out, const float *t, int n, int dim, bool flip, float shift) {
    const char *op = "timestep_embedding";
    if (OWN(out, F((int64_t)n * dim))) cpu_timestep_embedding(ctx, out, t, n, dim, flip, shift);
}

static void check_attention(ts_ctx *ctx, float *out, const float *q, const float *k, const float *v, attention_params p) {
    const char *op = "attention";
    const float *mask = p.mask;
    if (OWN(q, F(1)) && OWN(k, F(1)) && OWN(v, F(1)) && OWN(out, F(p.batch * p.n_q * p.heads * p.head_dim)) &&
        (!mask || OWN(mask, F(p.n_q * p.n_kv))))
        cpu_attention(ctx, out, q, k, v, p);
}

static void check_qmatmul(ts_ctx *ctx, float *y, const float *x, int64_t n, const qmatrix *W) {
    const char *op = "qmatmul";
    if (OWN(x, F(n * W->cols)) && OWN(y, F(n * W->rows))) cpu_qmatmul(ctx, y, x, n, W);
}

static void check_qmatrix_gather(ts_ctx *ctx, float *out, const qmatrix *W, const int *rows, int n) {
    const char *op = "qmatrix_gather";
    if (OWN(out, F((int64_t)n * W->cols))) cpu_qmatrix_gather(ctx, out, W, rows, n);
}

static void check_attention_kv(ts_ctx *ctx, float *out, const float *q, const float *k_cache, const float *v_cache,
                               kv_attention_params p) {
    const char *op = "attention_kv";
    int64_t width = (int64_t)p.heads * p.head_dim;
    if (OWN(q, F(p.n * width)) && OWN(out, F(p.n * width)) && OWN(k_cache, F(1)) && OWN(v_cache, F(1)))
        cpu_attention_kv(ctx, out, q, k_cache, v_cache, p);
}

static void check_rope(ts_ctx *ctx, float *x, int64_t ld, int rows, int heads, int head_dim, const int *pos,
                       const float *inv_freq, bool neox) {
    const char *op = "rope";
    if (OWN(x, F((rows - 1) * ld + (int64_t)heads * head_dim))) cpu_rope(ctx, x, ld, rows, heads, head_dim, pos, inv_freq, neox);
}

const ts_backend ts_backend_check = {
    .name = "check",
    .host_memory = false,
    .context_init = check_context_init,
    .context_free = check_context_free,
    .threads = check_threads,
    .synchronize = check_synchronize,
    .alloc = check_alloc,
    .free = check_free,
    .upload = check_upload,
    .download = check_download,
    .ops = {
        .gemm = check_gemm,
        .gemm_batched = check_gemm_batched,
        .linear = check_linear,
        .weight_gemm = check_weight_gemm,
        .qmatmul = check_qmatmul,
        .qmatrix_gather = check_qmatrix_gather,
        .conv2d = check_conv2d,
        .group_norm = check_group_norm,
        .layer_norm = check_layer_norm,
        .rms_norm = check_rms_norm,
        .softmax_rows = check_softmax_rows,
        .unary = check_unary,
        .clamp = check_clamp,
        .scaled_tanh = check_scaled_tanh,
        .geglu = check_geglu,
        .swiglu = check_swiglu,
        .add_inplace = check_add_inplace,
        .scale_inplace = check_scale_inplace,
        .affine = check_affine,
        .add_row_bias = check_add_row_bias,
        .add_channel_bias = check_add_channel_bias,
        .upsample_nearest2x = check_upsample,
        .nchw_to_nhwc = check_nchw_to_nhwc,
        .nhwc_to_nchw = check_nhwc_to_nchw,
        .copy_strided = check_copy_strided,
        .crossfade = check_crossfade,
        .rgb8_from_planes = check_rgb8,
        .copy = check_copy,
        .gather_rows = check_gather_rows,
        .fill = check_fill,
        .timestep_embedding = check_timestep_embedding,
        .attention = check_attention,
        .attention_kv = check_attention_kv,
        .rope = check_rope,
    },
};
