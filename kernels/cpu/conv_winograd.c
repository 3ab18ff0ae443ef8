/*
 * conv_winograd.c — 3x3 stride-1 pad-1 convolutions by Winograd's minimal filtering F(2x2, 3x3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
 *
 * Each 2x2 block of outputs comes from a 4x4 block of inputs with 16 multiplications per
 * (input, output channel) pair instead of 36: the inputs and weights are taken into the
 * Winograd domain (V = Bt d B, U = G g Gt), the 16 positions of that domain are 16 independent
 * matrix products over the channels, M[e] = U[e] V[e], and each output block is At M A. So the
 * work is 16 sgemms of [OC x C] by [C x tiles] (OpenBLAS, tiled as cpu_gemm tiles everything)
 * and two cheap transforms. Hand-written because neither OpenBLAS nor the installed oneDNN
 * offers it on AVX2 (oneDNN's Winograd convolution is AVX-512 only).
 *
 * F(2x2, 3x3) rather than F(4x4, 3x3): its transforms have entries 0, +-1 and 1/2, so the
 * rounding error stays within a few times a direct convolution's (the larger tile's entries
 * up to 8 would cost parity with diffusers). Tiles are taken in chunks of a fixed size and
 * output channels in blocks of a fixed size, so every number is the same whatever the thread
 * count. As on the other paths, another batch size means products of other widths, which may
 * round differently: render workers keep each record's calls the same (worker/backend.h).
 */
#include "kernels/cpu/cpu.h"

#include <string.h>

/* Tiles per chunk at most; floats of one chunk's transformed inputs at most; floats of the
 * transformed weights of one block of output channels at most (32 MB). */
enum { WINOGRAD_MAX_TILES = 1024, WINOGRAD_CHUNK_FLOATS = 4 << 20, WINOGRAD_BLOCK_WEIGHTS = 8 << 20 };
enum { SLOT_ROW = 0, SLOT_V = 2, SLOT_M = 3, SLOT_U = 4 };

/* U[e][o][c] = (G g Gt)[e] for each 3x3 filter g = w[o0 + o][c], o < n_o. The weight keeps its
 * dtype: a thread widens one output channel's filters at a time, so an F16 weight never needs a
 * whole F32 copy (118 MB for the U-Net's largest). The filters are first laid out tap by tap
 * (g[k][c]), so the transform runs on 8 channels at once: as 9 loads per filter at stride 9
 * it stayed scalar and took 6 % of a 256x256 U-Net step. */
static void transform_weights(ts_ctx *ctx, float *U, const tensor *w, int o0, int n_o, int C) {
    int64_t plane = (int64_t)n_o * C, row_len = (int64_t)9 * C;
    size_t es = dtype_size(w->type);
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static)
    for (int o = 0; o < n_o; o++) {
        const char *src = (const char *)w->data + (size_t)((o0 + o) * row_len) * es;
        float *taps = cpu_scratch(ctx, SLOT_ROW, (size_t)(2 * row_len)), *wide = taps + row_len;
        const float *row = (const float *)src;
        if (w->type != DT_F32) {
            convert_to_f32(wide, src, w->type, (size_t)row_len);
            row = wide;
        }
        for (int c = 0; c < C; c++)
            for (int k = 0; k < 9; k++) taps[k * C + c] = row[9 * c + k];
        const float *g0 = taps, *g1 = taps + C, *g2 = taps + 2 * C, *g3 = taps + 3 * C, *g4 = taps + 4 * C,
                    *g5 = taps + 5 * C, *g6 = taps + 6 * C, *g7 = taps + 7 * C, *g8 = taps + 8 * C;
        float *u = U + (int64_t)o * C;
        #pragma omp simd
        for (int c = 0; c < C; c++) {
            float g[9] = {g0[c], g1[c], g2[c], g3[c], g4[c], g5[c], g6[c], g7[c], g8[c]};
            float t[4][3];   /* G g: 4 rows of 3 */
            for (int j = 0; j < 3; j++) {
                t[0][j] = g[j];
                t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                t[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) {   /* (G g) Gt */
                float *ui = u + (int64_t)(4 * i) * plane + c;
                ui[0] = t[i][0];
                ui[plane] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                ui[2 * plane] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                ui[3 * plane] = t[i][2];
            }
        }
    }
}

/* V[e][c][t - t0] = (Bt d B)[e] for the tiles t0 <= t < t1, d the 4x4 inputs of tile t
 * (image t / tiles_per_image) with the padding as zeros. The tiles come a run of one tile row
 * at a time: its 4 input rows are copied with their zero padding, so the transform runs on 8
 * tiles at once without a bounds check per value. */
