/* The host keys sshtund trusts: ssh.known_hosts (the operator's, never
 * written) and ssh.learned_hosts (the one file sshtund writes), read
 * together, watched, and read again when either changes; and the keys
 * sshtund records in learned_hosts: accept-new's (in memory at once, on
 * disk within TRUST_FLUSH_DELAY_USEC, many in one rewrite) and the
 * operator's `hostkeys trust` (on disk before the answer). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "known-hosts.h"
#include "macro.h"

typedef struct Trust Trust;

/* The queries below take NULL for "no files": every key unknown. */

/* accept-new's keys reach the disk this long after the first of a batch. */
#define TRUST_FLUSH_DELAY_USEC (100 * USEC_PER_MSEC)

/* Read the files and watch them. 'learned' NULL or empty: none (nothing
 * can be recorded). A file that cannot be read fails (logged); a missing
 * one is empty. */
int trust_new(sd_event *e, const char *known, const char *learned, Trust **ret);
/* Writes the keys still queued, then frees. Accepts NULL, returns NULL. */
Trust *trust_free(Trust *t);

/* The files changed names (a reload): the queue goes to the old learned
 * file first, then the new files are read and watched. On failure the old
 * set stays and -errno is returned (logged). */
int trust_set_files(Trust *t, const char *known, const char *learned);
/* Read the files again if they changed on disk (what the watches do
 * after a short delay; an operator's action cannot wait for it). */
void trust_refresh(Trust *t);

/* The paths; learned NULL when there is none. */
const char *trust_known_path(const Trust *t);
const char *trust_learned_path(const Trust *t);

/* known_hosts_verify() over both files. */
HostKeyCheck trust_check(const Trust *t, const char *host, uint16_t port, const void *blob, size_t blob_len,
                         const char **ret_path, unsigned *ret_line);
/* known_hosts_types() over both files (malloc'd; NULL when out of memory). */
char *trust_types(const Trust *t, const char *host, uint16_t port);
/* known_hosts_keys() over both files. */
int trust_keys(const Trust *t, const char *host, uint16_t port, KnownHostsKey **ret, size_t *ret_n);

/* accept-new: trust a key seen for the first time, at once; it is written
 * to learned_hosts with the next batch (a write failure is logged, and the
 * key stays trusted until the files are read again). -ENOENT: there is no
 * learned_hosts. */
int trust_learn(Trust *t, const char *host, uint16_t port, const void *blob, size_t blob_len);

/* `hostkeys trust`: write these keys to learned_hosts now (with whatever
 * accept-new has queued), as the edits say (KnownHostsEdit.replace: the
 * learned line of the key's type for the host goes, a rotation), and read
 * the files again. *ret_changed tells whether the file changed. On
 * failure nothing is written and *ret_error (malloc'd) says why, naming
 * the file. */
int trust_record(Trust *t, const KnownHostsEdit *keys, size_t n, bool *ret_changed, char **ret_error);

/* `hostkeys forget`: every plain line of learned_hosts that names host:port
 * alone goes now (and accept-new's keys for it not yet written), and the
 * files are read again. ssh.known_hosts, @revoked lines and lines naming
 * other hosts too stay. Errors as trust_record(). */
int trust_forget(Trust *t, const char *host, uint16_t port, bool *ret_changed, char **ret_error);
