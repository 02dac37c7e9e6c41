/* Asynchronous getaddrinfo(): one detached thread per query, the result
 * handed back through a pipe so the loop never blocks on DNS. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "resolve.h"

struct ResolveQuery {
        /* shared with the thread: two references, the loop's and the thread's */
        atomic_int refs;
        char *host;
        char port[8];
        int error;
        struct addrinfo *ai;
        int pipe[2];

        /* loop side only */
        sd_event_source *source;
        ResolveCallback cb;
        void *userdata;
};

static void query_unref(ResolveQuery *q) {
        if (atomic_fetch_sub(&q->refs, 1) != 1)
                return;
        /* q->source was dropped on the loop already: this may run in the thread */
        safe_close(q->pipe[0]);
        safe_close(q->pipe[1]);
        if (q->ai)
                freeaddrinfo(q->ai);
        free(q->host);
        free(q);
}

static void *resolve_thread(void *p) {
        ResolveQuery *q = p;
        struct addrinfo hints = {
                .ai_socktype = SOCK_STREAM,
                .ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV,
        };
        char c = 1;

        q->error = getaddrinfo(q->host, q->port, &hints, &q->ai);
        /* the write is the release: the loop reads error/ai after it */
        (void) !write(q->pipe[1], &c, 1);
        query_unref(q);
        return NULL;
}

static int on_resolved(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ResolveQuery *q = userdata;
        char c;

        (void) !read(fd, &c, 1);
        q->source = sd_event_source_disable_unref(q->source);
        if (q->cb) {
                ResolveCallback cb = TAKE_PTR(q->cb);
                if (q->error == 0)
                        cb(q, 0, NULL, q->ai, q->userdata);
                else
                        cb(q, q->error == EAI_SYSTEM ? -errno : -EHOSTUNREACH, gai_strerror(q->error),
                           NULL, q->userdata);
        }
        query_unref(q);
        return 0;
}

int resolve_start(sd_event *e, const char *host, uint16_t port, ResolveCallback cb, void *userdata,
                  ResolveQuery **ret) {
        ResolveQuery *q;
        pthread_attr_t attr;
        pthread_t t;
        sigset_t all, old;
        int r;

        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->pipe[0] = q->pipe[1] = -1;
        atomic_init(&q->refs, 1);
        q->cb = cb;
        q->userdata = userdata;
        snprintf(q->port, sizeof(q->port), "%u", port);
        q->host = strdup(host);
        if (!q->host || pipe2(q->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
                r = q->host ? -errno : -ENOMEM;
                goto fail;
        }
        r = sd_event_add_io(e, &q->source, q->pipe[0], EPOLLIN, on_resolved, q);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(q->source, "resolve");

        atomic_fetch_add(&q->refs, 1);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        /* the thread must never take the daemon's signals */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = -pthread_create(&t, &attr, resolve_thread, q);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        if (r < 0) {
                atomic_fetch_sub(&q->refs, 1);
                goto fail;
        }
        *ret = q;
        return 0;
fail:
        q->source = sd_event_source_disable_unref(q->source);
        query_unref(q);
        return r;
}

ResolveQuery *resolve_cancel(ResolveQuery *q) {
        if (!q)
                return NULL;
        q->cb = NULL;
        q->source = sd_event_source_disable_unref(q->source);
        query_unref(q);
        return NULL;
}
