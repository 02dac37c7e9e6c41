/* Reload: apply a new configuration to the running daemon, changing only
 * what changed. Nodes are matched by name; listeners by address; a file
 * that does not load changes nothing. Also the nodes_file watch. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "admin.h"
#include "daemon-internal.h"
#include "forward.h"
#include "log.h"
#include "migration.h"
#include "node.h"
#include "proxy.h"
#include "router.h"

/* How often retiring nodes are looked at, and how long changes to the
 * nodes_file directory may keep coming before it is read. */
#define RETIRE_CHECK_USEC (250 * USEC_PER_MSEC)
#define NODES_DEBOUNCE_USEC (200 * USEC_PER_MSEC)

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
        size_t kept = 0;

        for (size_t i = 0; i < d->n_retiring; i++) {
                Node *n = d->retiring[i];
                if (node_streams(n) > 0 && usec < node_retire_deadline(n)) {
                        d->retiring[kept++] = n;
                        continue;
                }
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
        (void) sd_event_source_set_time(s, usec + RETIRE_CHECK_USEC);
        return 0;
}

static int daemon_retire_node(Daemon *d, Node *n) {
        Node **v = realloc(d->retiring, (d->n_retiring + 1) * sizeof(Node *));
        int r;

        if (!v)
                return -ENOMEM;
        d->retiring = v;
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
        d->n_retiring = 0;
        d->retire_timer = sd_event_source_disable_unref(d->retire_timer);
}

/* --- the node list ---------------------------------------------------------- */

/* Make the daemon's nodes those of 'cfg' (already d->config, or the nodes-
 * only source): new ones connect, removed ones drain, changed endpoints
 * reconnect, the rest keep their sessions and streams. */
static int daemon_apply_nodes(Daemon *d, const ConfigNode *want, size_t n_want, unsigned *ret_added,
                              unsigned *ret_removed, unsigned *ret_moved) {
        Node **next;
        bool *kept;
        unsigned added = 0, removed = 0, moved = 0;
        int r = 0;

        next = calloc(MAX(n_want, (size_t) 1), sizeof(Node *));
        kept = calloc(MAX(d->n_nodes, (size_t) 1), sizeof(bool));
        if (!next || !kept) {
                free(next);
                free(kept);
                return -ENOMEM;
        }

        for (size_t i = 0; i < n_want; i++) {
                for (size_t j = 0; j < d->n_nodes; j++)
                        if (!kept[j] && streq(node_name(d->nodes[j]), want[i].name)) {
                                kept[j] = true;
                                next[i] = d->nodes[j];
                                break;
                        }
                if (next[i]) {
                        r = node_update(next[i], &want[i]);
                        if (r < 0)
                                log_node(LOG_ERR, want[i].name, "cannot apply the new settings: %s", strerror(-r));
                        else if (r > 0)
                                moved++;
                        continue;
                }
                r = node_new(d, &want[i], &next[i]);
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
                Admin *a;
                r = admin_new(d, d->config->admin.socket, &a);
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
        if (d->config->admin.has_metrics_listen != old->admin.has_metrics_listen ||
            (d->config->admin.has_metrics_listen &&
             !listen_address_equal(&d->config->admin.metrics_listen, &old->admin.metrics_listen))) {
                Admin *m = NULL;
                if (d->config->admin.has_metrics_listen) {
                        r = admin_new_metrics(d, &d->config->admin.metrics_listen, &m);
                        if (r < 0) {
                                if (asprintf(ret_error, "admin.metrics_listen: %s", strerror(-r)) < 0)
                                        *ret_error = NULL;
                                return r;
                        }
                }
                daemon_retire_admin(d, d->metrics_listener);
                d->metrics_listener = m;
        }
        return 0;
}

int daemon_reload(Daemon *d, bool nodes_only, char **ret_error) {
        _cleanup_free_ char *error = NULL;
        Config *new = NULL, *old;
        unsigned added = 0, removed = 0, moved = 0;
        int r;

        (void) sd_notifyf(0, "RELOADING=1\nSTATUS=Reloading %s", d->config->path);
        log_info("Reloading %s%s", d->config->path, nodes_only ? " (node list)" : "");

        r = config_load_for_reload(d->config->path, &new, &error);
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
                migration_nodes_changed(d->migration);
                goto done;
        }

        old = d->config;
        d->config = new;

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
        if (!streq(new->ssh.known_hosts, old->ssh.known_hosts)) {
                KnownHosts *kh;
                if (known_hosts_load(new->ssh.known_hosts, &kh) >= 0) {
                        known_hosts_free(d->known_hosts);
                        d->known_hosts = kh;
                } else
                        log_warning("Cannot read %s: keeping the previous known hosts", new->ssh.known_hosts);
        }

        /* nodes last: the listeners are settled and cannot fail any more */
        r = daemon_apply_nodes(d, new->nodes, new->n_nodes, &added, &removed, &moved);
        if (r < 0) {
                log_error_errno(r, "Cannot apply the node list: %m");
                r = 0;
        }
        if (!config_konnectivity_equal(&new->konnectivity, &old->konnectivity) &&
            daemon_setup_konnectivity(d) < 0)
                log_error("konnectivity: the upstream could not be set up: its nodes go over SSH");
        for (size_t i = 0; i < d->n_nodes; i++) {
                Node *n = d->nodes[i];
                bool migrated = config_konnectivity_lists(new, node_name(n));

                node_set_migrated(n, migrated);
                /* SSH stays warm for migrated nodes only when it may take over */
                (void) node_set_pool_size(n, migrated && !new->konnectivity.fallback_to_ssh
                                                     ? 0
                                                     : MAX(new->ssh.pool_size, 1u));
                if (!config_probe_equal(&new->probe, &old->probe))
                        (void) node_reset_probe(n);
        }
        migration_nodes_changed(d->migration);
        if (!streq_ptr(new->nodes_file, old->nodes_file))
                (void) daemon_watch_nodes_file(d);

        config_free(old);
done:
        log_info("Reloaded: %u nodes added, %u removed, %u moved; %zu nodes", added, removed, moved, d->n_nodes);
        (void) sd_notify(0, "READY=1");
        daemon_notify_status(d);
        return 0;

undo:
        /* a step that binds failed: everything goes back */
        d->config = old;
        if (d->proxy)
                (void) proxy_reload(d->proxy, &new->proxy);
        if (d->forwards)
                (void) forwards_reload(d->forwards);
        config_free(new);
fail:
        log_error("Reload failed, the running configuration stays: %s", strna(error));
        (void) sd_notifyf(0, "READY=1\nSTATUS=Reload failed: %s", strna(error));
        if (ret_error)
                *ret_error = TAKE_PTR(error);
        return r < 0 ? r : -EINVAL;
}

