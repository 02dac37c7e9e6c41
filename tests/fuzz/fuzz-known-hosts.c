/* Fuzzing the known_hosts reader: the input is the file (held in a memfd,
 * nothing touches the disk); each host and key it names is then checked,
 * and a line sshtund would append for one of them must load and match. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "address.h"
#include "base64.h"
#include "fuzz.h"
#include "hostkey.h"
#include "known-hosts.h"
#include "macro.h"

#define QUERIES_MAX 32
#define BLOB_MAX 4096

DEFINE_TRIVIAL_CLEANUP_FUNC(KnownHosts *, known_hosts_free);

/* A memfd holding data, and the path that opens it again. */
static int memfd_with(const void *data, size_t size, char path[static 64]) {
        int fd = memfd_create("known_hosts", MFD_CLOEXEC);

        if (fd < 0)
                return -errno;
        if (size > 0 && write(fd, data, size) != (ssize_t) size) {
                safe_close(fd);
                return -EIO;
        }
        snprintf(path, 64, "/proc/self/fd/%d", fd);
        return fd;
}

typedef struct Query {
        char host[1100];
        uint16_t port;
        uint8_t blob[BLOB_MAX];
        size_t blob_len;
} Query;

/* The hosts and keys as the file writes them: "[h]:p" or "h", and the
 * third field decoded. Lines are split as the reader splits them. */
static size_t collect_queries(const char *text, Query *q, size_t max) {
        _cleanup_free_ char *copy = strdup(text);
        char *line, *save = NULL;
        size_t n = 0;

        if (!copy)
                return 0;
        for (line = strtok_r(copy, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save)) {
                char *fsave = NULL, *hosts, *type, *key, *psave = NULL;

                hosts = strtok_r(line, " \t\r", &fsave);
                if (hosts && hosts[0] == '@')
                        hosts = strtok_r(NULL, " \t\r", &fsave);
                type = strtok_r(NULL, " \t\r", &fsave);
                key = strtok_r(NULL, " \t\r", &fsave);
                if (!hosts || !type || !key || strlen(key) > BLOB_MAX)
                        continue;
                for (char *pat = strtok_r(hosts, ",", &psave); pat && n < max;
                     pat = strtok_r(NULL, ",", &psave)) {
                        Query *x = &q[n];
                        char *close;

                        if (*pat == '!')
                                pat++;
                        if (strlen(pat) >= sizeof(x->host))
                                continue;
                        x->port = 22;
                        if (pat[0] == '[' && (close = strstr(pat, "]:")) &&
                            port_parse(close + 2, &x->port) == 0) {
                                memcpy(x->host, pat + 1, (size_t) (close - pat - 1));
                                x->host[close - pat - 1] = 0;
                        } else
                                strcpy(x->host, pat);
                        if (base64_decode(key, strlen(key), false, x->blob, &x->blob_len) < 0)
                                x->blob_len = 0;
                        n++;
                }
        }
        return n;
}

/* A key check that passes names a type the type list has too. */
static void check_query(const KnownHosts *kh, const Query *q) {
        _cleanup_free_ char *types = known_hosts_types(kh, q->host, q->port);
        char type[64], fp[HOSTKEY_FINGERPRINT_MAX];
        HostKeyCheck c;

        fuzz_check(types);
        c = known_hosts_check(kh, q->host, q->port, q->blob, q->blob_len);
        fuzz_check(c == HOSTKEY_OK || c == HOSTKEY_UNKNOWN || c == HOSTKEY_MISMATCH || c == HOSTKEY_REVOKED);
        if (c == HOSTKEY_OK) {
                size_t n;

                fuzz_check(hostkey_type(q->blob, q->blob_len, type, sizeof(type)) == 0);
                n = strlen(type);
                for (const char *t = types; t; t = strchr(t, ',') ? strchr(t, ',') + 1 : NULL)
                        if (strncmp(t, type, n) == 0 && (t[n] == ',' || t[n] == 0))
                                goto found;
                fuzz_check(!"an accepted key's type is missing from the type list");
        found:;
        }
        /* "unknown" is a host with no line at all: then no types either */
        if (c == HOSTKEY_UNKNOWN)
                fuzz_check(*types == 0);
        hostkey_fingerprint(q->blob, q->blob_len, fp, sizeof(fp));
        fuzz_check(strncmp(fp, "SHA256:", 7) == 0 && strlen(fp) < sizeof(fp));
}

/* A directory of this process's own for files the writer makes (it
 * writes beside the file and renames, so a memfd will not do). */
static char scratch[64];

static void scratch_remove(void) {
        (void) rmdir(scratch);
}

static const char *scratch_dir(void) {
        if (!scratch[0]) {
                snprintf(scratch, sizeof scratch, "/tmp/fuzz-known-hosts-XXXXXX");
                fuzz_check(mkdtemp(scratch) != NULL);
                atexit(scratch_remove);
        }
        return scratch;
}

/* What accept-new or a trust would record for this host and key loads back
 * and matches, alone in its file; recording it again changes nothing. */
static void check_append(const Query *q) {
        _cleanup_(known_hosts_freep) KnownHosts *kh = NULL;
        _cleanup_free_ char *line = NULL;
        KnownHostsEdit e = { .host = q->host, .port = q->port, .blob = q->blob, .blob_len = q->blob_len,
                             .replace = true };
        char path[128], type[64];
        bool changed = false;

        if (hostkey_type(q->blob, q->blob_len, type, sizeof(type)) < 0)
                return;
        line = known_hosts_line(q->host, q->port, q->blob, q->blob_len);
        if (!line)
                return;
        snprintf(path, sizeof path, "%s/known_hosts", scratch_dir());
        (void) unlink(path);
        fuzz_check(known_hosts_update(path, &e, 1, &changed, NULL) == 0 && changed);
        fuzz_check(known_hosts_load(path, &kh) == 0);
        fuzz_check(known_hosts_bad_lines(kh) == 0 && known_hosts_entries(kh) == 1);
        fuzz_check(known_hosts_check(kh, q->host, q->port, q->blob, q->blob_len) == HOSTKEY_OK);
        fuzz_check(known_hosts_update(path, &e, 1, &changed, NULL) == 0 && !changed);
        fuzz_check(unlink(path) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(known_hosts_freep) KnownHosts *kh = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ Query *q = NULL;
        _cleanup_close_ int fd = -1;
        char path[64];
        size_t n;
        int r;

        fd = memfd_with(data, size, path);
        fuzz_check(fd >= 0);
        r = known_hosts_load(path, &kh);
        fuzz_check(r == 0);
        fuzz_check(!known_hosts_is_stale(kh));

        text = strndup((const char *) data, size);
        q = calloc(QUERIES_MAX, sizeof(Query));
        if (!text || !q)
                return 0;
        n = collect_queries(text, q, QUERIES_MAX);
        for (size_t i = 0; i < n; i++)
                check_query(kh, &q[i]);
        if (n > 0)
                check_append(&q[0]);
        return 0;
}
