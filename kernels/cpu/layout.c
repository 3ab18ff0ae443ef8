/*
 * layout.c — moving data without arithmetic: nearest-neighbour upsampling, concatenation,
 * and the NCHW <-> NHWC switch around transformer blocks.
 */
#include "kernels/cpu/cpu.h"

#include <string.h>

void cpu_upsample_nearest2x(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W) {
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static) if ((int64_t)N * C * H * W >= PARALLEL_MIN_WORK / 4)
    for (int64_t nc = 0; nc < (int64_t)N * C; nc++) {
        const float *xs = x + nc * H * W;
        float *os = out + nc * 4 * H * W;
        for (int h = 0; h < H; h++) {
            float *row = os + (int64_t)2 * h * 2 * W;
            for (int w = 0; w < W; w++) row[2 * w] = row[2 * w + 1] = xs[(int64_t)h * W + w];
            memcpy(row + 2 * W, row, (size_t)2 * W * sizeof(float));
        }
    }
}

int cpu_concat(ts_ctx *ctx, tensor *out, const tensor *parts, int count, int dim) {
    if (count <= 0) return ts_fail("concat: no parts");
    int nd = parts[0].ndim;
    if (dim < 0 || dim >= nd) return ts_fail("concat: dim %d out of range for %d-D parts", dim, nd);
    if (out->type != DT_F32 || !tensor_is_contiguous(out) || out->ndim != nd)
        return ts_fail("concat: out must be contiguous F32 with %d dims", nd);
    int64_t total = 0;
    for (int p = 0; p < count; p++) {
        const tensor *t = &parts[p];
        if (t->ndim != nd) return ts_fail("concat: part %d has %d dims, part 0 has %d", p, t->ndim, nd);
        for (int d = 0; d < nd; d++)
            if (d != dim && t->shape[d] != out->shape[d]) {
                char s1[64], s2[64];
                return ts_fail("concat: part %d shape %s does not match out %s outside dim %d", p,
                               tensor_shape_str(t, s1, sizeof s1), tensor_shape_str(out, s2, sizeof s2), dim);
            }
        total += t->shape[dim];
    }
    if (total != out->shape[dim])
        return ts_fail("concat: parts sum to %lld along dim %d, out has %lld", (long long)total, dim,
                       (long long)out->shape[dim]);
    /* out viewed as [outer, out->shape[dim] * inner]; each part fills a column block. */
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < dim; d++) outer *= out->shape[d];
    for (int d = dim + 1; d < nd; d++) inner *= out->shape[d];
    int64_t offset = 0, row = out->shape[dim] * inner;
    for (int p = 0; p < count; p++) {
        const tensor *t = &parts[p];
        int64_t block = t->shape[dim] * inner;
        float *o = (float *)out->data + offset;
        if (tensor_is_contiguous(t)) {
            for (int64_t r = 0; r < outer; r++)
                convert_to_f32(o + r * row, (const char *)t->data + (size_t)(r * block) * dtype_size(t->type),
                               t->type, (size_t)block);
        } else {
            /* strided part: copy into a view of out with out's strides */
            tensor dst = *out;
            dst.shape[dim] = t->shape[dim];
            dst.data = o;
            dst.owns_data = false;
            if (tensor_copy(&dst, t)) return -1;
        }
        offset += block;
    }
    return 0;
}

static void transpose_block(ts_ctx *ctx, float *out, const float *x, int64_t rows, int64_t cols) {
    /* out[c, r] = x[r, c], in 32x32 tiles to stay in cache */
    #pragma omp parallel for num_threads(cpu_threads(ctx)) collapse(2) schedule(static) if (rows * cols >= PARALLEL_MIN_WORK)
    for (int64_t r0 = 0; r0 < rows; r0 += 32)
        for (int64_t c0 = 0; c0 < cols; c0 += 32) {
            int64_t r1 = r0 + 32 < rows ? r0 + 32 : rows, c1 = c0 + 32 < cols ? c0 + 32 : cols;
            for (int64_t c = c0; c < c1; c++)
                for (int64_t r = r0; r < r1; r++) out[c * rows + r] = x[r * cols + c];
        }
}

void cpu_nchw_to_nhwc(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW) {
    for (int n = 0; n < N; n++) transpose_block(ctx, out + (int64_t)n * C * HW, x + (int64_t)n * C * HW, C, HW);
}

void cpu_nhwc_to_nchw(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW) {
    for (int n = 0; n < N; n++) transpose_block(ctx, out + (int64_t)n * C * HW, x + (int64_t)n * C * HW, HW, C);
}
