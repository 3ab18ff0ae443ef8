/*
 * attention.c — scaled-dot-product attention, flash style: for each (batch, head) and a
 * tile of QUERY_TILE queries, keys are visited KEY_TILE at a time with an online softmax
 * (running max m and sum l per query, rescaling the partial output when m grows), so the
 * memory is O(tile) and never [n_q, n_kv]. The two products per tile are sgemm calls on
 * strided views of q, k, v. Tiles are spread over threads with OpenMP (one parallel
 * region per call; gemm runs each product on the calling thread inside it).
 */
#include "kernels/cpu/cpu.h"
#include "kernels/quant.h"

#include <math.h>
#include <string.h>

/* Tuned on Sapphire Rapids, one core, SD shapes (d 40-80, 77-4096 keys): 256 x 256 ran at
 * 90-115 GFLOP/s per core, 64 x 256 at ~70. Overridable (-D) for tuning experiments. */
#ifndef QUERY_TILE
#define QUERY_TILE 256
#endif
#ifndef KEY_TILE
#define KEY_TILE 256
#endif

/* One query tile of one head: out rows [q0, q0 + nq). */
static void attention_tile(ts_ctx *ctx, float *out, int64_t out_stride, const float *q, int64_t q_stride,
                           const float *k, int64_t k_stride, const float *v, int64_t v_stride,
                           int d, int64_t q0, int nq, const attention_params *p) {
    float *S = cpu_scratch(ctx, 0, (size_t)QUERY_TILE * KEY_TILE);
    float *O = cpu_scratch(ctx, 1, (size_t)QUERY_TILE * d);
    float m[QUERY_TILE], l[QUERY_TILE];
    for (int i = 0; i < nq; i++) { m[i] = -INFINITY; l[i] = 0.0f; }
    memset(O, 0, (size_t)nq * d * sizeof(float));
    /* causal: query i (aligned at the end) sees keys j <= i + n_kv - n_q */
    int64_t offset = p->n_kv - p->n_q;
    int64_t kv_end = p->n_kv;
    if (p->causal) {
        int64_t last = q0 + nq - 1 + offset + 1;
        if (last < kv_end) kv_end = last < 0 ? 0 : last;
    }
    for (int64_t j0 = 0; j0 < kv_end; j0 += KEY_TILE) {
        int nk = (int)(kv_end - j0 < KEY_TILE ? kv_end - j0 : KEY_TILE);
        cpu_gemm(ctx, false, true, nq, nk, d, p->scale, q + q0 * q_stride, (int)q_stride, k + j0 * k_stride,
             (int)k_stride, 0.0f, S, nk);
        for (int i = 0; i < nq; i++) {
            float *s = S + (int64_t)i * nk;
            if (p->mask) {
                const float *mrow = p->mask + (q0 + i) * p->n_kv + j0;
                for (int j = 0; j < nk; j++) s[j] += mrow[j];
            }
            if (p->causal) {
                int64_t limit = q0 + i + offset - j0;      /* keys j > limit are masked */
                for (int64_t j = limit + 1 < 0 ? 0 : limit + 1; j < nk; j++) s[j] = -INFINITY;
            }
            float tile_max = -INFINITY;
            #pragma omp simd reduction(max:tile_max)
            for (int j = 0; j < nk; j++) tile_max = s[j] > tile_max ? s[j] : tile_max;
            float new_max = tile_max > m[i] ? tile_max : m[i];
            if (new_max == -INFINITY) {                   /* everything so far masked */
                for (int j = 0; j < nk; j++) s[j] = 0.0f;
                continue;
            }
            float correction = ts_expf(m[i] - new_max);
            float sum = 0.0f;
            #pragma omp simd reduction(+:sum)
            for (int j = 0; j < nk; j++) { s[j] = ts_expf(s[j] - new_max); sum += s[j]; }
            l[i] = l[i] * correction + sum;
            m[i] = new_max;
            if (correction != 1.0f) {
                float *o = O + (int64_t)i * d;
                for (int c = 0; c < d; c++) o[c] *= correction;
            }
        }
        cpu_gemm(ctx, false, false, nq, d, nk, 1.0f, S, nk, v + j0 * v_stride, (int)v_stride, 1.0f, O, d);
    }
    for (int i = 0; i < nq; i++) {
        float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;   /* fully masked row: 0 */
        float *o = out + (q0 + i) * out_stride;
        for (int c = 0; c < d; c++) o[c] = O[(int64_t)i * d + c] * inv;
    }
}

