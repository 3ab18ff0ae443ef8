/*
 * conv_dnnl.c — the oneDNN convolution backend.
 *
 * Each distinct shape gets a plan, made once and cached (creating primitives is slow):
 * the convolution primitive on the layouts oneDNN prefers (blocked nChw16c and friends)
 * and the reorders from/to our plain NCHW / OIHW buffers. Weights are widened and
 * reordered on every call unless the context opts in to conv2d_weight_cache(): keyed by
 * address, a cache would be wrong for a buffer refilled with other weights, but the
 * reorder costs ~30 ms for a 1280x1280x3x3 weight, a third of that convolution at 16x16.
 *
 * Why this is the default backend: see the measurements at the top of conv.c.
 *
 * Scratchpads are ours, not the library's: oneDNN's default ("library") scratchpad of a
 * Debian build (DNNL_ENABLE_CONCURRENT_EXEC=OFF) is bound to the thread that created the
 * primitive, so one cached plan run by two render threads at once had both write the same
 * scratch memory: different images for the same seed (issue 11). Every primitive here is made
 * with dnnl_scratchpad_mode_user and gets the calling thread's own scratch at each execution.
 */
#include "kernels/cpu/cpu.h"

#ifdef TESSERA_HAVE_DNNL
#include <dnnl.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

bool conv2d_backend_available(conv2d_backend b) { (void)b; return true; }

typedef struct {
    int N, C, H, W, OC, KH, KW, sh, sw, ph, pw, groups, has_bias;
} plan_key;

typedef struct {
    plan_key key;
    dnnl_primitive_t conv, src_reorder, weight_reorder, dst_reorder; /* reorders NULL when not needed */
    dnnl_memory_desc_t user_src, user_weight, user_dst, user_bias, src, weight, dst;
    dnnl_memory_desc_t conv_scratch, src_scratch, weight_scratch, dst_scratch;  /* zero-sized when unused */
} conv_plan;

enum { MAX_PLANS = 512 };        /* SD U-Net + VAE + TAESD at one resolution use < 100 */
static conv_plan plans[MAX_PLANS];
static int plan_count;
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t engine;

#define DNNL_TRY(call) do { dnnl_status_t st_ = (call); if (st_ != dnnl_success) { \
    ts_fail("conv2d (oneDNN): %s failed with status %d", #call, (int)st_); goto fail; } } while (0)

/* Attributes every primitive here is made with: a scratchpad the caller passes in. */
static dnnl_primitive_attr_t user_scratchpad_attr(void) {
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    if (dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return NULL;
    }
    return attr;
}

static void query_scratchpad(const_dnnl_primitive_desc_t pd, dnnl_memory_desc_t *md) {
    const dnnl_memory_desc_t *q = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (q) *md = *q;
    else memset(md, 0, sizeof *md);
}

static dnnl_primitive_t make_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                     dnnl_memory_desc_t *scratch) {
    memset(scratch, 0, sizeof *scratch);
    if (dnnl_memory_desc_equal(from, to)) return NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_primitive_attr_t attr = user_scratchpad_attr();
    if (attr && dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, attr) == dnnl_success) {
        query_scratchpad(pd, scratch);
        dnnl_primitive_create(&r, pd);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return r;
}

