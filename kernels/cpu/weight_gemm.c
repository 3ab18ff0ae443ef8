/*
 * weight_gemm.c — products with a weight of any dtype (ops.h's weight_gemm), the way the
 * U-Net's layers need them: F16/BF16 weights widened a block at a time into scratch and
 * multiplied while the block is still in cache.
 *
 * One OpenMP region per product. Each thread takes its share of the weight's rows (output
 * channels) and, block by block, widens them into its own scratch of about
 * WIDEN_BLOCK_BYTES and runs single-threaded GEMMs on them. So the F32 copy never makes a
 * round trip through memory (SD 1.5's weights are 3.4 GB as F32), the widening is spread
 * over the threads, and there is no barrier per block: on a shared machine each barrier can
 * wait a whole time slice for a preempted thread. F32 weights are used in place.
 *
 * Two ways to share a product out. When the weight is the smaller operand (deep levels: few
 * positions, many channels) each thread takes whole weight blocks and widens them alone.
 * When the activations are the larger one (outer levels), splitting the weight rows would
 * make every thread pack all of the activations again for each block, so instead the
 * threads widen each weight block together and share its tiles of positions (one barrier
 * per block, a few per layer at those sizes).
 * Blocks and tiles have fixed sizes whatever the thread count, so every GEMM call, and so
 * every number, is the same on 1 thread or 64 (gemm.c says why that matters).
 */
#include "kernels/cpu/cpu.h"

#ifdef _OPENMP
#include <omp.h>
#endif

enum { WIDEN_BLOCK_BYTES = 4 << 20, WIDEN_MIN_ROWS = 32, POSITION_TILE = 512 };
/* Sharing by weight rows: at least ROW_BLOCKS blocks of equal size (none under ROW_BLOCK_MIN
 * rows), so that the threads' shares come out even. With blocks only as large as a widened
 * block allows, a 1280x1280 weight made blocks of 819 and 461 rows, and one block for a
 * weight that fits whole (F32, or 2560x320 F16) left every other thread idle. */
enum { ROW_BLOCKS = 8, ROW_BLOCK_MIN = 64 };
enum { SLOT_OWN_BLOCK = 6, SLOT_SHARED_BLOCK = 7 };

/* Weight rows [o0, o0 + ob) (as Wb) against columns [s0, s1) of the other side, every image. */
static void weight_block(ts_ctx *ctx, const weight_gemm_params *p, const float *Wb, int64_t o0, int64_t ob, int64_t s0,
                         int64_t s1) {
    int n = (int)(s1 - s0);
    if (n <= 0 || ob <= 0) return;
    for (int i = 0; i < p->count; i++) {
        const float *X = p->X + i * p->x_stride;
        float *C = p->C + i * p->c_stride;
        if (p->weight_left) {
            float *Co = C + o0 * p->ldc + s0;
            if (p->fill_bias)
                for (int64_t r = 0; r < ob; r++)
                    for (int j = 0; j < n; j++) Co[r * p->ldc + j] = p->fill_bias[o0 + r];
            cpu_gemm(ctx, false, p->trans_x, (int)ob, n, p->K, 1.0f, Wb, p->K, X + (p->trans_x ? s0 * p->ldx : s0),
                     p->ldx, p->beta, Co, p->ldc);
        } else {
            cpu_gemm(ctx, p->trans_x, true, n, (int)ob, p->K, 1.0f, X + (p->trans_x ? s0 : s0 * p->ldx), p->ldx, Wb,
                     p->K, p->beta, C + s0 * p->ldc + o0, p->ldc);
        }
    }
}

