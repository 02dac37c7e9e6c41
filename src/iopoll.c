/* Many sockets behind one sd-event source: an epoll set of our own, served
 * IOPOLL_BATCH ready sockets per dispatch. Watches freed mid-batch wait. */

#include "iopoll.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "macro.h"

struct IoWatch {
        IoPoll *poll;
        int fd;
        uint32_t events; /* 0: out of the epoll set */
        IoWatchHandler handler;
        void *userdata;
        bool dead;      /* freed during a batch: its events are skipped */
        IoWatch *grave; /* next on the poll's list of watches to free */
};

struct IoPoll {
        int fd;
        sd_event_source *source;
        unsigned n_watches;
        unsigned n_armed;
        bool dispatching;
        bool free_pending; /* iopoll_free() from a handler: done after the batch */
        IoWatch *graves;   /* freed during the current batch */
};

static void poll_destroy(IoPoll *p) {
        p->source = sd_event_source_disable_unref(p->source);
        safe_close(p->fd);
        free(p);
}

static void watch_release(IoWatch *w) {
        w->poll->n_watches--;
        free(w);
}

static int on_poll_ready(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        IoPoll *p = userdata;
        struct epoll_event ev[IOPOLL_BATCH];
        int n;

        n = epoll_wait(p->fd, ev, (int) ELEMENTSOF(ev), 0);
        if (n <= 0)
                return 0; /* EINTR, or already served: the loop asks again */

        /* more than a batch ready (or more than the budget's worth): the set
         * stays readable, level-triggered, and sd-event comes back after the
         * other sources had their turn */
        usec_t start = now_usec(CLOCK_MONOTONIC);
        p->dispatching = true;
        for (int i = 0; i < n && !p->free_pending; i++) {
                IoWatch *w = ev[i].data.ptr;
                if (i > 0 && now_usec(CLOCK_MONOTONIC) - start >= IOPOLL_BUDGET_USEC)
                        break;
                if (w->dead || w->events == 0)
                        continue; /* freed or disarmed by an earlier handler */
                (void) w->handler(w, w->fd, ev[i].events, w->userdata);
        }
        p->dispatching = false;

        while (p->graves) {
                IoWatch *w = p->graves;
                p->graves = w->grave;
                watch_release(w);
        }
        if (p->free_pending)
                poll_destroy(p); /* its owner let go of it from a handler */
        return 0;
}

int iopoll_new(sd_event *e, IoPoll **ret) {
        IoPoll *p;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->fd = epoll_create1(EPOLL_CLOEXEC);
        r = p->fd < 0 ? -errno : sd_event_add_io(e, &p->source, p->fd, EPOLLIN, on_poll_ready, p);
        if (r < 0) {
                poll_destroy(p);
                return r;
        }
        (void) sd_event_source_set_description(p->source, "iopoll");
        *ret = p;
        return 0;
}

IoPoll *iopoll_free(IoPoll *p) {
        if (!p)
                return NULL;
        if (p->dispatching)
                p->free_pending = true;
        else
                poll_destroy(p);
        return NULL;
}

static int watch_apply(IoWatch *w, uint32_t events) {
        struct epoll_event ev = { .events = events, .data.ptr = w };
        int op;

        if (events == w->events)
                return 0;
        op = w->events == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
        if (epoll_ctl(w->poll->fd, op, w->fd, &ev) < 0)
                return -errno;
        if (w->events == 0)
                w->poll->n_armed++;
        else if (events == 0)
                w->poll->n_armed--;
        w->events = events;
        return 0;
}

int iopoll_add(IoPoll *p, int fd, uint32_t events, IoWatchHandler handler, void *userdata, IoWatch **ret) {
        IoWatch *w;
        int r;

        if (fd < 0 || !handler)
                return -EINVAL;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (IoWatch) { .poll = p, .fd = fd, .handler = handler, .userdata = userdata };
        p->n_watches++;
        r = watch_apply(w, events);
        if (r < 0) {
                watch_release(w);
                return r;
        }
        *ret = w;
        return 0;
}

int iopoll_watch_set_events(IoWatch *w, uint32_t events) {
        if (!w || w->dead)
                return -ESTALE;
        return watch_apply(w, events);
}

IoWatch *iopoll_watch_free(IoWatch *w) {
        if (!w || w->dead)
                return NULL;
        /* before the owner closes fd, or a reused number would be removed;
         * after it, the kernel has dropped the entry already */
        if (w->events != 0) {
                (void) epoll_ctl(w->poll->fd, EPOLL_CTL_DEL, w->fd, NULL);
                w->poll->n_armed--;
                w->events = 0;
        }
        if (w->poll->dispatching) {
                w->dead = true;
                w->grave = w->poll->graves;
                w->poll->graves = w;
        } else
                watch_release(w);
        return NULL;
}

unsigned iopoll_armed(const IoPoll *p) {
        return p->n_armed;
}

unsigned iopoll_watches(const IoPoll *p) {
        return p->n_watches;
}
