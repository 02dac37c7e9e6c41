/* The host keys sshtund trusts: the set of both files, their watches, and
 * the queue of keys accept-new learned that are not on disk yet. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filewatch.h"
#include "log.h"
#include "trust.h"

/* A batch that could not be written is tried again this much later. */
#define TRUST_RETRY_USEC (10 * USEC_PER_SEC)
/* A burst of writes or a rename: read once it settles. */
#define TRUST_WATCH_DEBOUNCE_USEC (200 * USEC_PER_MSEC)
/* A temporary untouched this long is no write in progress. */
#define TRUST_TEMPORARY_MIN_AGE_SEC 60
/* In the set, learned_hosts is the second file. */
#define LEARNED_FILE 1

typedef struct Pending {
        char *host;
        uint16_t port;
        uint8_t *blob;
        size_t blob_len;
} Pending;

struct Trust {
        sd_event *event;
        char *known;
        char *learned; /* NULL: none */
        KnownHosts *set;
        FileWatch *known_watch, *learned_watch;

        Pending *pending; /* accept-new's keys, not on disk yet */
        size_t n_pending;
        sd_event_source *flush;
        char *write_error; /* the last failed write's reason, logged once */
};

static void pending_clear(Trust *t) {
        for (size_t i = 0; i < t->n_pending; i++) {
                free(t->pending[i].host);
                free(t->pending[i].blob);
        }
        free(t->pending);
        t->pending = NULL;
        t->n_pending = 0;
}

/* The queue plus 'extra' as edits for known_hosts_update() (pointers into
 * both); *ret malloc'd. */
static int pending_edits(const Trust *t, const KnownHostsEdit *extra, size_t n_extra, KnownHostsEdit **ret,
                         size_t *ret_n) {
        KnownHostsEdit *e = calloc(t->n_pending + n_extra + 1, sizeof *e);

        if (!e)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_pending; i++)
                e[i] = (KnownHostsEdit) { .host = t->pending[i].host, .port = t->pending[i].port,
                                          .blob = t->pending[i].blob, .blob_len = t->pending[i].blob_len };
        for (size_t i = 0; i < n_extra; i++)
                e[t->n_pending + i] = extra[i];
        *ret = e;
        *ret_n = t->n_pending + n_extra;
        return 0;
}

/* Why a write of learned_hosts failed, for the log and the operator. */
static char *write_error_text(const char *path, int r, unsigned bad_line) {
        char *s = NULL;
        int n;

        if (r == -EBADMSG)
                n = asprintf(&s, "%s:%u: a line that does not parse; sshtund writes nothing into a file it cannot "
                             "read back: fix or remove that line", path, bad_line);
        else if (r == -ENOENT)
                n = asprintf(&s, "%s: its directory does not exist (systemd's StateDirectory=sshtund, or "
                             "tmpfiles.d, makes /var/lib/sshtund)", path);
        else if (r == -EACCES || r == -EPERM || r == -EROFS)
                n = asprintf(&s, "%s: cannot write beside it: %s (the directory must be writable by sshtund's "
                             "user)", path, strerror(-r));
        else if (r == -EINVAL)
                n = asprintf(&s, "%s: not a regular file", path);
        else
                n = asprintf(&s, "%s: %s", path, strerror(-r));
        return n < 0 ? NULL : s;
}

/* Write the queue (and 'extra'); the queue empties on success. */
static int trust_write(Trust *t, const KnownHostsEdit *extra, size_t n_extra, bool *ret_changed,
                       char **ret_error) {
        _cleanup_free_ KnownHostsEdit *edits = NULL;
        unsigned bad_line = 0;
        size_t n = 0;
        int r;

        if (ret_changed)
                *ret_changed = false;
        if (!t->learned) {
                if (ret_error)
                        *ret_error = strdup("ssh.learned_hosts is empty: there is no file to record host keys in");
                return -ENOENT;
        }
        r = pending_edits(t, extra, n_extra, &edits, &n);
        if (r < 0)
                return r;
        r = known_hosts_update(t->learned, edits, n, ret_changed, &bad_line);
        if (r < 0) {
                if (ret_error)
                        *ret_error = write_error_text(t->learned, r, bad_line);
                return r;
        }
        pending_clear(t);
        free(t->write_error);
        t->write_error = NULL;
        return 0;
}

/* accept-new's batch: the keys are trusted already; a failure is logged
 * (once per reason) and the batch stays queued for the next try. */
