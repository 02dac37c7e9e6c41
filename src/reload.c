/* Reload: apply a new configuration to the running daemon, changing only
 * what changed. Nodes are matched by name; listeners by address; a file
 * that does not load changes nothing. Also the watch on nodes_file (the
 * host key files watch themselves: trust.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "acceptor.h"
#include "admin.h"
#include "daemon-internal.h"
#include "filewatch.h"
#include "forward.h"
#include "log.h"
#include "migration.h"
#include "node.h"
#include "proxy.h"
#include "router.h"

/* How often retiring nodes are looked at, and how long changes to a
 * watched file's directory may keep coming before it is read. */
#define RETIRE_CHECK_USEC (250 * USEC_PER_MSEC)
/* Nodes closed per turn of the loop (about 60 us each): a nodes_file cut
 * short by mistake retires thousands at once, which took a quarter of a
 * second of the loop in one go. The rest follow a moment later. */
#define RETIRE_BATCH 64
#define RETIRE_NEXT_BATCH_USEC (5 * USEC_PER_MSEC)
#define WATCH_DEBOUNCE_USEC (200 * USEC_PER_MSEC)

int daemon_rebuild_router(Daemon *d) {
        Router *r;
        int e;

        e = router_new(d->config->proxy.allow, d->config->proxy.n_allow, &r);
        if (e < 0)
                return e;
        for (size_t i = 0; i < d->n_nodes; i++) {
                const ConfigNode *cn = node_config(d->nodes[i]);
                e = router_add_node(r, cn->name, cn->address, cn->hostnames,
                                    cn->has_pod_cidr ? &cn->pod_cidr : NULL, d->nodes[i]);
                if (e < 0) {
                        router_free(r);
                        return e;
                }
        }
        router_free(d->router);
        d->router = r;
        return 0;
}

/* --- nodes removed by a reload: drain, then go ---------------------------- */

static int on_retire_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;
        size_t kept = 0, closed = 0;

        for (size_t i = 0; i < d->n_retiring; i++) {
                Node *n = d->retiring[i];
                if (closed >= RETIRE_BATCH || (node_streams(n) > 0 && usec < node_retire_deadline(n))) {
                        d->retiring[kept++] = n;
                        continue;
                }
                closed++;
                if (node_streams(n) > 0)
                        log_node(LOG_NOTICE, node_name(n), "removed: drain_timeout reached, closing %u streams",
                                 node_streams(n));
                else
                        log_node(LOG_INFO, node_name(n), "removed: its last stream finished");
                node_disconnect(n, "node removed from the configuration");
                node_free(n);
        }
        d->n_retiring = kept;
        if (kept == 0) {
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        (void) sd_event_source_set_time(s, usec + (closed >= RETIRE_BATCH ? RETIRE_NEXT_BATCH_USEC : RETIRE_CHECK_USEC));
        return 0;
}

static int daemon_retire_node(Daemon *d, Node *n) {
        int r;

        if (d->n_retiring == d->n_retiring_allocated) {
                size_t m = MAX(d->n_retiring_allocated * 2, (size_t) 16);
                Node **v = reallocarray(d->retiring, m, sizeof(Node *));
                if (!v)
                        return -ENOMEM;
                d->retiring = v;
                d->n_retiring_allocated = m;
        }
        d->retiring[d->n_retiring++] = n;
        node_retire(n, now_usec(CLOCK_MONOTONIC) + sec_to_usec(d->config->drain_timeout));
        log_node(LOG_INFO, node_name(n), "removed from the configuration: draining %u streams", node_streams(n));

        if (!d->retire_timer) {
                r = sd_event_add_time_relative(d->event, &d->retire_timer, CLOCK_MONOTONIC, RETIRE_CHECK_USEC,
                                               50 * USEC_PER_MSEC, on_retire_timer, d);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(d->retire_timer, "retire-nodes");
        } else
                (void) sd_event_source_set_time_relative(d->retire_timer, RETIRE_CHECK_USEC);
        return sd_event_source_set_enabled(d->retire_timer, SD_EVENT_ON);
}

