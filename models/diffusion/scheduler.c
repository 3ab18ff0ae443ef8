/*
 * scheduler.c — the training schedule, set_timesteps and step() of the diffusers samplers
 * (see scheduler.h). Each function follows the diffusers method of the same name; the
 * numpy helpers at the top reproduce numpy's own rounding (np.linspace, np.arange with a
 * float step, np.round half-to-even, np.interp) so timesteps come out identical.
 */
#include "models/diffusion/scheduler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct scheduler {
    scheduler_config cfg;
    int T;                      /* num_train_timesteps */
    float *alphas_cumprod;      /* [T], float32 as torch.cumprod gives it */
    float *train_sigmas;        /* [T], ((1 - a) / a) ** 0.5 in float32 */
    float final_alpha_cumprod;
    int steps;
    float *timesteps;           /* [steps] */
    float *sigmas;              /* [steps + 1] for euler, euler_a, dpm++2m; NULL otherwise */
    float init_noise_sigma;
    int step_index;
    /* dpm++2m: the previous step's x0 prediction */
    float *prev_x0;
    int64_t history_n;
    int lower_order_nums;
    /* scratch for noise and x0 */
    float *noise, *x0;
    int64_t scratch_n;
    /* noise drawn for a batch `noise_whole` times larger, of which this is part `noise_part` */
    int noise_whole, noise_part;
};

/* ---- numpy, exactly ------------------------------------------------------------------ */

/* np.linspace(start, stop, num, endpoint): i * step + start, last value = stop. */
static double np_linspace(double start, double stop, int num, bool endpoint, int i) {
    int div = endpoint ? num - 1 : num;
    if (endpoint && num > 1 && i == num - 1) return stop;
    double step = div > 0 ? (stop - start) / div : 0;
    return (double)i * step + start;
}

/* np.arange(start, stop, step) for a float step: numpy takes delta = (start + step) - start
 * and fills start + i * delta. Writes at most cap values; returns the length. */
static int np_arange(double start, double stop, double step, double *out, int cap) {
    double len_f = ceil((stop - start) / step);
    int len = len_f > 0 ? (int)len_f : 0;
    double delta = (start + step) - start;
    for (int i = 0; i < len && i < cap; i++) out[i] = i == 0 ? start : start + i * delta;
    return len;
}

/* np.interp(x, arange(n), fp) for x in [0, n - 1] */
static double np_interp(double x, const float *fp, int n) {
    if (x <= 0) return fp[0];
    if (x >= n - 1) return fp[n - 1];
    int j = (int)floor(x);
    double slope = (double)fp[j + 1] - (double)fp[j];   /* xp spacing is 1 */
    return slope * (x - j) + fp[j];
}

/* ---- the training schedule ----------------------------------------------------------- */

/* torch.linspace(start, end, n, dtype=float32): float step, filled from both ends; torch's
 * build contracts start + step * i into one FMA (which is what makes the betas bit-exact). */
static void torch_linspace_f32(float *out, double start_d, double end_d, int n) {
    float start = (float)start_d, end = (float)end_d;
    float step = (end - start) / (float)(n - 1);
    int halfway = n / 2;
    for (int i = 0; i < n; i++)
        out[i] = i < halfway ? fmaf(step, (float)i, start) : fmaf(-step, (float)(n - i - 1), end);
}

/* torch.cumprod on float32 accumulates in double. */
static void cumprod_f32(float *out, const float *x, int n) {
    double acc = 1.0;
    for (int i = 0; i < n; i++) {
        acc *= x[i];
        out[i] = (float)acc;
    }
}

static double alpha_bar_cosine(double t) {
    double c = cos((t + 0.008) / 1.008 * 3.14159265358979323846 / 2);
    return c * c;
}

