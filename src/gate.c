/* The gate: a count of holders and a FIFO of waiters in one ring array. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"
#include "log.h"
#include "macro.h"

typedef struct Waiter {
        GateResume resume;
        void *userdata;
} Waiter;

struct Gate {
        unsigned limit, holders;
        char *what;
        Waiter *waiters; /* FIFO: [head, head + n) */
        size_t head, n, alloc;
        RateLimit log;
};

int gate_new(unsigned limit, const char *what, Gate **ret) {
        Gate *g = calloc(1, sizeof(*g));

        if (!g)
                return -ENOMEM;
        g->limit = limit;
        g->what = strdup(what);
        if (!g->what) {
                free(g);
                return -ENOMEM;
        }
        g->log = (RateLimit) { .interval = 60 * USEC_PER_SEC, .burst = 1 };
        *ret = g;
        return 0;
}

Gate *gate_free(Gate *g) {
        if (!g)
                return NULL;
        free(g->waiters);
        free(g->what);
        free(g);
        return NULL;
}

/* Room for one more waiter at the tail. */
static int gate_grow(Gate *g) {
        Waiter *w;
        size_t n;

        if (g->head + g->n < g->alloc)
                return 0;
        if (g->head > 0) {
                memmove(g->waiters, g->waiters + g->head, g->n * sizeof(*g->waiters));
                g->head = 0;
                return 0;
        }
        n = MAX(g->alloc * 2, (size_t) 16);
        w = realloc(g->waiters, n * sizeof(*w));
        if (!w)
                return -ENOMEM;
        g->waiters = w;
        g->alloc = n;
        return 0;
}

/* Let waiters in while there is room. */
static void gate_admit(Gate *g) {
        while (g->n > 0 && g->holders < g->limit) {
                Waiter w = g->waiters[g->head++];

                if (--g->n == 0)
                        g->head = 0;
                g->holders++;
                w.resume(w.userdata);
        }
}

bool gate_acquire(Gate *g, GateResume resume, void *userdata) {
        unsigned suppressed;

        if (g->holders < g->limit && g->n == 0) {
                g->holders++;
                return true;
        }
        if (gate_grow(g) < 0) {
                /* cannot queue: let it through rather than stall it forever */
                g->holders++;
                return true;
        }
        g->waiters[g->head + g->n++] = (Waiter) { resume, userdata };
        if (ratelimit_below(&g->log, &suppressed))
                log_info("%s (%u) in flight: further connects wait their turn", g->what, g->limit);
        return false;
}

void gate_cancel(Gate *g, void *userdata) {
        for (size_t i = 0; i < g->n; i++) {
                Waiter *w = &g->waiters[g->head + i];
                if (w->userdata == userdata) {
                        memmove(w, w + 1, (g->n - i - 1) * sizeof(*w));
                        g->n--;
                        return;
                }
        }
}

void gate_release(Gate *g) {
        if (g->holders > 0)
                g->holders--;
        gate_admit(g);
}

void gate_set_limit(Gate *g, unsigned limit) {
        g->limit = limit;
        gate_admit(g);
}

unsigned gate_holders(const Gate *g) {
        return g->holders;
}

unsigned gate_waiting(const Gate *g) {
        return (unsigned) g->n;
}