void daemon_free_retiring(Daemon *d) {
        for (size_t i = 0; i < d->n_retiring; i++)
                node_free(d->retiring[i]);
        free(d->retiring);
        d->retiring = NULL;
        d->n_retiring = d->n_retiring_allocated = 0;
        d->retire_timer = sd_event_source_disable_unref(d->retire_timer);
}

/* --- the node list ---------------------------------------------------------- */

typedef struct NameIndex {
        const char *name;
        size_t index;
} NameIndex;

static int name_index_compare(const void *a, const void *b) {
        return strcmp(((const NameIndex *) a)->name, ((const NameIndex *) b)->name);
}

/* The running node called 'name', by binary search of the sorted index. */
static ssize_t name_index_find(const NameIndex *v, size_t n, const char *name) {
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(name, v[mid].name);
                if (c == 0)
                        return (ssize_t) v[mid].index;
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return -1;
}

/* Make the daemon's nodes those of 'cfg' (already d->config, or the nodes-
 * only source): new ones connect, removed ones drain, changed endpoints
 * reconnect, the rest keep their sessions and streams. */
static int daemon_apply_nodes(Daemon *d, const ConfigNode *want, size_t n_want, unsigned *ret_added,
                              unsigned *ret_removed, unsigned *ret_moved) {
        _cleanup_free_ NameIndex *by_name = NULL;
        Node **next;
        bool *kept;
        unsigned added = 0, removed = 0, moved = 0;
        int r = 0;

        next = calloc(MAX(n_want, (size_t) 1), sizeof(Node *));
        kept = calloc(MAX(d->n_nodes, (size_t) 1), sizeof(bool));
        by_name = calloc(MAX(d->n_nodes, (size_t) 1), sizeof(NameIndex));
        if (!next || !kept || !by_name) {
                free(next);
                free(kept);
                return -ENOMEM;
        }
        /* matched by name through a sorted index: comparing every pair took
         * 12.5 million steps of the loop at 5,000 nodes. All of them before
         * any update: node_update() frees the name the index points to. */
        for (size_t j = 0; j < d->n_nodes; j++)
                by_name[j] = (NameIndex) { node_name(d->nodes[j]), j };
        qsort(by_name, d->n_nodes, sizeof(NameIndex), name_index_compare);
        for (size_t i = 0; i < n_want; i++) {
                ssize_t j = name_index_find(by_name, d->n_nodes, want[i].name);

                if (j >= 0 && !kept[j]) {
                        kept[j] = true;
                        next[i] = d->nodes[j];
                }
        }

        for (size_t i = 0; i < n_want; i++) {
                if (next[i]) {
                        r = node_update(next[i], &want[i]);
                        if (r < 0)
                                log_node(LOG_ERR, want[i].name, "cannot apply the new settings: %s", strerror(-r));
                        else if (r > 0)
                                moved++;
                        continue;
                }
                r = node_new(&d->node_env, &want[i], migration_pool_size(d->config, want[i].name), &next[i]);
                if (r < 0) {
                        log_node(LOG_ERR, want[i].name, "cannot add the node: %s", strerror(-r));
                        continue;
                }
                added++;
        }

        /* gone from the file: out of the routing table now, closed once
         * their streams are done */
        for (size_t j = 0; j < d->n_nodes; j++)
                if (!kept[j]) {
                        if (daemon_retire_node(d, d->nodes[j]) < 0) {
                                node_disconnect(d->nodes[j], "node removed from the configuration");
                                node_free(d->nodes[j]);
                        }
                        removed++;
                }

        free(d->nodes);
        free(kept);
        /* nodes that failed to build leave holes: squeeze them out */
        d->n_nodes = 0;
        for (size_t i = 0; i < n_want; i++)
                if (next[i])
                        next[d->n_nodes++] = next[i];
        d->nodes = next;

        r = daemon_rebuild_router(d);
        if (r < 0)
                log_error_errno(r, "Cannot rebuild the routing table: %m");
        for (size_t i = 0; i < d->n_nodes; i++)
                if (!node_started(d->nodes[i]))
                        node_start(d->nodes[i]);

        *ret_added = added;
        *ret_removed = removed;
        *ret_moved = moved;
        return 0;
}

