/* Many sockets behind one sd-event source: an epoll set of our own whose
 * ready sockets are served in batches, so thousands ready at once cost O(n).
 * Front-door clients, outgoing connects and the SSH sessions' sockets. */
#pragma once

#include <stdint.h>

#include <systemd/sd-event.h>

/* sd-event dispatches one source per loop iteration and asks epoll for every
 * ready descriptor each time: with n sockets ready at once (10,000 clients
 * each sending a request) that is n epoll_wait() calls of n items each. An
 * IoPoll is one source; each dispatch serves up to IOPOLL_BATCH sockets. */
#define IOPOLL_BATCH 64
/* ... and stops early once this much time went by: 64 SSH handshake steps
 * or 64 sessions' worth of channel opens would otherwise hold the loop
 * (timers, the admin socket, every other source) for tens of ms. What is
 * left stays ready and is served on the next turn. */
#define IOPOLL_BUDGET_USEC 2000

typedef struct IoPoll IoPoll;
typedef struct IoWatch IoWatch;

/* Called with the epoll events of the watch's descriptor. The watch may be
 * freed (and others too) from inside. */
typedef int (*IoWatchHandler)(IoWatch *w, int fd, uint32_t revents, void *userdata);

/* A poll set dispatched from 'e' at the default priority. */
int iopoll_new(sd_event *e, IoPoll **ret);

/* Frees the set; watches still in it must have been freed. Safe inside a
 * handler (the set goes after the batch). Accepts NULL, returns NULL. */
IoPoll *iopoll_free(IoPoll *p);

/* Watch fd (not owned) for 'events' (EPOLLIN, EPOLLOUT; level-triggered). */
int iopoll_add(IoPoll *p, int fd, uint32_t events, IoWatchHandler handler, void *userdata, IoWatch **ret);

/* What to watch for from now on; 0 takes the descriptor out of the set, so
 * not even EPOLLHUP or EPOLLERR (which epoll reports unasked) wake us. */
int iopoll_watch_set_events(IoWatch *w, uint32_t events);

/* Stop watching. Safe inside any handler. Accepts NULL, returns NULL. */
IoWatch *iopoll_watch_free(IoWatch *w);

/* Descriptors in the set, and all watches (armed or not). */
unsigned iopoll_armed(const IoPoll *p);
unsigned iopoll_watches(const IoPoll *p);
