/* make bench: preloaded into sshtund by bench/scale.py, it times every
 * dispatch of every sd-event source sshtund adds (io, time, defer) in wall
 * and in thread CPU time, and writes one line to stderr (sshtund's log)
 * per dispatch that took more than LOOPSTALL_CPU_MS (default 1) of CPU or
 * LOOPSTALL_WALL_MS (default 20) of wall time:
 *   loopstall: t=MONOTONIC_S source=DESCRIPTION wall_ms=W cpu_ms=C
 * On a shared machine wall time measures the run queue as much as the
 * handler; CPU time is what the handler itself held the loop for. A
 * benchmark tool, not part of the daemon. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <systemd/sd-event.h>

/* built with -fvisibility=hidden: the interposers must be seen */
#define EXPORT __attribute__((visibility("default")))

typedef struct Wrap {
        void *callback;
        void *userdata;
} Wrap;

static double cpu_limit = 1.0, wall_limit = 20.0;
static int inside; /* sd_event_add_time_relative() calls sd_event_add_time() */

__attribute__((constructor)) static void init(void) {
        const char *e;

        if ((e = getenv("LOOPSTALL_CPU_MS")))
                cpu_limit = atof(e);
        if ((e = getenv("LOOPSTALL_WALL_MS")))
                wall_limit = atof(e);
}

static double ms(clockid_t c) {
        struct timespec t;

        clock_gettime(c, &t);
        return (double) t.tv_sec * 1e3 + (double) t.tv_nsec / 1e6;
}

static void report(sd_event_source *s, double w0, double c0) {
        double w = ms(CLOCK_MONOTONIC) - w0, c = ms(CLOCK_THREAD_CPUTIME_ID) - c0;
        const char *d = NULL;

        if (c < cpu_limit && w < wall_limit)
                return;
        (void) sd_event_source_get_description(s, &d);
        fprintf(stderr, "loopstall: t=%.6f source=%s wall_ms=%.3f cpu_ms=%.3f\n", (w0 + w) / 1e3, d ? d : "?", w,
                c);
}

static Wrap *wrap(void *callback, void *userdata) {
        Wrap *w = malloc(sizeof(*w));

        if (!w)
                abort();
        *w = (Wrap) { callback, userdata };
        return w;
}

static int io_trampoline(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Wrap *w = userdata;
        double w0 = ms(CLOCK_MONOTONIC), c0 = ms(CLOCK_THREAD_CPUTIME_ID);
        int r = ((sd_event_io_handler_t) w->callback)(s, fd, revents, w->userdata);

        report(s, w0, c0);
        return r;
}

static int time_trampoline(sd_event_source *s, uint64_t usec, void *userdata) {
        Wrap *w = userdata;
        double w0 = ms(CLOCK_MONOTONIC), c0 = ms(CLOCK_THREAD_CPUTIME_ID);
        int r = ((sd_event_time_handler_t) w->callback)(s, usec, w->userdata);

        report(s, w0, c0);
        return r;
}

static int defer_trampoline(sd_event_source *s, void *userdata) {
        Wrap *w = userdata;
        double w0 = ms(CLOCK_MONOTONIC), c0 = ms(CLOCK_THREAD_CPUTIME_ID);
        int r = ((sd_event_handler_t) w->callback)(s, w->userdata);

        report(s, w0, c0);
        return r;
}

/* The wrappers leak one Wrap per source: a benchmark runs for minutes. */

EXPORT int sd_event_add_io(sd_event *e, sd_event_source **s, int fd, uint32_t events, sd_event_io_handler_t cb,
                    void *userdata) {
        static int (*real)(sd_event *, sd_event_source **, int, uint32_t, sd_event_io_handler_t, void *);

        if (!real)
                real = dlsym(RTLD_NEXT, "sd_event_add_io");
        return real(e, s, fd, events, io_trampoline, wrap((void *) cb, userdata));
}

EXPORT int sd_event_add_time(sd_event *e, sd_event_source **s, clockid_t clock, uint64_t usec, uint64_t accuracy,
                      sd_event_time_handler_t cb, void *userdata) {
        static int (*real)(sd_event *, sd_event_source **, clockid_t, uint64_t, uint64_t, sd_event_time_handler_t,
                           void *);

        if (!real)
                real = dlsym(RTLD_NEXT, "sd_event_add_time");
        if (inside || !cb)
                return real(e, s, clock, usec, accuracy, cb, userdata);
        return real(e, s, clock, usec, accuracy, time_trampoline, wrap((void *) cb, userdata));
}

EXPORT int sd_event_add_time_relative(sd_event *e, sd_event_source **s, clockid_t clock, uint64_t usec,
                               uint64_t accuracy, sd_event_time_handler_t cb, void *userdata) {
        static int (*real)(sd_event *, sd_event_source **, clockid_t, uint64_t, uint64_t, sd_event_time_handler_t,
                           void *);
        int r;

        if (!real)
                real = dlsym(RTLD_NEXT, "sd_event_add_time_relative");
        if (!cb)
                return real(e, s, clock, usec, accuracy, cb, userdata);
        inside++;
        r = real(e, s, clock, usec, accuracy, time_trampoline, wrap((void *) cb, userdata));
        inside--;
        return r;
}

EXPORT int sd_event_add_defer(sd_event *e, sd_event_source **s, sd_event_handler_t cb, void *userdata) {
        static int (*real)(sd_event *, sd_event_source **, sd_event_handler_t, void *);

        if (!real)
                real = dlsym(RTLD_NEXT, "sd_event_add_defer");
        return real(e, s, defer_trampoline, wrap((void *) cb, userdata));
}