/* diffusers' rescale_zero_terminal_snr, in float32 as torch does it. */
static void rescale_zero_terminal_snr(float *betas, int T) {
    float *alphas = ts_malloc(sizeof(float) * T), *ab = ts_malloc(sizeof(float) * T);
    for (int i = 0; i < T; i++) alphas[i] = 1.0f - betas[i];
    cumprod_f32(ab, alphas, T);
    for (int i = 0; i < T; i++) ab[i] = sqrtf(ab[i]);
    float s0 = ab[0], sT = ab[T - 1];
    float scale = s0 / (s0 - sT);
    for (int i = 0; i < T; i++) {
        ab[i] = (ab[i] - sT) * scale;
        ab[i] = ab[i] * ab[i];
    }
    betas[0] = 1.0f - ab[0];
    for (int i = 1; i < T; i++) betas[i] = 1.0f - ab[i] / ab[i - 1];
    free(alphas);
    free(ab);
}

static void make_training_schedule(scheduler *self) {
    const scheduler_config *c = &self->cfg;
    int T = self->T;
    float *betas = ts_malloc(sizeof(float) * T);
    switch (c->beta_schedule) {
    case BETAS_SCALED_LINEAR:
        torch_linspace_f32(betas, sqrt(c->beta_start), sqrt(c->beta_end), T);
        for (int i = 0; i < T; i++) betas[i] = betas[i] * betas[i];
        break;
    case BETAS_LINEAR:
        torch_linspace_f32(betas, c->beta_start, c->beta_end, T);
        break;
    case BETAS_SQUAREDCOS_CAP_V2:
        for (int i = 0; i < T; i++) {
            double b = 1 - alpha_bar_cosine((double)(i + 1) / T) / alpha_bar_cosine((double)i / T);
            betas[i] = (float)(b < 0.999 ? b : 0.999);
        }
        break;
    }
    if (c->rescale_betas_zero_snr) rescale_zero_terminal_snr(betas, T);
    float *alphas = betas;   /* in place: alphas = 1 - betas */
    for (int i = 0; i < T; i++) alphas[i] = 1.0f - betas[i];
    cumprod_f32(self->alphas_cumprod, alphas, T);
    free(betas);
    /* the sigma-based classes pin the last alpha_cumprod so its sigma stays finite */
    bool sigma_based = c->sampler == SAMPLER_EULER || c->sampler == SAMPLER_EULER_A || c->sampler == SAMPLER_DPMPP_2M;
    if (c->rescale_betas_zero_snr && sigma_based) self->alphas_cumprod[T - 1] = 0x1p-24f;
    for (int i = 0; i < T; i++) {
        float a = self->alphas_cumprod[i];
        self->train_sigmas[i] = sqrtf((1.0f - a) / a);
    }
    self->final_alpha_cumprod = c->set_alpha_to_one ? 1.0f : self->alphas_cumprod[0];
}

scheduler *scheduler_new(const scheduler_config *cfg) {
    if (cfg->num_train_timesteps < 2) {
        ts_fail("scheduler: num_train_timesteps %d is too small", cfg->num_train_timesteps);
        return NULL;
    }
    scheduler *self = ts_calloc(1, sizeof *self);
    self->cfg = *cfg;
    self->T = cfg->num_train_timesteps;
    self->alphas_cumprod = ts_malloc(sizeof(float) * self->T);
    self->train_sigmas = ts_malloc(sizeof(float) * self->T);
    make_training_schedule(self);
    self->init_noise_sigma = 1.0f;
    self->noise_whole = 1;
    return self;
}

int scheduler_draw_noise_as_part(scheduler *self, int whole, int part) {
    if (whole < 1 || part < 0 || part >= whole)
        return ts_fail("scheduler: part %d of a batch of %d does not exist", part, whole);
    self->noise_whole = whole;
    self->noise_part = part;
    return 0;
}

void scheduler_destroy(scheduler **self) {
    if (!self || !*self) return;
    scheduler *s = *self;
    free(s->alphas_cumprod);
    free(s->train_sigmas);
    free(s->timesteps);
    free(s->sigmas);
    free(s->prev_x0);
    free(s->noise);
    free(s->x0);
    free(s);
    *self = NULL;
}

