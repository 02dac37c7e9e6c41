/* The OpenSSH known_hosts file: parsed here (plain, [host]:port, hashed,
 * patterns, @revoked), indexed by plain host name; checks of a key a node
 * presents, and the lines and appends for new keys. */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
/* A known_hosts file sshtund rewrites: 5,000 nodes take about 0.5 MB. */
#define FILE_MAX_BYTES (64 * 1024 * 1024)
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
        bool alone;    /* the line names this one host, plainly */
        uint8_t file;  /* index into KnownHosts.files */
        unsigned line; /* in that file; 0: added in memory, not read */
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

/* One file of the set, and what it looked like when read, for
 * known_hosts_is_stale(). */
typedef struct Source {
        char *path;
        size_t bad_lines;
        unsigned first_bad_line;
        bool existed;
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtim;
} Source;

struct KnownHosts {
        Source files[KNOWN_HOSTS_FILES_MAX];
        size_t n_files;

        Entry *entries;
        size_t n_entries, entries_allocated;

        size_t *scan; /* indices of entries matched by pattern */
        size_t n_scan, scan_allocated;

        NameNode **buckets; /* power-of-two sized, chained */
        size_t n_buckets, n_names;
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
        for (size_t i = 0; i < kh->n_files; i++)
                free(kh->files[i].path);
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
static int parse_line(KnownHosts *kh, char *line, uint8_t file, unsigned lineno) {
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
                e.alone = e.n_patterns == 1;
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
        e.file = file;
        e.line = lineno;
        kh->entries[kh->n_entries++] = e;
        return 1;

fail:
        entry_done(&e);
        return r;
}

static void record_stat(Source *src, const struct stat *st) {
        src->existed = true;
        src->dev = st->st_dev;
        src->ino = st->st_ino;
        src->size = st->st_size;
        src->mtim = st->st_mtim;
}

static void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

/* Parses the lines of 'f' into the set as kh->files[file]. */
static int load_stream(KnownHosts *kh, uint8_t file, FILE *f) {
        Source *src = kh->files + file;
        _cleanup_free_ char *line = NULL;
        unsigned lineno = 0;

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
                lineno++;

                while (n > 0 && line[n - 1] != 0 && strchr(" \t\r", line[n - 1]))
                        n--;
                line[n] = 0;

                if (too_long || has_nul)
                        r = -EBADMSG;
                else
                        r = parse_line(kh, line, file, lineno);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 && src->bad_lines++ == 0)
                        src->first_bad_line = lineno;
                if (c == EOF)
                        break;
        }
        return 0;
}