/* Returns the cached plan for k, making it on first use; NULL (with ts_fail) on error. */
static conv_plan *plan_for(const plan_key *k) {
    for (int i = 0; i < plan_count; i++)
        if (memcmp(&plans[i].key, k, sizeof *k) == 0) return &plans[i];
    if (!engine) DNNL_TRY(dnnl_engine_create(&engine, dnnl_cpu, 0));
    if (plan_count == MAX_PLANS) return NULL;   /* caller falls back to im2col */
    conv_plan *p = &plans[plan_count];
    memset(p, 0, sizeof *p);
    p->key = *k;
    int OH = (k->H + 2 * k->ph - k->KH) / k->sh + 1, OW = (k->W + 2 * k->pw - k->KW) / k->sw + 1;
    dnnl_dims_t src_dims = {k->N, k->C, k->H, k->W}, dst_dims = {k->N, k->OC, OH, OW}, bias_dims = {k->OC};
    dnnl_dims_t strides = {k->sh, k->sw}, pad_l = {k->ph, k->pw};
    dnnl_dims_t pad_r = {(OH - 1) * k->sh + k->KH - k->H - k->ph, (OW - 1) * k->sw + k->KW - k->W - k->pw};
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&p->user_src, 4, src_dims, dnnl_f32, dnnl_nchw));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&p->user_dst, 4, dst_dims, dnnl_f32, dnnl_nchw));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&p->user_bias, 1, bias_dims, dnnl_f32, dnnl_x));
    if (k->groups > 1) {
        dnnl_dims_t wd = {k->groups, k->OC / k->groups, k->C / k->groups, k->KH, k->KW};
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&p->user_weight, 5, wd, dnnl_f32, dnnl_goihw));
    } else {
        dnnl_dims_t wd = {k->OC, k->C, k->KH, k->KW};
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&p->user_weight, 4, wd, dnnl_f32, dnnl_oihw));
    }
    dnnl_memory_desc_t any_src, any_weight, any_dst;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&any_src, 4, src_dims, dnnl_f32, dnnl_format_tag_any));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&any_dst, 4, dst_dims, dnnl_f32, dnnl_format_tag_any));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&any_weight, p->user_weight.ndims, p->user_weight.dims, dnnl_f32,
                                          dnnl_format_tag_any));
    dnnl_convolution_desc_t cd;
    DNNL_TRY(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &any_src,
                                                &any_weight, k->has_bias ? &p->user_bias : NULL, &any_dst,
                                                strides, pad_l, pad_r));
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = user_scratchpad_attr();
    if (!attr) { ts_fail("conv2d (oneDNN): cannot make primitive attributes"); goto fail; }
    dnnl_status_t made = dnnl_primitive_desc_create(&pd, &cd, attr, engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    DNNL_TRY(made);
    query_scratchpad(pd, &p->conv_scratch);
    p->src = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    p->weight = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    p->dst = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dnnl_status_t st = dnnl_primitive_create(&p->conv, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) { ts_fail("conv2d (oneDNN): cannot create the convolution (status %d)", (int)st); return NULL; }
    p->src_reorder = make_reorder(&p->user_src, &p->src, &p->src_scratch);
    p->weight_reorder = make_reorder(&p->user_weight, &p->weight, &p->weight_scratch);
    p->dst_reorder = make_reorder(&p->dst, &p->user_dst, &p->dst_scratch);
    plan_count++;
    return p;
fail:
    return NULL;
}

/* The calling thread's scratchpad for one primitive (NULL memory when it needs none).
 * Executions on one stream are waited for before the next uses the same slot. */
static dnnl_memory_t scratchpad_memory(ts_ctx *ctx, const dnnl_memory_desc_t *md) {
    size_t bytes = dnnl_memory_desc_get_size(md);
    dnnl_memory_t m = NULL;
    if (bytes) dnnl_memory_create(&m, md, engine, cpu_scratch(ctx, 5, bytes / 4 + 16));
    return m;
}

static dnnl_status_t execute(ts_ctx *ctx, dnnl_primitive_t prim, dnnl_stream_t s, const dnnl_memory_desc_t *scratch_md,
                             int nargs, dnnl_exec_arg_t *args) {
    dnnl_memory_t scratch = scratchpad_memory(ctx, scratch_md);
    dnnl_exec_arg_t all[8];
    memcpy(all, args, (size_t)nargs * sizeof *args);
    if (scratch) all[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, scratch};
    dnnl_status_t st = dnnl_primitive_execute(prim, s, nargs, all);
    if (st == dnnl_success) st = dnnl_stream_wait(s);   /* the scratch slot is reused by the next primitive */
    if (scratch) dnnl_memory_destroy(scratch);
    return st;
}

