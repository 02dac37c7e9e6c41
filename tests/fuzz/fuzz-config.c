/* Fuzzing the configuration loader: libconfig text in, a validated Config
 * or one "FILE:LINE: KEY: message" out. The input is the main file; from a
 * line "%%nodes_file" on, it is the nodes_file instead. "@DIR@" stands for
 * the private directory both are written to, which also holds an ed25519
 * key, "@DIR@/id_ed25519", made once at start. A file that loads is printed
 * (sshtund -T), and what is printed must load to the same text again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>

#include "../../src/conf.h"
#include "fuzz.h"
#include "macro.h"
#include "router.h"

#define NODES_MARKER "\n%%nodes_file\n"
#define DIR_TOKEN "@DIR@"

/* Set up once, read-only afterwards. */
static char dir[64];
static char conf_path[128];
static char nodes_path[128];
static char printed_path[128];
static bool verbose; /* FUZZ_VERBOSE=1: say how each input ended, for writing seeds */

/* libconfig 1.5 (Debian 12) drops the token its scanner was building when
 * a syntax error follows it (a = "x"y"";  a = 1; b"c"): its leak, not
 * ours, and only on a file that is refused. Every other leak still fails. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
        return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

static void remove_dir(void) {
        char path[160];

        unlink(conf_path);
        unlink(nodes_path);
        unlink(printed_path);
        snprintf(path, sizeof(path), "%s/id_ed25519", dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/id_ed25519.pub", dir);
        unlink(path);
        rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        char cmd[256];

        snprintf(dir, sizeof(dir), "%s/fuzz-config-XXXXXX", getenv("TMPDIR") ?: "/tmp");
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                abort();
        }
        snprintf(conf_path, sizeof(conf_path), "%s/sshtund.conf", dir);
        snprintf(nodes_path, sizeof(nodes_path), "%s/nodes.conf", dir);
        snprintf(printed_path, sizeof(printed_path), "%s/printed.conf", dir);
        snprintf(cmd, sizeof(cmd),
                 "ssh-keygen -q -t ed25519 -N '' -C fuzz -f '%s/id_ed25519' </dev/null >/dev/null", dir);
        /* without ssh-keygen every input ends at ssh.identity: still a run */
        if (system(cmd) != 0)
                fprintf(stderr, "fuzz-config: ssh-keygen failed; ssh.identity will not load\n");
        atexit(remove_dir);
        verbose = getenv("FUZZ_VERBOSE");
        return 0;
}

/* Text with DIR_TOKEN replaced by the directory. */
static char *expand(const char *s, size_t n) {
        char *out = NULL, *p;
        size_t count = 0, size;

        for (const char *q = s; (q = memmem(q, (size_t) (s + n - q), DIR_TOKEN, strlen(DIR_TOKEN)));
             q += strlen(DIR_TOKEN))
                count++;
        size = n + count * strlen(dir) + 1;
        out = p = malloc(size);
        if (!out)
                return NULL;
        for (const char *q = s; q < s + n;) {
                const char *m = memmem(q, (size_t) (s + n - q), DIR_TOKEN, strlen(DIR_TOKEN));
                size_t k = m ? (size_t) (m - q) : (size_t) (s + n - q);

                memcpy(p, q, k);
                p += k;
                q += k;
                if (m) {
                        p = stpcpy(p, dir);
                        q += strlen(DIR_TOKEN);
                }
        }
        *p = 0;
        return out;
}

/* Every "@include" names a file in the directory: a plain name, read as
 * libconfig 1.5 reads it (only \\ and \" are escapes there). Anything else
 * could open a device or a FIFO on this machine, which no harness should. */
static bool includes_are_local(const char *s, bool allowed) {
        for (const char *q = s; (q = strstr(q, "@include")); q += 8) {
                const char *name = q + 8;
                size_t len;

                if (!allowed)
                        return false;
                name += strspn(name, " \t");
                if (*name != '"')
                        return false;
                name++;
                len = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.");
                if (name[len] != '"' || len == 0 || strspn(name, ".") == len)
                        return false;
        }
        return true;
}

/* The nodes_file the main file names (after its includes) stays in the
 * directory too; read the way config_load() reads it. */
static bool nodes_file_is_local(void) {
        const char *v = NULL, *slash;
        config_t lc;
        bool ok = true;

        config_init(&lc);
        config_set_include_dir(&lc, dir);
        if (config_read_file(&lc, conf_path) && config_lookup_string(&lc, "nodes_file", &v) && *v) {
                slash = strrchr(v, '/');
                ok = strncmp(v, dir, strlen(dir)) == 0 && slash == v + strlen(dir);
        }
        config_destroy(&lc);
        return ok;
}

