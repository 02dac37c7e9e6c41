/* The OpenSSH known_hosts file: parsed here (plain, [host]:port, hashed,
 * patterns, @revoked), indexed by plain host name; checks of a key a node
 * presents, and the lines and appends for new keys. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base64.h"
#include "hostkey.h"
#include "known-hosts.h"
#include "macro.h"

/* OpenSSH's own limit on a known_hosts line. */
#define LINE_MAX_BYTES (8u * 1024u)
/* Longer type names are not SSH key types; longer blobs make lines that
 * would not load again. */
#define KEY_TYPE_MAX HOSTKEY_TYPE_MAX
#define BLOB_MAX 4096
/* DNS names stop at 253 bytes; this leaves room for odd but legal names. */
#define HOST_MAX 1024
#define NAME_MAX_BYTES (HOST_MAX + sizeof("[]:65535"))
#define SHA1_LEN 20
#define HASH_MAGIC "|1|"

typedef struct Pattern {
        char *text; /* lowercased; NULL when hashed */
        uint8_t salt[SHA1_LEN];
        uint8_t hash[SHA1_LEN];
        bool negated;
        bool hashed;
} Pattern;

typedef struct Entry {
        char type[KEY_TYPE_MAX];
        uint8_t *blob;
        size_t blob_len;
        bool revoked;
        /* Only for entries that need a scan (wildcard, negated, hashed);
         * entries of plain names live in the name index instead. */
        Pattern *patterns;
        size_t n_patterns;
} Entry;

typedef struct NameNode {
        struct NameNode *next;
        size_t entry;
        char name[]; /* lowercased */
} NameNode;

struct KnownHosts {
        char *path;

        Entry *entries;
        size_t n_entries, entries_allocated;

        size_t *scan; /* indices of entries matched by pattern */
        size_t n_scan, scan_allocated;

        NameNode **buckets; /* power-of-two sized, chained */
        size_t n_buckets, n_names;

        size_t bad_lines;

        /* What the file looked like when read, for known_hosts_is_stale(). */
        bool existed;
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtim;
};

static char ascii_lower(char c) {
        return c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

static void lowercase(char *s) {
        for (; *s; s++)
                *s = ascii_lower(*s);
}

static uint64_t name_hash(const char *s) {
        uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */

        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= UINT64_C(1099511628211);
        }
        return h;
}

/* Glob with '*' and '?', as OpenSSH's match_pattern(); the single
 * backtrack point keeps it linear in practice. */
static bool glob_match(const char *s, const char *p) {
        const char *star = NULL, *resume = NULL;

        while (*s) {
                if (*p == '?' || (*p && *p != '*' && *p == *s)) {
                        s++;
                        p++;
                } else if (*p == '*') {
                        star = p++;
                        resume = s;
                } else if (star) {
                        p = star + 1;
                        s = ++resume;
                } else
                        return false;
        }
        while (*p == '*')
                p++;
        return *p == 0;
}

/* One lookup: the name, and a digest context shared by every hashed
 * pattern it meets (a fresh HMAC() per entry costs ~2 us in OpenSSL 3,
 * which is 10 ms per check at 5,000 hashed lines). */
typedef struct Lookup {
        const char *name;
        size_t name_len;
        EVP_MD *md;
        EVP_MD_CTX *ctx;
        bool failed; /* a hash could not be computed: the answer is unsure */
} Lookup;

static void lookup_done(Lookup *l) {
        EVP_MD_CTX_free(l->ctx);
        EVP_MD_free(l->md);
}

static bool sha1_two(Lookup *l, const uint8_t *a, size_t a_len, const void *b, size_t b_len, uint8_t *out) {
        unsigned n = 0;

        return EVP_DigestInit_ex2(l->ctx, l->md, NULL) == 1 && EVP_DigestUpdate(l->ctx, a, a_len) == 1 &&
               EVP_DigestUpdate(l->ctx, b, b_len) == 1 && EVP_DigestFinal_ex(l->ctx, out, &n) == 1 &&
               n == SHA1_LEN;
}