static dnnl_status_t reorder(ts_ctx *ctx, dnnl_primitive_t r, const dnnl_memory_desc_t *scratch_md, dnnl_stream_t s,
                             dnnl_memory_t from, dnnl_memory_t to) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return execute(ctx, r, s, scratch_md, 2, args);
}

/* ---- reordered weights, kept only when the caller asks (conv2d_weight_cache) ---- */

typedef struct {
    const void *data;          /* the caller's weight memory: the key, with type and plan */
    dtype type;
    const conv_plan *plan;
    float *reordered;
    size_t bytes;
} cached_weight;

/* A context's cache (cpu_ctx.conv_weights): used by that context's thread only. */
struct cpu_weight_cache {
    cached_weight *items;
    int count, capacity;
    size_t bytes, budget;
};

void conv2d_weight_cache(ts_ctx *ctx, size_t max_bytes) {
    if (!ctx || ctx->backend != &ts_backend_cpu) return;
    cpu_ctx *c = cpu_of(ctx);
    if (!c->conv_weights) c->conv_weights = ts_calloc(1, sizeof *c->conv_weights);
    c->conv_weights->budget = max_bytes;
}

void conv2d_weight_cache_clear(ts_ctx *ctx) {
    if (!ctx || ctx->backend != &ts_backend_cpu) return;
    cpu_weight_cache *wc = cpu_of(ctx)->conv_weights;
    if (!wc) return;
    for (int i = 0; i < wc->count; i++) free(wc->items[i].reordered);
    wc->count = 0;
    wc->bytes = 0;
}

void cpu_weight_cache_free(cpu_weight_cache **self) {
    if (!*self) return;
    for (int i = 0; i < (*self)->count; i++) free((*self)->items[i].reordered);
    free((*self)->items);
    free(*self);
    *self = NULL;
}

static const float *cached_weight_find(const cpu_weight_cache *wc, const tensor *w, const conv_plan *plan) {
    for (int i = 0; i < wc->count; i++)
        if (wc->items[i].data == w->data && wc->items[i].type == w->type && wc->items[i].plan == plan)
            return wc->items[i].reordered;
    return NULL;
}

