/*
 * torch_rng.h — torch's CPU random generator, bit for bit, so that a seed means what it
 * means in diffusers: torch.Generator().manual_seed(s) then torch.randn(shape, generator=g).
 *
 *   torch_rng *g = torch_rng_new(42);             // torch.Generator().manual_seed(42)
 *   torch_rng_randn(g, latents, 1 * 4 * 64 * 64); // torch.randn((1,4,64,64), generator=g)
 *   torch_rng_randn(g, noise, n);                 // the next draw continues the stream,
 *   torch_rng_destroy(&g);                        // as diffusers' ancestral samplers do
 *
 * What torch does (aten/src/ATen/native/cpu/DistributionTemplates.h, CPUGeneratorImpl.cpp):
 *   - The engine is MT19937 seeded with the low 32 bits of the seed (init_genrand).
 *   - randn of n >= 16 contiguous float32 values (every latent tensor): n uniforms
 *     (u32 & 0xffffff) * 2^-24, then Box-Muller on each block of 16 — u1 from the first 8,
 *     u2 from the last 8 — with the AVX2 cephes log/sincos of avx_mathfun.h (x86 torch runs
 *     this path even on AVX-512 CPUs). When n % 16 != 0 the last 16 slots are refilled with
 *     16 fresh uniforms and transformed again, overwriting the overlap.
 *   - randn of n < 16 values: per value, Box-Muller in double from two 53-bit uniforms
 *     (each made of two u32 draws), returning r*cos and caching r*sin in the generator for
 *     the next scalar draw; manual_seed clears that cache.
 * The vector math is written here in scalar C, one IEEE operation per statement, so it gives
 * the same bits on any CPU (no library reproduces torch's exact rounding, hence hand-written).
 * torch built for ARM (or without AVX2) uses libm's logf/cosf instead and draws other noise
 * for the same seed; this file reproduces x86-64 torch.
 */
#ifndef TESSERA_TORCH_RNG_H
#define TESSERA_TORCH_RNG_H

#include "kernels/base.h"

#define TORCH_RNG_STATE_N 624

typedef struct torch_rng {
    uint64_t seed;
    uint32_t state[TORCH_RNG_STATE_N];
    int next;                 /* index of the next state word to temper */
    bool has_cached_normal;   /* Box-Muller's second value, kept for the next scalar draw */
    double cached_normal;
} torch_rng;

torch_rng *torch_rng_new(uint64_t seed);
void torch_rng_destroy(torch_rng **self);
/* For a generator embedded in another struct: the same as manual_seed(seed). */
void torch_rng_seed(torch_rng *self, uint64_t seed);

/* The raw engine: one 32-bit draw; a 64-bit draw is two of them, first in the high half. */
uint32_t torch_rng_u32(torch_rng *self);
uint64_t torch_rng_u64(torch_rng *self);

/* torch.randn(n, generator=self) as contiguous float32 (mean 0, std 1). */
void torch_rng_randn(torch_rng *self, float *out, int64_t n);
/* torch.normal / Tensor.normal_(mean, std) on a contiguous float32 tensor of n values. */
void torch_rng_normal(torch_rng *self, float *out, int64_t n, float mean, float std);

/* diffusers' randn_tensor(shape, generator): with one generator (n_gens == 1), numel values
 * from it; with a list of generators, one per image, numel / n_gens values from each in turn
 * (torch.cat of per-image draws). -1 with a message if numel does not split evenly. */
int torch_rng_randn_tensor(torch_rng *const *gens, int n_gens, float *out, int64_t numel);

#endif
