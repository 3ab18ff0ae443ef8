/*
 * cpu_backend.c — the CPU backend: its context (threads, per-thread scratch, the
 * convolution settings), host memory, and the table of its ops (the cpu_ functions of the
 * other files here).
 */
#include "kernels/cpu/cpu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- context ------------------------------------------------------------ */

static int cpu_context_init(ts_ctx *ctx, int device, int threads) {
    if (device != 0) return ts_fail("cpu: there is one CPU device (cpu or cpu:0), not cpu:%d", device);
    cpu_ctx *c = ts_calloc(1, sizeof *c);
    int cores = 1, max_region = 1;
#ifdef _OPENMP
    cores = omp_get_num_procs();
    max_region = omp_get_max_threads();
#endif
    c->threads = threads > 0 ? threads : cores;
    /* A caller's own parallel region (as wide as OpenMP's default) may call ops too. */
    c->scratch_threads = c->threads > max_region ? c->threads : max_region;
    c->scratch = ts_calloc((size_t)c->scratch_threads * SCRATCH_SLOTS, sizeof *c->scratch);
    c->conv_backend = CONV_BACKEND_AUTO;
    ctx->impl = c;
    return 0;
}

static void cpu_context_free(ts_ctx *ctx) {
    cpu_ctx *c = cpu_of(ctx);
    if (!c) return;
    for (int i = 0; i < c->scratch_threads * SCRATCH_SLOTS; i++) free(c->scratch[i].data);
    free(c->scratch);
    cpu_weight_cache_free(&c->conv_weights);
    free(c);
    ctx->impl = NULL;
}

static int cpu_context_threads(const ts_ctx *ctx) { return cpu_threads(ctx); }
static int cpu_synchronize(ts_ctx *ctx) { (void)ctx; return 0; }   /* ops finish before they return */

/* The row of scratch of the calling thread: its number in the outermost active parallel
 * region (inner regions are inactive: OpenMP's default of one active level), else 0. */
static int scratch_row(void) {
#ifdef _OPENMP
    int levels = omp_get_level();
    for (int l = 1; l <= levels; l++)
        if (omp_get_team_size(l) > 1) return omp_get_ancestor_thread_num(l);
#endif
    return 0;
}

float *cpu_scratch(ts_ctx *ctx, int slot, size_t count) {
    cpu_ctx *c = cpu_of(ctx);
    int row = scratch_row();
    if (row >= c->scratch_threads) {
        /* a bug, not an input error: the context was made for fewer threads */
        fprintf(stderr, "cpu_scratch: thread %d of a parallel region wider than the context's %d\n", row,
                c->scratch_threads);
        abort();
    }
    cpu_scratch_slot *s = &c->scratch[row * SCRATCH_SLOTS + slot];
    if (count > s->capacity) {
        free(s->data);
        s->capacity = count + count / 4 + 16;
        s->data = ts_aligned_alloc(s->capacity * sizeof(float));
    }
    return s->data;
}

/* ---- memory --------------------------------------------------------------- */

static void *cpu_alloc(ts_ctx *ctx, size_t bytes) { (void)ctx; return ts_aligned_alloc(bytes ? bytes : 1); }
static void cpu_free(ts_ctx *ctx, void *p) { (void)ctx; free(p); }
static int cpu_copy_bytes(ts_ctx *ctx, void *dst, const void *src, size_t bytes) {
    (void)ctx;
    memmove(dst, src, bytes);
    return 0;
}

/* ---- small ops -------------------------------------------------------------- */

void cpu_copy_strided(ts_ctx *ctx, float *dst, const int64_t *ds, const float *src, const int64_t *ss, const int64_t *shape) {
    int64_t rows = shape[0] * shape[1], cols = shape[2];
    bool unit = ds[2] == 1 && ss[2] == 1;
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static) if (rows * cols >= 4 * PARALLEL_MIN_WORK)
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = r / shape[1], j = r % shape[1];
        float *d = dst + i * ds[0] + j * ds[1];
        const float *s = src + i * ss[0] + j * ss[1];
        if (unit) memcpy(d, s, (size_t)cols * sizeof(float));
        else
            for (int64_t k = 0; k < cols; k++) d[k * ds[2]] = s[k * ss[2]];
    }
}

void cpu_crossfade(ts_ctx *ctx, float *b, int64_t b_plane, int64_t b_row, const float *a, int64_t a_plane, int64_t a_row,
                   int planes, int rows, int cols, int extent, bool along_rows) {
    (void)ctx;
    for (int c = 0; c < planes; c++)
        for (int y = 0; y < rows; y++) {
            const float *ra = a + c * a_plane + y * a_row;
            float *rb = b + c * b_plane + y * b_row;
            for (int x = 0; x < cols; x++) {
                int t = along_rows ? y : x;
                float wb = (float)((double)t / extent), wa = (float)(1.0 - (double)t / extent);
                rb[x] = ra[x] * wa + rb[x] * wb;
            }
        }
}

void cpu_rgb8_from_planes(ts_ctx *ctx, uint8_t *rgb, const float *image, int C, int64_t hw, float scale, float offset) {
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static) if (hw >= PARALLEL_MIN_WORK)
    for (int64_t p = 0; p < hw; p++)
        for (int k = 0; k < 3; k++) {
            float v = image[(int64_t)(k < C ? k : C - 1) * hw + p] * scale + offset;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            rgb[p * 3 + k] = (uint8_t)lrintf(v * 255.0f);
        }
}