static int thread_number(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

int cpu_weight_gemm(ts_ctx *ctx, const tensor *w, const weight_gemm_params *p) {
    if (!w || w->ndim < 2 || !tensor_is_contiguous(w)) return ts_fail("weight_gemm: the weight must be contiguous, 2-D or more");
    if (check_weight(w, tensor_numel(w), "weight_gemm", "weight")) return -1;
    int64_t rows = w->shape[0], row_len = tensor_numel(w) / rows;
    if (row_len != p->K) return ts_fail("weight_gemm: weight rows of %lld values, K is %d", (long long)row_len, p->K);
    int force_split = cpu_of(ctx)->force_split;
    double flops = 2.0 * (double)rows * row_len * p->other * p->count;
    int threads = cpu_threads(ctx);
    if (flops < 2e6 && !force_split) threads = 1;
    size_t es = dtype_size(w->type);
    bool f32 = w->type == DT_F32;
    bool split_positions = force_split ? force_split == 2 : p->other >= rows;
    size_t block_floats = WIDEN_BLOCK_BYTES / sizeof(float), min_rows = (size_t)WIDEN_MIN_ROWS * (size_t)row_len;
    if (min_rows > block_floats) block_floats = min_rows;
    int64_t block = (int64_t)(block_floats / (size_t)row_len);
    if (split_positions) {
        if (f32) block = rows;
    } else {
        int64_t blocks = (rows + block - 1) / block;   /* as many as the scratch needs */
        int64_t even = rows / ROW_BLOCK_MIN < ROW_BLOCKS ? rows / ROW_BLOCK_MIN : ROW_BLOCKS;   /* as sharing wants */
        if (blocks < even) blocks = even;
        block = (rows + blocks - 1) / blocks;
    }
    if (force_split) block = WIDEN_MIN_ROWS / 2;   /* tests: many blocks */
    float *shared = !f32 && split_positions ? cpu_scratch(ctx, SLOT_SHARED_BLOCK, block_floats) : NULL;
    double widen_s = 0;
    bool timing = p->widen_seconds != NULL;
    #pragma omp parallel num_threads(threads) reduction(+:widen_s)
    {
        int t = thread_number();
        if (split_positions) {
            for (int64_t o0 = 0; o0 < rows; o0 += block) {
                int64_t ob = rows - o0 < block ? rows - o0 : block;
                const float *Wb = (const float *)w->data + o0 * row_len;
                if (!f32) {
                    enum { CHUNK = 1 << 15 };
                    int64_t n = ob * row_len, chunks = (n + CHUNK - 1) / CHUNK;
                    double w0 = t == 0 && timing ? ts_now() : 0;
                    #pragma omp for schedule(static)
                    for (int64_t c = 0; c < chunks; c++) {
                        int64_t at = c * CHUNK, m = n - at < CHUNK ? n - at : CHUNK;
                        convert_to_f32(shared + at, (const char *)w->data + (size_t)(o0 * row_len + at) * es, w->type, (size_t)m);
                    }   /* implicit barrier: the block is whole before anyone reads it */
                    if (t == 0 && timing) widen_s += ts_now() - w0;
                    Wb = shared;
                }
                #pragma omp for schedule(static)
                for (int64_t s0 = 0; s0 < p->other; s0 += POSITION_TILE) {
                    int64_t s1 = p->other - s0 < POSITION_TILE ? p->other : s0 + POSITION_TILE;
                    weight_block(ctx, p, Wb, o0, ob, s0, s1);
                }   /* implicit barrier: nobody widens the next block over this one early */
            }
        } else {
            float *own = f32 ? NULL : cpu_scratch(ctx, SLOT_OWN_BLOCK, block_floats);
            #pragma omp for schedule(dynamic, 1)
            for (int64_t o0 = 0; o0 < rows; o0 += block) {
                int64_t ob = rows - o0 < block ? rows - o0 : block;
                const float *Wb = (const float *)w->data + o0 * row_len;
                if (!f32) {
                    double w0 = t == 0 && timing ? ts_now() : 0;
                    convert_to_f32(own, (const char *)w->data + (size_t)(o0 * row_len) * es, w->type, (size_t)(ob * row_len));
                    if (t == 0 && timing) widen_s += ts_now() - w0;
                    Wb = own;
                }
                weight_block(ctx, p, Wb, o0, ob, 0, p->other);
            }
        }
    }
    if (timing) *p->widen_seconds += widen_s;   /* as seen by thread 0 */
    return 0;
}