/* ---- set_timesteps ------------------------------------------------------------------- */

/* _sigma_to_t: the fractional training timestep whose log-sigma interpolates to sigma. */
static double sigma_to_t(const scheduler *self, const float *log_sigmas, double sigma) {
    int T = self->T;
    double log_sigma = log(sigma > 1e-10 ? sigma : 1e-10);
    int low = 0;   /* argmax of cumsum(dists >= 0): the last index with log_sigmas <= log_sigma */
    for (int i = 0; i < T; i++)
        if (log_sigma - log_sigmas[i] >= 0) low = i;
    if (low > T - 2) low = T - 2;
    double lo = log_sigmas[low], hi = log_sigmas[low + 1];
    double w = (lo - log_sigma) / (lo - hi);
    w = w < 0 ? 0 : w > 1 ? 1 : w;
    return (1 - w) * low + w * (low + 1);
}

/* _convert_to_karras: rho = 7 ramp between the given sigma_max and sigma_min. */
static double karras_sigma(double sigma_min, double sigma_max, int n, int i) {
    double ramp = np_linspace(0, 1, n, true, i);
    double min_inv_rho = pow(sigma_min, 1.0 / 7.0), max_inv_rho = pow(sigma_max, 1.0 / 7.0);
    return pow(max_inv_rho + ramp * (min_inv_rho - max_inv_rho), 7.0);
}

/* The spacings shared by ddim, euler and euler_a (before any float/int cast). */
/* "trailing" spacing, the same in every diffusers scheduler: numpy's arange(T, 0, -T/n),
 * rounded, minus one. */
static int trailing_timesteps(int T, int n, double *ts) {
    int len = np_arange(T, 0, -(double)T / n, ts, n);
    if (len != n) return ts_fail("scheduler: trailing spacing gives %d timesteps for %d steps (numpy's arange)", len, n);
    for (int i = 0; i < n; i++) ts[i] = nearbyint(ts[i]) - 1;
    return n;
}

static int spaced_timesteps(const scheduler *self, int n, double *ts, bool round_linspace) {
    int T = self->T;
    switch (self->cfg.spacing) {
    case SPACING_LINSPACE:
        for (int i = 0; i < n; i++) {
            double v = np_linspace(0, T - 1, n, true, n - 1 - i);
            ts[i] = round_linspace ? nearbyint(v) : (double)(float)v;
        }
        return n;
    case SPACING_LEADING: {
        int ratio = T / n;
        for (int i = 0; i < n; i++) ts[i] = (double)(n - 1 - i) * ratio + self->cfg.steps_offset;
        return n;
    }
    case SPACING_TRAILING:
        return trailing_timesteps(T, n, ts);
    }
    return -1;
}

static int dpm_timesteps(const scheduler *self, int n, double *ts) {
    int T = self->T;   /* last_timestep, with lambda_min_clipped = -inf */
    switch (self->cfg.spacing) {
    case SPACING_LINSPACE:
        for (int i = 0; i < n; i++) ts[i] = nearbyint(np_linspace(0, T - 1, n + 1, true, n - i));
        return n;
    case SPACING_LEADING: {
        int ratio = T / (n + 1);
        for (int i = 0; i < n; i++) ts[i] = (double)(n - i) * ratio + self->cfg.steps_offset;
        return n;
    }
    case SPACING_TRAILING:
        return trailing_timesteps(T, n, ts);
    }
    return -1;
}

static int lcm_timesteps(const scheduler *self, int n, double *ts) {
    int T = self->T, original = self->cfg.original_inference_steps;
    if (original > T) return ts_fail("scheduler: original_inference_steps %d > %d", original, T);
    if (n > original)
        return ts_fail("lcm: %d steps is more than original_inference_steps (%d)", n, original);
    int k = T / original;
    for (int i = 0; i < n; i++) {
        int idx = (int)floor(np_linspace(0, original, n, false, i));
        ts[i] = (double)(original - idx) * k - 1;   /* lcm_origin_timesteps reversed */
    }
    return n;
}

