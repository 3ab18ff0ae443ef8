/* guidance.c — classifier-free guidance and guidance_rescale (see guidance.h). */
#include "models/diffusion/guidance.h"

#include <math.h>

bool guidance_enabled(float w) { return w > 1.0f; }

void guidance_combine(float *out, const float *uncond, const float *cond, int64_t n, float w) {
    for (int64_t i = 0; i < n; i++) {
        float u = uncond[i];
        out[i] = u + w * (cond[i] - u);
    }
}

/* torch.std(unbiased) of n values, accumulated in double. */
static double std_unbiased(const float *x, int64_t n) {
    if (n < 2) return 0;
    double mean = 0;
    for (int64_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += ((double)x[i] - mean) * ((double)x[i] - mean);
    return sqrt(ss / (double)(n - 1));
}

void guidance_rescale(float *guided, const float *cond, int batch, int64_t per_image, float phi) {
    if (!(phi > 0)) return;
    for (int b = 0; b < batch; b++) {
        float *g = guided + (int64_t)b * per_image;
        float ratio = (float)std_unbiased(cond + (int64_t)b * per_image, per_image) /
                      (float)std_unbiased(g, per_image);
        for (int64_t i = 0; i < per_image; i++) {
            float rescaled = g[i] * ratio;
            g[i] = phi * rescaled + (1.0f - phi) * g[i];
        }
    }
}