/* --- the whole file ---------------------------------------------------------- */

static int reload_identity(Daemon *d, const Config *old, char **ret_error) {
        const char *path = d->config->ssh.identity;
        _cleanup_free_ char *why = NULL;
        Identity *id = NULL;
        int r;

        r = identity_load(path, &id, &why);
        if (r >= 0) {
                identity_free(d->identity);
                d->identity = id;
                d->sessions.identity = id;
                return 0;
        }
        if (!streq(path, old->ssh.identity)) {
                /* a new key that cannot be used: the reload fails */
                if (asprintf(ret_error, "ssh.identity %s: %s", path, strna(why)) < 0)
                        *ret_error = NULL;
                return r;
        }
        /* the same file, unreadable now (privileges were dropped): keep the
         * key read at start */
        log_debug("Keeping the identity read at start: %s", strna(why));
        return 0;
}

static int on_admin_retired(sd_event_source *s, void *userdata) {
        admin_free(userdata);
        sd_event_source_disable_unref(s);
        return 0;
}

static void daemon_retire_admin(Daemon *d, Admin *a) {
        sd_event_source *s = NULL;

        if (!a)
                return;
        /* the socket and its path go before the reload's reply, so that
         * whoever asked for the reload finds them gone; the connections
         * on it, one of which may be running this, at the next turn */
        admin_stop_listening(a);
        if (sd_event_add_defer(d->event, &s, on_admin_retired, a) < 0)
                admin_free(a); /* no way to wait: now, then */
        else
                (void) sd_event_source_set_description(s, "admin-retired");
}

/* Everything that binds, in an order that can still be undone when a
 * later step fails. */