int scheduler_set_timesteps(scheduler *self, int n) {
    const scheduler_config *c = &self->cfg;
    int T = self->T;
    if (n < 1 || n > T) return ts_fail("scheduler: %d steps is outside [1, %d]", n, T);
    double *ts = ts_malloc(sizeof(double) * n);
    double *sig = ts_malloc(sizeof(double) * (n + 1));
    float *log_sigmas = ts_malloc(sizeof(float) * T);
    for (int i = 0; i < T; i++) log_sigmas[i] = logf(self->train_sigmas[i]);
    bool has_sigmas = false;
    int rc = 0;
    switch (c->sampler) {
    case SAMPLER_DDIM:
        rc = spaced_timesteps(self, n, ts, true);
        break;
    case SAMPLER_LCM:
        rc = lcm_timesteps(self, n, ts);
        break;
    case SAMPLER_EULER:
    case SAMPLER_EULER_A:
        rc = spaced_timesteps(self, n, ts, false);
        if (rc < 0) break;
        for (int i = 0; i < n; i++) {
            ts[i] = (float)ts[i];
            sig[i] = np_interp(ts[i], self->train_sigmas, T);
        }
        if (c->use_karras_sigmas) {   /* euler: between this schedule's own first and last sigma */
            double smin = c->sigma_min > 0 ? c->sigma_min : sig[n - 1];
            double smax = c->sigma_max > 0 ? c->sigma_max : sig[0];
            for (int i = 0; i < n; i++) {
                sig[i] = karras_sigma(smin, smax, n, i);
                ts[i] = (float)sigma_to_t(self, log_sigmas, sig[i]);
            }
        }
        has_sigmas = true;
        break;
    case SAMPLER_DPMPP_2M:
        rc = dpm_timesteps(self, n, ts);
        if (rc < 0) break;
        if (c->use_karras_sigmas) {   /* dpm: between the training schedule's extremes */
            double smin = self->train_sigmas[0], smax = self->train_sigmas[T - 1];
            for (int i = 0; i < n; i++) {
                sig[i] = karras_sigma(smin, smax, n, i);
                ts[i] = nearbyint(sigma_to_t(self, log_sigmas, sig[i]));
            }
        } else {
            for (int i = 0; i < n; i++) sig[i] = np_interp(ts[i], self->train_sigmas, T);
        }
        has_sigmas = true;
        break;
    }
    if (rc >= 0) {
        for (int i = 0; i < n; i++)
            if (!(ts[i] >= 0 && ts[i] <= T - 1)) {   /* NaN fails too */
                rc = ts_fail("scheduler: %s with %d steps gives timestep %g outside [0, %d]",
                             sampler_name(c->sampler), n, ts[i], T - 1);
                break;
            }
    }
    if (rc < 0) {
        free(ts), free(sig), free(log_sigmas);
        return -1;
    }
    free(self->timesteps);
    free(self->sigmas);
    self->timesteps = ts_malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++) self->timesteps[i] = (float)ts[i];
    self->sigmas = NULL;
    self->init_noise_sigma = 1.0f;
    if (has_sigmas) {
        sig[n] = c->final_sigmas_zero ? 0.0 : self->train_sigmas[0];
        self->sigmas = ts_malloc(sizeof(float) * (n + 1));
        float max_sigma = 0;
        for (int i = 0; i <= n; i++) {
            self->sigmas[i] = (float)sig[i];
            if (self->sigmas[i] > max_sigma) max_sigma = self->sigmas[i];
        }
        if (c->sampler != SAMPLER_DPMPP_2M)
            self->init_noise_sigma = c->spacing == SPACING_LEADING ? sqrtf(max_sigma * max_sigma + 1.0f) : max_sigma;
    }
    self->steps = n;
    self->step_index = 0;
    self->lower_order_nums = 0;
    free(ts), free(sig), free(log_sigmas);
    return 0;
}

