/* Host key blobs: the type named at their start (only algorithm-name
 * characters pass), the SHA256 fingerprint as OpenSSH prints it, and the
 * size ssh-keygen -l shows, for blobs built here with the wire codec. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fingerprint.h"
#include "hostkey.h"
#include "macro.h"
#include "sshwire.h"

/* A blob: the type, then strings or mpints of the given sizes (bytes of
 * 0xff, or 0x7f for an mpint so that it needs no sign byte). */
static size_t blob(uint8_t *buf, size_t size, const char *type, const size_t *parts, size_t n_parts, bool mpints) {
        SshWireWriter w;
        uint8_t part[1024];
        size_t len;

        sshwire_writer_init(&w, buf, size);
        assert_int_equal(sshwire_put_cstring(&w, type), 0);
        for (size_t i = 0; i < n_parts; i++) {
                assert_true(parts[i] <= sizeof part);
                memset(part, mpints ? 0x7f : 0xff, parts[i]);
                if (mpints)
                        assert_int_equal(sshwire_put_mpint(&w, part, parts[i]), 0);
                else
                        assert_int_equal(sshwire_put_string(&w, part, parts[i]), 0);
        }
        assert_int_equal(sshwire_writer_finish(&w, &len), 0);
        return len;
}

static void test_bits(void **state) {
        uint8_t b[4096];
        size_t len;

        len = blob(b, sizeof b, "ssh-ed25519", (size_t[]) { 32 }, 1, false);
        assert_int_equal(hostkey_bits(b, len), 256);
        len = blob(b, sizeof b, "ecdsa-sha2-nistp384", (size_t[]) { 8, 97 }, 2, false);
        assert_int_equal(hostkey_bits(b, len), 384);
        len = blob(b, sizeof b, "ecdsa-sha2-nistp521", (size_t[]) { 8, 133 }, 2, false);
        assert_int_equal(hostkey_bits(b, len), 521);
        /* rsa: e, then n of 256 bytes whose top byte is 0x7f: 2047 bits */
        len = blob(b, sizeof b, "ssh-rsa", (size_t[]) { 3, 256 }, 2, true);
        assert_int_equal(hostkey_bits(b, len), 2047);
        /* dsa: p first */
        len = blob(b, sizeof b, "ssh-dss", (size_t[]) { 128, 20, 128, 128 }, 4, true);
        assert_int_equal(hostkey_bits(b, len), 1023);
        /* unknown types and truncated blobs: 0 */
        len = blob(b, sizeof b, "ssh-unknown", (size_t[]) { 32 }, 1, false);
        assert_int_equal(hostkey_bits(b, len), 0);
        len = blob(b, sizeof b, "ssh-rsa", (size_t[]) { 3, 256 }, 2, true);
        assert_int_equal(hostkey_bits(b, len - 1), 0);
        len = blob(b, sizeof b, "ecdsa-sha2-nistp999", NULL, 0, false);
        assert_int_equal(hostkey_bits(b, len), 0);
        assert_int_equal(hostkey_bits(NULL, 0), 0);
}

static void test_type(void **state) {
        uint8_t b[256];
        char type[HOSTKEY_TYPE_MAX], tiny[4];
        size_t len;

        len = blob(b, sizeof b, "sk-ssh-ed25519@openssh.com", (size_t[]) { 32 }, 1, false);
        assert_int_equal(hostkey_type(b, len, type, sizeof type), 0);
        assert_string_equal(type, "sk-ssh-ed25519@openssh.com");
        assert_int_equal(hostkey_type(b, len, tiny, sizeof tiny), -ENOBUFS);
        /* a name that could break a known_hosts line */
        len = blob(b, sizeof b, "ssh ed25519", NULL, 0, false);
        assert_int_equal(hostkey_type(b, len, type, sizeof type), -EBADMSG);
        len = blob(b, sizeof b, "", NULL, 0, false);
        assert_int_equal(hostkey_type(b, len, type, sizeof type), -EBADMSG);
        assert_int_equal(hostkey_type(b, 3, type, sizeof type), -EBADMSG);
}

static void test_fingerprint(void **state) {
        char fp[HOSTKEY_FINGERPRINT_MAX];

        /* sha256("") = e3b0c442...: base64 without padding */
        assert_string_equal(hostkey_fingerprint("", 0, fp, sizeof fp),
                            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
        /* what sshtunctl and the admin API accept is what this makes */
        assert_true(fingerprint_is_valid(fp));
        assert_true(fingerprint_is_valid(hostkey_fingerprint("\x01\x02", 2, fp, sizeof fp)));
}

static void test_fingerprint_is_valid(void **state) {
        static const char *const bad[] = {
                "",
                "SHA256:",
                "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF",    /* 42 characters */
                "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFUx",  /* 44 */
                "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF=",   /* padded */
                "SHA256:47DEQpj8HBSa-_TImW+5JCeuQeRkm5NMpJWZG3hSuFU",   /* base64url */
                "sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
                "MD5:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
                "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSu U",
        };

        assert_true(fingerprint_is_valid("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (fingerprint_is_valid(bad[i]))
                        fail_msg("accepted \"%s\"", bad[i]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bits),
                cmocka_unit_test(test_type),
                cmocka_unit_test(test_fingerprint),
                cmocka_unit_test(test_fingerprint_is_valid),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