/* HMAC-SHA1 (RFC 2104) of the name keyed with the salt, as OpenSSH hashes
 * known_hosts names. The salt is shorter than SHA-1's 64-byte block. */
static bool hashed_match(Lookup *l, const Pattern *pat) {
        uint8_t pad[64], inner[SHA1_LEN], outer[SHA1_LEN];

        if (l->failed)
                return false;
        if (!l->ctx) {
                l->md = EVP_MD_fetch(NULL, "SHA1", NULL);
                l->ctx = EVP_MD_CTX_new();
                if (!l->md || !l->ctx) {
                        l->failed = true;
                        return false;
                }
        }
        memset(pad, 0x36, sizeof pad);
        for (size_t i = 0; i < SHA1_LEN; i++)
                pad[i] ^= pat->salt[i];
        if (!sha1_two(l, pad, sizeof pad, l->name, l->name_len, inner)) {
                l->failed = true;
                return false;
        }
        memset(pad, 0x5c, sizeof pad);
        for (size_t i = 0; i < SHA1_LEN; i++)
                pad[i] ^= pat->salt[i];
        if (!sha1_two(l, pad, sizeof pad, inner, sizeof inner, outer)) {
                l->failed = true;
                return false;
        }
        return memcmp(outer, pat->hash, SHA1_LEN) == 0;
}

static bool pattern_match(const Pattern *pat, Lookup *l) {
        if (pat->hashed)
                return hashed_match(l, pat);
        return glob_match(l->name, pat->text);
}

/* OpenSSH's rule: some positive pattern matches and no negated one does. */
static bool entry_match(const Entry *e, Lookup *l) {
        bool positive = false;

        for (size_t i = 0; i < e->n_patterns; i++) {
                const Pattern *pat = e->patterns + i;

                if (pat->negated) {
                        if (pattern_match(pat, l))
                                return false;
                } else if (!positive && pattern_match(pat, l))
                        positive = true;
        }
        return positive;
}

static void entry_done(Entry *e) {
        free(e->blob);
        for (size_t i = 0; i < e->n_patterns; i++)
                free(e->patterns[i].text);
        free(e->patterns);
}

KnownHosts *known_hosts_free(KnownHosts *kh) {
        if (!kh)
                return NULL;
        for (size_t i = 0; i < kh->n_entries; i++)
                entry_done(kh->entries + i);
        free(kh->entries);
        free(kh->scan);
        for (size_t i = 0; i < kh->n_buckets; i++)
                for (NameNode *n = kh->buckets[i], *next; n; n = next) {
                        next = n->next;
                        free(n);
                }
        free(kh->buckets);
        free(kh->path);
        free(kh);
        return NULL;
}

static void known_hosts_freep(KnownHosts **kh) {
        known_hosts_free(*kh);
}

static int index_grow(KnownHosts *kh) {
        size_t n = kh->n_buckets ? kh->n_buckets * 2 : 64;
        NameNode **b;

        b = calloc(n, sizeof *b);
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < kh->n_buckets; i++)
                for (NameNode *node = kh->buckets[i], *next; node; node = next) {
                        size_t slot = name_hash(node->name) & (n - 1);

                        next = node->next;
                        node->next = b[slot];
                        b[slot] = node;
                }
        free(kh->buckets);
        kh->buckets = b;
        kh->n_buckets = n;
        return 0;
}

static int index_add(KnownHosts *kh, const char *name, size_t entry) {
        size_t len = strlen(name), slot;
        NameNode *node;

        if (kh->n_names >= kh->n_buckets) {
                int r = index_grow(kh);
                if (r < 0)
                        return r;
        }
        node = malloc(sizeof *node + len + 1);
        if (!node)
                return -ENOMEM;
        memcpy(node->name, name, len + 1);
        lowercase(node->name);
        node->entry = entry;
        slot = name_hash(node->name) & (kh->n_buckets - 1);
        node->next = kh->buckets[slot];
        kh->buckets[slot] = node;
        kh->n_names++;
        return 0;
}