/* --- nodes_file: re-read when it changes ---------------------------------- */

static int on_nodes_debounce(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;

        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        (void) daemon_reload(d, true, NULL);
        return 0;
}

static int on_nodes_watch(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Daemon *d = userdata;
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        _cleanup_free_ char *copy = strdup(d->config->nodes_file ? d->config->nodes_file : "");
        const char *base = copy ? basename(copy) : "";
        bool ours = false;
        ssize_t n;

        while ((n = read(fd, buf, sizeof(buf))) > 0)
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *e = (const struct inotify_event *) p;
                        if (e->len > 0 && streq(e->name, base))
                                ours = true;
                        p += sizeof(*e) + e->len;
                }
        if (!ours)
                return 0;
        /* a rename or a burst of writes: read once things settle */
        (void) sd_event_source_set_time_relative(d->nodes_debounce, NODES_DEBOUNCE_USEC);
        (void) sd_event_source_set_enabled(d->nodes_debounce, SD_EVENT_ONESHOT);
        return 0;
}

void daemon_unwatch_nodes_file(Daemon *d) {
        d->nodes_watch = sd_event_source_disable_unref(d->nodes_watch);
        d->nodes_debounce = sd_event_source_disable_unref(d->nodes_debounce);
        d->nodes_watch_fd = safe_close(d->nodes_watch_fd);
}

int daemon_watch_nodes_file(Daemon *d) {
        _cleanup_free_ char *copy = NULL;
        const char *dir;
        int r;

        daemon_unwatch_nodes_file(d);
        if (!d->config->nodes_file)
                return 0;
        if (d->config->nodes_file_missing)
                log_warning("nodes_file %s does not exist yet: no nodes from it until it does",
                            d->config->nodes_file);

        copy = strdup(d->config->nodes_file);
        if (!copy)
                return -ENOMEM;
        dir = dirname(copy);

        d->nodes_watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (d->nodes_watch_fd < 0)
                return log_warning_errno(errno, "Cannot watch %s: %m; reload to pick up changes",
                                         d->config->nodes_file);
        /* the directory, not the file: atomic renames replace the inode */
        d->nodes_watch_wd = inotify_add_watch(d->nodes_watch_fd, dir,
                                              IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM);
        if (d->nodes_watch_wd < 0) {
                r = log_warning_errno(errno, "Cannot watch %s: %m; reload to pick up changes", dir);
                daemon_unwatch_nodes_file(d);
                return r;
        }
        r = sd_event_add_io(d->event, &d->nodes_watch, d->nodes_watch_fd, EPOLLIN, on_nodes_watch, d);
        if (r >= 0)
                r = sd_event_add_time_relative(d->event, &d->nodes_debounce, CLOCK_MONOTONIC, NODES_DEBOUNCE_USEC,
                                               10 * USEC_PER_MSEC, on_nodes_debounce, d);
        if (r < 0) {
                daemon_unwatch_nodes_file(d);
                return log_warning_errno(r, "Cannot watch %s: %m", dir);
        }
        (void) sd_event_source_set_enabled(d->nodes_debounce, SD_EVENT_OFF);
        (void) sd_event_source_set_description(d->nodes_watch, "nodes-file-watch");
        (void) sd_event_source_set_description(d->nodes_debounce, "nodes-file-debounce");
        return 0;
}