int scheduler_steps(const scheduler *self) { return self->steps; }
float scheduler_timestep(const scheduler *self, int i) {
    return (i >= 0 && i < self->steps) ? self->timesteps[i] : -1.0f;
}
float scheduler_sigma(const scheduler *self, int i) {
    return (self->sigmas && i >= 0 && i <= self->steps) ? self->sigmas[i] : -1.0f;
}
float scheduler_init_noise_sigma(const scheduler *self) { return self->init_noise_sigma; }
const float *scheduler_alphas_cumprod(const scheduler *self) { return self->alphas_cumprod; }

void scheduler_scale_model_input(const scheduler *self, float *out, const float *x, int64_t n) {
    sampler_kind k = self->cfg.sampler;
    if ((k == SAMPLER_EULER || k == SAMPLER_EULER_A) && self->sigmas && self->step_index < self->steps) {
        float sigma = self->sigmas[self->step_index];
        float c_in = sqrtf(sigma * sigma + 1.0f);
        for (int64_t i = 0; i < n; i++) out[i] = x[i] / c_in;
    } else if (out != x) {
        memcpy(out, x, sizeof(float) * n);
    }
}

/* ---- step ---------------------------------------------------------------------------- */

static void ensure_scratch(scheduler *self, int64_t n) {
    if (self->scratch_n >= n) return;
    free(self->noise);
    free(self->x0);
    self->noise = ts_aligned_alloc(sizeof(float) * n);
    self->x0 = ts_aligned_alloc(sizeof(float) * n);
    self->scratch_n = n;
}

static int draw_noise(scheduler *self, int64_t n, torch_rng *const *gens, int n_gens) {
    if (!gens || n_gens < 1)
        return ts_fail("%s: this sampler draws noise but no generator was given", sampler_name(self->cfg.sampler));
    if (self->noise_whole == 1) return torch_rng_randn_tensor(gens, n_gens, self->noise, n);
    /* the whole batch's draw, of which this sample is one slice */
    float *whole = ts_aligned_alloc(sizeof(float) * n * self->noise_whole);
    int rc = torch_rng_randn_tensor(gens, n_gens, whole, n * self->noise_whole);
    if (rc == 0) memcpy(self->noise, whole + n * self->noise_part, sizeof(float) * n);
    free(whole);
    return rc;
}

/* x0 from the model output, for the alpha-cumprod samplers (ddim, lcm). */
static void predict_x0_alpha(const scheduler *self, float *x0, float *eps, const float *out, const float *x,
                             int64_t n, float alpha_prod_t) {
    float beta_prod_t = 1.0f - alpha_prod_t;
    float sa = sqrtf(alpha_prod_t), sb = sqrtf(beta_prod_t);
    for (int64_t i = 0; i < n; i++) {
        if (self->cfg.prediction == PREDICT_EPSILON) {
            x0[i] = (x[i] - sb * out[i]) / sa;
            if (eps) eps[i] = out[i];
        } else {
            x0[i] = sa * x[i] - sb * out[i];
            if (eps) eps[i] = sa * out[i] + sb * x[i];
        }
        if (self->cfg.clip_sample) {
            float r = self->cfg.clip_sample_range;
            x0[i] = x0[i] < -r ? -r : x0[i] > r ? r : x0[i];
        }
    }
}

static int step_ddim(scheduler *self, const float *out, float *x, int64_t n, torch_rng *const *gens, int n_gens) {
    int t = (int)self->timesteps[self->step_index];
    int prev_t = t - self->T / self->steps;
    float a_t = self->alphas_cumprod[t];
    float a_prev = prev_t >= 0 ? self->alphas_cumprod[prev_t] : self->final_alpha_cumprod;
    float *x0 = self->x0, *eps = self->noise;   /* noise is drawn after eps is used up */
    predict_x0_alpha(self, x0, eps, out, x, n, a_t);
    float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    float variance = (b_prev / b_t) * (1.0f - a_t / a_prev);
    float std_dev = self->cfg.eta * sqrtf(variance);
    float c_dir = sqrtf(1.0f - a_prev - std_dev * std_dev), c_x0 = sqrtf(a_prev);
    for (int64_t i = 0; i < n; i++) x[i] = c_x0 * x0[i] + c_dir * eps[i];
    if (self->cfg.eta > 0) {
        if (draw_noise(self, n, gens, n_gens) != 0) return -1;
        for (int64_t i = 0; i < n; i++) x[i] = x[i] + std_dev * self->noise[i];
    }
    return 0;
}

