/* xorshift128+ with rejection sampling: uniform picks for jitter. */
#include <sys/random.h>
#include <unistd.h>

#include "macro.h"
#include "rng.h"

static uint64_t rng_next(Rng *r) {
        uint64_t s1 = r->s[0];
        const uint64_t s0 = r->s[1];

        r->s[0] = s0;
        s1 ^= s1 << 23;
        r->s[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        return r->s[1] + s0;
}

void rng_init_seed(Rng *r, uint64_t seed) {
        /* splitmix64 spreads one word over both */
        for (int i = 0; i < 2; i++) {
                uint64_t z = (seed += 0x9E3779B97F4A7C15ULL);
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
                r->s[i] = z ^ (z >> 31);
        }
        if (!r->s[0] && !r->s[1])
                r->s[1] = 1;
}

void rng_init(Rng *r) {
        if (getrandom(r->s, sizeof(r->s), GRND_NONBLOCK) != sizeof(r->s)) {
                rng_init_seed(r, now_usec(CLOCK_REALTIME) ^ (uint64_t) getpid() << 32);
                return;
        }
        if (!r->s[0] && !r->s[1])
                r->s[1] = 1;
}

uint64_t rng_uniform(Rng *r, uint64_t n) {
        uint64_t limit, v;

        if (n <= 1)
                return 0;
        /* rejection sampling keeps it uniform */
        limit = UINT64_MAX - UINT64_MAX % n;
        do
                v = rng_next(r);
        while (v >= limit);
        return v % n;
}
