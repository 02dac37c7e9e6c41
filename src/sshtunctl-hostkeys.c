/* sshtunctl hostkeys: scan (targets, --unknown, --all), trust (NODE
 * SHA256:FP..., --from FILE|-), list [NODE] and forget NODE.... Scans and trusts of many
 * nodes run CTL_PARALLEL requests at once, each under its own deadline;
 * the results are printed in the order asked. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "fingerprint.h"
#include "macro.h"
#include "sshtunctl-internal.h"
#include "table.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);

/* The daemon ends a scan within 35 s (connect_timeout, at most 30 s, plus
 * 5 s for a handshake slot): wait longer than that. */
#define CTL_SCAN_TIMEOUT_USEC (45 * USEC_PER_SEC)
/* Requests at once: the daemon scans 8 nodes at a time. */
#define CTL_PARALLEL 8
/* A busy daemon (503) is asked again this much later, within the deadline. */
#define CTL_BUSY_RETRY_USEC (200 * USEC_PER_MSEC)
/* Fingerprints one trust line may give (the daemon takes 8). */
#define TRUST_FINGERPRINTS_MAX 8

/* ---- requests, several at once ---------------------------------------------- */

typedef struct Job {
        char *name;   /* the node or target, as the operator wrote it */
        char *target; /* the request */
        int exit;     /* no reply: the exit status, and 'error' says why */
        int status;   /* the reply's HTTP status */
        json_t *reply;
        char *error;
} Job;

static void jobs_free(Job *jobs, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(jobs[i].name);
                free(jobs[i].target);
                json_decref(jobs[i].reply);
                free(jobs[i].error);
        }
        free(jobs);
}

typedef struct Pool {
        const Ctl *ctl;
        Job *jobs;
        size_t n, next;
        pthread_mutex_t lock;
} Pool;

/* One request, asked again while the daemon is busy; what the client would
 * have printed is kept in job->error. */
static void job_run(const Ctl *ctl, Job *job) {
        Ctl c = *ctl;
        char *captured = NULL;
        size_t size = 0;
        usec_t end = now_usec(CLOCK_MONOTONIC) + CTL_SCAN_TIMEOUT_USEC;

        c.err = open_memstream(&captured, &size);
        if (!c.err) {
                job->exit = EXIT_FAILURE;
                return;
        }
        c.timeout = CTL_SCAN_TIMEOUT_USEC;
        for (;;) {
                c.deadline = now_usec(CLOCK_MONOTONIC) + c.timeout;
                json_decref(job->reply);
                job->reply = NULL;
                job->exit = ctl_request_status(&c, "POST", job->target, &job->status, &job->reply);
                if (job->exit != 0 || job->status != 503 || now_usec(CLOCK_MONOTONIC) + CTL_BUSY_RETRY_USEC >= end)
                        break;
                nanosleep(&(struct timespec) { .tv_nsec = CTL_BUSY_RETRY_USEC * 1000 }, NULL);
        }
        fclose(c.err);
        if (captured) {
                size_t n = strlen(captured);
                while (n > 0 && captured[n - 1] == '\n')
                        captured[--n] = 0;
                /* without the "sshtunctl: " that the caller adds again */
                if (strncmp(captured, "sshtunctl: ", 11) == 0)
                        memmove(captured, captured + 11, n - 10);
        }
        job->error = captured;
}

static void *pool_worker(void *userdata) {
        Pool *p = userdata;

        for (;;) {
                size_t i;

                pthread_mutex_lock(&p->lock);
                i = p->next++;
                pthread_mutex_unlock(&p->lock);
                if (i >= p->n)
                        return NULL;
                job_run(p->ctl, p->jobs + i);
        }
}