static int grow(void **p, size_t *allocated, size_t need, size_t elem) {
        size_t n;
        void *q;

        if (need <= *allocated)
                return 0;
        n = MAX(need, *allocated * 2);
        n = MAX(n, (size_t) 16);
        q = reallocarray(*p, n, elem);
        if (!q)
                return -ENOMEM;
        *p = q;
        *allocated = n;
        return 0;
}

/* Splits off the next blank-separated field; NULL when none is left. */
static char *next_field(char **s) {
        char *p = *s, *start;

        p += strspn(p, " \t");
        if (!*p)
                return NULL;
        start = p;
        p += strcspn(p, " \t");
        if (*p)
                *p++ = 0;
        *s = p;
        return start;
}

/* "|1|base64(salt)|base64(HMAC-SHA1(salt, name))" */
static int parse_hashed(const char *s, Pattern *pat) {
        const char *salt = s + strlen(HASH_MAGIC), *bar;
        uint8_t buf[64];
        size_t len;

        bar = strchr(salt, '|');
        if (!bar || (size_t) (bar - salt) > 40 || strlen(bar + 1) > 40)
                return -EBADMSG;
        if (base64_decode(salt, (size_t) (bar - salt), false, buf, &len) < 0 || len != SHA1_LEN)
                return -EBADMSG;
        memcpy(pat->salt, buf, SHA1_LEN);
        if (base64_decode(bar + 1, strlen(bar + 1), false, buf, &len) < 0 || len != SHA1_LEN)
                return -EBADMSG;
        memcpy(pat->hash, buf, SHA1_LEN);
        pat->hashed = true;
        return 0;
}

/* Parses the host field into e->patterns; *ret_plain tells whether every
 * pattern is a plain positive name (then the name index serves it). */
static int parse_patterns(char *hosts, Entry *e, bool *ret_plain) {
        size_t n = 1;
        bool plain = true;

        for (const char *c = hosts; *c; c++)
                if (*c == ',')
                        n++;
        e->patterns = calloc(n, sizeof *e->patterns);
        if (!e->patterns)
                return -ENOMEM;

        for (char *tok = hosts, *next; tok; tok = next) {
                Pattern *pat = e->patterns + e->n_patterns;

                next = strchr(tok, ',');
                if (next)
                        *next++ = 0;

                if (*tok == '!') {
                        pat->negated = true;
                        tok++;
                }
                if (!*tok)
                        return -EBADMSG;
                /* Count the slot before filling it, so entry_done() frees it. */
                e->n_patterns++;
                if (strncmp(tok, HASH_MAGIC, strlen(HASH_MAGIC)) == 0) {
                        if (parse_hashed(tok, pat) < 0)
                                return -EBADMSG;
                } else {
                        pat->text = strdup(tok);
                        if (!pat->text)
                                return -ENOMEM;
                        lowercase(pat->text);
                        if (strpbrk(tok, "*?"))
                                plain = false;
                }
                if (pat->negated || pat->hashed)
                        plain = false;
        }
        *ret_plain = plain;
        return 0;
}

/* Parses one line (NUL-terminated, trailing blanks removed). Returns 1 if an
 * entry was added, 0 for a line that holds none, -EBADMSG for a bad line. */