void cpu_copy(ts_ctx *ctx, float *dst, const float *src, int64_t n) {
    (void)ctx;
    if (n > 0 && dst != src) memmove(dst, src, (size_t)n * sizeof(float));
}

int cpu_gather_rows(ts_ctx *ctx, float *out, const tensor *table, const int32_t *rows, int n) {
    (void)ctx;
    if (!table || table->ndim != 2 || !tensor_is_contiguous(table) || dtype_size(table->type) == 0 ||
        dtype_is_quantized(table->type))
        return ts_fail("gather_rows: the table must be a contiguous 2-D F32/F16/BF16 tensor");
    int64_t V = table->shape[0], D = table->shape[1];
    size_t es = dtype_size(table->type);
    for (int i = 0; i < n; i++) {
        int64_t r = rows ? rows[i] : i;
        if (r < 0 || r >= V) return ts_fail("gather_rows: row %lld of item %d is outside the table's %lld", (long long)r, i, (long long)V);
        convert_to_f32(out + (size_t)i * D, (const char *)table->data + (size_t)(r * D) * es, table->type, (size_t)D);
    }
    return 0;
}

void cpu_fill(ts_ctx *ctx, float *x, float v, int64_t n) {
    #pragma omp parallel for simd num_threads(cpu_threads(ctx)) schedule(static) if (n >= PARALLEL_MIN_WORK)
    for (int64_t i = 0; i < n; i++) x[i] = v;
}

void cpu_timestep_embedding(ts_ctx *ctx, float *out, const float *t, int n, int dim, bool flip, float shift) {
    (void)ctx;
    int half = dim / 2;
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)i * dim;
        for (int j = 0; j < half; j++) {
            float e = (-9.21034049987792969f * (float)j) / ((float)half - shift); /* -ln(10000) j / (half - shift) */
            float arg = t[i] * expf(e);
            o[flip ? half + j : j] = sinf(arg);
            o[flip ? j : half + j] = cosf(arg);
        }
        if (dim % 2) o[dim - 1] = 0;
    }
}

/* ---- the table -------------------------------------------------------------- */

const ts_backend ts_backend_cpu = {
    .name = "cpu",
    .host_memory = true,
    .context_init = cpu_context_init,
    .context_free = cpu_context_free,
    .threads = cpu_context_threads,
    .synchronize = cpu_synchronize,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy_bytes,
    .download = cpu_copy_bytes,
    .ops = {
        .gemm = cpu_gemm,
        .gemm_batched = cpu_gemm_batched,
        .linear = cpu_linear,
        .weight_gemm = cpu_weight_gemm,
        .qmatmul = cpu_qmatmul,
        .qmatrix_gather = cpu_qmatrix_gather,
        .conv2d = cpu_conv2d,
        .group_norm = cpu_group_norm,
        .layer_norm = cpu_layer_norm,
        .rms_norm = cpu_rms_norm,
        .softmax_rows = cpu_softmax_rows,
        .unary = cpu_unary,
        .clamp = cpu_clamp,
        .scaled_tanh = cpu_scaled_tanh,
        .geglu = cpu_geglu,
        .swiglu = cpu_swiglu,
        .binary = cpu_binary,
        .add_inplace = cpu_add_inplace,
        .scale_inplace = cpu_scale_inplace,
        .affine = cpu_affine,
        .add_row_bias = cpu_add_row_bias,
        .add_channel_bias = cpu_add_channel_bias,
        .upsample_nearest2x = cpu_upsample_nearest2x,
        .concat = cpu_concat,
        .nchw_to_nhwc = cpu_nchw_to_nhwc,
        .nhwc_to_nchw = cpu_nhwc_to_nchw,
        .copy_strided = cpu_copy_strided,
        .crossfade = cpu_crossfade,
        .rgb8_from_planes = cpu_rgb8_from_planes,
        .copy = cpu_copy,
        .gather_rows = cpu_gather_rows,
        .fill = cpu_fill,
        .timestep_embedding = cpu_timestep_embedding,
        .attention = cpu_attention,
        .attention_kv = cpu_attention_kv,
        .rope = cpu_rope,
    },
};

/* ---- CPU-only settings of a context (ops.h) ---------------------------------- */

static cpu_ctx *cpu_or_null(const ts_ctx *ctx) { return ctx && ctx->backend == &ts_backend_cpu ? cpu_of(ctx) : NULL; }

void conv2d_set_backend(ts_ctx *ctx, conv2d_backend b) {
    cpu_ctx *c = cpu_or_null(ctx);
    if (c) c->conv_backend = b;
}

conv2d_backend conv2d_get_backend(const ts_ctx *ctx) {
    cpu_ctx *c = cpu_or_null(ctx);
    if (c && c->conv_backend != CONV_BACKEND_AUTO) return c->conv_backend;
    return conv2d_backend_available(CONV_BACKEND_ONEDNN) ? CONV_BACKEND_DEFAULT : CONV_BACKEND_IM2COL;
}

void cpu_debug_force_split(ts_ctx *ctx, int mode) {
    cpu_ctx *c = cpu_or_null(ctx);
    if (c) c->force_split = mode;
}
