/* The OpenSSH known_hosts file: plain, [host]:port, hashed |1|, wildcard
 * and negated patterns, @revoked; what sshtund makes of the key a node
 * presents, and the lines and appends that record new keys. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct KnownHosts KnownHosts;

typedef enum HostKeyCheck {
        HOSTKEY_OK,       /* a line for this host holds this key */
        HOSTKEY_UNKNOWN,  /* no line for this host at all */
        HOSTKEY_MISMATCH, /* lines for this host exist, none holds this key */
        HOSTKEY_REVOKED,  /* the key is listed under @revoked */
} HostKeyCheck;

/* Read a known_hosts file. A missing file is an empty set (returns 0).
 * Lines that do not parse are skipped and counted, as OpenSSH does; the
 * count is in known_hosts_bad_lines(). Other read errors: -errno. */
int known_hosts_load(const char *path, KnownHosts **ret);
KnownHosts *known_hosts_free(KnownHosts *kh);
size_t known_hosts_bad_lines(const KnownHosts *kh);
size_t known_hosts_entries(const KnownHosts *kh);

/* True if the file changed (inode, size or mtime) since it was loaded, or
 * appeared or vanished: the caller then loads it again. */
bool known_hosts_is_stale(const KnownHosts *kh);

/* Check 'blob' (the SSH wire-format public key the server sent) for 'host'
 * at 'port'. The name looked up is "host" for port 22 and "[host]:port"
 * otherwise, as OpenSSH does. A host with keys of other types only is
 * HOSTKEY_MISMATCH: a server offering a different key type is not a new
 * host. */
HostKeyCheck known_hosts_check(const KnownHosts *kh, const char *host, uint16_t port,
                               const void *blob, size_t blob_len);

/* The key types ("ssh-ed25519", ...) known for host:port, in file order,
 * without duplicates, as a malloc'd comma-separated string (empty string if
 * none): fed to the SSH library's host-key algorithm preference so that the
 * server picks a type we can verify. NULL on allocation failure. */
char *known_hosts_types(const KnownHosts *kh, const char *host, uint16_t port);

/* Append a plain line for host:port (accept-new). Creates the file with mode
 * 0644 if missing; writes the whole line with one write() under O_APPEND. */
int known_hosts_append(const char *path, const char *host, uint16_t port, const void *blob,
                       size_t blob_len);

/* "host KEYTYPE BASE64" (or "[host]:port ...") for this key, malloc'd. */
char *known_hosts_line(const char *host, uint16_t port, const void *blob, size_t blob_len);
