/*
 * elementwise.c — addition and multiplication with numpy broadcasting over views of up
 * to 4 dims, and the in-place helpers the models call in their inner loops.
 */
#include "kernels/cpu/cpu.h"

#include <string.h>

/* a's strides as seen from out's 4-D index space: 0 along broadcast dimensions. */
static int broadcast_strides(const tensor *out, const tensor *a, int64_t strides[4], const char *op, const char *name) {
    int shift = 4 - a->ndim, oshift = 4 - out->ndim;
    if (a->ndim > out->ndim) return ts_fail("%s: %s has %d dims, out only %d", op, name, a->ndim, out->ndim);
    for (int d = 0; d < 4; d++) {
        int ad = d - shift, od = d - oshift;
        int64_t osize = od >= 0 ? out->shape[od] : 1;
        if (ad < 0) { strides[d] = 0; continue; }
        if (a->shape[ad] == osize) strides[d] = a->shape[ad] == 1 ? 0 : a->stride[ad];
        else if (a->shape[ad] == 1) strides[d] = 0;
        else {
            char s1[64], s2[64];
            return ts_fail("%s: %s shape %s does not broadcast to %s", op, name,
                           tensor_shape_str(a, s1, sizeof s1), tensor_shape_str(out, s2, sizeof s2));
        }
    }
    return 0;
}

static int check_broadcast_out(const tensor *out, const tensor *a, const tensor *b, const char *op) {
    if (out->type != DT_F32 || !tensor_is_contiguous(out)) return ts_fail("%s: out must be contiguous F32", op);
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    if (out->ndim != nd) return ts_fail("%s: out has %d dims, the broadcast shape %d", op, out->ndim, nd);
    for (int d = 0; d < nd; d++) {
        int ad = d - (nd - a->ndim), bd = d - (nd - b->ndim);
        int64_t as = ad >= 0 ? a->shape[ad] : 1, bs = bd >= 0 ? b->shape[bd] : 1;
        int64_t want = as == 1 ? bs : as;
        if ((as != 1 && bs != 1 && as != bs) || out->shape[d] != want) {
            char s1[64], s2[64], s3[64];
            return ts_fail("%s: shapes %s and %s do not broadcast to out %s", op, tensor_shape_str(a, s1, sizeof s1),
                           tensor_shape_str(b, s2, sizeof s2), tensor_shape_str(out, s3, sizeof s3));
        }
    }
    return 0;
}

/* Reads element `off` of a view of any dtype as float. */
static inline float load_any(const void *data, dtype t, int64_t off) {
    if (t == DT_F32) return ((const float *)data)[off];
    float v;
    convert_to_f32(&v, (const char *)data + (size_t)off * dtype_size(t), t, 1);
    return v;
}

static int binary_broadcast(ts_ctx *ctx, tensor *out, const tensor *a, const tensor *b, bool multiply, const char *op) {
    if (check_broadcast_out(out, a, b, op)) return -1;
    int64_t sa[4], sb[4], shape[4];
    if (broadcast_strides(out, a, sa, op, "a") || broadcast_strides(out, b, sb, op, "b")) return -1;
    for (int d = 0; d < 4; d++) shape[d] = d - (4 - out->ndim) >= 0 ? out->shape[d - (4 - out->ndim)] : 1;
    float *o = out->data;
    bool fast = a->type == DT_F32 && b->type == DT_F32;
    const float *af = a->data, *bf = b->data;
    int64_t outer = shape[0] * shape[1] * shape[2], inner = shape[3];
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static) if (outer * inner >= PARALLEL_MIN_WORK)
    for (int64_t r = 0; r < outer; r++) {
        int64_t i0 = r / (shape[1] * shape[2]), i1 = (r / shape[2]) % shape[1], i2 = r % shape[2];
        int64_t oa = i0 * sa[0] + i1 * sa[1] + i2 * sa[2], ob = i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
        float *orow = o + r * inner;
        if (fast && sa[3] == 1 && sb[3] == 1) {
            const float *x = af + oa, *y = bf + ob;
            if (multiply) for (int64_t i = 0; i < inner; i++) orow[i] = x[i] * y[i];
            else for (int64_t i = 0; i < inner; i++) orow[i] = x[i] + y[i];
        } else if (fast && sa[3] == 1 && sb[3] == 0) {
            const float *x = af + oa;
            float y = bf[ob];
            if (multiply) for (int64_t i = 0; i < inner; i++) orow[i] = x[i] * y;
            else for (int64_t i = 0; i < inner; i++) orow[i] = x[i] + y;
        } else {
            for (int64_t i = 0; i < inner; i++) {
                float x = load_any(a->data, a->type, oa + i * sa[3]);
                float y = load_any(b->data, b->type, ob + i * sb[3]);
                orow[i] = multiply ? x * y : x + y;
            }
        }
    }
    return 0;
}

int cpu_binary(ts_ctx *ctx, bool multiply, tensor *out, const tensor *a, const tensor *b) {
    return binary_broadcast(ctx, out, a, b, multiply, multiply ? "tensor_mul" : "tensor_add");
}

void cpu_add_inplace(ts_ctx *ctx, float *x, const float *y, int64_t n) {
    #pragma omp parallel for simd num_threads(cpu_threads(ctx)) schedule(static) if (n >= PARALLEL_MIN_WORK)
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

void cpu_scale_inplace(ts_ctx *ctx, float *x, float s, int64_t n) {
    #pragma omp parallel for simd num_threads(cpu_threads(ctx)) schedule(static) if (n >= PARALLEL_MIN_WORK)
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

void cpu_affine(ts_ctx *ctx, float *x, int64_t n, float scale, float shift) {
    #pragma omp parallel for simd num_threads(cpu_threads(ctx)) schedule(static) if (n >= PARALLEL_MIN_WORK)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] * scale + shift;
}

void cpu_add_row_bias(ts_ctx *ctx, float *x, int64_t rows, int dim, const tensor *b) {
    if (!b) return;
    const float *bias = weight_f32(ctx, b, 0);
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static) if (rows * dim >= PARALLEL_MIN_WORK)
    for (int64_t r = 0; r < rows; r++) {
        float *xr = x + r * dim;
        for (int i = 0; i < dim; i++) xr[i] += bias[i];
    }
}

int cpu_add_channel_bias(ts_ctx *ctx, float *x, int N, int C, int64_t HW, const tensor *bias) {
    /* [C]: one bias for every image (widened once); [N, C]: one per image */
    bool per_image = bias && bias->ndim == 2;
    if (!bias || !((bias->ndim == 1 && bias->shape[0] == C) || (per_image && bias->shape[0] == N && bias->shape[1] == C))) {
        char buf[64];
        return ts_fail("add_channel_bias: bias %s is neither [%d] nor [%d, %d]",
                       bias ? tensor_shape_str(bias, buf, sizeof buf) : "NULL", C, N, C);
    }
    if (check_weight(bias, tensor_numel(bias), "add_channel_bias", "bias")) return -1;
    const float *b = weight_f32(ctx, bias, 0);
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static) if ((int64_t)N * C * HW >= PARALLEL_MIN_WORK)
    for (int64_t nc = 0; nc < (int64_t)N * C; nc++) {
        float *xc = x + nc * HW;
        float v = b[per_image ? nc : nc % C];
        for (int64_t i = 0; i < HW; i++) xc[i] += v;
    }
    return 0;
}
