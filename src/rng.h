/* The daemon's random numbers for jitter and spreading (backoff, probe and
 * check phases, the "any" fallback's pick): xorshift128+, seeded from
 * getrandom(). Not for secrets. */
#pragma once

#include <stdint.h>

typedef struct Rng {
        uint64_t s[2];
} Rng;

/* Seed from the kernel (time and pid if that fails). */
void rng_init(Rng *r);
/* Seed with a fixed value, for tests that need the same sequence. */
void rng_init_seed(Rng *r, uint64_t seed);
/* Uniform in [0, n); 0 when n <= 1. */
uint64_t rng_uniform(Rng *r, uint64_t n);
