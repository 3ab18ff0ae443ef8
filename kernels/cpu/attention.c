/*
 * attention.c — scaled-dot-product attention, flash style: for each (batch, head) and a
 * tile of QUERY_TILE queries, keys are visited KEY_TILE at a time with an online softmax
 * (running max m and sum l per query, rescaling the partial output when m grows), so the
 * memory is O(tile) and never [n_q, n_kv]. Head sizes that are a multiple of 8 (every SD
 * U-Net, CLIP, most LLMs) take the register-blocked small-head kernel; the rest run the two
 * products per tile as sgemm calls on strided views of q, k, v. Tiles are spread over
 * threads with OpenMP (one parallel region per call; gemm runs each product on the calling
 * thread inside it), and each tile's result is the same on any thread count.
 */
#include "kernels/cpu/cpu.h"
#include "kernels/quant.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Tuned on Sapphire Rapids, one core, SD shapes (d 40-80, 77-4096 keys): 256 x 256 ran at
 * 90-115 GFLOP/s per core, 64 x 256 at ~70. Overridable (-D) for tuning experiments. */
#ifndef QUERY_TILE
#define QUERY_TILE 256
#endif
#ifndef KEY_TILE
#define KEY_TILE 256
#endif

/*
 * The online softmax of one row of scores against one key tile: masks s (additive mask row,
 * causal limit), raises the running max m, turns s into exp(s - m) in place and adds their
 * sum into l. Returns the factor that rescales the row's partial output (1 when unchanged).
 * causal_limit: keys j > causal_limit of this tile are masked (INT64_MAX: none).
 */
static float softmax_tile_row(float *s, int nk, const float *mask_row, int64_t causal_limit, float *m, float *l) {
    if (mask_row)
        for (int j = 0; j < nk; j++) s[j] += mask_row[j];
    if (causal_limit < nk)
        for (int64_t j = causal_limit + 1 < 0 ? 0 : causal_limit + 1; j < nk; j++) s[j] = -INFINITY;
    float tile_max = -INFINITY;
    #pragma omp simd reduction(max:tile_max)
    for (int j = 0; j < nk; j++) tile_max = s[j] > tile_max ? s[j] : tile_max;
    float new_max = tile_max > *m ? tile_max : *m;
    if (new_max == -INFINITY) {                   /* everything so far masked */
        for (int j = 0; j < nk; j++) s[j] = 0.0f;
        return 1.0f;
    }
    float correction = ts_expf(*m - new_max);
    float sum = 0.0f;
    #pragma omp simd reduction(+:sum)
    for (int j = 0; j < nk; j++) { s[j] = ts_expf_nonpositive(s[j] - new_max); sum += s[j]; }
    *l = *l * correction + sum;
    *m = new_max;
    return correction;
}

/* The causal limit of query row q (aligned at the end of the keys) in the key tile at j0. */
static int64_t causal_limit_of(const attention_params *p, int64_t q, int64_t j0) {
    return p->causal ? q + (p->n_kv - p->n_q) - j0 : INT64_MAX;
}

/* Keys visible to any query of [q0, q0 + nq): causal queries see no key past their own. */
static int64_t keys_end(const attention_params *p, int64_t q0, int nq) {
    int64_t kv_end = p->n_kv;
    if (p->causal) {
        int64_t last = q0 + nq - 1 + (p->n_kv - p->n_q) + 1;
        if (last < kv_end) kv_end = last < 0 ? 0 : last;
    }
    return kv_end;
}

/* out rows [q0, q0 + nq) = O / l, fully masked rows 0. */
static void write_normalised(float *out, int64_t out_stride, const float *O, const float *l, int d, int64_t q0, int nq) {
    for (int i = 0; i < nq; i++) {
        float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
        float *o = out + (q0 + i) * out_stride;
        for (int c = 0; c < d; c++) o[c] = O[(int64_t)i * d + c] * inv;
    }
}