static int parse_line(KnownHosts *kh, char *line) {
        _cleanup_free_ uint8_t *blob = NULL;
        char *p = line, *hosts, *type, *key, blob_type[KEY_TYPE_MAX];
        Entry e = {};
        size_t blob_len, key_len;
        bool plain = false;
        int r;

        hosts = next_field(&p);
        if (!hosts || *hosts == '#')
                return 0;
        if (*hosts == '@') {
                if (streq(hosts, "@cert-authority"))
                        return 0; /* host certificates are not supported */
                if (!streq(hosts, "@revoked"))
                        return -EBADMSG;
                e.revoked = true;
                hosts = next_field(&p);
        }
        type = next_field(&p);
        key = next_field(&p);
        if (!hosts || !type || !key)
                return -EBADMSG;
        if (strlen(type) >= sizeof e.type)
                return -EBADMSG;

        key_len = strlen(key);
        blob = malloc(key_len / 4 * 3 + 3);
        if (!blob)
                return -ENOMEM;
        if (base64_decode(key, key_len, false, blob, &blob_len) < 0 ||
            hostkey_type(blob, blob_len, blob_type, sizeof blob_type) < 0 ||
            !streq(blob_type, type))
                return -EBADMSG;

        r = grow((void **) &kh->entries, &kh->entries_allocated, kh->n_entries + 1, sizeof *kh->entries);
        if (r < 0)
                return r;

        strcpy(e.type, type);
        r = parse_patterns(hosts, &e, &plain);
        if (r < 0)
                goto fail;

        if (plain) {
                for (size_t i = 0; i < e.n_patterns; i++) {
                        r = index_add(kh, e.patterns[i].text, kh->n_entries);
                        if (r < 0)
                                goto fail; /* only -ENOMEM, which fails the whole load */
                        free(e.patterns[i].text);
                        e.patterns[i].text = NULL;
                }
                free(e.patterns);
                e.patterns = NULL;
                e.n_patterns = 0;
        } else {
                r = grow((void **) &kh->scan, &kh->scan_allocated, kh->n_scan + 1, sizeof *kh->scan);
                if (r < 0)
                        goto fail;
                kh->scan[kh->n_scan++] = kh->n_entries;
        }

        e.blob = TAKE_PTR(blob);
        e.blob_len = blob_len;
        kh->entries[kh->n_entries++] = e;
        return 1;

fail:
        entry_done(&e);
        return r;
}

static void record_stat(KnownHosts *kh, const struct stat *st) {
        kh->existed = true;
        kh->dev = st->st_dev;
        kh->ino = st->st_ino;
        kh->size = st->st_size;
        kh->mtim = st->st_mtim;
}

static void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

