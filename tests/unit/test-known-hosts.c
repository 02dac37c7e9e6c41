/* Unit tests for known-hosts.c: known_hosts parsing and matching against files
 * made with real keys and ssh-keygen, appends, staleness, fingerprints. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "hostkey.h"
#include "known-hosts.h"
#include "macro.h"

typedef struct Key {
        char name[16];
        char type[64];
        char b64[1024];
        uint8_t blob[1024];
        size_t blob_len;
} Key;

typedef struct Fixture {
        char dir[64];
        char path[128]; /* the known_hosts file of the current test */
        Key a, b;       /* two ed25519 keys */
        Key c;          /* an ECDSA nistp256 key */
} Fixture;

static void run(const char *fmt, ...) _printf_(1, 2);
static void run(const char *fmt, ...) {
        char cmd[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        assert_int_equal(system(cmd), 0);
}

static void write_file(const char *path, const char *content) {
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        assert_int_equal(fputs(content, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

static void read_file(const char *path, char *buf, size_t size) {
        FILE *f = fopen(path, "re");
        size_t n;

        assert_non_null(f);
        n = fread(buf, 1, size - 1, f);
        buf[n] = 0;
        fclose(f);
}

/* Generates a key and takes its public blob from the .pub file. */
static void key_make(Fixture *fx, Key *k, const char *name, const char *type) {
        char pub[2048], path[160];
        int n;

        snprintf(k->name, sizeof k->name, "%s", name);
        snprintf(path, sizeof path, "%s/%s", fx->dir, name);
        run("ssh-keygen -q -t %s -N '' -C test -f %s", type, path);
        strcat(path, ".pub");
        read_file(path, pub, sizeof pub);
        assert_int_equal(sscanf(pub, "%63s %1023s", k->type, k->b64), 2);

        n = EVP_DecodeBlock(k->blob, (const unsigned char *) k->b64, (int) strlen(k->b64));
        assert_true(n > 0);
        for (const char *p = k->b64 + strlen(k->b64); p > k->b64 && p[-1] == '='; p--)
                n--;
        k->blob_len = (size_t) n;
}

static int group_setup(void **state) {
        Fixture *fx = calloc(1, sizeof *fx);

        assert_non_null(fx);
        strcpy(fx->dir, "/tmp/test-hostkey-XXXXXX");
        assert_non_null(mkdtemp(fx->dir));
        key_make(fx, &fx->a, "a", "ed25519");
        key_make(fx, &fx->b, "b", "ed25519");
        key_make(fx, &fx->c, "c", "ecdsa -b 256");
        umask(022);
        *state = fx;
        return 0;
}

static int group_teardown(void **state) {
        Fixture *fx = *state;

        run("rm -rf '%s'", fx->dir);
        free(fx);
        return 0;
}

static int test_setup(void **state) {
        Fixture *fx = *state;
        static unsigned counter;

        snprintf(fx->path, sizeof fx->path, "%s/known_hosts.%u", fx->dir, counter++);
        return 0;
}

/* Writes 'path' from a template where %A, %B, %C stand for "TYPE BASE64"
 * of the keys. */
static void write_template(Fixture *fx, const char *path, const char *tmpl) {
        char buf[65536], *o = buf;

        for (const char *p = tmpl; *p; p++) {
                const Key *k = NULL;

                if (p[0] == '%' && p[1] == 'A')
                        k = &fx->a;
                else if (p[0] == '%' && p[1] == 'B')
                        k = &fx->b;
                else if (p[0] == '%' && p[1] == 'C')
                        k = &fx->c;
                if (k) {
                        o += sprintf(o, "%s %s", k->type, k->b64);
                        p++;
                } else
                        *o++ = *p;
                assert_true(o < buf + sizeof buf - 2048);
        }
        *o = 0;
        write_file(path, buf);
}

/* write_template() into the test's file, then loads it. */
static KnownHosts *load_template(Fixture *fx, const char *tmpl) {
        KnownHosts *kh = NULL;

        write_template(fx, fx->path, tmpl);
        assert_int_equal(known_hosts_load(fx->path, &kh), 0);
        assert_non_null(kh);
        return kh;
}

/* Two files read together: the test's file as ssh.known_hosts, and
 * "<path>.learned". */
static KnownHosts *load_two(Fixture *fx, const char *known, const char *learned, char learned_path[static 160]) {
        const char *paths[2] = { fx->path, learned_path };
        KnownHosts *kh = NULL;

        snprintf(learned_path, 160, "%s.learned", fx->path);
        write_template(fx, fx->path, known);
        write_template(fx, learned_path, learned);
        assert_int_equal(known_hosts_load_files(paths, 2, &kh), 0);
        assert_non_null(kh);
        return kh;
}

static HostKeyCheck check(const KnownHosts *kh, const char *host, uint16_t port, const Key *k) {
        return known_hosts_check(kh, host, port, k->blob, k->blob_len);
}

static void test_plain_ok(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = load_template(fx, "node1 %A\n");

        assert_int_equal(known_hosts_entries(kh), 1);
        assert_int_equal(known_hosts_bad_lines(kh), 0);
        assert_int_equal(check(kh, "node1", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "NODE1", 22, &fx->a), HOSTKEY_OK);
        known_hosts_free(kh);
}

static void test_mismatch_same_type(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = load_template(fx, "node1 %A\n");

        assert_int_equal(check(kh, "node1", 22, &fx->b), HOSTKEY_MISMATCH);
        known_hosts_free(kh);
}

static void test_mismatch_other_type(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = load_template(fx, "node1 %C\n");

        /* Only an ECDSA key is known: an ed25519 key is not a new host. */
        assert_int_equal(check(kh, "node1", 22, &fx->a), HOSTKEY_MISMATCH);
        assert_int_equal(check(kh, "node1", 22, &fx->c), HOSTKEY_OK);
        known_hosts_free(kh);
}

static void test_unknown(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = load_template(fx, "node1 %A\n");

        assert_int_equal(check(kh, "node2", 22, &fx->a), HOSTKEY_UNKNOWN);
        assert_int_equal(check(kh, "node", 22, &fx->a), HOSTKEY_UNKNOWN);
        known_hosts_free(kh);
}

static void test_missing_file(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = NULL;
        char *types;

        assert_int_equal(known_hosts_load(fx->path, &kh), 0);
        assert_int_equal(known_hosts_entries(kh), 0);
        assert_int_equal(check(kh, "node1", 22, &fx->a), HOSTKEY_UNKNOWN);
        types = known_hosts_types(kh, "node1", 22);
        assert_string_equal(types, "");
        free(types);
        known_hosts_free(kh);
}

/* A FIFO as known_hosts neither stops a load nor a write until someone
 * opens its other end (without O_NONBLOCK both would wait for good), and a
 * write does not replace it: it is not a file sshtund may rewrite. */
static void test_fifo(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = NULL;

        assert_int_equal(mkfifo(fx->path, 0600), 0);
        alarm(10); /* a hang fails the test instead of stopping the suite */
        assert_int_equal(known_hosts_load(fx->path, &kh), 0);
        assert_int_equal(known_hosts_entries(kh), 0);
        assert_int_equal(check(kh, "node1", 22, &fx->a), HOSTKEY_UNKNOWN);
        assert_int_equal(known_hosts_append(fx->path, "node1", 22, fx->a.blob, fx->a.blob_len), -EINVAL);
        alarm(0);
        {
                struct stat st;
                assert_int_equal(lstat(fx->path, &st), 0);
                assert_true(S_ISFIFO(st.st_mode));
        }
        known_hosts_free(kh);
        assert_int_equal(unlink(fx->path), 0);
}

static void test_port(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = load_template(fx, "[node2]:2222 %A\nnode3 %A\n");

        assert_int_equal(check(kh, "node2", 2222, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "node2", 22, &fx->a), HOSTKEY_UNKNOWN);
        assert_int_equal(check(kh, "node2", 2223, &fx->a), HOSTKEY_UNKNOWN);
        /* A bare name is port 22 only: no fallback as libssh2 does. */
        assert_int_equal(check(kh, "node3", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "node3", 2222, &fx->a), HOSTKEY_UNKNOWN);
        known_hosts_free(kh);
}

static void test_hashed(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = NULL;
        char buf[8192];

        kh = load_template(fx, "node4 %A\n[node5]:2222 %A\n10.1.2.3 %C\n");
        kh = known_hosts_free(kh);
        run("ssh-keygen -q -H -f %s >/dev/null 2>&1", fx->path);
        read_file(fx->path, buf, sizeof buf);
        assert_non_null(strstr(buf, "|1|"));
        assert_null(strstr(buf, "node4"));
        assert_null(strstr(buf, "node5"));

        assert_int_equal(known_hosts_load(fx->path, &kh), 0);
        assert_int_equal(known_hosts_entries(kh), 3);
        assert_int_equal(known_hosts_bad_lines(kh), 0);
        assert_int_equal(check(kh, "node4", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "Node4", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "node4", 22, &fx->b), HOSTKEY_MISMATCH);
        assert_int_equal(check(kh, "node4", 2222, &fx->a), HOSTKEY_UNKNOWN);
        assert_int_equal(check(kh, "node5", 2222, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "node5", 22, &fx->a), HOSTKEY_UNKNOWN);
        assert_int_equal(check(kh, "10.1.2.3", 22, &fx->c), HOSTKEY_OK);
        assert_int_equal(check(kh, "node6", 22, &fx->a), HOSTKEY_UNKNOWN);
        known_hosts_free(kh);
}

static void test_wildcard_negation(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = load_template(fx, "*.example.com,!bad.example.com %A\n"
                                           "?.test %A\n"
                                           "10.0.*.1? %A\n");

        assert_int_equal(check(kh, "good.example.com", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "a.b.EXAMPLE.com", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "bad.example.com", 22, &fx->a), HOSTKEY_UNKNOWN);
        assert_int_equal(check(kh, "example.com", 22, &fx->a), HOSTKEY_UNKNOWN);
        assert_int_equal(check(kh, "good.example.org", 22, &fx->a), HOSTKEY_UNKNOWN);
        assert_int_equal(check(kh, "good.example.com", 22, &fx->b), HOSTKEY_MISMATCH);
        assert_int_equal(check(kh, "x.test", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "xy.test", 22, &fx->a), HOSTKEY_UNKNOWN);
        assert_int_equal(check(kh, "10.0.7.12", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "10.0.7.1", 22, &fx->a), HOSTKEY_UNKNOWN);
        /* A pattern matches the whole lookup name, brackets included. */
        assert_int_equal(check(kh, "good.example.com", 2222, &fx->a), HOSTKEY_UNKNOWN);
        known_hosts_free(kh);
}

static void test_comma_list(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = load_template(fx, "alpha,beta,10.0.0.1,[gamma]:2200 %A\n");

        assert_int_equal(known_hosts_entries(kh), 1);
        assert_int_equal(check(kh, "alpha", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "beta", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "10.0.0.1", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "gamma", 2200, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "gamma", 22, &fx->a), HOSTKEY_UNKNOWN);
        assert_int_equal(check(kh, "delta", 22, &fx->a), HOSTKEY_UNKNOWN);
        known_hosts_free(kh);
}

static void test_revoked(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = load_template(fx, "node6 %A\n"
                                           "@revoked node6 %A\n"
                                           "node7 %B\n"
                                           "@revoked *.seven %A\n"
                                           "@revoked node8 %B\n");

        assert_int_equal(known_hosts_entries(kh), 5);
        /* Revoked beats a line that would say OK, wherever it stands. */
        assert_int_equal(check(kh, "node6", 22, &fx->a), HOSTKEY_REVOKED);
        assert_int_equal(check(kh, "node6", 22, &fx->b), HOSTKEY_MISMATCH);
        assert_int_equal(check(kh, "node7", 22, &fx->b), HOSTKEY_OK);
        assert_int_equal(check(kh, "x.seven", 22, &fx->a), HOSTKEY_REVOKED);
        /* A revoked line alone does not make the host known. */
        assert_int_equal(check(kh, "node8", 22, &fx->a), HOSTKEY_UNKNOWN);
        assert_int_equal(check(kh, "node8", 22, &fx->b), HOSTKEY_REVOKED);
        known_hosts_free(kh);
}

static void test_cert_authority_skipped(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = load_template(fx, "@cert-authority *.example.com %A\n"
                                           "@cert-authority node9 %A\n");

        assert_int_equal(known_hosts_entries(kh), 0);
        assert_int_equal(known_hosts_bad_lines(kh), 0);
        assert_int_equal(check(kh, "x.example.com", 22, &fx->a), HOSTKEY_UNKNOWN);
        assert_int_equal(check(kh, "node9", 22, &fx->a), HOSTKEY_UNKNOWN);
        known_hosts_free(kh);
}

static void test_bad_lines_skipped(void **state) {
        Fixture *fx = *state;
        char tmpl[16384], *p = tmpl;
        KnownHosts *kh;

        p += sprintf(p, "node10 %%A\n"
                        "garbage\n"
                        "node11 ssh-ed25519\n"
                        "node12 ssh-ed25519 !!!notbase64!!!\n"
                        "node13 ssh-ed25519 %s\n" /* the blob says ECDSA */
                        "@bogus node14 %%A\n"
                        ",node15 %%A\n"
                        "|1|short|short %%A\n",
                     fx->c.b64);
        p += sprintf(p, "node16 %%A ");
        memset(p, 'x', 9000); /* a comment that makes the line too long */
        p += 9000;
        p += sprintf(p, "\nnode17 %%A\n");
        kh = load_template(fx, tmpl);

        assert_int_equal(known_hosts_bad_lines(kh), 8);
        assert_int_equal(known_hosts_entries(kh), 2);
        assert_int_equal(check(kh, "node10", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "node13", 22, &fx->c), HOSTKEY_UNKNOWN);
        assert_int_equal(check(kh, "node16", 22, &fx->a), HOSTKEY_UNKNOWN);
        /* The lines after the bad ones are still there. */
        assert_int_equal(check(kh, "node17", 22, &fx->a), HOSTKEY_OK);
        known_hosts_free(kh);
}

static void test_comments_blank(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = load_template(fx, "# a comment\n"
                                           "\n"
                                           "   \n"
                                           "\t# indented comment\n"
                                           "node18 %A a comment with words\n"
                                           "  node19\t%C\n"
                                           "#node20 %A\n");

        assert_int_equal(known_hosts_entries(kh), 2);
        assert_int_equal(known_hosts_bad_lines(kh), 0);
        assert_int_equal(check(kh, "node18", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "node19", 22, &fx->c), HOSTKEY_OK);
        assert_int_equal(check(kh, "node20", 22, &fx->a), HOSTKEY_UNKNOWN);
        known_hosts_free(kh);
}

static void test_crlf(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = load_template(fx, "# comment\r\n\r\nnode21 %A\r\nnode22 %C comment\r\nnode23 %B");

        assert_int_equal(known_hosts_entries(kh), 3);
        assert_int_equal(known_hosts_bad_lines(kh), 0);
        assert_int_equal(check(kh, "node21", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "node22", 22, &fx->c), HOSTKEY_OK);
        assert_int_equal(check(kh, "node23", 22, &fx->b), HOSTKEY_OK);
        known_hosts_free(kh);
}

static void check_fingerprint(Fixture *fx, const Key *k) {
        char out[512], path[160], expected[128], fp[HOSTKEY_FINGERPRINT_MAX];

        snprintf(path, sizeof path, "%s/fp.out", fx->dir);
        run("ssh-keygen -lf %s/%s.pub > %s", fx->dir, k->name, path);
        read_file(path, out, sizeof out);
        assert_int_equal(sscanf(out, "%*u %127s", expected), 1);
        assert_string_equal(hostkey_fingerprint(k->blob, k->blob_len, fp, sizeof fp), expected);
}

static void test_fingerprint(void **state) {
        Fixture *fx = *state;

        check_fingerprint(fx, &fx->a);
        check_fingerprint(fx, &fx->b);
        check_fingerprint(fx, &fx->c);
}

static void test_hostkey_type(void **state) {
        Fixture *fx = *state;
        static const uint8_t bad_len[] = { 0, 0, 0, 20, 's', 's', 'h' };
        static const uint8_t empty[] = { 0, 0, 0, 0 };
        static const uint8_t newline[] = { 0, 0, 0, 4, 'a', '\n', 'b', 'c' };
        char buf[64];

        assert_int_equal(hostkey_type(fx->a.blob, fx->a.blob_len, buf, sizeof buf), 0);
        assert_string_equal(buf, "ssh-ed25519");
        assert_int_equal(hostkey_type(fx->c.blob, fx->c.blob_len, buf, sizeof buf), 0);
        assert_string_equal(buf, "ecdsa-sha2-nistp256");
        assert_int_equal(hostkey_type(fx->a.blob, fx->a.blob_len, buf, 11), -ENOBUFS);
        assert_int_equal(hostkey_type(fx->a.blob, 3, buf, sizeof buf), -EBADMSG);
        assert_int_equal(hostkey_type(fx->a.blob, 10, buf, sizeof buf), -EBADMSG);
        assert_int_equal(hostkey_type(bad_len, sizeof bad_len, buf, sizeof buf), -EBADMSG);
        assert_int_equal(hostkey_type(empty, sizeof empty, buf, sizeof buf), -EBADMSG);
        assert_int_equal(hostkey_type(newline, sizeof newline, buf, sizeof buf), -EBADMSG);
}

static void test_types(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = load_template(fx, "*.zz %A\n"
                                           "m.zz %C\n"
                                           "m.zz %B\n"
                                           "@revoked m.zz,n.zz %C\n"
                                           "n.zz %C\n"
                                           "n.zz,m.zz %C\n");
        char *t;

        /* File order across wildcard and indexed lines, no duplicates. */
        t = known_hosts_types(kh, "m.zz", 22);
        assert_string_equal(t, "ssh-ed25519,ecdsa-sha2-nistp256");
        free(t);
        t = known_hosts_types(kh, "n.zz", 22);
        assert_string_equal(t, "ssh-ed25519,ecdsa-sha2-nistp256");
        free(t);
        t = known_hosts_types(kh, "o.zz", 22);
        assert_string_equal(t, "ssh-ed25519");
        free(t);
        t = known_hosts_types(kh, "m.zz", 2222);
        assert_string_equal(t, "");
        free(t);
        t = known_hosts_types(kh, "other", 22);
        assert_string_equal(t, "");
        free(t);
        known_hosts_free(kh);
}

static void test_line(void **state) {
        Fixture *fx = *state;
        char expected[2048], *line;

        line = known_hosts_line("Node24", 22, fx->a.blob, fx->a.blob_len);
        snprintf(expected, sizeof expected, "node24 %s %s", fx->a.type, fx->a.b64);
        assert_string_equal(line, expected);
        free(line);

        line = known_hosts_line("10.0.0.24", 2222, fx->c.blob, fx->c.blob_len);
        snprintf(expected, sizeof expected, "[10.0.0.24]:2222 %s %s", fx->c.type, fx->c.b64);
        assert_string_equal(line, expected);
        free(line);

        assert_null(known_hosts_line("a b", 22, fx->a.blob, fx->a.blob_len));
        assert_null(known_hosts_line("a,b", 22, fx->a.blob, fx->a.blob_len));
        assert_null(known_hosts_line("*.b", 22, fx->a.blob, fx->a.blob_len));
        assert_null(known_hosts_line("a\nb", 22, fx->a.blob, fx->a.blob_len));
        assert_null(known_hosts_line("", 22, fx->a.blob, fx->a.blob_len));
        assert_null(known_hosts_line("a", 22, fx->a.blob, 5));
}

static void test_append(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = NULL;
        struct stat st;

        assert_int_equal(known_hosts_append(fx->path, "node25", 22, fx->a.blob, fx->a.blob_len), 0);
        assert_int_equal(stat(fx->path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        assert_int_equal(known_hosts_append(fx->path, "node26", 2222, fx->c.blob, fx->c.blob_len), 0);
        assert_int_equal(known_hosts_append(fx->path, "bad host", 22, fx->a.blob, fx->a.blob_len), -EINVAL);

        assert_int_equal(known_hosts_load(fx->path, &kh), 0);
        assert_int_equal(known_hosts_entries(kh), 2);
        assert_int_equal(known_hosts_bad_lines(kh), 0);
        assert_int_equal(check(kh, "node25", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "node26", 2222, &fx->c), HOSTKEY_OK);
        assert_int_equal(check(kh, "node26", 22, &fx->c), HOSTKEY_UNKNOWN);
        kh = known_hosts_free(kh);
}

static void test_append_no_final_newline(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = load_template(fx, "node27 %C");

        kh = known_hosts_free(kh);
        assert_int_equal(known_hosts_append(fx->path, "node28", 22, fx->a.blob, fx->a.blob_len), 0);
        assert_int_equal(known_hosts_load(fx->path, &kh), 0);
        assert_int_equal(known_hosts_entries(kh), 2);
        assert_int_equal(known_hosts_bad_lines(kh), 0);
        assert_int_equal(check(kh, "node27", 22, &fx->c), HOSTKEY_OK);
        assert_int_equal(check(kh, "node28", 22, &fx->a), HOSTKEY_OK);
        known_hosts_free(kh);
}

static void test_stale(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = NULL;
        struct timespec times[2] = { { .tv_sec = 1000000000 }, { .tv_sec = 1000000000 } };

        /* A missing file stays fresh until it appears. */
        assert_int_equal(known_hosts_load(fx->path, &kh), 0);
        assert_false(known_hosts_is_stale(kh));
        assert_int_equal(known_hosts_append(fx->path, "node29", 22, fx->a.blob, fx->a.blob_len), 0);
        assert_true(known_hosts_is_stale(kh));
        kh = known_hosts_free(kh);

        assert_int_equal(known_hosts_load(fx->path, &kh), 0);
        assert_false(known_hosts_is_stale(kh));
        assert_int_equal(known_hosts_append(fx->path, "node30", 22, fx->a.blob, fx->a.blob_len), 0);
        assert_true(known_hosts_is_stale(kh));
        kh = known_hosts_free(kh);

        /* Same size and inode, other mtime. */
        assert_int_equal(known_hosts_load(fx->path, &kh), 0);
        assert_false(known_hosts_is_stale(kh));
        assert_int_equal(utimensat(AT_FDCWD, fx->path, times, 0), 0);
        assert_true(known_hosts_is_stale(kh));
        kh = known_hosts_free(kh);

        assert_int_equal(known_hosts_load(fx->path, &kh), 0);
        assert_false(known_hosts_is_stale(kh));
        assert_int_equal(unlink(fx->path), 0);
        assert_true(known_hosts_is_stale(kh));
        kh = known_hosts_free(kh);

        assert_int_equal(known_hosts_load(fx->path, &kh), 0);
        assert_false(known_hosts_is_stale(kh));
        known_hosts_free(kh);
}

static void test_many(void **state) {
        Fixture *fx = *state;
        KnownHosts *kh = NULL;
        FILE *f;

        f = fopen(fx->path, "we");
        assert_non_null(f);
        for (unsigned i = 0; i < 5000; i++) {
                const Key *k = i % 2 ? &fx->a : &fx->b;
                fprintf(f, "host%u.example,10.%u.%u.%u %s %s\n", i, i >> 16, (i >> 8) & 255, i & 255,
                        k->type, k->b64);
        }
        fprintf(f, "*.wild %s %s\n", fx->c.type, fx->c.b64);
        assert_int_equal(fclose(f), 0);

        assert_int_equal(known_hosts_load(fx->path, &kh), 0);
        assert_int_equal(known_hosts_entries(kh), 5001);
        assert_int_equal(known_hosts_bad_lines(kh), 0);
        for (unsigned i = 0; i < 5000; i++) {
                char name[64];
                const Key *k = i % 2 ? &fx->a : &fx->b, *other = i % 2 ? &fx->b : &fx->a;

                snprintf(name, sizeof name, "host%u.example", i);
                assert_int_equal(check(kh, name, 22, k), HOSTKEY_OK);
                assert_int_equal(check(kh, name, 22, other), HOSTKEY_MISMATCH);
        }
        assert_int_equal(check(kh, "host4999.example", 22, &fx->a), HOSTKEY_OK);
        assert_int_equal(check(kh, "10.0.19.135", 22, &fx->a), HOSTKEY_OK); /* 4999 */
        assert_int_equal(check(kh, "host5000.example", 22, &fx->a), HOSTKEY_UNKNOWN);
        assert_int_equal(check(kh, "x.wild", 22, &fx->c), HOSTKEY_OK);
        known_hosts_free(kh);
}

static HostKeyCheck verify(const KnownHosts *kh, const char *host, const Key *k, const char **path, unsigned *line) {
        return known_hosts_verify(kh, host, 22, k->blob, k->blob_len, path, line);
}

/* ssh.known_hosts and ssh.learned_hosts together: @revoked anywhere wins, a
 * file holding another key of the same type refuses whatever the other
 * says, a key of another type in the other file is no conflict. */
static void test_two_files(void **state) {
        Fixture *fx = *state;
        char learned[160];
        const char *path;
        unsigned line;
        KnownHosts *kh = load_two(fx,
                                  "# ssh.known_hosts\n"
                                  "node1 %A\n"
                                  "node2 %A\n"
                                  "node3 %A\n"
                                  "node5 %C\n",
                                  "node1 %B\n"
                                  "node2 %C\n"
                                  "@revoked node3 %A\n"
                                  "node4 %B\n",
                                  learned);

        assert_int_equal(known_hosts_files(kh), 2);
        assert_string_equal(known_hosts_file(kh, 1, NULL, NULL), learned);
        assert_null(known_hosts_file(kh, 2, NULL, NULL));
        assert_int_equal(known_hosts_entries(kh), 8);

        /* the files disagree about node1's ed25519 key: both keys refused */
        assert_int_equal(verify(kh, "node1", &fx->a, &path, &line), HOSTKEY_MISMATCH);
        assert_string_equal(path, learned);
        assert_int_equal(line, 1);
        assert_int_equal(verify(kh, "node1", &fx->b, &path, &line), HOSTKEY_MISMATCH);
        assert_string_equal(path, fx->path);
        assert_int_equal(line, 2);

        /* an ECDSA key learned beside the ed25519 one: each is good */
        assert_int_equal(verify(kh, "node2", &fx->a, &path, &line), HOSTKEY_OK);
        assert_string_equal(path, fx->path);
        assert_int_equal(line, 3);
        assert_int_equal(verify(kh, "node2", &fx->c, &path, &line), HOSTKEY_OK);
        assert_string_equal(path, learned);
        assert_int_equal(line, 2);
        assert_int_equal(verify(kh, "node2", &fx->b, NULL, NULL), HOSTKEY_MISMATCH);

        /* revoked in the learned file, good in known_hosts: revoked */
        assert_int_equal(verify(kh, "node3", &fx->a, &path, &line), HOSTKEY_REVOKED);
        assert_string_equal(path, learned);
        assert_int_equal(line, 3);

        /* only learned */
        assert_int_equal(verify(kh, "node4", &fx->b, &path, NULL), HOSTKEY_OK);
        assert_string_equal(path, learned);
        /* known by another type only, in one file */
        assert_int_equal(verify(kh, "node5", &fx->a, &path, &line), HOSTKEY_MISMATCH);
        assert_string_equal(path, fx->path);
        assert_int_equal(line, 5);
        assert_int_equal(verify(kh, "node6", &fx->a, &path, &line), HOSTKEY_UNKNOWN);
        assert_null(path);
        assert_int_equal(line, 0);

        {
                _cleanup_free_ char *types = known_hosts_types(kh, "node2", 22);
                assert_string_equal(types, "ssh-ed25519,ecdsa-sha2-nistp256");
        }
        known_hosts_free(kh);
        assert_int_equal(unlink(learned), 0);
}

static void test_list_keys(void **state) {
        Fixture *fx = *state;
        char learned[160];
        KnownHostsKey *keys = NULL;
        size_t n = 0;
        KnownHosts *kh = load_two(fx, "node1,other %A\n*.example %C\n", "@revoked node1 %B\n", learned);

        assert_int_equal(known_hosts_keys(kh, "node1", 22, &keys, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(keys[0].type, "ssh-ed25519");
        assert_memory_equal(keys[0].blob, fx->a.blob, fx->a.blob_len);
        assert_false(keys[0].revoked);
        assert_string_equal(keys[0].path, fx->path);
        assert_int_equal(keys[0].line, 1);
        assert_true(keys[1].revoked);
        assert_string_equal(keys[1].path, learned);
        assert_int_equal(keys[1].line, 1);
        free(keys);

        assert_int_equal(known_hosts_keys(kh, "n.example", 22, &keys, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(keys[0].type, "ecdsa-sha2-nistp256");
        assert_int_equal(keys[0].line, 2);
        free(keys);
        assert_int_equal(known_hosts_keys(kh, "nobody", 22, &keys, &n), 0);
        assert_int_equal(n, 0);
        assert_null(keys);

        /* added in memory: found at once, as the learned file's, line 0 */
        assert_int_equal(known_hosts_add(kh, 1, "node7", 2222, fx->a.blob, fx->a.blob_len), 0);
        assert_int_equal(known_hosts_check(kh, "node7", 2222, fx->a.blob, fx->a.blob_len), HOSTKEY_OK);
        assert_int_equal(known_hosts_check(kh, "node7", 22, fx->a.blob, fx->a.blob_len), HOSTKEY_UNKNOWN);
        assert_int_equal(known_hosts_keys(kh, "node7", 2222, &keys, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(keys[0].path, learned);
        assert_int_equal(keys[0].line, 0);
        free(keys);
        assert_int_equal(known_hosts_add(kh, 2, "node7", 22, fx->a.blob, fx->a.blob_len), -EINVAL);
        assert_int_equal(known_hosts_add(kh, 1, "bad host", 22, fx->a.blob, fx->a.blob_len), -EINVAL);
        known_hosts_free(kh);
        assert_int_equal(unlink(learned), 0);
}

static void stat_file(const char *path, struct stat *st) {
        assert_int_equal(stat(path, st), 0);
}

/* Rewrites: other lines and comments kept byte for byte, a rotation
 * replaces the host's lone line of that type, an unchanged file is not
 * touched, the mode is kept, a symlink is followed. */
static void test_update(void **state) {
        Fixture *fx = *state;
        char want[8192], got[8192], link[200];
        struct stat before, after;
        bool changed = true;
        KnownHostsEdit e[2] = {
                { .host = "node1", .port = 22, .blob = fx->b.blob, .blob_len = fx->b.blob_len, .replace = true },
                { .host = "node2", .port = 2222, .blob = fx->c.blob, .blob_len = fx->c.blob_len },
        };

        write_template(fx, fx->path, "# learned\r\nnode1 %A\nnode1,alias %A\nnode1 %C\nnode3 %A");
        assert_int_equal(chmod(fx->path, 0600), 0);
        assert_int_equal(known_hosts_update(fx->path, e, 2, &changed, NULL), 0);
        assert_true(changed);
        read_file(fx->path, got, sizeof got);
        snprintf(want, sizeof want,
                 "# learned\r\nnode1,alias %s %s\nnode1 %s %s\nnode3 %s %s\nnode1 %s %s\n[node2]:2222 %s %s\n",
                 fx->a.type, fx->a.b64, fx->c.type, fx->c.b64, fx->a.type, fx->a.b64, fx->b.type, fx->b.b64,
                 fx->c.type, fx->c.b64);
        assert_string_equal(got, want);
        stat_file(fx->path, &before);
        assert_int_equal(before.st_mode & 07777, 0600);

        /* again: nothing to do, the file is not written */
        assert_int_equal(known_hosts_update(fx->path, e, 2, &changed, NULL), 0);
        assert_false(changed);
        stat_file(fx->path, &after);
        assert_int_equal(after.st_ino, before.st_ino);

        /* through a symlink: the target is rewritten, the link stays */
        snprintf(link, sizeof link, "%s.link", fx->path);
        assert_int_equal(symlink(fx->path, link), 0);
        e[0].host = "node9";
        assert_int_equal(known_hosts_update(link, e, 1, &changed, NULL), 0);
        assert_true(changed);
        {
                struct stat l;
                assert_int_equal(lstat(link, &l), 0);
                assert_true(S_ISLNK(l.st_mode));
        }
        read_file(fx->path, got, sizeof got);
        assert_non_null(strstr(got, "\nnode9 ssh-ed25519 "));
        assert_int_equal(unlink(link), 0);

        /* a line that does not parse: nothing written, its number told */
        {
                unsigned bad = 0;
                write_template(fx, fx->path, "node1 %A\nnode2 ssh-ed25519 AAAA-not-base64\n");
                stat_file(fx->path, &before);
                assert_int_equal(known_hosts_update(fx->path, e, 1, &changed, &bad), -EBADMSG);
                assert_int_equal(bad, 2);
                stat_file(fx->path, &after);
                assert_int_equal(after.st_ino, before.st_ino);
        }

        /* a new file in a missing directory: an error, nothing made */
        {
                char missing[200];
                snprintf(missing, sizeof missing, "%s/none/known_hosts", fx->dir);
                assert_int_equal(known_hosts_update(missing, e, 1, &changed, NULL), -ENOENT);
        }
        assert_int_equal(known_hosts_update(fx->path, NULL, 0, &changed, NULL), -EBADMSG);
}

/* A forget edit: every plain line naming the host alone goes, whatever its
 * type; @revoked lines, lines naming other hosts too, other ports and
 * other hosts stay; nothing is added. */
static void test_update_forget(void **state) {
        Fixture *fx = *state;
        char want[8192], got[8192];
        struct stat before, after;
        bool changed = false;
        KnownHostsEdit forget = { .host = "node1", .port = 22, .forget = true };

        write_template(fx, fx->path,
                       "# learned\nnode1 %A\nnode1,alias %A\n@revoked node1 %B\nnode1 %C\n[node1]:2222 %A\n"
                       "node3 %A\nnode1 %A\n");
        assert_int_equal(known_hosts_update(fx->path, &forget, 1, &changed, NULL), 0);
        assert_true(changed);
        read_file(fx->path, got, sizeof got);
        snprintf(want, sizeof want, "# learned\nnode1,alias %s %s\n@revoked node1 %s %s\n[node1]:2222 %s %s\nnode3 %s %s\n",
                 fx->a.type, fx->a.b64, fx->b.type, fx->b.b64, fx->a.type, fx->a.b64, fx->a.type, fx->a.b64);
        assert_string_equal(got, want);

        /* again: nothing to remove, the file is not written */
        stat_file(fx->path, &before);
        assert_int_equal(known_hosts_update(fx->path, &forget, 1, &changed, NULL), 0);
        assert_false(changed);
        stat_file(fx->path, &after);
        assert_int_equal(after.st_ino, before.st_ino);

        /* a host with a port, forgotten with a key recorded for another in one batch */
        {
                KnownHostsEdit e[2] = {
                        { .host = "node1", .port = 2222, .forget = true },
                        { .host = "node4", .port = 22, .blob = fx->c.blob, .blob_len = fx->c.blob_len },
                };
                assert_int_equal(known_hosts_update(fx->path, e, 2, &changed, NULL), 0);
                assert_true(changed);
                read_file(fx->path, got, sizeof got);
                snprintf(want, sizeof want, "# learned\nnode1,alias %s %s\n@revoked node1 %s %s\nnode3 %s %s\nnode4 %s %s\n",
                         fx->a.type, fx->a.b64, fx->b.type, fx->b.b64, fx->a.type, fx->a.b64, fx->c.type, fx->c.b64);
                assert_string_equal(got, want);
        }

        /* a file that does not exist: nothing to forget, nothing made */
        assert_int_equal(unlink(fx->path), 0);
        assert_int_equal(known_hosts_update(fx->path, &forget, 1, &changed, NULL), 0);
        assert_false(changed);
        assert_int_equal(access(fx->path, F_OK), -1);
}

static unsigned count_temporaries(Fixture *fx, const char *path);

/* A writer killed at any moment leaves the old file or the new one whole:
 * never a part, never a file that does not load. */
static void test_update_killed(void **state) {
        Fixture *fx = *state;
        char big[200];
        FILE *f;

        /* ~1 MB, so that a write takes a while */
        f = fopen(fx->path, "we");
        assert_non_null(f);
        for (unsigned i = 0; i < 8000; i++)
                fprintf(f, "host-%u.example.org %s %s\n", i, fx->c.type, fx->c.b64);
        assert_int_equal(fclose(f), 0);
        snprintf(big, sizeof big, "%s", fx->path);

        for (unsigned round = 0; round < 40; round++) {
                pid_t pid = fork();
                int status;
                KnownHosts *kh = NULL;

                assert_true(pid >= 0);
                if (pid == 0) {
                        char host[32];
                        for (unsigned i = 0;; i++) {
                                KnownHostsEdit e = { .host = host, .port = 22, .blob = fx->a.blob,
                                                     .blob_len = fx->a.blob_len };
                                snprintf(host, sizeof host, "r%u-%u", round, i);
                                if (known_hosts_update(big, &e, 1, NULL, NULL) < 0)
                                        _exit(1);
                        }
                }
                {
                        struct timespec t = { 0, (long) (1 + round % 7) * 3000000L };
                        nanosleep(&t, NULL);
                }
                assert_int_equal(kill(pid, SIGKILL), 0);
                assert_int_equal(waitpid(pid, &status, 0), pid);
                assert_true(WIFSIGNALED(status));
                assert_int_equal(known_hosts_load(big, &kh), 0);
                assert_int_equal(known_hosts_bad_lines(kh), 0);
                assert_true(known_hosts_entries(kh) >= 8000);
                known_hosts_free(kh);
        }

        /* what the killed writers left beside the file, cleared */
        {
                unsigned removed;

                assert_int_equal(known_hosts_remove_temporaries(big, 0, &removed), 0);
                assert_int_equal(count_temporaries(fx, fx->path), 0);
                assert_int_equal(known_hosts_remove_temporaries(big, 0, &removed), 0);
                assert_int_equal(removed, 0);
        }
}

/* Files in the test directory named like a temporary of 'path'. */
static unsigned count_temporaries(Fixture *fx, const char *path) {
        const char *base = strrchr(path, '/') + 1;
        DIR *d = opendir(fx->dir);
        struct dirent *de;
        unsigned n = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (de->d_name[0] == '.' && strncmp(de->d_name + 1, base, strlen(base)) == 0 &&
                    de->d_name[1 + strlen(base)] == '.')
                        n++;
        closedir(d);
        return n;
}

static void make_old(const char *path, bool old) {
        struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = time(NULL) - (old ? 3600 : 0) } };

        assert_int_equal(utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW), 0);
}

static void test_remove_temporaries(void **state) {
        Fixture *fx = *state;
        const char *base = strrchr(fx->path, '/') + 1;
        char p[256];
        unsigned removed;
        struct stat st;
        static const struct {
                const char *pre, *suf; /* around the file's name */
                bool old, dir, removed;
        } cases[] = {
                { ".", ".Ab9xYz", true, false, true },   /* what mkostemp() made, an hour old */
                { ".", ".Qq1234", false, false, false }, /* a write in progress, maybe */
                { ".", ".Ab9xY", true, false, false },   /* five characters */
                { ".", ".Ab9xYzz", true, false, false }, /* seven */
                { ".", ".Ab-xYz", true, false, false },  /* not mkostemp()'s alphabet */
                { "", ".Ab9xYz", true, false, false },   /* not hidden */
                { ".", "x.Ab9xYz", true, false, false }, /* another file's */
                { ".", ".Dir123", true, true, false },   /* not a regular file */
        };

        write_file(fx->path, "");
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                snprintf(p, sizeof p, "%s/%s%s%s", fx->dir, cases[i].pre, base, cases[i].suf);
                if (cases[i].dir)
                        assert_int_equal(mkdir(p, 0755), 0);
                else
                        write_file(p, "half a file");
                make_old(p, cases[i].old);
        }
        assert_int_equal(known_hosts_remove_temporaries(fx->path, 60, &removed), 0);
        assert_int_equal(removed, 1);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                snprintf(p, sizeof p, "%s/%s%s%s", fx->dir, cases[i].pre, base, cases[i].suf);
                assert_int_equal(lstat(p, &st) == 0, !cases[i].removed);
        }
        assert_int_equal(lstat(fx->path, &st), 0); /* the file itself stays */

        /* the file gone (never written yet): its directory is still cleared */
        assert_int_equal(unlink(fx->path), 0);
        snprintf(p, sizeof p, "%s/.%s.Zz0000", fx->dir, base);
        write_file(p, "");
        make_old(p, true);
        assert_int_equal(known_hosts_remove_temporaries(fx->path, 60, &removed), 0);
        assert_int_equal(removed, 1);
        assert_int_equal(lstat(p, &st), -1);

        /* no such directory */
        assert_int_equal(known_hosts_remove_temporaries("/nonexistent-sshtund/known_hosts", 60, &removed), -ENOENT);
        assert_int_equal(removed, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_plain_ok, test_setup),
                cmocka_unit_test_setup(test_mismatch_same_type, test_setup),
                cmocka_unit_test_setup(test_mismatch_other_type, test_setup),
                cmocka_unit_test_setup(test_unknown, test_setup),
                cmocka_unit_test_setup(test_missing_file, test_setup),
                cmocka_unit_test_setup(test_fifo, test_setup),
                cmocka_unit_test_setup(test_port, test_setup),
                cmocka_unit_test_setup(test_hashed, test_setup),
                cmocka_unit_test_setup(test_wildcard_negation, test_setup),
                cmocka_unit_test_setup(test_comma_list, test_setup),
                cmocka_unit_test_setup(test_revoked, test_setup),
                cmocka_unit_test_setup(test_cert_authority_skipped, test_setup),
                cmocka_unit_test_setup(test_bad_lines_skipped, test_setup),
                cmocka_unit_test_setup(test_comments_blank, test_setup),
                cmocka_unit_test_setup(test_crlf, test_setup),
                cmocka_unit_test_setup(test_fingerprint, test_setup),
                cmocka_unit_test_setup(test_hostkey_type, test_setup),
                cmocka_unit_test_setup(test_types, test_setup),
                cmocka_unit_test_setup(test_line, test_setup),
                cmocka_unit_test_setup(test_append, test_setup),
                cmocka_unit_test_setup(test_append_no_final_newline, test_setup),
                cmocka_unit_test_setup(test_stale, test_setup),
                cmocka_unit_test_setup(test_remove_temporaries, test_setup),
                cmocka_unit_test_setup(test_update_forget, test_setup),
                cmocka_unit_test_setup(test_many, test_setup),
                cmocka_unit_test_setup(test_two_files, test_setup),
                cmocka_unit_test_setup(test_list_keys, test_setup),
                cmocka_unit_test_setup(test_update, test_setup),
                cmocka_unit_test_setup(test_update_killed, test_setup),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