/* One query tile of one head through sgemm: for head sizes the small-head kernel below does not take. */
static void attention_tile_gemm(ts_ctx *ctx, float *out, int64_t out_stride, const float *q, int64_t q_stride,
                                const float *k, int64_t k_stride, const float *v, int64_t v_stride,
                                int d, int64_t q0, int nq, const attention_params *p) {
    float *S = cpu_scratch(ctx, 0, (size_t)QUERY_TILE * KEY_TILE);
    float *O = cpu_scratch(ctx, 1, (size_t)QUERY_TILE * d);
    float m[QUERY_TILE], l[QUERY_TILE];
    for (int i = 0; i < nq; i++) { m[i] = -INFINITY; l[i] = 0.0f; }
    memset(O, 0, (size_t)nq * d * sizeof(float));
    int64_t kv_end = keys_end(p, q0, nq);
    for (int64_t j0 = 0; j0 < kv_end; j0 += KEY_TILE) {
        int nk = (int)(kv_end - j0 < KEY_TILE ? kv_end - j0 : KEY_TILE);
        cpu_gemm(ctx, false, true, nq, nk, d, p->scale, q + q0 * q_stride, (int)q_stride, k + j0 * k_stride,
             (int)k_stride, 0.0f, S, nk);
        for (int i = 0; i < nq; i++) {
            const float *mask_row = p->mask ? p->mask + (q0 + i) * p->n_kv + j0 : NULL;
            float correction = softmax_tile_row(S + (int64_t)i * nk, nk, mask_row, causal_limit_of(p, q0 + i, j0),
                                                &m[i], &l[i]);
            if (correction != 1.0f) {
                float *o = O + (int64_t)i * d;
                for (int c = 0; c < d; c++) o[c] *= correction;
            }
        }
        cpu_gemm(ctx, false, false, nq, d, nk, 1.0f, S, nk, v + j0 * v_stride, (int)v_stride, 1.0f, O, d);
    }
    write_normalised(out, out_stride, O, l, d, q0, nq);
}

/*
 * The small-head kernel (head_dim a multiple of 8, up to SMALL_HEAD_MAX): Stable Diffusion's
 * heads are 40-160 wide, and sgemm at K = 40 runs at half its peak (OpenBLAS 0.3.21 on AVX2:
 * 36 GFLOP/s a core for a 256x256x40 product against 72 at 512^3), so both products are
 * register-blocked here, ROWS queries at a time, with the tile's keys packed once per tile
 * (transposed) and its values once: the scores of ROWS queries stay in L1 between the two
 * products. No library offers fused attention on the CPU that we could call (oneDNN 2.6
 * has no SDPA primitive), hence hand-written. GCC's vector extensions: AVX2 + FMA under
 * -march=native, plain SSE elsewhere; the sums run in the same order on every thread count.
 */
#define ROWS 6            /* queries per register block: 6 x 16 scores = 12 ymm sums (the unroll pragmas say 6 too) */
#define SMALL_HEAD_MAX 256