static void transform_inputs(ts_ctx *ctx, float *V, const float *x, int C, int H, int W, int tiles_w,
                             int64_t tiles_per_image, int64_t t0, int64_t t1) {
    int64_t n_t = t1 - t0, plane = (int64_t)C * n_t;
    int padded = 2 * tiles_w + 2;   /* input columns -1 .. 2 tiles_w, zeros outside 0 .. W-1 */
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static)
    for (int c = 0; c < C; c++) {
        float *rows = cpu_scratch(ctx, SLOT_ROW, (size_t)(4 * padded));
        for (int64_t t = t0; t < t1;) {
            int64_t img = t / tiles_per_image, in_img = t % tiles_per_image;
            int ty = (int)(in_img / tiles_w), tx0 = (int)(in_img % tiles_w);
            int n = tiles_w - tx0 < t1 - t ? tiles_w - tx0 : (int)(t1 - t);
            const float *xc = x + (img * C + c) * (int64_t)H * W;
            for (int i = 0; i < 4; i++) {
                int yy = 2 * ty - 1 + i;
                float *r = rows + i * padded;
                memset(r, 0, (size_t)padded * sizeof(float));
                if (yy >= 0 && yy < H) memcpy(r + 1, xc + (int64_t)yy * W, (size_t)W * sizeof(float));
            }
            const float *p0 = rows + 2 * tx0, *p1 = p0 + padded, *p2 = p1 + padded, *p3 = p2 + padded;
            float *v = V + (int64_t)c * n_t + (t - t0);
            #pragma omp simd
            for (int k = 0; k < n; k++) {
                const float *q[4] = {p0 + 2 * k, p1 + 2 * k, p2 + 2 * k, p3 + 2 * k};
                float r[4][4];   /* Bt d */
                for (int j = 0; j < 4; j++) {
                    r[0][j] = q[0][j] - q[2][j];
                    r[1][j] = q[1][j] + q[2][j];
                    r[2][j] = q[2][j] - q[1][j];
                    r[3][j] = q[1][j] - q[3][j];
                }
                for (int i = 0; i < 4; i++) {   /* (Bt d) B */
                    v[(4 * i + 0) * plane + k] = r[i][0] - r[i][2];
                    v[(4 * i + 1) * plane + k] = r[i][1] + r[i][2];
                    v[(4 * i + 2) * plane + k] = r[i][2] - r[i][1];
                    v[(4 * i + 3) * plane + k] = r[i][1] - r[i][3];
                }
            }
            t += n;
        }
    }
}

/* out[img][o0 + o][2 ty + i][2 tx + j] = (At M A)[i][j] + bias[o0 + o] for the tiles t0 <= t < t1 and
 * the output channels o0 <= o0 + o < o0 + ob of OC. As for the inputs, a run of one tile row at
 * a time: its two output rows are made whole on 8 tiles at once, then copied out (the last
 * column and row dropped where W or H is odd). */
static void transform_outputs(ts_ctx *ctx, float *out, const float *M, const float *bias, int o0, int ob, int OC, int H,
                              int W, int tiles_w, int64_t tiles_per_image, int64_t t0, int64_t t1) {
    int64_t n_t = t1 - t0, plane = (int64_t)ob * n_t;
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static)
    for (int o = 0; o < ob; o++) {
        float b = bias ? bias[o0 + o] : 0.0f;
        float *row0 = cpu_scratch(ctx, SLOT_ROW, (size_t)(4 * tiles_w)), *row1 = row0 + 2 * tiles_w;
        for (int64_t t = t0; t < t1;) {
            int64_t img = t / tiles_per_image, in_img = t % tiles_per_image;
            int ty = (int)(in_img / tiles_w), tx0 = (int)(in_img % tiles_w);
            int n = tiles_w - tx0 < t1 - t ? tiles_w - tx0 : (int)(t1 - t);
            const float *m = M + (int64_t)o * n_t + (t - t0);
            #pragma omp simd
            for (int k = 0; k < n; k++) {
                float r[2][4];   /* At m */
                for (int j = 0; j < 4; j++) {
                    float m0 = m[j * plane + k], m1 = m[(4 + j) * plane + k], m2 = m[(8 + j) * plane + k],
                          m3 = m[(12 + j) * plane + k];
                    r[0][j] = m0 + m1 + m2;
                    r[1][j] = m1 - m2 - m3;
                }
                /* (At m) A */
                row0[2 * k] = r[0][0] + r[0][1] + r[0][2] + b;
                row0[2 * k + 1] = r[0][1] - r[0][2] - r[0][3] + b;
                row1[2 * k] = r[1][0] + r[1][1] + r[1][2] + b;
                row1[2 * k + 1] = r[1][1] - r[1][2] - r[1][3] + b;
            }
            int x0 = 2 * tx0, cols = 2 * n < W - x0 ? 2 * n : W - x0;
            float *yo = out + (img * OC + o0 + o) * (int64_t)H * W + (int64_t)(2 * ty) * W + x0;
            memcpy(yo, row0, (size_t)cols * sizeof(float));
            if (2 * ty + 1 < H) memcpy(yo + W, row1, (size_t)cols * sizeof(float));
            t += n;
        }
    }
}