/* Every job, CTL_PARALLEL at a time. */
static void jobs_run(const Ctl *ctl, Job *jobs, size_t n) {
        Pool pool = { .ctl = ctl, .jobs = jobs, .n = n, .lock = PTHREAD_MUTEX_INITIALIZER };
        pthread_t threads[CTL_PARALLEL];
        size_t started = 0;

        for (size_t i = 0; i < MIN(n, (size_t) CTL_PARALLEL) && n > 1; i++) {
                if (pthread_create(&threads[i], NULL, pool_worker, &pool) != 0)
                        break;
                started++;
        }
        /* this thread works too (alone, for one job or when no thread starts) */
        pool_worker(&pool);
        for (size_t i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        pthread_mutex_destroy(&pool.lock);
}

/* The daemon's "error" member, or what kept the reply from coming. */
static const char *job_error(const Job *job) {
        const char *e = json_string_value(json_object_get(job->reply, "error"));

        if (job->exit != 0)
                return job->error ?: "no reply";
        return e ?: "unexpected reply";
}

/* The exit status for a batch: 0 all done, 1 some failed, and when the
 * daemon could not be asked at all, what the client says then (3). */
static int jobs_exit(const Job *jobs, size_t n) {
        size_t unreachable = 0, failed = 0;

        for (size_t i = 0; i < n; i++) {
                if (jobs[i].exit != 0)
                        unreachable++;
                else if (jobs[i].status != 200)
                        failed++;
        }
        if (n > 0 && unreachable == n)
                return jobs[0].exit;
        return unreachable + failed > 0 ? EXIT_FAILURE : 0;
}

/* A job asking 'path' 'key'=the escaped 'name', then 'rest'. */
static int job_init(Job *job, const char *name, const char *path, const char *key, const char *rest) {
        _cleanup_free_ char *escaped = path_escape(name);

        job->name = strdup(name);
        if (!escaped || !job->name || asprintf(&job->target, "%s?%s=%s%s", path, key, escaped, rest ?: "") < 0) {
                job->target = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* ---- hostkeys scan ------------------------------------------------------------ */

/* What `ssh-keygen -l` prints in parentheses, and the usual file name part. */
static void key_names(const char *type, const char **ret_label, const char **ret_file) {
        static const struct {
                const char *prefix, *label, *file;
        } names[] = {
                { "ssh-ed25519", "ED25519", "ed25519" },
                { "ecdsa-sha2-", "ECDSA", "ecdsa" },
                { "ssh-rsa", "RSA", "rsa" },
                { "ssh-dss", "DSA", "dsa" },
                { "sk-ssh-ed25519@", "ED25519-SK", "ed25519_sk" },
                { "sk-ecdsa-sha2-", "ECDSA-SK", "ecdsa_sk" },
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strncmp(type, names[i].prefix, strlen(names[i].prefix)) == 0) {
                        *ret_label = names[i].label;
                        *ret_file = names[i].file;
                        return;
                }
        *ret_label = type;
        *ret_file = "*";
}

/* The keys of a scan reply: its "keys", or the one key at its top level
 * (a daemon from before several were scanned). */
static json_t *reply_keys(json_t *reply) {
        json_t *keys = json_object_get(reply, "keys");

        if (json_is_array(keys))
                return json_incref(keys);
        keys = json_array();
        if (keys && json_str(reply, "known_hosts_line"))
                json_array_append(keys, reply);
        return keys;
}

/* One scanned target: the lines on stdout; "NAME SHA256:... TYPE" and what
 * the files make of each key on stderr. */
static int print_scan(const Ctl *ctl, const Job *job, bool explain) {
        _cleanup_(json_decrefp) json_t *keys = reply_keys(job->reply);
        _cleanup_free_ char *name = table_escape(job->name);
        const char *known = json_str(job->reply, "known_hosts");
        const char *learned = json_str(job->reply, "learned_hosts");
        size_t i;
        json_t *k;

        if (!keys || !name)
                return ctl_oom(ctl);
        if (json_array_size(keys) == 0)
                return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s", ctl->socket);
        json_array_foreach(keys, i, k) {
                _cleanup_free_ char *line = table_escape(json_str(k, "known_hosts_line"));
                _cleanup_free_ char *fp = table_escape(json_str(k, "fingerprint"));
                _cleanup_free_ char *type = table_escape(json_str(k, "key_type"));
                _cleanup_free_ char *file = table_escape(json_str(k, "known_hosts_file") ?: known);
                const char *check = json_str(k, "known_hosts_check");

                if (!line || !fp || !type || !file)
                        return ctl_oom(ctl);
                if (!json_str(k, "known_hosts_line") || !json_str(k, "fingerprint") || !json_str(k, "key_type"))
                        return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s", ctl->socket);
                /* stdout holds only the lines, ready for a known_hosts file once checked */
                fprintf(ctl->out, "%s\n", line);
                fprintf(ctl->err, "%s %s %s\n", name, fp, type);
                if (streq_ptr(check, "ok"))
                        fprintf(ctl->err, "  already trusted (%s)\n", file);
                else if (streq_ptr(check, "mismatch"))
                        fprintf(ctl->err,
                                "  WARNING: %s holds a different key for %s. Find out why (reinstalled node, or\n"
                                "  someone in the path?) before you trust this one.\n",
                                file, name);
                else if (streq_ptr(check, "revoked"))
                        fprintf(ctl->err, "  WARNING: %s lists this key as @revoked.\n", file);
        }
        if (explain) {
                const char *label, *key_file;

                key_names(json_str(json_array_get(keys, 0), "key_type") ?: "", &label, &key_file);
                fprintf(ctl->err,
                        "Compare, over a channel you trust (console, configuration management, cloud\n"
                        "metadata), with the node's own keys:  ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub\n",
                        key_file);
                if (json_str(job->reply, "node"))
                        fprintf(ctl->err, "If they are equal:  sshtunctl hostkeys trust %s SHA256:...%s%s%s\n",
                                name, learned ? " (records it in " : "", learned ?: "", learned ? ")" : "");
                else
                        fprintf(ctl->err, "If they are equal, add the line to %s.\n", known ?: "known_hosts");
        }
        return 0;
}

/* -o json for a batch: {"results": [...]}, each the daemon's reply (or
 * {"error": ...}) with the name asked under 'key' and the HTTP status. */
static int print_results(const Ctl *ctl, const Job *jobs, size_t n, const char *key) {
        _cleanup_(json_decrefp) json_t *results = json_array(), *top = NULL;

        if (!results)
                return ctl_oom(ctl);
        for (size_t i = 0; i < n; i++) {
                json_t *o = jobs[i].reply ? json_deep_copy(jobs[i].reply) : json_object();

                if (!o || json_array_append_new(results, o) < 0 ||
                    json_object_set_new(o, key, json_string(jobs[i].name)) < 0 ||
                    json_object_set_new(o, "http_status", jobs[i].exit == 0 ? json_integer(jobs[i].status)
                                                                            : json_null()) < 0 ||
                    (!(jobs[i].exit == 0 && jobs[i].status == 200) &&
                     json_object_set_new(o, "error", json_string(job_error(jobs + i))) < 0))
                        return ctl_oom(ctl);
        }
        top = json_pack("{s:O}", "results", results);
        return top ? print_json(ctl, top) : ctl_oom(ctl);
}

/* The names of the nodes in 'state' (NULL: all), NULL-terminated. */
static int node_names(const Ctl *ctl, const char *state, char ***ret, size_t *ret_n) {
        _cleanup_(json_decrefp) json_t *v = NULL;
        _cleanup_strv_free_ char **names = NULL;
        size_t i, n = 0;
        json_t *node;
        int r;

        r = ctl_get_json(ctl, "/v1/nodes", &v);
        if (r != 0)
                return r;
        names = calloc(json_array_size(json_object_get(v, "nodes")) + 1, sizeof *names);
        if (!names)
                return ctl_oom(ctl);
        json_array_foreach(json_object_get(v, "nodes"), i, node) {
                const char *name = json_str(node, "name");

                if (!name || (state && !streq_ptr(json_str(node, "state"), state)))
                        continue;
                names[n] = strdup(name);
                if (!names[n++])
                        return ctl_oom(ctl);
        }
        *ret = TAKE_PTR(names);
        *ret_n = n;
        return 0;
}

static int hostkeys_scan(Ctl *ctl, char **args, int n_args, const HostkeysOptions *o) {
        _cleanup_strv_free_ char **listed = NULL;
        Job *jobs = NULL;
        size_t n = 0, n_listed = 0;
        int r = 0;

        if (o->from) {
                fprintf(stderr, "sshtunctl: hostkeys scan takes no --from\n");
                return EXIT_USAGE;
        }
        if ((o->unknown || o->all) && (n_args > 0 || (o->unknown && o->all))) {
                fprintf(stderr, "sshtunctl: hostkeys scan: --unknown and --all take no other target\n");
                return EXIT_USAGE;
        }
        if (!o->unknown && !o->all && n_args == 0) {
                fprintf(stderr, "sshtunctl: hostkeys scan: expected NODE, HOST[:PORT], --unknown or --all\n"
                                "Try 'sshtunctl --help'.\n");
                return EXIT_USAGE;
        }
        for (int i = 0; i < n_args; i++)
                if (strlen(args[i]) > CTL_NAME_MAX) {
                        fprintf(stderr, "sshtunctl: scan target too long\n");
                        return EXIT_USAGE;
                }
        if (o->unknown || o->all) {
                r = node_names(ctl, o->unknown ? "hostkey-unknown" : NULL, &listed, &n_listed);
                if (r != 0)
                        return r;
                if (n_listed == 0) {
                        fprintf(stderr, "sshtunctl: no node is in %s\n",
                                o->unknown ? "hostkey-unknown" : "the configuration");
                        return 0;
                }
        }

        n = listed ? n_listed : (size_t) n_args;
        jobs = calloc(n, sizeof *jobs);
        if (!jobs)
                r = ctl_oom(ctl);
        for (size_t i = 0; i < n && r == 0; i++) {
                if (job_init(jobs + i, listed ? listed[i] : args[i], "/v1/hostkeys/scan", "target", NULL) < 0)
                        r = ctl_oom(ctl);
        }
        if (r != 0) {
                jobs_free(jobs, n);
                return r;
        }

        jobs_run(ctl, jobs, n);
        if (ctl->output == OUTPUT_JSON && n == 1 && !listed && jobs[0].exit == 0 && jobs[0].status == 200)
                r = print_json(ctl, jobs[0].reply); /* one target: its reply, as ever */
        else if (ctl->output == OUTPUT_JSON)
                r = print_results(ctl, jobs, n, "target");
        else
                for (size_t i = 0; i < n; i++) {
                        if (jobs[i].exit == 0 && jobs[i].status == 200)
                                r = print_scan(ctl, jobs + i, n == 1);
                        else
                                r = ctl_fail(ctl, EXIT_FAILURE, "%s: %s", jobs[i].name, job_error(jobs + i));
                        if (r == EXIT_USAGE || r == EXIT_UNREACHABLE)
                                break;
                }
        if (r == 0 || r == EXIT_FAILURE)
                r = jobs_exit(jobs, n);
        jobs_free(jobs, n);
        return r;
}

/* ---- hostkeys trust ------------------------------------------------------------ */

typedef struct TrustLine {
        char *node;
        char *fingerprints[TRUST_FINGERPRINTS_MAX];
        size_t n_fingerprints;
} TrustLine;

static void trust_lines_free(TrustLine *lines, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(lines[i].node);
                for (size_t j = 0; j < lines[i].n_fingerprints; j++)
                        free(lines[i].fingerprints[j]);
        }
        free(lines);
}

/* Words a line may carry besides fingerprints, as `hostkeys scan` and
 * `ssh-keygen -l` print them: key types, "(ED25519)". */
static bool is_key_type_word(const char *w) {
        static const char *const prefixes[] = { "ssh-", "ecdsa-", "sk-", "rsa-", "(" };

        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strncmp(w, prefixes[i], strlen(prefixes[i])) == 0)
                        return true;
        return false;
}

/* Adds fingerprint 'fp' to the line for 'node' (one line per node). */
static int trust_lines_add(TrustLine **lines, size_t *n, const char *node, const char *fp, const char *where) {
        TrustLine *l = NULL;

        for (size_t i = 0; i < *n && !l; i++)
                if (streq((*lines)[i].node, node))
                        l = *lines + i;
        if (!l) {
                TrustLine *p = reallocarray(*lines, *n + 1, sizeof *p);
                if (!p)
                        return -ENOMEM;
                *lines = p;
                l = p + (*n)++;
                *l = (TrustLine) { .node = strdup(node) };
                if (!l->node)
                        return -ENOMEM;
        }
        for (size_t j = 0; j < l->n_fingerprints; j++)
                if (streq(l->fingerprints[j], fp))
                        return 0;
        if (l->n_fingerprints == TRUST_FINGERPRINTS_MAX) {
                fprintf(stderr, "sshtunctl: %s: more than %d fingerprints for node %s\n", where,
                        TRUST_FINGERPRINTS_MAX, node);
                return -EINVAL;
        }
        l->fingerprints[l->n_fingerprints] = strdup(fp);
        return l->fingerprints[l->n_fingerprints++] ? 0 : -ENOMEM;
}

/* One line "NODE SHA256:FP [SHA256:FP...] [TYPE...]" (blank and # lines
 * skipped): 0, or -EINVAL after saying what is wrong at 'where'. */
static int trust_parse_words(TrustLine **lines, size_t *n, char **words, size_t n_words, const char *where) {
        size_t fps = 0;
        int r;

        if (n_words == 0)
                return 0;
        if (strlen(words[0]) > CTL_NAME_MAX || fingerprint_is_valid(words[0])) {
                fprintf(stderr, "sshtunctl: %s: expected a node name first, then its fingerprints\n", where);
                return -EINVAL;
        }
        for (size_t i = 1; i < n_words; i++) {
                if (is_key_type_word(words[i]))
                        continue;
                if (!fingerprint_is_valid(words[i])) {
                        fprintf(stderr,
                                "sshtunctl: %s: not a fingerprint: %s (SHA256: and 43 base64 characters, as "
                                "ssh-keygen -lf prints it)\n", where, words[i]);
                        return -EINVAL;
                }
                r = trust_lines_add(lines, n, words[0], words[i], where);
                if (r < 0)
                        return r;
                fps++;
        }
        if (fps == 0) {
                fprintf(stderr, "sshtunctl: %s: no fingerprint for node %s\n", where, words[0]);
                return -EINVAL;
        }
        return 0;
}

/* --from FILE|-: every line read and checked before anything is sent. */
static int trust_read_file(const char *path, TrustLine **lines, size_t *n) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        unsigned lineno = 0, bad = 0;
        FILE *f = streq(path, "-") ? stdin : fopen(path, "re");

        if (!f) {
                fprintf(stderr, "sshtunctl: %s: %m\n", path);
                return -errno;
        }
        while (getline(&buf, &size, f) >= 0) {
                char *words[TRUST_FINGERPRINTS_MAX * 2 + 2], *save = NULL, where[300];
                size_t n_words = 0;
                int r;

                lineno++;
                buf[strcspn(buf, "#\r\n")] = 0;
                snprintf(where, sizeof where, "%s:%u", streq(path, "-") ? "(stdin)" : path, lineno);
                for (char *w = strtok_r(buf, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                        if (n_words == ELEMENTSOF(words)) {
                                fprintf(stderr, "sshtunctl: %s: too many words\n", where);
                                n_words = 0;
                                bad++;
                                break;
                        }
                        words[n_words++] = w;
                }
                r = trust_parse_words(lines, n, words, n_words, where);
                if (r == -ENOMEM) {
                        if (f != stdin)
                                fclose(f);
                        return r;
                }
                if (r < 0)
                        bad++;
        }
        if (ferror(f)) {
                fprintf(stderr, "sshtunctl: %s: read error\n", path);
                bad++;
        }
        if (f != stdin)
                fclose(f);
        if (bad > 0) {
                fprintf(stderr, "sshtunctl: %u bad line%s: nothing was sent\n", bad, bad == 1 ? "" : "s");
                return -EINVAL;
        }
        return 0;
}

/* Run the jobs of one node each, print each reply with 'print' (errors on
 * standard error) or all as JSON, free them, and return the exit status. */
static int jobs_run_and_print(const Ctl *ctl, Job *jobs, size_t n, void (*print)(const Ctl *, const Job *)) {
        int r = 0;

        jobs_run(ctl, jobs, n);
        if (ctl->output == OUTPUT_JSON)
                r = print_results(ctl, jobs, n, "node");
        else
                for (size_t i = 0; i < n; i++) {
                        if (jobs[i].exit == 0 && jobs[i].status == 200)
                                print(ctl, jobs + i);
                        else
                                (void) ctl_fail(ctl, EXIT_FAILURE, "%s: %s", jobs[i].name, job_error(jobs + i));
                }
        if (r == 0)
                r = jobs_exit(jobs, n);
        jobs_free(jobs, n);
        return r;
}

/* One node's outcome: "NODE: trusted TYPE SHA256:... in FILE". */
static void print_trust(const Ctl *ctl, const Job *job) {
        _cleanup_free_ char *name = table_escape(job->name);
        json_t *trusted = json_object_get(job->reply, "trusted"), *k;
        bool changed = json_is_true(json_object_get(job->reply, "changed"));
        size_t i;

        json_array_foreach(trusted, i, k) {
                _cleanup_free_ char *type = table_escape(json_str(k, "key_type"));
                _cleanup_free_ char *fp = table_escape(json_str(k, "fingerprint"));
                _cleanup_free_ char *file = table_escape(json_str(job->reply, "learned_hosts"));

                fprintf(ctl->out, "%s: %s %s %s%s%s\n", strna(name),
                        json_is_true(json_object_get(k, "known")) && !changed ? "already trusted" : "trusted",
                        strna(type), strna(fp), changed ? ", recorded in " : "", changed ? strna(file) : "");
        }
}

static int hostkeys_trust(Ctl *ctl, char **args, int n_args, const HostkeysOptions *o) {
        TrustLine *lines = NULL;
        Job *jobs = NULL;
        size_t n = 0;
        int r = 0;

        if (o->unknown || o->all) {
                fprintf(stderr, "sshtunctl: hostkeys trust takes no --unknown or --all: name each node with "
                                "its fingerprint\n");
                return EXIT_USAGE;
        }
        if (o->from) {
                if (n_args != 0) {
                        fprintf(stderr, "sshtunctl: hostkeys trust --from FILE takes nothing else\n");
                        return EXIT_USAGE;
                }
                r = trust_read_file(o->from, &lines, &n);
        } else if (n_args >= 2)
                r = trust_parse_words(&lines, &n, args, (size_t) n_args, "hostkeys trust");
        else {
                fprintf(stderr, "sshtunctl: hostkeys trust: expected NODE SHA256:FP... or --from FILE\n"
                                "Try 'sshtunctl --help'.\n");
                return EXIT_USAGE;
        }
        if (r == -ENOMEM) {
                trust_lines_free(lines, n);
                return ctl_oom(ctl);
        }
        if (r < 0) {
                trust_lines_free(lines, n);
                return EXIT_USAGE;
        }
        if (n == 0) {
                fprintf(stderr, "sshtunctl: hostkeys trust: no node given\n");
                trust_lines_free(lines, n);
                return EXIT_USAGE;
        }

        jobs = calloc(n, sizeof *jobs);
        if (!jobs)
                r = ctl_oom(ctl);
        for (size_t i = 0; i < n && r == 0; i++) {
                _cleanup_free_ char *fps = NULL;
                size_t len = 0;
                FILE *f = open_memstream(&fps, &len);

                if (!f) {
                        r = ctl_oom(ctl);
                        break;
                }
                for (size_t j = 0; j < lines[i].n_fingerprints; j++) {
                        _cleanup_free_ char *e = path_escape(lines[i].fingerprints[j]);
                        fprintf(f, "&fingerprint=%s", strna(e));
                }
                if (fclose(f) != 0 || job_init(jobs + i, lines[i].node, "/v1/hostkeys/trust", "node", fps) < 0)
                        r = ctl_oom(ctl);
        }
        trust_lines_free(lines, n);
        if (r != 0) {
                jobs_free(jobs, n);
                return r;
        }

        return jobs_run_and_print(ctl, jobs, n, print_trust);
}

/* ---- hostkeys forget ---------------------------------------------------------- */

static void print_forget(const Ctl *ctl, const Job *job) {
        _cleanup_free_ char *name = table_escape(job->name);
        _cleanup_free_ char *file = table_escape(json_str(job->reply, "learned_hosts"));
        json_t *k;
        size_t i;

        if (json_is_true(json_object_get(job->reply, "changed")))
                fprintf(ctl->out, "%s: forgotten (removed from %s), reconnecting\n", strna(name), strna(file));
        else
                fprintf(ctl->out, "%s: no key of it in %s, reconnecting\n", strna(name), strna(file));
        /* what still decides about the node: the operator's own file */
        json_array_foreach(json_object_get(job->reply, "keys"), i, k) {
                _cleanup_free_ char *type = table_escape(json_str(k, "key_type"));
                _cleanup_free_ char *fp = table_escape(json_str(k, "fingerprint"));
                _cleanup_free_ char *path = table_escape(json_str(k, "file"));

                fprintf(ctl->out, "%s: still %s %s %s in %s:%" JSON_INTEGER_FORMAT "\n", strna(name),
                        json_is_true(json_object_get(k, "revoked")) ? "revoked:" : "known:", strna(type), strna(fp),
                        strna(path), json_int(k, "line"));
        }
}

static int hostkeys_forget(Ctl *ctl, char **args, int n_args, const HostkeysOptions *o) {
        Job *jobs;
        int r = 0;

        if (o->unknown || o->all || o->from || n_args < 1) {
                fprintf(stderr, "sshtunctl: hostkeys forget: expected NODE..., no options\n"
                                "Try 'sshtunctl --help'.\n");
                return EXIT_USAGE;
        }
        jobs = calloc((size_t) n_args, sizeof *jobs);
        if (!jobs)
                return ctl_oom(ctl);
        for (int i = 0; i < n_args && r == 0; i++)
                if (job_init(jobs + i, args[i], "/v1/hostkeys/forget", "node", NULL) < 0)
                        r = ctl_oom(ctl);
        if (r != 0) {
                jobs_free(jobs, (size_t) n_args);
                return r;
        }
        return jobs_run_and_print(ctl, jobs, (size_t) n_args, print_forget);
}

/* ---- hostkeys list ------------------------------------------------------------ */

static int hostkeys_list(Ctl *ctl, char **args, int n_args, const HostkeysOptions *o) {
        static const char *const headers[] = { "NODE", "STATE", "TYPE", "FINGERPRINT", "FILE" };
        _cleanup_(json_decrefp) json_t *v = NULL;
        _cleanup_free_ char *target = NULL, *text = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        json_t *node;
        size_t i;
        int r;

        if (n_args > 1 || o->unknown || o->all || o->from) {
                fprintf(stderr, "sshtunctl: hostkeys list: at most one node name, no options\n");
                return EXIT_USAGE;
        }
        if (n_args == 1) {
                _cleanup_free_ char *escaped = path_escape(args[0]);
                if (!escaped || asprintf(&target, "/v1/hostkeys?node=%s", escaped) < 0)
                        return ctl_oom(ctl);
        }
        r = ctl_get_json(ctl, target ?: "/v1/hostkeys", &v);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(ctl, v);

        if (table_new(headers, ELEMENTSOF(headers), &t) < 0)
                return ctl_oom(ctl);
        table_set_header(t, !ctl->no_headers);
        json_array_foreach(json_object_get(v, "nodes"), i, node) {
                const char *name = json_str(node, "node"), *state = json_str(node, "state");
                const char *seen = json_str(node, "host_key");
                bool seen_listed = false;
                size_t j;
                json_t *k;

                if (ctl->output == OUTPUT_NAME) {
                        _cleanup_free_ char *shown = table_escape(name);
                        fprintf(ctl->out, "%s\n", strna(shown));
                        continue;
                }
                json_array_foreach(json_object_get(node, "keys"), j, k) {
                        _cleanup_free_ char *file = NULL;
                        json_int_t line = json_int(k, "line");
                        bool revoked = json_is_true(json_object_get(k, "revoked"));

                        if (streq_ptr(json_str(k, "fingerprint"), seen))
                                seen_listed = true;
                        if (line > 0 ? asprintf(&file, "%s:%" JSON_INTEGER_FORMAT "%s", strna(json_str(k, "file")),
                                                line, revoked ? " @revoked" : "") < 0
                                     : asprintf(&file, "%s (not yet written)", strna(json_str(k, "file"))) < 0)
                                return ctl_oom(ctl);
                        if (table_add_cell(t, name, TABLE_COLOR_NONE) < 0 ||
                            table_add_cell(t, state, TABLE_COLOR_NONE) < 0 ||
                            table_add_cell(t, json_str(k, "key_type"), TABLE_COLOR_NONE) < 0 ||
                            table_add_cell(t, json_str(k, "fingerprint"), revoked ? TABLE_COLOR_RED : TABLE_COLOR_NONE) < 0 ||
                            table_add_cell(t, file, revoked ? TABLE_COLOR_RED : TABLE_COLOR_NONE) < 0)
                                return ctl_oom(ctl);
                }
                /* what the node presents, when no file holds it */
                if (!seen_listed && (seen || json_array_size(json_object_get(node, "keys")) == 0))
                        if (table_add_cell(t, name, TABLE_COLOR_NONE) < 0 ||
                            table_add_cell(t, state, TABLE_COLOR_NONE) < 0 ||
                            table_add_cell(t, NULL, TABLE_COLOR_NONE) < 0 ||
                            table_add_cell(t, seen, TABLE_COLOR_YELLOW) < 0 ||
                            table_add_cell(t, seen ? "(presented; in no file)" : "(no key in any file)",
                                           TABLE_COLOR_YELLOW) < 0)
                                return ctl_oom(ctl);
        }
        if (ctl->output == OUTPUT_NAME)
                return 0;
        if (table_n_rows(t) == 0) {
                fprintf(ctl->err, "No nodes configured.\n");
                return 0;
        }
        if (table_format(t, ctl->color, &text) < 0)
                return ctl_oom(ctl);
        fputs(text, ctl->out);
        return 0;
}

int cmd_hostkeys(Ctl *ctl, char **args, int n_args, const HostkeysOptions *o) {
        if (n_args >= 1 && streq(args[0], "scan"))
                return hostkeys_scan(ctl, args + 1, n_args - 1, o);
        if (n_args >= 1 && streq(args[0], "trust"))
                return hostkeys_trust(ctl, args + 1, n_args - 1, o);
        if (n_args >= 1 && streq(args[0], "list"))
                return hostkeys_list(ctl, args + 1, n_args - 1, o);
        if (n_args >= 1 && streq(args[0], "forget"))
                return hostkeys_forget(ctl, args + 1, n_args - 1, o);
        fprintf(stderr, "sshtunctl: hostkeys: expected scan, trust, list or forget\nTry 'sshtunctl --help'.\n");
        return EXIT_USAGE;
}