typedef float v8 __attribute__((vector_size(32)));
static inline v8 v8_load(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static inline void v8_store(float *p, v8 v) { memcpy(p, &v, sizeof v); }
static inline v8 v8_splat(float x) { return (v8){x, x, x, x, x, x, x, x}; }

/* S[r][j] = scale * (q_r . key_j) for ROWS queries and the nk16 keys of Kp: panels of 16 keys,
 * each [d][16] (the keys transposed), so that every load of the loop below is sequential. */
static void scores_of_rows(float *S, const float *const *qr, const float *Kp, int nk16, int d, float scale) {
    for (int j = 0; j < nk16; j += 16) {
        v8 acc[ROWS][2] = {{{0}}};
        const float *kc = Kp + (int64_t)j * d;
        for (int c = 0; c < d; c++, kc += 16) {
            v8 k0 = v8_load(kc), k1 = v8_load(kc + 8);
            #pragma GCC unroll 6
            for (int r = 0; r < ROWS; r++) {
                v8 qv = v8_splat(qr[r][c]);
                acc[r][0] += qv * k0;
                acc[r][1] += qv * k1;
            }
        }
        v8 sv = v8_splat(scale);
        #pragma GCC unroll 6
        for (int r = 0; r < ROWS; r++) {
            v8_store(S + r * nk16 + j, acc[r][0] * sv);
            v8_store(S + r * nk16 + j + 8, acc[r][1] * sv);
        }
    }
}

/* o_r = o_r * corr_r + sum_k P[r][k] * V[k] for ROWS output rows; V is [nk][d]. */
static void accumulate_rows(float *const *o, const float *corr, const float *P, int ldp, const float *V, int nk, int d) {
    int c = 0;
    for (; c + 16 <= d; c += 16) {
        v8 acc[ROWS][2];
        #pragma GCC unroll 6
        for (int r = 0; r < ROWS; r++) {
            v8 cr = v8_splat(corr[r]);
            acc[r][0] = v8_load(o[r] + c) * cr;
            acc[r][1] = v8_load(o[r] + c + 8) * cr;
        }
        for (int k = 0; k < nk; k++) {
            v8 v0 = v8_load(V + (int64_t)k * d + c), v1 = v8_load(V + (int64_t)k * d + c + 8);
            #pragma GCC unroll 6
            for (int r = 0; r < ROWS; r++) {
                v8 pv = v8_splat(P[r * ldp + k]);
                acc[r][0] += pv * v0;
                acc[r][1] += pv * v1;
            }
        }
        #pragma GCC unroll 6
        for (int r = 0; r < ROWS; r++) { v8_store(o[r] + c, acc[r][0]); v8_store(o[r] + c + 8, acc[r][1]); }
    }
    if (c < d) {                                  /* the last 8 columns */
        v8 acc[ROWS];
        #pragma GCC unroll 6
        for (int r = 0; r < ROWS; r++) acc[r] = v8_load(o[r] + c) * v8_splat(corr[r]);
        for (int k = 0; k < nk; k++) {
            v8 v0 = v8_load(V + (int64_t)k * d + c);
            #pragma GCC unroll 6
            for (int r = 0; r < ROWS; r++) acc[r] += v8_splat(P[r * ldp + k]) * v0;
        }
        #pragma GCC unroll 6
        for (int r = 0; r < ROWS; r++) v8_store(o[r] + c, acc[r]);
    }
}

static void attention_tile_small(ts_ctx *ctx, float *out, int64_t out_stride, const float *q, int64_t q_stride,
                                 const float *k, int64_t k_stride, const float *v, int64_t v_stride,
                                 int d, int64_t q0, int nq, const attention_params *p) {
    float *Kp = cpu_scratch(ctx, 0, (size_t)d * KEY_TILE);
    float *V = cpu_scratch(ctx, 1, (size_t)KEY_TILE * d);
    float *O = cpu_scratch(ctx, 2, (size_t)(QUERY_TILE + 1) * d);    /* + a row for a short block's spare rows */
    float *S = cpu_scratch(ctx, 3, (size_t)ROWS * KEY_TILE);
    float *spare = O + (int64_t)QUERY_TILE * d;
    float m[QUERY_TILE], l[QUERY_TILE];
    for (int i = 0; i < nq; i++) { m[i] = -INFINITY; l[i] = 0.0f; }
    memset(O, 0, (size_t)nq * d * sizeof(float));
    int64_t kv_end = keys_end(p, q0, nq);
    for (int64_t j0 = 0; j0 < kv_end; j0 += KEY_TILE) {
        int nk = (int)(kv_end - j0 < KEY_TILE ? kv_end - j0 : KEY_TILE), nk16 = (nk + 15) & ~15;
        for (int j = 0; j < nk16; j++) {         /* key j to column j % 16 of panel j / 16; 0 past nk */
            float *panel = Kp + (int64_t)(j & ~15) * d + (j & 15);
            if (j >= nk) {
                for (int c = 0; c < d; c++) panel[c * 16] = 0.0f;
                continue;
            }
            const float *kj = k + (j0 + j) * k_stride;
            for (int c = 0; c < d; c++) panel[c * 16] = kj[c];
            memcpy(V + (int64_t)j * d, v + (j0 + j) * v_stride, (size_t)d * sizeof(float));
        }
        for (int i0 = 0; i0 < nq; i0 += ROWS) {
            int rows = nq - i0 < ROWS ? nq - i0 : ROWS;
            const float *qr[ROWS];
            float *orow[ROWS], corr[ROWS];
            for (int r = 0; r < ROWS; r++) {      /* a short block repeats its last query into spare */
                int i = i0 + (r < rows ? r : rows - 1);
                qr[r] = q + (q0 + i) * q_stride;
                orow[r] = r < rows ? O + (int64_t)i * d : spare;
                corr[r] = 0.0f;
            }
            scores_of_rows(S, qr, Kp, nk16, d, p->scale);
            for (int r = 0; r < rows; r++) {
                int64_t i = q0 + i0 + r;
                const float *mask_row = p->mask ? p->mask + i * p->n_kv + j0 : NULL;
                corr[r] = softmax_tile_row(S + r * nk16, nk, mask_row, causal_limit_of(p, i, j0), &m[i0 + r], &l[i0 + r]);
            }
            accumulate_rows(orow, corr, S, nk16, V, nk, d);
        }
    }
    write_normalised(out, out_stride, O, l, d, q0, nq);
}

/* One query tile of one head: out rows [q0, q0 + nq). */
static void attention_tile(ts_ctx *ctx, float *out, int64_t out_stride, const float *q, int64_t q_stride,
                           const float *k, int64_t k_stride, const float *v, int64_t v_stride,
                           int d, int64_t q0, int nq, const attention_params *p) {
    if (d % 8 == 0 && d <= SMALL_HEAD_MAX)
        attention_tile_small(ctx, out, out_stride, q, q_stride, k, k_stride, v, v_stride, d, q0, nq, p);
    else
        attention_tile_gemm(ctx, out, out_stride, q, q_stride, k, k_stride, v, v_stride, d, q0, nq, p);
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
