/* Host keys as SSH sends them (the wire-format blob): the SHA256
 * fingerprint OpenSSH shows, the key type and its size. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "fingerprint.h"
#include "hostkey.h"
#include "macro.h"
#include "sshwire.h"

const char *hostkey_fingerprint(const void *blob, size_t blob_len, char *buf, size_t size) {
        unsigned char md[32], b64[48];

        assert(buf && size >= HOSTKEY_FINGERPRINT_MAX);
        if (EVP_Digest(blob, blob_len, md, NULL, EVP_sha256(), NULL) != 1) {
                snprintf(buf, size, FINGERPRINT_PREFIX "?");
                return buf;
        }
        EVP_EncodeBlock(b64, md, sizeof md);
        b64[strcspn((char *) b64, "=")] = 0;
        snprintf(buf, size, FINGERPRINT_PREFIX "%s", (char *) b64);
        return buf;
}

int hostkey_type(const void *blob, size_t blob_len, char *buf, size_t size) {
        SshWireReader r;
        const uint8_t *p;
        size_t n;

        sshwire_reader_init(&r, blob, blob ? blob_len : 0);
        if (sshwire_get_string(&r, &p, &n) < 0 || n == 0 || n >= HOSTKEY_TYPE_MAX)
                return -EBADMSG;
        /* The blob comes from the server and the name may be written into
         * known_hosts: only the characters of SSH algorithm names pass. */
        for (size_t i = 0; i < n; i++) {
                unsigned char c = p[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      (c != 0 && strchr("-_.@+", c))))
                        return -EBADMSG;
        }
        if (n >= size)
                return -ENOBUFS;
        memcpy(buf, p, n);
        buf[n] = 0;
        return 0;
}

unsigned hostkey_bits(const void *blob, size_t len) {
        char type[HOSTKEY_TYPE_MAX];
        SshWireReader r;
        const uint8_t *m;
        size_t n;

        if (hostkey_type(blob, len, type, sizeof type) < 0)
                return 0;
        if (streq(type, "ssh-ed25519") || streq(type, "sk-ssh-ed25519@openssh.com"))
                return 256;
        if (streq(type, "ssh-ed448"))
                return 456;
        if (strncmp(type, "ecdsa-sha2-nistp", 16) == 0 || strncmp(type, "sk-ecdsa-sha2-nistp", 19) == 0) {
                char *rest;
                unsigned long bits = strtoul(strstr(type, "nistp") + 5, &rest, 10);
                return (*rest == 0 || *rest == '@') && (bits == 256 || bits == 384 || bits == 521)
                               ? (unsigned) bits
                               : 0;
        }
        sshwire_reader_init(&r, blob, len);
        if (sshwire_get_string(&r, NULL, NULL) < 0) /* the type */
                return 0;
        /* ssh-rsa: e, then n; ssh-dss: p first */
        if (streq(type, "ssh-rsa") && sshwire_get_mpint(&r, NULL, NULL) < 0)
                return 0;
        if ((streq(type, "ssh-rsa") || streq(type, "ssh-dss")) && sshwire_get_mpint(&r, &m, &n) >= 0)
                return sshwire_mpint_bits(m, n);
        return 0;
}