/* x0 from the model output, for the sigma samplers (euler, euler_a). */
static void predict_x0_sigma(const scheduler *self, float *x0, const float *out, const float *x, int64_t n,
                             float sigma) {
    if (self->cfg.prediction == PREDICT_EPSILON) {
        for (int64_t i = 0; i < n; i++) x0[i] = x[i] - sigma * out[i];
    } else {
        float c_out = -sigma / sqrtf(sigma * sigma + 1.0f), c_skip = sigma * sigma + 1.0f;
        for (int64_t i = 0; i < n; i++) x0[i] = out[i] * c_out + x[i] / c_skip;
    }
}

static int step_euler(scheduler *self, const float *out, float *x, int64_t n) {
    float sigma = self->sigmas[self->step_index];   /* s_churn = 0: sigma_hat = sigma, no noise */
    predict_x0_sigma(self, self->x0, out, x, n, sigma);
    float dt = self->sigmas[self->step_index + 1] - sigma;
    for (int64_t i = 0; i < n; i++) {
        float d = (x[i] - self->x0[i]) / sigma;
        x[i] = x[i] + d * dt;
    }
    return 0;
}

static int step_euler_a(scheduler *self, const float *out, float *x, int64_t n, torch_rng *const *gens, int n_gens) {
    float s_from = self->sigmas[self->step_index], s_to = self->sigmas[self->step_index + 1];
    predict_x0_sigma(self, self->x0, out, x, n, s_from);
    float s_up = sqrtf(s_to * s_to * (s_from * s_from - s_to * s_to) / (s_from * s_from));
    float s_down = sqrtf(s_to * s_to - s_up * s_up);
    float dt = s_down - s_from;
    for (int64_t i = 0; i < n; i++) {
        float d = (x[i] - self->x0[i]) / s_from;
        x[i] = x[i] + d * dt;
    }
    if (draw_noise(self, n, gens, n_gens) != 0) return -1;   /* drawn every step, as diffusers does */
    for (int64_t i = 0; i < n; i++) x[i] = x[i] + self->noise[i] * s_up;
    return 0;
}

/* _sigma_to_alpha_sigma_t and the half-log-SNR lambda */
static void dpm_alpha_sigma(float sigma, float *alpha_t, float *sigma_t, float *lambda) {
    *alpha_t = 1.0f / sqrtf(sigma * sigma + 1.0f);
    *sigma_t = sigma * *alpha_t;
    *lambda = logf(*alpha_t) - logf(*sigma_t);
}

