/* Full-jitter exponential backoff (the AWS architecture blog's "full
 * jitter"): the n-th retry waits uniform(0, min(cap, base * 2^n)), which
 * spreads a herd of reconnecting sessions instead of synchronising them. */
#pragma once

#include <stdint.h>

#include "macro.h"

/* Uniform random integer in [0, n); the caller's generator. */
typedef uint64_t (*BackoffRandom)(void *userdata, uint64_t n);

typedef struct Backoff {
        usec_t base;
        usec_t cap;
        unsigned attempts; /* failures since the last reset */
} Backoff;

/* min(cap, base * 2^attempts), without overflow. */
usec_t backoff_ceiling(const Backoff *b);
/* The delay before the next attempt, uniform in [0, ceiling]; counts the
 * attempt. */
usec_t backoff_next(Backoff *b, BackoffRandom rnd, void *userdata);
/* Start over after a success. */
void backoff_reset(Backoff *b);