/* Reads kh->files[file] into the set. */
static int load_file(KnownHosts *kh, uint8_t file) {
        Source *src = kh->files + file;
        _cleanup_(fclosep) FILE *f = NULL;
        _cleanup_close_ int fd = -1;
        struct stat st;

        /* O_NONBLOCK: a FIFO here reads as empty (or fails) at once rather
         * than stopping the daemon until someone writes to it. */
        fd = open(src->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        f = fdopen(fd, "r");
        if (!f)
                return -errno;
        fd = -1; /* f owns it now */
        if (fstat(fileno(f), &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        record_stat(src, &st);
        return load_stream(kh, file, f);
}

int known_hosts_load_files(const char *const *paths, size_t n, KnownHosts **ret) {
        _cleanup_(known_hosts_freep) KnownHosts *kh = NULL;
        int r;

        if (!paths || n == 0 || n > KNOWN_HOSTS_FILES_MAX || !ret)
                return -EINVAL;
        kh = calloc(1, sizeof *kh);
        if (!kh)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (!paths[i] || !*paths[i])
                        return -EINVAL;
                kh->files[i].path = strdup(paths[i]);
                if (!kh->files[i].path)
                        return -ENOMEM;
                kh->n_files++;
                r = load_file(kh, (uint8_t) i);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(kh);
        return 0;
}

int known_hosts_load(const char *path, KnownHosts **ret) {
        return known_hosts_load_files(&path, 1, ret);
}

size_t known_hosts_bad_lines(const KnownHosts *kh) {
        size_t n = 0;

        for (size_t i = 0; kh && i < kh->n_files; i++)
                n += kh->files[i].bad_lines;
        return n;
}

size_t known_hosts_entries(const KnownHosts *kh) {
        return kh ? kh->n_entries : 0;
}

size_t known_hosts_files(const KnownHosts *kh) {
        return kh ? kh->n_files : 0;
}

const char *known_hosts_file(const KnownHosts *kh, size_t file, size_t *ret_bad_lines, unsigned *ret_first_bad) {
        if (!kh || file >= kh->n_files)
                return NULL;
        if (ret_bad_lines)
                *ret_bad_lines = kh->files[file].bad_lines;
        if (ret_first_bad)
                *ret_first_bad = kh->files[file].first_bad_line;
        return kh->files[file].path;
}

static bool source_is_stale(const Source *src) {
        struct stat st;

        if (stat(src->path, &st) < 0)
                return errno != ENOENT || src->existed;
        return !src->existed || st.st_dev != src->dev || st.st_ino != src->ino || st.st_size != src->size ||
               st.st_mtim.tv_sec != src->mtim.tv_sec || st.st_mtim.tv_nsec != src->mtim.tv_nsec;
}

bool known_hosts_is_stale(const KnownHosts *kh) {
        for (size_t i = 0; i < kh->n_files; i++)
                if (source_is_stale(kh->files + i))
                        return true;
        return false;
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

/* What the lines of one file say about the presented key. */
typedef struct FileVerdict {
        bool revoked;   /* an @revoked line holds this key */
        bool ok;        /* a line holds this key */
        bool same_type; /* lines hold keys of this key's type */
        bool any;       /* lines hold keys for this host at all */
        unsigned line;  /* the line that decided: revoked, ok, or the first of the others */
} FileVerdict;

typedef struct CheckState {
        const void *blob;
        size_t blob_len;
        const char *type;
        FileVerdict files[KNOWN_HOSTS_FILES_MAX];
} CheckState;

static void check_one(const Entry *e, size_t index, void *userdata) {
        CheckState *s = userdata;
        FileVerdict *v = s->files + e->file;
        bool same = e->blob_len == s->blob_len && memcmp(e->blob, s->blob, s->blob_len) == 0;

        if (e->revoked) {
                if (same && !v->revoked) {
                        v->revoked = true;
                        v->line = e->line;
                }
                return;
        }
        if (v->revoked)
                return;
        if (same && !v->ok) {
                v->ok = true;
                v->line = e->line;
        }
        if (!v->any && !v->ok)
                v->line = e->line;
        v->any = true;
        if (streq(e->type, s->type))
                v->same_type = true;
}

HostKeyCheck known_hosts_verify(const KnownHosts *kh, const char *host, uint16_t port, const void *blob,
                                size_t blob_len, const char **ret_path, unsigned *ret_line) {
        CheckState s = { .blob = blob, .blob_len = blob_len };
        char name[NAME_MAX_BYTES], type[KEY_TYPE_MAX];
        HostKeyCheck verdict = HOSTKEY_UNKNOWN;
        ssize_t decided = -1;
        bool complete;

        if (ret_path)
                *ret_path = NULL;
        if (ret_line)
                *ret_line = 0;
        if (!kh || !lookup_name(host, port, name))
                return HOSTKEY_UNKNOWN;
        if (hostkey_type(blob, blob_len, type, sizeof type) < 0)
                type[0] = 0;
        s.type = type;
        complete = match_foreach(kh, name, check_one, &s);

        /* @revoked in any file wins; then a file that holds other keys of
         * this type for the host refuses it, whatever the other files say;
         * then any file that holds it accepts it. A host known only by keys
         * of other types is not a new host either. */
        for (size_t i = 0; i < kh->n_files && verdict != HOSTKEY_REVOKED; i++)
                if (s.files[i].revoked) {
                        verdict = HOSTKEY_REVOKED;
                        decided = (ssize_t) i;
                }
        for (size_t i = 0; i < kh->n_files && verdict == HOSTKEY_UNKNOWN; i++)
                if (s.files[i].same_type && !s.files[i].ok) {
                        verdict = HOSTKEY_MISMATCH;
                        decided = (ssize_t) i;
                }
        /* An unchecked hashed line might be a revocation or the real key:
         * refuse rather than call the host new or the key good. */
        if (verdict == HOSTKEY_UNKNOWN && !complete)
                verdict = HOSTKEY_MISMATCH;
        for (size_t i = 0; i < kh->n_files && verdict == HOSTKEY_UNKNOWN; i++)
                if (s.files[i].ok) {
                        verdict = HOSTKEY_OK;
                        decided = (ssize_t) i;
                }
        for (size_t i = 0; i < kh->n_files && verdict == HOSTKEY_UNKNOWN; i++)
                if (s.files[i].any) {
                        verdict = HOSTKEY_MISMATCH;
                        decided = (ssize_t) i;
                }
        if (decided >= 0) {
                if (ret_path)
                        *ret_path = kh->files[decided].path;
                if (ret_line)
                        *ret_line = s.files[decided].line;
        }
        return verdict;
}

HostKeyCheck known_hosts_check(const KnownHosts *kh, const char *host, uint16_t port,
                               const void *blob, size_t blob_len) {
        return known_hosts_verify(kh, host, port, blob, blob_len, NULL, NULL);
}

typedef struct KeyList {
        KnownHostsKey *v;
        size_t n, allocated;
        const KnownHosts *kh;
        int error;
} KeyList;

static void list_one(const Entry *e, size_t index, void *userdata) {
        KeyList *l = userdata;

        if (l->error < 0)
                return;
        /* an indexed entry listing the same name twice comes twice */
        for (size_t i = 0; i < l->n; i++)
                if (l->v[i].index == index)
                        return;
        l->error = grow((void **) &l->v, &l->allocated, l->n + 1, sizeof *l->v);
        if (l->error < 0)
                return;
        l->v[l->n++] = (KnownHostsKey) {
                .type = e->type,
                .blob = e->blob,
                .blob_len = e->blob_len,
                .revoked = e->revoked,
                .path = l->kh->files[e->file].path,
                .line = e->line,
                .index = index,
        };
}

static int key_cmp(const void *a, const void *b) {
        const KnownHostsKey *x = a, *y = b;
        return x->index < y->index ? -1 : x->index > y->index;
}

int known_hosts_keys(const KnownHosts *kh, const char *host, uint16_t port, KnownHostsKey **ret, size_t *ret_n) {
        KeyList l = { .kh = kh };
        char name[NAME_MAX_BYTES];

        *ret = NULL;
        *ret_n = 0;
        if (!kh || !lookup_name(host, port, name))
                return 0;
        if (!match_foreach(kh, name, list_one, &l) && l.error == 0)
                l.error = -EIO; /* a hashed line could not be checked */
        if (l.error < 0) {
                free(l.v);
                return l.error;
        }
        if (l.n > 0)
                qsort(l.v, l.n, sizeof *l.v, key_cmp);
        *ret = l.v;
        *ret_n = l.n;
        return 0;
}

static bool host_is_valid(const char *host);

int known_hosts_add(KnownHosts *kh, size_t file, const char *host, uint16_t port, const void *blob,
                    size_t blob_len) {
        _cleanup_free_ uint8_t *copy = NULL;
        char name[NAME_MAX_BYTES];
        Entry e = {};
        int r;

        if (!kh || file >= kh->n_files || !blob || blob_len == 0 || blob_len > BLOB_MAX || !host_is_valid(host) ||
            !lookup_name(host, port, name) || hostkey_type(blob, blob_len, e.type, sizeof e.type) < 0)
                return -EINVAL;
        copy = malloc(blob_len);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, blob, blob_len);
        r = grow((void **) &kh->entries, &kh->entries_allocated, kh->n_entries + 1, sizeof *kh->entries);
        if (r < 0)
                return r;
        r = index_add(kh, name, kh->n_entries);
        if (r < 0)
                return r;
        e.blob = TAKE_PTR(copy);
        e.blob_len = blob_len;
        e.alone = true;
        e.file = (uint8_t) file;
        kh->entries[kh->n_entries++] = e;
        return 0;
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

/* ---- writing: the whole file anew ------------------------------------------ */

/* The directory of 'path' ("/" for "/x", "." for "x"), malloc'd. */
static char *dir_of(const char *path) {
        const char *slash = strrchr(path, '/');

        return slash ? strndup(path, slash == path ? 1 : (size_t) (slash - path)) : strdup(".");
}

static void unlinkp(char **path) {
        if (*path) {
                (void) unlink(*path);
                free(*path);
        }
}

/* The file's contents, at most FILE_MAX_BYTES; a missing file is empty
 * (*ret_mode 0644). Not a regular file: -EINVAL. */
static int read_whole(const char *path, char **ret, size_t *ret_len, mode_t *ret_mode) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t len = 0;

        *ret_mode = 0644;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 && errno != ENOENT)
                return -errno;
        if (fd >= 0) {
                if (fstat(fd, &st) < 0)
                        return -errno;
                if (!S_ISREG(st.st_mode))
                        return -EINVAL;
                if (st.st_size > FILE_MAX_BYTES)
                        return -EFBIG;
                *ret_mode = st.st_mode & 07777;
        }
        buf = malloc(fd >= 0 ? (size_t) st.st_size + 1 : 1);
        if (!buf)
                return -ENOMEM;
        while (fd >= 0 && len < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + len, (size_t) st.st_size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break; /* shrank meanwhile: what was read is the file */
                len += (size_t) n;
        }
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

/* Write 'data' to a new file beside 'path' (mode 'mode'), fsync it, rename
 * it over 'path', fsync the directory: readers see the old file or the
 * new one, never a part, and a crash keeps one of them. */
static int write_replace(const char *path, const char *data, size_t len, mode_t mode) {
        _cleanup_(unlinkp) char *tmp = NULL;
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int fd = -1, dfd = -1;
        const char *slash = strrchr(path, '/');

        dir = dir_of(path);
        if (!dir || asprintf(&tmp, "%s%s.%s.XXXXXX", slash ? dir : "", slash && slash != path ? "/" : "",
                             slash ? slash + 1 : path) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                int r = -errno;
                free(TAKE_PTR(tmp)); /* nothing to unlink */
                return r;
        }
        if (fchmod(fd, mode) < 0)
                return -errno;
        for (size_t done = 0; done < len;) {
                ssize_t n = write(fd, data + done, len - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                done += (size_t) n;
        }
        if (fsync(fd) < 0)
                return -errno;
        if (close(TAKE_FD(fd)) < 0)
                return -errno;
        if (rename(tmp, path) < 0)
                return -errno;
        free(TAKE_PTR(tmp)); /* renamed: nothing to unlink */
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;
}

/* Is 'name' what write_replace() makes for a file named 'base':
 * ".BASE.XXXXXX", the X from mkostemp()'s alphabet? */
static bool is_temporary_of(const char *name, const char *base) {
        size_t b = strlen(base), n = strlen(name);

        if (n != 1 + b + 1 + 6 || name[0] != '.' || strncmp(name + 1, base, b) != 0 || name[1 + b] != '.')
                return false;
        for (const char *p = name + b + 2; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
                        return false;
        return true;
}

int known_hosts_remove_temporaries(const char *path, unsigned min_age_sec, unsigned *ret_removed) {
        _cleanup_free_ char *real = NULL, *dir = NULL;
        const char *slash, *base;
        DIR *d;
        struct dirent *de;
        time_t now = time(NULL);
        unsigned removed = 0;
        int r = 0;

        *ret_removed = 0;
        real = realpath(path, NULL);
        if (!real)
                real = strdup(path); /* not there (yet): its directory may still hold leftovers */
        if (!real)
                return -ENOMEM;
        slash = strrchr(real, '/');
        dir = dir_of(real);
        if (!dir)
                return -ENOMEM;
        base = slash ? slash + 1 : real;
        d = opendir(dir);
        if (!d)
                return -errno;
        while ((errno = 0, de = readdir(d))) {
                struct stat st;

                if (!is_temporary_of(de->d_name, base))
                        continue;
                /* a regular file that has not changed for a while: no write
                 * in progress (another process on the same file) is cut */
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
                    now - st.st_mtime < (time_t) min_age_sec)
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
                        r = -errno;
                        continue;
                }
                removed++;
        }
        if (errno != 0 && r == 0)
                r = -errno;
        closedir(d);
        *ret_removed = removed;
        return r;
}

typedef struct EditState {
        const KnownHostsEdit *edit;
        char type[KEY_TYPE_MAX];
        bool present;
        unsigned *drop; /* lines to leave out */
        size_t n_drop, drop_allocated;
        int error;
} EditState;

static void edit_one(const Entry *e, size_t index, void *userdata) {
        EditState *s = userdata;
        bool same = !s->edit->forget && e->blob_len == s->edit->blob_len &&
                    memcmp(e->blob, s->edit->blob, e->blob_len) == 0;

        if (e->revoked)
                return;
        if (s->edit->forget) {
                if (e->alone && s->error == 0) {
                        s->error = grow((void **) &s->drop, &s->drop_allocated, s->n_drop + 1, sizeof *s->drop);
                        if (s->error == 0)
                                s->drop[s->n_drop++] = e->line;
                }
                return;
        }
        if (same) {
                s->present = true;
                return;
        }
        /* only a line naming this host alone is replaced: "a,b TYPE KEY" stays */
        if (!s->edit->replace || !e->alone || !streq(e->type, s->type) || s->error < 0)
                return;
        s->error = grow((void **) &s->drop, &s->drop_allocated, s->n_drop + 1, sizeof *s->drop);
        if (s->error == 0)
                s->drop[s->n_drop++] = e->line;
}

static bool line_dropped(const EditState *states, size_t n, unsigned line) {
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < states[i].n_drop; j++)
                        if (states[i].drop[j] == line)
                                return true;
        return false;
}

int known_hosts_update(const char *path, const KnownHostsEdit *edits, size_t n, bool *ret_changed,
                       unsigned *ret_bad_line) {
        _cleanup_(known_hosts_freep) KnownHosts *kh = NULL;
        _cleanup_free_ char *data = NULL, *real = NULL, *out = NULL;
        _cleanup_free_ EditState *states = NULL;
        _cleanup_(fclosep) FILE *f = NULL, *o = NULL;
        size_t len = 0, out_len = 0;
        bool changed = false;
        mode_t mode;
        int r;

        if (ret_changed)
                *ret_changed = false;
        if (ret_bad_line)
                *ret_bad_line = 0;
        if (!path || !*path || (n > 0 && !edits))
                return -EINVAL;

        /* a symlink is followed: its target is the file */
        real = realpath(path, NULL);
        if (!real && errno != ENOENT)
                return -errno;
        if (!real) {
                struct stat st;
                if (lstat(path, &st) == 0)
                        return -ENOENT; /* dangling */
                real = strdup(path);
                if (!real)
                        return -ENOMEM;
        }
        r = read_whole(real, &data, &len, &mode);
        if (r < 0)
                return r;

        kh = calloc(1, sizeof *kh);
        if (!kh)
                return -ENOMEM;
        kh->files[0].path = strdup(real);
        if (!kh->files[0].path)
                return -ENOMEM;
        kh->n_files = 1;
        if (len > 0) {
                f = fmemopen(data, len, "r");
                if (!f)
                        return -errno;
                r = load_stream(kh, 0, f);
                if (r < 0)
                        return r;
        }
        /* a file that does not parse may be a file we do not understand:
         * leave it as it is */
        if (kh->files[0].bad_lines > 0) {
                if (ret_bad_line)
                        *ret_bad_line = kh->files[0].first_bad_line;
                return -EBADMSG;
        }

        states = calloc(n ?: 1, sizeof *states);
        if (!states)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char name[NAME_MAX_BYTES];

                states[i].edit = edits + i;
                states[i].present = edits[i].forget; /* nothing to add */
                if (!lookup_name(edits[i].host, edits[i].port, name) || !host_is_valid(edits[i].host) ||
                    (!edits[i].forget &&
                     hostkey_type(edits[i].blob, edits[i].blob_len, states[i].type, sizeof states[i].type) < 0)) {
                        r = -EINVAL;
                        goto done;
                }
                if (!match_foreach(kh, name, edit_one, states + i)) {
                        r = -EIO;
                        goto done;
                }
                if (states[i].error < 0) {
                        r = states[i].error;
                        goto done;
                }
                if (!states[i].present || states[i].n_drop > 0)
                        changed = true;
                /* two edits of one batch naming the same key: write it once */
                for (size_t j = 0; j < i && !states[i].present; j++)
                        if (!edits[j].forget && streq(edits[j].host, edits[i].host) && edits[j].port == edits[i].port &&
                            edits[j].blob_len == edits[i].blob_len &&
                            memcmp(edits[j].blob, edits[i].blob, edits[i].blob_len) == 0)
                                states[i].present = true;
        }
        if (!changed) {
                r = 0;
                goto done;
        }

        o = open_memstream(&out, &out_len);
        if (!o) {
                r = -ENOMEM;
                goto done;
        }
        {
                unsigned lineno = 0;

                for (const char *p = data; p < data + len;) {
                        const char *nl = memchr(p, '\n', (size_t) (data + len - p));
                        size_t l = nl ? (size_t) (nl - p) : (size_t) (data + len - p);

                        if (!line_dropped(states, n, ++lineno)) {
                                fwrite(p, 1, l, o);
                                fputc('\n', o);
                        }
                        p += l + (nl ? 1 : 0);
                }
        }
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *line = NULL;

                if (states[i].present)
                        continue;
                line = known_hosts_line(edits[i].host, edits[i].port, edits[i].blob, edits[i].blob_len);
                if (!line) {
                        r = -ENOMEM;
                        goto done;
                }
                fprintf(o, "%s\n", line);
        }
        if (fflush(o) != 0 || ferror(o)) {
                r = -ENOMEM;
                goto done;
        }
        r = write_replace(real, out, out_len, mode);
        if (r >= 0 && ret_changed)
                *ret_changed = true;
done:
        for (size_t i = 0; i < n; i++)
                free(states[i].drop);
        return r;
}

int known_hosts_append(const char *path, const char *host, uint16_t port, const void *blob,
                       size_t blob_len) {
        KnownHostsEdit e = { .host = host, .port = port, .blob = blob, .blob_len = blob_len };

        return known_hosts_update(path, &e, 1, NULL, NULL);
}
