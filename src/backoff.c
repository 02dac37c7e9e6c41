/* Reconnect delays. Pure arithmetic: the random source is the caller's so
 * tests can pin it. */
#include "backoff.h"

usec_t backoff_ceiling(const Backoff *b) {
        usec_t c = b->base;

        for (unsigned i = 0; i < b->attempts && c < b->cap; i++)
                c = c > b->cap / 2 ? b->cap : c * 2;
        return MIN(c, b->cap);
}

usec_t backoff_next(Backoff *b, BackoffRandom rnd, void *userdata) {
        usec_t c = backoff_ceiling(b);

        if (b->attempts < UINT32_MAX)
                b->attempts++;
        return rnd(userdata, c + 1);
}

void backoff_reset(Backoff *b) {
        b->attempts = 0;
}