int conv2d_dnnl(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W,
                const tensor *weight, const float *bias, int OC, int KH, int KW, conv2d_params p) {
    plan_key k = {N, C, H, W, OC, KH, KW, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.groups, bias != NULL};
    /* oneDNN wants right padding >= 0; the rare shapes that would need it negative use im2col. */
    if ((H + 2 * p.pad_h - KH) % p.stride_h > p.pad_h || (W + 2 * p.pad_w - KW) % p.stride_w > p.pad_w)
        return conv2d_im2col(ctx, out, x, N, C, H, W, weight_f32(ctx, weight, 0), bias, OC, KH, KW, p);
    pthread_mutex_lock(&plan_lock);
    bool full = plan_count == MAX_PLANS;
    conv_plan *plan = plan_for(&k);
    cpu_weight_cache *wc = cpu_of(ctx)->conv_weights;
    const float *ready = plan && wc && wc->budget ? cached_weight_find(wc, weight, plan) : NULL;
    pthread_mutex_unlock(&plan_lock);
    if (!plan && full) {
        static atomic_bool warned;
        if (!atomic_exchange(&warned, true)) log_warn("conv2d: more than %d shapes seen; new ones use im2col", MAX_PLANS);
        return conv2d_im2col(ctx, out, x, N, C, H, W, weight_f32(ctx, weight, 0), bias, OC, KH, KW, p);
    }
    if (!plan) return -1;
    const float *w = ready ? ready : weight_f32(ctx, weight, 0);

#ifdef _OPENMP
    /* oneDNN's threads are OpenMP's: the calling thread's setting, which is its own */
    if (!omp_in_parallel()) omp_set_num_threads(cpu_threads(ctx));
#endif
    dnnl_stream_t stream = NULL;
    dnnl_memory_t m_usrc = NULL, m_uw = NULL, m_udst = NULL, m_bias = NULL, m_src = NULL, m_w = NULL, m_dst = NULL;
    int rc = -1;
    DNNL_TRY(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    DNNL_TRY(dnnl_memory_create(&m_usrc, &plan->user_src, engine, (void *)x));
    DNNL_TRY(dnnl_memory_create(&m_uw, &plan->user_weight, engine, (void *)w));
    DNNL_TRY(dnnl_memory_create(&m_udst, &plan->user_dst, engine, out));
    if (bias) DNNL_TRY(dnnl_memory_create(&m_bias, &plan->user_bias, engine, (void *)bias));
    m_src = m_usrc, m_w = m_uw, m_dst = m_udst;
    if (plan->src_reorder) {
        DNNL_TRY(dnnl_memory_create(&m_src, &plan->src, engine,
                                    cpu_scratch(ctx, 2, dnnl_memory_desc_get_size(&plan->src) / 4 + 16)));
        DNNL_TRY(reorder(ctx, plan->src_reorder, &plan->src_scratch, stream, m_usrc, m_src));
    }
    if (ready) {
        DNNL_TRY(dnnl_memory_create(&m_w, &plan->weight, engine, (void *)ready));
    } else if (plan->weight_reorder) {
        size_t bytes = dnnl_memory_desc_get_size(&plan->weight);
        bool keep = wc && wc->bytes + bytes <= wc->budget;
        float *dst = keep ? ts_aligned_alloc(bytes) : cpu_scratch(ctx, 3, bytes / 4 + 16);
        DNNL_TRY(dnnl_memory_create(&m_w, &plan->weight, engine, dst));
        DNNL_TRY(reorder(ctx, plan->weight_reorder, &plan->weight_scratch, stream, m_uw, m_w));
        if (keep) {
            if (wc->count == wc->capacity) {
                wc->capacity = wc->capacity ? 2 * wc->capacity : 64;
                wc->items = ts_realloc(wc->items, (size_t)wc->capacity * sizeof *wc->items);
            }
            wc->items[wc->count++] = (cached_weight){weight->data, weight->type, plan, dst, bytes};
            wc->bytes += bytes;
        }
    }
    if (plan->dst_reorder)
        DNNL_TRY(dnnl_memory_create(&m_dst, &plan->dst, engine,
                                    cpu_scratch(ctx, 4, dnnl_memory_desc_get_size(&plan->dst) / 4 + 16)));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, m_src}, {DNNL_ARG_WEIGHTS, m_w}, {DNNL_ARG_DST, m_dst},
                               {DNNL_ARG_BIAS, m_bias}};
    DNNL_TRY(execute(ctx, plan->conv, stream, &plan->conv_scratch, bias ? 4 : 3, args));
    if (plan->dst_reorder) DNNL_TRY(reorder(ctx, plan->dst_reorder, &plan->dst_scratch, stream, m_dst, m_udst));
    rc = 0;
fail:
    if (m_src != m_usrc) dnnl_memory_destroy(m_src);
    if (m_w != m_uw && m_w) dnnl_memory_destroy(m_w);
    if (m_dst != m_udst) dnnl_memory_destroy(m_dst);
    dnnl_memory_destroy(m_usrc);
    dnnl_memory_destroy(m_uw);
    dnnl_memory_destroy(m_udst);
    if (m_bias) dnnl_memory_destroy(m_bias);
    if (stream) dnnl_stream_destroy(stream);
    return rc;
}

#else

bool conv2d_backend_available(conv2d_backend b) { return b != CONV_BACKEND_ONEDNN; }
void conv2d_weight_cache(ts_ctx *ctx, size_t max_bytes) { (void)ctx, (void)max_bytes; }
void conv2d_weight_cache_clear(ts_ctx *ctx) { (void)ctx; }
void cpu_weight_cache_free(cpu_weight_cache **self) { (void)self; }

int conv2d_dnnl(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W,
                const tensor *weight, const float *bias, int OC, int KH, int KW, conv2d_params p) {
    return conv2d_im2col(ctx, out, x, N, C, H, W, weight_f32(ctx, weight, 0), bias, OC, KH, KW, p);
}

#endif
