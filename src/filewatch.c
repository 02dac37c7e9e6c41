/* One inotify descriptor per watched file, on its directory; events for
 * other names in the directory are ignored. */
#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "filewatch.h"

struct FileWatch {
        char *path;
        char *base; /* the name within the directory */
        int fd;
        sd_event_source *io;
        sd_event_source *debounce;
        usec_t delay;
        FileWatchHandler handler;
        void *userdata;
};

FileWatch *filewatch_free(FileWatch *w) {
        if (!w)
                return NULL;
        w->io = sd_event_source_disable_unref(w->io);
        w->debounce = sd_event_source_disable_unref(w->debounce);
        w->fd = safe_close(w->fd);
        free(w->path);
        free(w->base);
        free(w);
        return NULL;
}

static int on_debounce(sd_event_source *s, uint64_t usec, void *userdata) {
        FileWatch *w = userdata;

        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        w->handler(w, w->path, w->userdata);
        return 0;
}

static int on_inotify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        FileWatch *w = userdata;
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool ours = false;
        ssize_t n;

        while ((n = read(fd, buf, sizeof(buf))) > 0)
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *e = (const struct inotify_event *) p;
                        if (e->len > 0 && streq(e->name, w->base))
                                ours = true;
                        p += sizeof(*e) + e->len;
                }
        if (!ours)
                return 0;
        /* a rename or a burst of writes: read once things settle */
        (void) sd_event_source_set_time_relative(w->debounce, w->delay);
        (void) sd_event_source_set_enabled(w->debounce, SD_EVENT_ONESHOT);
        return 0;
}

int filewatch_new(sd_event *e, const char *path, usec_t debounce, FileWatchHandler handler, void *userdata,
                  FileWatch **ret) {
        _cleanup_free_ char *copy = NULL, *copy2 = NULL;
        FileWatch *w;
        int r;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->fd = -1;
        w->delay = debounce;
        w->handler = handler;
        w->userdata = userdata;
        w->path = strdup(path);
        copy = strdup(path);
        copy2 = strdup(path);
        if (!w->path || !copy || !copy2) {
                filewatch_free(w);
                return -ENOMEM;
        }
        w->base = strdup(basename(copy));
        if (!w->base) {
                filewatch_free(w);
                return -ENOMEM;
        }
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->fd < 0 ||
            inotify_add_watch(w->fd, dirname(copy2),
                              IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM) < 0) {
                r = -errno;
                filewatch_free(w);
                return r;
        }
        r = sd_event_add_io(e, &w->io, w->fd, EPOLLIN, on_inotify, w);
        if (r >= 0)
                r = sd_event_add_time_relative(e, &w->debounce, CLOCK_MONOTONIC, debounce, 10 * USEC_PER_MSEC,
                                               on_debounce, w);
        if (r < 0) {
                filewatch_free(w);
                return r;
        }
        (void) sd_event_source_set_enabled(w->debounce, SD_EVENT_OFF);
        (void) sd_event_source_set_description(w->io, "file-watch");
        (void) sd_event_source_set_description(w->debounce, "file-watch-debounce");
        *ret = w;
        return 0;
}