/* The 16 products of one block of output channels [o0, o0 + n_o) with one chunk of tiles, and
 * their outputs. */
static void block_products(ts_ctx *ctx, float *out, const float *U, const float *V, float *M, const float *bias, int o0,
                           int n_o, int OC, int C, int H, int W, int tiles_w, int64_t tiles_per_image, int64_t t0,
                           int64_t t1) {
    int n_t = (int)(t1 - t0);
    /* a product per thread at a time: split over the threads, n_o x n_t makes too few tiles */
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(dynamic, 1)
    for (int e = 0; e < 16; e++)
        cpu_gemm(ctx, false, false, n_o, n_t, C, 1.0f, U + (int64_t)e * n_o * C, C, V + (int64_t)e * C * n_t, n_t, 0.0f,
                 M + (int64_t)e * n_o * n_t, n_t);
    transform_outputs(ctx, out, M, bias, o0, n_o, OC, H, W, tiles_w, tiles_per_image, t0, t1);
}

int conv2d_winograd(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W, const tensor *w,
                    const float *bias, int OC) {
    int tiles_h = (H + 1) / 2, tiles_w = (W + 1) / 2;
    int64_t tiles_per_image = (int64_t)tiles_h * tiles_w, tiles = N * tiles_per_image;
    int64_t widest = C > OC ? C : OC, chunk = WINOGRAD_CHUNK_FLOATS / (16 * widest);
    if (chunk > WINOGRAD_MAX_TILES) chunk = WINOGRAD_MAX_TILES;
    if (chunk < 16) chunk = 16;
    /* output channels in blocks whose transformed weights stay within WINOGRAD_BLOCK_WEIGHTS */
    int ob = (int)(WINOGRAD_BLOCK_WEIGHTS / ((int64_t)16 * C));
    if (ob < 16) ob = 16;
    int force = cpu_of(ctx)->force_split;   /* tests: many chunks and blocks, either loop order */
    if (force) chunk = ob = 16;
    if (ob > OC) ob = OC;
    float *U = cpu_scratch(ctx, SLOT_U, (size_t)16 * ob * C);
    float *V = cpu_scratch(ctx, SLOT_V, (size_t)(16 * C * chunk));
    float *M = cpu_scratch(ctx, SLOT_M, (size_t)(16 * ob * chunk));
    /* With several blocks and several chunks one of the two transforms is done again for each
     * of the other's: weights per chunk cost chunks x OC x C transforms, inputs per block
     * blocks x tiles x C. Take the loop order that repeats less; every product and so every
     * number is the same in both. */
    int64_t chunks = (tiles + chunk - 1) / chunk, blocks = (OC + ob - 1) / ob;
    bool blocks_outside = force ? force == 2 : (chunks - 1) * OC > (blocks - 1) * tiles;
    if (blocks_outside) {
        for (int o0 = 0; o0 < OC; o0 += ob) {
            int n_o = OC - o0 < ob ? OC - o0 : ob;
            transform_weights(ctx, U, w, o0, n_o, C);
            for (int64_t t0 = 0; t0 < tiles; t0 += chunk) {
                int64_t t1 = t0 + chunk < tiles ? t0 + chunk : tiles;
                transform_inputs(ctx, V, x, C, H, W, tiles_w, tiles_per_image, t0, t1);
                block_products(ctx, out, U, V, M, bias, o0, n_o, OC, C, H, W, tiles_w, tiles_per_image, t0, t1);
            }
        }
    } else {
        if (blocks == 1) transform_weights(ctx, U, w, 0, OC, C);
        for (int64_t t0 = 0; t0 < tiles; t0 += chunk) {
            int64_t t1 = t0 + chunk < tiles ? t0 + chunk : tiles;
            transform_inputs(ctx, V, x, C, H, W, tiles_w, tiles_per_image, t0, t1);
            for (int o0 = 0; o0 < OC; o0 += ob) {
                int n_o = OC - o0 < ob ? OC - o0 : ob;
                if (blocks > 1) transform_weights(ctx, U, w, o0, n_o, C);
                block_products(ctx, out, U, V, M, bias, o0, n_o, OC, C, H, W, tiles_w, tiles_per_image, t0, t1);
            }
        }
    }
    return 0;
}