static bool write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        bool ok;

        if (!f)
                return false;
        ok = fputs(text, f) >= 0;
        return fclose(f) == 0 && ok;
}

/* sshtund -T: text that loads back to a configuration printed the same. */
static char *print(const Config *c) {
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        if (!f)
                abort();
        fuzz_check(config_print(c, f) == 0);
        if (fclose(f) != 0)
                abort();
        return text;
}

static void check_print(const Config *c) {
        _cleanup_free_ char *first = print(c), *second = NULL, *error = NULL;
        Config *again = NULL;
        int r;

        if (!write_file(printed_path, first))
                abort();
        r = config_load(printed_path, &again, &error);
        if (r < 0 && verbose)
                fprintf(stderr, "the printed configuration does not load: %s\n%s", error, first);
        fuzz_check(r == 0);
        second = print(again);
        fuzz_check(streq(first, second));
        fuzz_check(again->n_nodes == c->n_nodes && again->n_forwards == c->n_forwards);
        config_free(again);
}

/* A config that loaded is whole, and routes as the daemon builds it. */
static void check_config(const Config *c) {
        Router *r = NULL;

        fuzz_check(streq(c->path, conf_path) && c->files && streq(c->files[0], conf_path));
        fuzz_check(c->proxy.n_listen >= 1 && c->proxy.n_allow >= 1);
        fuzz_check(c->ssh.user && c->ssh.identity && c->ssh.known_hosts && c->admin.socket);
        fuzz_check(c->konnectivity.nodes);
        fuzz_check(c->n_nodes == 0 || c->nodes);
        for (size_t i = 0; i < c->n_nodes; i++) {
                const ConfigNode *n = &c->nodes[i];

                fuzz_check(n->name && n->address && n->hostnames && n->file && n->port >= 1);
                fuzz_check(config_find_node(c, n->name) == n);
                fuzz_check(config_node_same_endpoint(n, n));
        }
        for (size_t i = 0; i < c->n_forwards; i++)
                fuzz_check(c->forwards[i].node && c->forwards[i].target_host &&
                           c->forwards[i].target_port >= 1);

        if (router_new(c->proxy.allow, c->proxy.n_allow, &r) < 0)
                return;
        for (size_t i = 0; i < c->n_nodes; i++) {
                const ConfigNode *n = &c->nodes[i];

                fuzz_check(router_add_node(r, n->name, n->address, n->hostnames,
                                           n->has_pod_cidr ? &n->pod_cidr : NULL, (void *) n) == 0);
        }
        for (size_t i = 0; i < c->n_nodes; i++)
                fuzz_check(router_lookup(r, c->nodes[i].name));
        router_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *main_text = NULL, *nodes_text = NULL, *error = NULL;
        const char *text = (const char *) data, *marker;
        size_t main_len;
        Config *c = NULL;
        int r;

        /* libconfig reads up to the first NUL; so does this split */
        size = strnlen(text, size);
        marker = memmem(text, size, NODES_MARKER, strlen(NODES_MARKER));
        main_len = marker ? (size_t) (marker - text) : size;
        main_text = expand(text, main_len);
        if (marker)
                nodes_text = expand(marker + strlen(NODES_MARKER), size - main_len - strlen(NODES_MARKER));
        if (!main_text || (marker && !nodes_text))
                return 0;
        if (!includes_are_local(main_text, true) || (nodes_text && !includes_are_local(nodes_text, false)))
                return -1; /* not worth keeping in the corpus */

        if (!write_file(conf_path, main_text))
                abort();
        /* without a nodes part, the nodes_file does not exist (yet) */
        if (nodes_text ? !write_file(nodes_path, nodes_text) : unlink(nodes_path) < 0 && errno != ENOENT)
                abort();
        /* the key can only come from these two texts: the directory holds no other */
        if ((strstr(main_text, "nodes_file") || (nodes_text && strstr(nodes_text, "nodes_file"))) &&
            !nodes_file_is_local())
                return -1;

        r = config_load(conf_path, &c, &error);
        if (verbose)
                fprintf(stderr, "config_load: %s\n", r == 0 ? "loaded" : error);
        if (r == 0) {
                fuzz_check(c && !error);
                check_config(c);
                check_print(c);
                config_free(c);
                return 0;
        }
        fuzz_check(r < 0);
        fuzz_check(!c);
        /* one line that names the file it is about */
        fuzz_check(error && *error);
        fuzz_check(!strchr(error, '\n'));
        fuzz_check(strncmp(error, dir, strlen(dir)) == 0);
        return 0;
}