static int reload_listeners(Daemon *d, const Config *old, char **ret_error) {
        int r;

        if (d->proxy) {
                r = proxy_reload(d->proxy, &old->proxy);
                if (r < 0) {
                        if (asprintf(ret_error, "proxy.listen: cannot bind a new address: %s", strerror(-r)) < 0)
                                *ret_error = NULL;
                        return r;
                }
        }
        if (d->forwards) {
                r = forwards_reload(d->forwards);
                if (r < 0) {
                        if (asprintf(ret_error, "forwards: cannot bind a new address: %s", strerror(-r)) < 0)
                                *ret_error = NULL;
                        return r;
                }
        }
        if (!streq(d->config->admin.socket, old->admin.socket)) {
                ListenAddress where = { .kind = LISTEN_UNIX, .path = d->config->admin.socket };
                Admin *a;
                r = admin_new(&d->admin_env, &where,
                              &(AdminParams) { .access = ADMIN_ACCESS_FULL, .mode = 0600, .gid = (gid_t) -1,
                                               .activated_fd = -1 },
                              &a);
                if (r < 0) {
                        if (asprintf(ret_error, "admin.socket %s: %s", d->config->admin.socket, strerror(-r)) < 0)
                                *ret_error = NULL;
                        return r;
                }
                /* the request being answered may be on the old socket: it
                 * goes on the next turn of the loop, not under our feet */
                daemon_retire_admin(d, d->admin);
                d->admin = a;
        }
        if (streq_ptr(d->config->admin.readonly_socket, old->admin.readonly_socket) && d->readonly_admin &&
            !admin_adopted(d->readonly_admin) &&
            (d->config->admin.readonly_socket_mode != old->admin.readonly_socket_mode ||
             !streq_ptr(d->config->admin.readonly_socket_group, old->admin.readonly_socket_group))) {
                /* the same socket: new permissions in place, connections kept */
                const ConfigAdmin *a = &d->config->admin;
                gid_t gid = (gid_t) -1;

                if (a->readonly_socket_group && acceptor_group_lookup(a->readonly_socket_group, &gid) < 0) {
                        if (asprintf(ret_error, "admin.readonly_socket_group: no group \"%s\"",
                                     a->readonly_socket_group) < 0)
                                *ret_error = NULL;
                        return -ENOENT;
                }
                if ((gid != (gid_t) -1 && chown(a->readonly_socket, (uid_t) -1, gid) < 0) ||
                    chmod(a->readonly_socket, a->readonly_socket_mode) < 0)
                        log_warning_errno(errno, "admin.readonly_socket %s: cannot change its group or mode: %m",
                                          a->readonly_socket);
        } else if (!streq_ptr(d->config->admin.readonly_socket, old->admin.readonly_socket)) {
                Admin *ro = NULL;
                r = daemon_open_readonly_admin(d, NULL, &ro);
                if (r < 0) {
                        if (asprintf(ret_error, "admin.readonly_socket %s: %s", strna(d->config->admin.readonly_socket),
                                     strerror(-r)) < 0)
                                *ret_error = NULL;
                        return r;
                }
                daemon_retire_admin(d, d->readonly_admin);
                d->readonly_admin = ro;
        }
        if (d->config->admin.has_metrics_listen != old->admin.has_metrics_listen ||
            (d->config->admin.has_metrics_listen &&
             !listen_address_equal(&d->config->admin.metrics_listen, &old->admin.metrics_listen))) {
                Admin *m = NULL;
                r = daemon_open_metrics_listener(d, &m);
                if (r < 0) {
                        if (asprintf(ret_error, "admin.metrics_listen: %s", strerror(-r)) < 0)
                                *ret_error = NULL;
                        return r;
                }
                daemon_retire_admin(d, d->metrics_listener);
                d->metrics_listener = m;
        }
        return 0;
}

/* The environments the nodes and sessions read point into the
 * configuration: at the one in force. */
static void daemon_point_envs(Daemon *d) {
        d->sessions.ssh = &d->config->ssh;
        d->sessions.open_timeout = d->config->proxy.open_timeout;
        d->node_env.probe = &d->config->probe;
}