static void trust_flush(Trust *t) {
        _cleanup_free_ char *error = NULL;
        size_t n = t->n_pending;
        int r;

        if (n == 0)
                return;
        r = trust_write(t, NULL, 0, NULL, &error);
        if (r >= 0) {
                log_debug("Wrote %zu learned host key%s to %s", n, n == 1 ? "" : "s", t->learned);
                return;
        }
        if (!streq_ptr(error, t->write_error)) {
                log_error("Cannot record %zu learned host key%s: %s; trusted meanwhile, tried again every %u s",
                          n, n == 1 ? "" : "s", strna(error), (unsigned) (TRUST_RETRY_USEC / USEC_PER_SEC));
                free(t->write_error);
                t->write_error = TAKE_PTR(error);
        }
        if (t->flush && sd_event_source_set_time_relative(t->flush, TRUST_RETRY_USEC) >= 0)
                (void) sd_event_source_set_enabled(t->flush, SD_EVENT_ONESHOT);
}

static int on_flush(sd_event_source *s, uint64_t usec, void *userdata) {
        trust_flush(userdata);
        return 0;
}

/* Read both files into a new set; the old one stays on failure. */
static int trust_load(Trust *t, const char *known, const char *learned) {
        const char *paths[2] = { known, learned };
        KnownHosts *set = NULL;
        int r;

        r = known_hosts_load_files(paths, learned ? 2 : 1, &set);
        if (r < 0) {
                const char *which = known;

                /* which one failed: try the first alone */
                if (learned) {
                        KnownHosts *probe = NULL;
                        if (known_hosts_load(known, &probe) >= 0)
                                which = learned;
                        known_hosts_free(probe);
                }
                if (!t->set)
                        return log_error_errno(r, "Cannot read %s: %m", which);
                return log_warning_errno(r, "Cannot read %s again, keeping the keys read before: %m", which);
        }
        for (size_t i = 0; i < known_hosts_files(set); i++) {
                size_t bad = 0;
                unsigned first = 0;
                const char *path = known_hosts_file(set, i, &bad, &first);

                if (bad > 0)
                        log_warning("%s: %zu line%s could not be parsed and %s ignored (the first: line %u)", path,
                                    bad, bad == 1 ? "" : "s", bad == 1 ? "is" : "are", first);
        }
        if (t->set)
                log_info("Read %s%s%s: %zu host keys", known, learned ? " and " : "", learned ?: "",
                         known_hosts_entries(set));
        known_hosts_free(t->set);
        t->set = set;
        /* accept-new's keys not on disk yet stay trusted */
        for (size_t i = 0; i < t->n_pending && learned; i++)
                (void) known_hosts_add(t->set, LEARNED_FILE, t->pending[i].host, t->pending[i].port,
                                       t->pending[i].blob, t->pending[i].blob_len);
        return 0;
}

static void on_file_changed(FileWatch *w, const char *path, void *userdata) {
        Trust *t = userdata;

        (void) trust_load(t, t->known, t->learned);
}

static int trust_watch(Trust *t) {
        int r, ret = 0;

        t->known_watch = filewatch_free(t->known_watch);
        t->learned_watch = filewatch_free(t->learned_watch);
        r = filewatch_new(t->event, t->known, TRUST_WATCH_DEBOUNCE_USEC, on_file_changed, t, &t->known_watch);
        if (r < 0)
                ret = log_warning_errno(r, "Cannot watch %s: %m; reload to pick up changes", t->known);
        if (t->learned) {
                r = filewatch_new(t->event, t->learned, TRUST_WATCH_DEBOUNCE_USEC, on_file_changed, t,
                                  &t->learned_watch);
                if (r == -ENOENT)
                        ret = log_warning_errno(r, "ssh.learned_hosts %s: its directory does not exist: host keys "
                                                "cannot be recorded (accept-new, sshtunctl hostkeys trust)",
                                                t->learned);
                else if (r < 0)
                        ret = log_warning_errno(r, "Cannot watch %s: %m; reload to pick up changes", t->learned);
        }
        return ret;
}

int trust_new(sd_event *e, const char *known, const char *learned, Trust **ret) {
        Trust *t;
        int r;

        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->event = sd_event_ref(e);
        r = sd_event_add_time_relative(e, &t->flush, CLOCK_MONOTONIC, TRUST_FLUSH_DELAY_USEC, 0, on_flush, t);
        if (r >= 0)
                r = sd_event_source_set_enabled(t->flush, SD_EVENT_OFF);
        if (r >= 0)
                (void) sd_event_source_set_description(t->flush, "trust-flush");
        if (r >= 0)
                r = trust_set_files(t, known, learned);
        if (r < 0) {
                trust_free(t);
                return r;
        }
        *ret = t;
        return 0;
}

Trust *trust_free(Trust *t) {
        if (!t)
                return NULL;
        t->flush = sd_event_source_disable_unref(t->flush);
        trust_flush(t);
        t->known_watch = filewatch_free(t->known_watch);
        t->learned_watch = filewatch_free(t->learned_watch);
        known_hosts_free(t->set);
        pending_clear(t);
        free(t->write_error);
        free(t->known);
        free(t->learned);
        sd_event_unref(t->event);
        free(t);
        return NULL;
}