int known_hosts_load(const char *path, KnownHosts **ret) {
        _cleanup_(known_hosts_freep) KnownHosts *kh = NULL;
        _cleanup_(fclosep) FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        _cleanup_close_ int fd = -1;
        struct stat st;

        if (!path || !ret)
                return -EINVAL;

        kh = calloc(1, sizeof *kh);
        if (!kh)
                return -ENOMEM;
        kh->path = strdup(path);
        if (!kh->path)
                return -ENOMEM;

        /* O_NONBLOCK: a FIFO here reads as empty (or fails) at once rather
         * than stopping the daemon until someone writes to it. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                if (errno != ENOENT)
                        return -errno;
                *ret = TAKE_PTR(kh);
                return 0;
        }
        f = fdopen(fd, "r");
        if (!f)
                return -errno;
        fd = -1; /* f owns it now */
        if (fstat(fileno(f), &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        record_stat(kh, &st);

        line = malloc(LINE_MAX_BYTES + 1);
        if (!line)
                return -ENOMEM;

        for (;;) {
                size_t n = 0;
                bool too_long = false, has_nul = false;
                int c, r;

                /* Byte by byte so an overlong line costs no memory: its
                 * excess is dropped, and the line counted as bad. */
                while ((c = getc_unlocked(f)) != EOF && c != '\n') {
                        if (c == 0)
                                has_nul = true;
                        if (n < LINE_MAX_BYTES)
                                line[n++] = (char) c;
                        else
                                too_long = true;
                }
                if (ferror(f))
                        return -EIO;
                if (c == EOF && n == 0 && !too_long)
                        break;

                while (n > 0 && line[n - 1] != 0 && strchr(" \t\r", line[n - 1]))
                        n--;
                line[n] = 0;

                if (too_long || has_nul)
                        r = -EBADMSG;
                else
                        r = parse_line(kh, line);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        kh->bad_lines++;
                if (c == EOF)
                        break;
        }

        *ret = TAKE_PTR(kh);
        return 0;
}

size_t known_hosts_bad_lines(const KnownHosts *kh) {
        return kh ? kh->bad_lines : 0;
}

size_t known_hosts_entries(const KnownHosts *kh) {
        return kh ? kh->n_entries : 0;
}

bool known_hosts_is_stale(const KnownHosts *kh) {
        struct stat st;

        if (stat(kh->path, &st) < 0)
                return errno != ENOENT || kh->existed;
        return !kh->existed || st.st_dev != kh->dev || st.st_ino != kh->ino ||
               st.st_size != kh->size || st.st_mtim.tv_sec != kh->mtim.tv_sec ||
               st.st_mtim.tv_nsec != kh->mtim.tv_nsec;
}

/* OpenSSH's lookup name: "host" for port 22, "[host]:port" otherwise,
 * lowercased. False if the host is too long to be in any line. */
static bool lookup_name(const char *host, uint16_t port, char buf[static NAME_MAX_BYTES]) {
        if (!host || strlen(host) > HOST_MAX)
                return false;
        if (port == 22)
                snprintf(buf, NAME_MAX_BYTES, "%s", host);
        else
                snprintf(buf, NAME_MAX_BYTES, "[%s]:%u", host, (unsigned) port);
        lowercase(buf);
        return true;
}

typedef void (*match_fn)(const Entry *e, size_t index, void *userdata);

/* Calls fn for every entry that matches name (an indexed entry listing the
 * same name twice is visited twice; callers do not mind). Returns false if
 * a hashed entry could not be checked, so the caller must not trust a miss. */
static bool match_foreach(const KnownHosts *kh, const char *name, match_fn fn, void *userdata) {
        _cleanup_(lookup_done) Lookup l = { .name = name, .name_len = strlen(name) };

        if (kh->n_buckets > 0)
                for (const NameNode *n = kh->buckets[name_hash(name) & (kh->n_buckets - 1)]; n; n = n->next)
                        if (streq(n->name, name))
                                fn(kh->entries + n->entry, n->entry, userdata);
        for (size_t i = 0; i < kh->n_scan; i++)
                if (entry_match(kh->entries + kh->scan[i], &l))
                        fn(kh->entries + kh->scan[i], kh->scan[i], userdata);
        return !l.failed;
}

typedef struct CheckState {
        const void *blob;
        size_t blob_len;
        bool revoked, ok, any;
} CheckState;

static void check_one(const Entry *e, size_t index, void *userdata) {
        CheckState *s = userdata;
        bool same = e->blob_len == s->blob_len && memcmp(e->blob, s->blob, s->blob_len) == 0;

        if (e->revoked) {
                if (same)
                        s->revoked = true;
                return;
        }
        s->any = true;
        if (same)
                s->ok = true;
}

HostKeyCheck known_hosts_check(const KnownHosts *kh, const char *host, uint16_t port,
                               const void *blob, size_t blob_len) {
        CheckState s = { .blob = blob, .blob_len = blob_len };
        char name[NAME_MAX_BYTES];

        bool complete;

        if (!kh || !lookup_name(host, port, name))
                return HOSTKEY_UNKNOWN;
        complete = match_foreach(kh, name, check_one, &s);
        if (s.revoked)
                return HOSTKEY_REVOKED;
        /* An unchecked hashed line might be a revocation or the real key:
         * refuse rather than call the host new or the key good. */
        if (!complete)
                return HOSTKEY_MISMATCH;
        if (s.ok)
                return HOSTKEY_OK;
        return s.any ? HOSTKEY_MISMATCH : HOSTKEY_UNKNOWN;
}

typedef struct IndexList {
        size_t *v;
        size_t n, allocated;
        int error;
} IndexList;

static void collect_one(const Entry *e, size_t index, void *userdata) {
        IndexList *l = userdata;

        if (e->revoked || l->error < 0)
                return;
        l->error = grow((void **) &l->v, &l->allocated, l->n + 1, sizeof *l->v);
        if (l->error == 0)
                l->v[l->n++] = index;
}

static int size_cmp(const void *a, const void *b) {
        size_t x = *(const size_t *) a, y = *(const size_t *) b;
        return x < y ? -1 : x > y;
}

char *known_hosts_types(const KnownHosts *kh, const char *host, uint16_t port) {
        IndexList l = {};
        char name[NAME_MAX_BYTES], *out, *p;
        size_t size = 1;

        if (kh && lookup_name(host, port, name) && !match_foreach(kh, name, collect_one, &l))
                l.error = -ENOMEM;
        if (l.error < 0) {
                free(l.v);
                return NULL;
        }
        if (l.n > 0)
                qsort(l.v, l.n, sizeof *l.v, size_cmp);

        for (size_t i = 0; i < l.n; i++)
                size += strlen(kh->entries[l.v[i]].type) + 1;
        out = p = malloc(size);
        if (!out) {
                free(l.v);
                return NULL;
        }
        *p = 0;
        for (size_t i = 0; i < l.n; i++) {
                const char *t = kh->entries[l.v[i]].type;
                bool seen = false;

                for (size_t j = 0; j < i && !seen; j++)
                        seen = streq(kh->entries[l.v[j]].type, t);
                if (seen)
                        continue;
                p += sprintf(p, "%s%s", p == out ? "" : ",", t);
        }
        free(l.v);
        return out;
}

/* A host we may write into a known_hosts line: printable, no blanks, and
 * nothing the parser would read as a pattern, marker, hash or comment. */
static bool host_is_valid(const char *host) {
        if (!host || !*host || strlen(host) > HOST_MAX || strchr("!#@|", host[0]))
                return false;
        for (const char *c = host; *c; c++)
                if (*c <= ' ' || *c >= 0x7f || strchr(",*?", *c))
                        return false;
        return true;
}

char *known_hosts_line(const char *host, uint16_t port, const void *blob, size_t blob_len) {
        char type[KEY_TYPE_MAX], name[NAME_MAX_BYTES], *line;
        _cleanup_free_ unsigned char *b64 = NULL;

        if (!host_is_valid(host) || !blob || blob_len > BLOB_MAX ||
            hostkey_type(blob, blob_len, type, sizeof type) < 0) {
                errno = EINVAL;
                return NULL;
        }
        lookup_name(host, port, name);

        b64 = malloc((blob_len + 2) / 3 * 4 + 1);
        if (!b64)
                return NULL;
        EVP_EncodeBlock(b64, blob, (int) blob_len);
        if (asprintf(&line, "%s %s %s", name, type, (char *) b64) < 0)
                return NULL;
        return line;
}

/* True unless the file is known to end with a newline already. */
static bool needs_newline(const char *path, const struct stat *st) {
        _cleanup_close_ int fd = -1;
        char c;

        if (!S_ISREG(st->st_mode) || st->st_size == 0)
                return false;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return true;
        return pread(fd, &c, 1, st->st_size - 1) != 1 || c != '\n';
}

int known_hosts_append(const char *path, const char *host, uint16_t port, const void *blob,
                       size_t blob_len) {
        _cleanup_free_ char *line = NULL, *buf = NULL;
        _cleanup_close_ int fd = -1;
        struct stat st;
        ssize_t l;
        int n;

        if (!path)
                return -EINVAL;
        line = known_hosts_line(host, port, blob, blob_len);
        if (!line)
                return errno == EINVAL ? -EINVAL : -ENOMEM;

        /* O_NONBLOCK: a FIFO nobody reads is an error, not a wait */
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0644);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;

        n = asprintf(&buf, "%s%s\n", needs_newline(path, &st) ? "\n" : "", line);
        if (n < 0) {
                buf = NULL;
                return -ENOMEM;
        }

        /* One write under O_APPEND: concurrent appenders never interleave. */
        do
                l = write(fd, buf, (size_t) n);
        while (l < 0 && errno == EINTR);
        if (l < 0)
                return -errno;
        if (l != n)
                return -EIO;
        return 0;
}