void cpu_attention(ts_ctx *ctx, float *out, const float *q, const float *k, const float *v, attention_params p) {
    int d = p.head_dim, width = p.heads * p.head_dim;
    int kv_heads = p.kv_heads > 0 && p.heads % p.kv_heads == 0 ? p.kv_heads : p.heads;
    int group = p.heads / kv_heads, kv_width = kv_heads * d;
    if (p.scale == 0.0f) p.scale = 1.0f / sqrtf((float)d);
    int64_t qs = p.q_stride ? p.q_stride : width, ks = p.k_stride ? p.k_stride : kv_width;
    int64_t vs = p.v_stride ? p.v_stride : kv_width;
    int64_t q_tiles = (p.n_q + QUERY_TILE - 1) / QUERY_TILE;
    int64_t work = (int64_t)p.batch * p.heads * q_tiles;
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(dynamic, 1) if (work > 1)
    for (int64_t w = 0; w < work; w++) {
        int64_t bh = w / q_tiles, t = w % q_tiles;
        int64_t b = bh / p.heads, h = bh % p.heads;
        int64_t q0 = t * QUERY_TILE;
        int nq = (int)(p.n_q - q0 < QUERY_TILE ? p.n_q - q0 : QUERY_TILE);
        int64_t kvh = h / group;
        attention_tile(ctx, out + b * p.n_q * width + h * d, width, q + b * p.n_q * qs + h * d, qs,
                       k + b * p.n_kv * ks + kvh * d, ks, v + b * p.n_kv * vs + kvh * d, vs, d, q0, nq, &p);
    }
}

/* ---- against a KV cache (LLM decoding) ---- */

void cpu_attention_kv(ts_ctx *ctx, float *out, const float *q, const float *k_cache, const float *v_cache,
                      kv_attention_params p) {
    const int hd = p.head_dim, H = p.heads, group = p.heads / (p.kv_heads > 0 ? p.kv_heads : p.heads);
    const float scale = p.scale != 0.0f ? p.scale : 1.0f / sqrtf((float)hd);
    int64_t work = 0;   /* threads only pay off above a few tens of thousands of MACs */
    for (int i = 0; i < p.n; i++) work += (int64_t)(p.pos[i] + 1) * H * hd * 2;
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(dynamic, 1) if (work >= (1 << 18))
    for (int task = 0; task < p.n * H; task++) {
        int i = task / H, h = task % H, kvh = h / group;
        float *sc = cpu_scratch(ctx, 2, (size_t)p.max_ctx);
        const float *qi = q + ((size_t)i * H + h) * hd;
        size_t base = (size_t)p.seqs[i] * (size_t)p.seq_stride + (size_t)kvh * hd;
        int T = p.pos[i] + 1;
        for (int t = 0; t < T; t++) sc[t] = dot_f32(qi, k_cache + base + (size_t)t * p.row_stride, hd) * scale;
        cpu_softmax_rows(ctx, sc, 1, T);
        float *o = out + ((size_t)i * H + h) * hd;
        memset(o, 0, (size_t)hd * sizeof(float));
        for (int t = 0; t < T; t++) {
            const float *v = v_cache + base + (size_t)t * p.row_stride;
            float w = sc[t];
            for (int d = 0; d < hd; d++) o[d] += w * v[d];
        }
    }
}

void cpu_rope(ts_ctx *ctx, float *x, int64_t ld, int rows, int heads, int hd, const int *pos, const float *inv_freq,
              bool neox) {
    (void)ctx;
    int half = hd / 2;
    for (int r = 0; r < rows; r++) {
        float *xr = x + r * ld;
        for (int i = 0; i < half; i++) {
            float a = (float)pos[r] * inv_freq[i];
            float cr = cosf(a), sr = sinf(a);
            for (int h = 0; h < heads; h++) {
                float *v = xr + h * hd;
                int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
                float a0 = v[i0], a1 = v[i1];
                v[i0] = a0 * cr - a1 * sr;
                v[i1] = a0 * sr + a1 * cr;
            }
        }
    }
}