int daemon_reload(Daemon *d, bool nodes_only, char **ret_error) {
        _cleanup_free_ char *error = NULL;
        Config *new = NULL, *old;
        unsigned added = 0, removed = 0, moved = 0;
        usec_t t0 = now_usec(CLOCK_MONOTONIC), t_read;
        bool probe_changed;
        int r;

        (void) sd_notifyf(0, "RELOADING=1\nSTATUS=Reloading %s", d->config->path);
        log_info("Reloading %s%s", d->config->path, nodes_only ? " (node list)" : "");

        r = config_load_for_reload(d->config->path, &new, &error);
        t_read = now_usec(CLOCK_MONOTONIC);
        if (r < 0)
                goto fail;

        if (nodes_only) {
                /* only the node list changes: the rest waits for a reload */
                r = daemon_apply_nodes(d, new->nodes, new->n_nodes, &added, &removed, &moved);
                if (r < 0)
                        goto fail;
                /* keep the config's node list in step for the next diff */
                SWAP_TWO(d->config->nodes, new->nodes);
                SWAP_TWO(d->config->n_nodes, new->n_nodes);
                SWAP_TWO(d->config->files, new->files);
                d->config->nodes_file_missing = new->nodes_file_missing;
                config_free(new);
                daemon_update_routes(d);
                goto done;
        }

        old = d->config;
        d->config = new;
        daemon_point_envs(d);

        r = reload_identity(d, old, &error);
        if (r < 0)
                goto undo;
        r = reload_listeners(d, old, &error);
        if (r < 0)
                goto undo;

        if (!streq_ptr(new->user, old->user))
                log_warning("user changed: privileges are dropped at start only; restart sshtund to apply");
        if (!d->log_override)
                log_setup(new->log.target, new->log.level);
        gate_set_limit(d->handshakes, new->ssh.max_handshakes);
        /* the files may have changed too, whatever their names */
        if (trust_set_files(d->trust, new->ssh.known_hosts, new->ssh.learned_hosts) < 0)
                log_warning("The host keys read before stay in force");
        probe_changed = !config_probe_equal(&new->probe, &old->probe);
        if (probe_changed)
                (void) daemon_load_probe_tls(d);

        /* nodes last: the listeners are settled and cannot fail any more */
        r = daemon_apply_nodes(d, new->nodes, new->n_nodes, &added, &removed, &moved);
        if (r < 0) {
                log_error_errno(r, "Cannot apply the node list: %m");
                r = 0;
        }
        if (!config_konnectivity_equal(&new->konnectivity, &old->konnectivity)) {
                if (daemon_setup_konnectivity(d) < 0)
                        log_error("konnectivity: the upstream could not be set up: its nodes go over SSH");
        } else
                daemon_update_routes(d);
        for (size_t i = 0; i < d->n_nodes; i++) {
                Node *n = d->nodes[i];

                (void) node_set_pool_size(n, migration_pool_size(new, node_name(n)));
                if (probe_changed)
                        (void) node_reset_probe(n);
        }
        if (!streq_ptr(new->nodes_file, old->nodes_file))
                (void) daemon_watch_nodes_file(d);

        config_free(old);
done:
        d->reload_ok = true;
        d->reload_ok_at = now_usec(CLOCK_REALTIME);
        /* the loop did nothing else meanwhile: at 5,000 nodes this is what a
         * reload costs every stream and node */
        log_info("Reloaded: %u nodes added, %u removed, %u moved; %zu nodes (in %.1f ms: read %.1f, apply %.1f)",
                 added, removed, moved, d->n_nodes, (double) (now_usec(CLOCK_MONOTONIC) - t0) / USEC_PER_MSEC,
                 (double) (t_read - t0) / USEC_PER_MSEC, (double) (now_usec(CLOCK_MONOTONIC) - t_read) / USEC_PER_MSEC);
        (void) sd_notify(0, "READY=1");
        daemon_notify_status(d);
        return 0;

undo:
        /* a step that binds failed: everything goes back */
        d->config = old;
        daemon_point_envs(d);
        if (d->proxy)
                (void) proxy_reload(d->proxy, &new->proxy);
        if (d->forwards)
                (void) forwards_reload(d->forwards);
        config_free(new);
fail:
        d->reload_ok = false;
        log_error("Reload failed, the running configuration stays: %s", strna(error));
        (void) sd_notifyf(0, "READY=1\nSTATUS=Reload failed: %s", strna(error));
        if (ret_error)
                *ret_error = TAKE_PTR(error);
        return r < 0 ? r : -EINVAL;
}

/* --- nodes_file: re-read when it changes ------------------------------------ */

static void on_nodes_file_changed(FileWatch *w, const char *path, void *userdata) {
        (void) daemon_reload(userdata, true, NULL);
}

int daemon_watch_nodes_file(Daemon *d) {
        const Config *c = d->config;
        int r;

        d->nodes_watch = filewatch_free(d->nodes_watch);
        if (!c->nodes_file)
                return 0;
        if (c->nodes_file_missing)
                log_warning("nodes_file %s does not exist yet: no nodes from it until it does", c->nodes_file);
        r = filewatch_new(d->event, c->nodes_file, WATCH_DEBOUNCE_USEC, on_nodes_file_changed, d, &d->nodes_watch);
        if (r < 0)
                return log_warning_errno(r, "Cannot watch %s: %m; reload to pick up changes", c->nodes_file);
        return 0;
}