/* A crash (kill -9, power) during a write of learned_hosts leaves its
 * temporary beside it: the only file sshtund writes, so its leftovers are
 * sshtund's to clear. */
static void trust_remove_temporaries(Trust *t) {
        unsigned removed;
        int r;

        if (!t->learned)
                return;
        r = known_hosts_remove_temporaries(t->learned, TRUST_TEMPORARY_MIN_AGE_SEC, &removed);
        if (removed > 0)
                log_notice("ssh.learned_hosts %s: removed %u temporary file%s left by an interrupted write",
                           t->learned, removed, removed == 1 ? "" : "s");
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "ssh.learned_hosts %s: cannot remove temporary files left by an interrupted "
                                  "write: %m", t->learned);
}

int trust_set_files(Trust *t, const char *known, const char *learned) {
        _cleanup_free_ char *k = NULL, *l = NULL;
        int r;

        if (learned && !*learned)
                learned = NULL;
        k = strdup(known);
        l = learned ? strdup(learned) : NULL;
        if (!k || (learned && !l))
                return -ENOMEM;
        /* the queue belongs to the file it was learned for */
        trust_flush(t);
        if (!streq_ptr(learned, t->learned))
                pending_clear(t);
        r = trust_load(t, k, l);
        if (r < 0)
                return r;
        if (streq_ptr(k, t->known) && streq_ptr(l, t->learned))
                return 0;
        free(t->known);
        t->known = TAKE_PTR(k);
        free(t->learned);
        t->learned = TAKE_PTR(l);
        (void) trust_watch(t);
        trust_remove_temporaries(t);
        return 0;
}

void trust_refresh(Trust *t) {
        if (t && known_hosts_is_stale(t->set))
                (void) trust_load(t, t->known, t->learned);
}

const char *trust_known_path(const Trust *t) {
        return t ? t->known : NULL;
}

const char *trust_learned_path(const Trust *t) {
        return t ? t->learned : NULL;
}

HostKeyCheck trust_check(const Trust *t, const char *host, uint16_t port, const void *blob, size_t blob_len,
                         const char **ret_path, unsigned *ret_line) {
        return known_hosts_verify(t ? t->set : NULL, host, port, blob, blob_len, ret_path, ret_line);
}

char *trust_types(const Trust *t, const char *host, uint16_t port) {
        return known_hosts_types(t ? t->set : NULL, host, port);
}

int trust_keys(const Trust *t, const char *host, uint16_t port, KnownHostsKey **ret, size_t *ret_n) {
        return known_hosts_keys(t ? t->set : NULL, host, port, ret, ret_n);
}

int trust_learn(Trust *t, const char *host, uint16_t port, const void *blob, size_t blob_len) {
        Pending *p, *q;
        int r;

        if (!t->learned)
                return -ENOENT;
        r = known_hosts_add(t->set, LEARNED_FILE, host, port, blob, blob_len);
        if (r < 0)
                return r;
        q = reallocarray(t->pending, t->n_pending + 1, sizeof *q);
        if (!q)
                return -ENOMEM;
        t->pending = q;
        p = t->pending + t->n_pending;
        *p = (Pending) { .host = strdup(host), .port = port, .blob = malloc(blob_len), .blob_len = blob_len };
        if (!p->host || !p->blob) {
                free(p->host);
                free(p->blob);
                return -ENOMEM;
        }
        memcpy(p->blob, blob, blob_len);
        t->n_pending++;
        /* the first of a batch starts the clock */
        if (t->n_pending == 1) {
                r = sd_event_source_set_time_relative(t->flush, TRUST_FLUSH_DELAY_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(t->flush, SD_EVENT_ONESHOT);
                if (r < 0)
                        trust_flush(t);
        }
        return 0;
}

int trust_forget(Trust *t, const char *host, uint16_t port, bool *ret_changed, char **ret_error) {
        size_t kept = 0;

        /* accept-new's keys for it, not on disk yet, go first: the write
         * below would put them back */
        for (size_t i = 0; i < t->n_pending; i++) {
                Pending *p = t->pending + i;

                if (p->port == port && streq(p->host, host)) {
                        free(p->host);
                        free(p->blob);
                } else
                        t->pending[kept++] = *p;
        }
        t->n_pending = kept;
        return trust_record(t, &(const KnownHostsEdit) { .host = host, .port = port, .forget = true }, 1,
                            ret_changed, ret_error);
}

int trust_record(Trust *t, const KnownHostsEdit *keys, size_t n, bool *ret_changed, char **ret_error) {
        int r;

        r = trust_write(t, keys, n, ret_changed, ret_error);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(t->flush, SD_EVENT_OFF);
        /* the file as written: its lines numbered, rotations applied */
        return trust_load(t, t->known, t->learned);
}
