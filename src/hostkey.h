/* Host keys as the SSH wire-format blob a server sends: fingerprints, type
 * and size. Needs no SSH library. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longer type names are not SSH key types. */
#define HOSTKEY_TYPE_MAX 64

/* OpenSSH's "SHA256:" + unpadded base64 of the SHA-256 of the blob. buf must
 * hold at least HOSTKEY_FINGERPRINT_MAX bytes. Returns buf. */
#define HOSTKEY_FINGERPRINT_MAX 56
const char *hostkey_fingerprint(const void *blob, size_t blob_len, char *buf, size_t size);

/* The key type named at the start of the blob ("ssh-ed25519"), copied into
 * buf; -EBADMSG if the blob is malformed, -ENOBUFS if buf is too small. */
int hostkey_type(const void *blob, size_t blob_len, char *buf, size_t size);

/* The key size `ssh-keygen -l` prints for this blob, or 0 when unknown. */
unsigned hostkey_bits(const void *blob, size_t blob_len);