static int step_dpmpp_2m(scheduler *self, const float *out, float *x, int64_t n) {
    int i = self->step_index, steps = self->steps;
    const scheduler_config *c = &self->cfg;
    bool lower_order_final = i == steps - 1 &&
                             (c->euler_at_final || (c->lower_order_final && steps < 15) || c->final_sigmas_zero);
    if (self->history_n != n) {   /* a new batch shape starts a fresh history */
        free(self->prev_x0);
        self->prev_x0 = ts_aligned_alloc(sizeof(float) * n);
        self->history_n = n;
        if (self->lower_order_nums > 0) return ts_fail("dpm++2m: sample size changed between steps");
    }
    float alpha_s0, sigma_s0, lambda_s0, alpha_t, sigma_t, lambda_t;
    dpm_alpha_sigma(self->sigmas[i], &alpha_s0, &sigma_s0, &lambda_s0);
    dpm_alpha_sigma(self->sigmas[i + 1], &alpha_t, &sigma_t, &lambda_t);
    /* convert_model_output: the data prediction x0 */
    float *m0 = self->x0;
    for (int64_t k = 0; k < n; k++)
        m0[k] = c->prediction == PREDICT_EPSILON ? (x[k] - sigma_s0 * out[k]) / alpha_s0
                                                 : alpha_s0 * x[k] - sigma_s0 * out[k];
    float h = lambda_t - lambda_s0;
    float c_x = sigma_t / sigma_s0;
    float c_d0 = alpha_t * (expf(-h) - 1.0f);
    if (self->lower_order_nums < 1 || lower_order_final) {
        for (int64_t k = 0; k < n; k++) x[k] = c_x * x[k] - c_d0 * m0[k];
    } else {
        float alpha_s1, sigma_s1, lambda_s1;
        dpm_alpha_sigma(self->sigmas[i - 1], &alpha_s1, &sigma_s1, &lambda_s1);
        float h_0 = lambda_s0 - lambda_s1;
        float r0 = h_0 / h;
        float inv_r0 = 1.0f / r0;
        const float *m1 = self->prev_x0;
        for (int64_t k = 0; k < n; k++) {
            float d1 = inv_r0 * (m0[k] - m1[k]);
            x[k] = c_x * x[k] - c_d0 * m0[k] - 0.5f * c_d0 * d1;
        }
    }
    memcpy(self->prev_x0, m0, sizeof(float) * n);
    if (self->lower_order_nums < 2) self->lower_order_nums++;
    return 0;
}

static int step_lcm(scheduler *self, const float *out, float *x, int64_t n, torch_rng *const *gens, int n_gens) {
    int i = self->step_index;
    int t = (int)self->timesteps[i];
    int prev_t = i + 1 < self->steps ? (int)self->timesteps[i + 1] : t;
    float a_t = self->alphas_cumprod[t];
    float a_prev = prev_t >= 0 ? self->alphas_cumprod[prev_t] : self->final_alpha_cumprod;
    float b_prev = 1.0f - a_prev;
    float scaled_t = (float)t * self->cfg.timestep_scaling;
    float c_skip = 0.25f / (scaled_t * scaled_t + 0.25f);
    float c_out = scaled_t / sqrtf(scaled_t * scaled_t + 0.25f);
    predict_x0_alpha(self, self->x0, NULL, out, x, n, a_t);
    for (int64_t k = 0; k < n; k++) x[k] = c_out * self->x0[k] + c_skip * x[k];   /* denoised */
    if (i != self->steps - 1) {
        if (draw_noise(self, n, gens, n_gens) != 0) return -1;
        float ca = sqrtf(a_prev), cb = sqrtf(b_prev);
        for (int64_t k = 0; k < n; k++) x[k] = ca * x[k] + cb * self->noise[k];
    }
    return 0;
}

int scheduler_step(scheduler *self, const float *model_output, float *sample, int64_t n,
                   torch_rng *const *gens, int n_gens) {
    if (!self->timesteps) return ts_fail("scheduler_step: set_timesteps was not called");
    if (self->step_index >= self->steps)
        return ts_fail("scheduler_step: all %d steps are done", self->steps);
    ensure_scratch(self, n);
    int rc = 0;
    switch (self->cfg.sampler) {
    case SAMPLER_DDIM: rc = step_ddim(self, model_output, sample, n, gens, n_gens); break;
    case SAMPLER_EULER: rc = step_euler(self, model_output, sample, n); break;
    case SAMPLER_EULER_A: rc = step_euler_a(self, model_output, sample, n, gens, n_gens); break;
    case SAMPLER_DPMPP_2M: rc = step_dpmpp_2m(self, model_output, sample, n); break;
    case SAMPLER_LCM: rc = step_lcm(self, model_output, sample, n, gens, n_gens); break;
    }
    if (rc == 0) self->step_index++;
    return rc;
}
