/* Unit tests for identity.c: private keys made by ssh-keygen in every format
 * we accept or refuse, checked against ssh-keygen's own type and fingerprint. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "identity.h"
#include "macro.h"

#define REASON_RSA                                                                        \
        "RSA keys are not supported: libssh2 1.10 signs only with SHA-1 (ssh-rsa), which " \
        "OpenSSH 8.8 and later reject; use an ed25519 or ECDSA key (ssh-keygen -t ed25519)"

typedef struct Fixture {
        char dir[64];
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

static size_t read_file(const char *path, char *buf, size_t size) {
        FILE *f = fopen(path, "re");
        size_t n;

        assert_non_null(f);
        n = fread(buf, 1, size - 1, f);
        buf[n] = 0;
        fclose(f);
        return n;
}

static void write_file(const char *path, const char *content, size_t len) {
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        assert_int_equal(fwrite(content, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
}

static const char *key_path(const Fixture *fx, const char *name, char *buf, size_t size) {
        snprintf(buf, size, "%s/%s", fx->dir, name);
        return buf;
}

/* ssh-keygen -t TYPE ... writes NAME and NAME.pub, mode 0600. */
static void keygen(const Fixture *fx, const char *name, const char *args) {
        char path[160];

        run("ssh-keygen -q %s -C test -f %s", args, key_path(fx, name, path, sizeof path));
}

/* A DSA key made by ssh-keygen of OpenSSH 9.2: OpenSSH 10 (Debian 13) no
 * longer makes them, and sshtund must still refuse one. */
static const char DSA_KEY[] =
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABsgAAAAdzc2gtZH\n"
        "NzAAAAgQDKERCaMI2A1GzkCEzaL33F8CWnRrQ1NHKV4zbLr6kgTWsthrBRLi+74zqpuQNd\n"
        "mKCVU9CUvM+r/0DyQhlHjprtKRDAaz95GysZ5uO0W3iECu1EJOTGAxaqmNvSNO+hlYmlmI\n"
        "DAQvBIVZrwxG2lG+RJVKxQy5FVUuHEY6PDQJq0XwAAABUA+I3ZCsIjDHHqjuSzm7Tf+24S\n"
        "y8MAAACBALwPfx71jaK1dOTA1NcpAM/bBS0gFUbnBzcictL11iMq3M8t0/qMmY2fjrKxyh\n"
        "ifA6JXODcipzMfDJotUgNsQaYipEhBN5oYC2+zR65nILWWqNrIsFyYsiQA+n98XTWsZOtk\n"
        "ox4GyLZP2RqhRQ5ytlurPE+ith0MzemUuKOh3OevAAAAgGoENd+UaopR7/iIVf5czBp2lA\n"
        "3GBHWxd4R5KziRN+wjSdIsMfknRADHA0ploW1bMl7Ym4pfpnt1mrYqmK8Jagrx+uKP6+q2\n"
        "PA3ck0SxaxUnf7I+hXD7JKG8YVw4UYCCVaGcloVvY/jic2lW/DlXnGPiKkYIIQjOX4l/6F\n"
        "6B7rEqAAAB4Hp2tJV6drSVAAAAB3NzaC1kc3MAAACBAMoREJowjYDUbOQITNovfcXwJadG\n"
        "tDU0cpXjNsuvqSBNay2GsFEuL7vjOqm5A12YoJVT0JS8z6v/QPJCGUeOmu0pEMBrP3kbKx\n"
        "nm47RbeIQK7UQk5MYDFqqY29I076GViaWYgMBC8EhVmvDEbaUb5ElUrFDLkVVS4cRjo8NA\n"
        "mrRfAAAAFQD4jdkKwiMMceqO5LObtN/7bhLLwwAAAIEAvA9/HvWNorV05MDU1ykAz9sFLS\n"
        "AVRucHNyJy0vXWIyrczy3T+oyZjZ+OsrHKGJ8Dolc4NyKnMx8Mmi1SA2xBpiKkSEE3mhgL\n"
        "b7NHrmcgtZao2siwXJiyJAD6f3xdNaxk62SjHgbItk/ZGqFFDnK2W6s8T6K2HQzN6ZS4o6\n"
        "Hc568AAACAagQ135RqilHv+IhV/lzMGnaUDcYEdbF3hHkrOJE37CNJ0iwx+SdEAMcDSmWh\n"
        "bVsyXtibil+me3WatiqYrwlqCvH64o/r6rY8DdyTRLFrFSd/sj6FcPskobxhXDhRgIJVoZ\n"
        "yWhW9j+OJzaVb8OVecY+IqRgghCM5fiX/oXoHusSoAAAAVAIjGywIf73FyQHHP+2d77psv\n"
        "/2cpAAAABHRlc3QBAgMEBQ==\n"
        "-----END OPENSSH PRIVATE KEY-----\n";

static int group_setup(void **state) {
        Fixture *fx = calloc(1, sizeof *fx);
        char path[160];

        assert_non_null(fx);
        strcpy(fx->dir, "/tmp/test-identity-XXXXXX");
        assert_non_null(mkdtemp(fx->dir));
        keygen(fx, "ed25519", "-t ed25519 -N ''");
        keygen(fx, "ecdsa256", "-t ecdsa -b 256 -N ''");
        keygen(fx, "ecdsa384", "-t ecdsa -b 384 -N ''");
        keygen(fx, "ecdsa521", "-t ecdsa -b 521 -N ''");
        keygen(fx, "ecdsa-pem", "-t ecdsa -b 256 -m PEM -N ''");
        keygen(fx, "ecdsa-pkcs8", "-t ecdsa -b 384 -m PKCS8 -N ''");
        keygen(fx, "rsa", "-t rsa -b 2048 -N ''");
        keygen(fx, "rsa-pem", "-t rsa -b 2048 -m PEM -N ''");
        keygen(fx, "rsa-pkcs8", "-t rsa -b 2048 -m PKCS8 -N ''");
        write_file(key_path(fx, "dsa", path, sizeof path), DSA_KEY, strlen(DSA_KEY));
        assert_int_equal(chmod(path, 0600), 0);
        keygen(fx, "secret", "-t ed25519 -N secret");
        keygen(fx, "secret-pem", "-t ecdsa -m PEM -N secret");
        *state = fx;
        return 0;
}

static int group_teardown(void **state) {
        Fixture *fx = *state;

        run("rm -rf '%s'", fx->dir);
        free(fx);
        return 0;
}

/* An SSH string at *p (bounds checked by the caller's blob being ours). */
static const uint8_t *ssh_string(const uint8_t **p, size_t *ret_len) {
        const uint8_t *s = *p + 4;
        *ret_len = (size_t) (*p)[0] << 24 | (size_t) (*p)[1] << 16 | (size_t) (*p)[2] << 8 | (*p)[3];
        *p = s + *ret_len;
        return s;
}

/* Verifies identity_sign()'s signature with OpenSSL and the public blob
 * alone, as a node would: ed25519 raw, ECDSA "mpint r, mpint s". */
static void check_signature(const Identity *id) {
        static const uint8_t data[] = "session id and userauth request";
        uint8_t sig[IDENTITY_SIGNATURE_MAX];
        size_t sig_len = 0, blob_len, type_len, n;
        const uint8_t *blob = identity_public_blob(id, &blob_len), *p = blob, *type, *a, *b;
        EVP_PKEY *pkey = NULL;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        const char *md = NULL;

        assert_int_equal(identity_sign(id, data, sizeof data, sig, &sig_len), 0);
        type = ssh_string(&p, &type_len);
        if (type_len == 11 && memcmp(type, "ssh-ed25519", 11) == 0) {
                a = ssh_string(&p, &n);
                assert_int_equal(n, 32);
                assert_int_equal(sig_len, 64);
                pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, a, n);
                assert_non_null(pkey);
                assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey), 1);
                assert_int_equal(EVP_DigestVerify(ctx, sig, sig_len, data, sizeof data), 1);
                /* and not for other data */
                assert_int_not_equal(EVP_DigestVerify(ctx, sig, sig_len, data, sizeof data - 1), 1);
        } else {
                size_t curve_len, q_len, r_len, s_len;
                const uint8_t *curve = ssh_string(&p, &curve_len), *q = ssh_string(&p, &q_len), *sp = sig;
                const char *group = curve[5] == '2' ? "prime256v1" : curve[5] == '3' ? "secp384r1" : "secp521r1";
                OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
                OSSL_PARAM *params;
                EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
                ECDSA_SIG *es = ECDSA_SIG_new();
                unsigned char *der = NULL;
                int der_len;

                md = curve[5] == '2' ? "SHA256" : curve[5] == '3' ? "SHA384" : "SHA512";
                assert_true(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0));
                assert_true(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, q, q_len));
                params = OSSL_PARAM_BLD_to_param(bld);
                assert_int_equal(EVP_PKEY_fromdata_init(pctx), 1);
                assert_int_equal(EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);

                a = ssh_string(&sp, &r_len);
                b = ssh_string(&sp, &s_len);
                assert_int_equal((size_t) (sp - sig), sig_len);
                assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(a, (int) r_len, NULL), BN_bin2bn(b, (int) s_len, NULL)), 1);
                der_len = i2d_ECDSA_SIG(es, &der);
                assert_true(der_len > 0);
                assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_get_digestbyname(md), NULL, pkey), 1);
                assert_int_equal(EVP_DigestVerify(ctx, der, (size_t) der_len, data, sizeof data), 1);
                OPENSSL_free(der);
                ECDSA_SIG_free(es);
                OSSL_PARAM_free(params);
                OSSL_PARAM_BLD_free(bld);
                EVP_PKEY_CTX_free(pctx);
        }
        EVP_PKEY_free(pkey);
        EVP_MD_CTX_free(ctx);
}

/* Loads a key that must be accepted and compares it with ssh-keygen's view
 * of the matching .pub file. */
static void check_accepted(const Fixture *fx, const char *name, const char *type) {
        char path[160], out[256], buf[1024], data[16384], fp[128], pub_type[64];
        Identity *id = NULL;
        char *err = NULL;
        const char *d;
        size_t len, n;

        key_path(fx, name, path, sizeof path);
        assert_int_equal(identity_load(path, &id, &err), 0);
        assert_non_null(id);
        assert_null(err);

        assert_string_equal(identity_type(id), type);
        assert_string_equal(identity_path(id), path);

        snprintf(out, sizeof out, "%s.pub", path);
        read_file(out, buf, sizeof buf);
        assert_int_equal(sscanf(buf, "%63s", pub_type), 1);
        assert_string_equal(identity_type(id), pub_type);

        snprintf(out, sizeof out, "%s/fp.out", fx->dir);
        run("ssh-keygen -lf %s.pub > %s", path, out);
        read_file(out, buf, sizeof buf);
        assert_int_equal(sscanf(buf, "%*u %127s", fp), 1);
        assert_string_equal(identity_fingerprint(id), fp);

        n = read_file(path, data, sizeof data);
        d = identity_data(id, &len);
        assert_int_equal(len, n);
        assert_memory_equal(d, data, n);

        check_signature(id);
        identity_free(id);
}

/* Loads a key that must be refused; returns the reason (caller frees). */
static char *check_refused(const Fixture *fx, const char *name, int expected) {
        char path[160];
        Identity *id = NULL;
        char *err = NULL;

        key_path(fx, name, path, sizeof path);
        assert_int_equal(identity_load(path, &id, &err), expected);
        assert_null(id);
        assert_non_null(err);
        assert_null(strchr(err, '\n'));
        assert_null(strstr(err, fx->dir)); /* no file name: the caller adds it */
        return err;
}

static void test_ed25519(void **state) {
        check_accepted(*state, "ed25519", "ssh-ed25519");
}

static void test_ecdsa(void **state) {
        check_accepted(*state, "ecdsa256", "ecdsa-sha2-nistp256");
        check_accepted(*state, "ecdsa384", "ecdsa-sha2-nistp384");
        check_accepted(*state, "ecdsa521", "ecdsa-sha2-nistp521");
}

static void test_ecdsa_pem(void **state) {
        Fixture *fx = *state;
        char path[160], buf[4096];

        read_file(key_path(fx, "ecdsa-pem", path, sizeof path), buf, sizeof buf);
        assert_non_null(strstr(buf, "-----BEGIN EC PRIVATE KEY-----"));
        check_accepted(fx, "ecdsa-pem", "ecdsa-sha2-nistp256");

        read_file(key_path(fx, "ecdsa-pkcs8", path, sizeof path), buf, sizeof buf);
        assert_non_null(strstr(buf, "-----BEGIN PRIVATE KEY-----"));
        check_accepted(fx, "ecdsa-pkcs8", "ecdsa-sha2-nistp384");
}

static void test_rsa_refused(void **state) {
        Fixture *fx = *state;
        char *err;

        err = check_refused(fx, "rsa", -EINVAL);
        assert_string_equal(err, REASON_RSA);
        free(err);
        err = check_refused(fx, "rsa-pem", -EINVAL);
        assert_string_equal(err, REASON_RSA);
        free(err);
        err = check_refused(fx, "rsa-pkcs8", -EINVAL);
        assert_string_equal(err, REASON_RSA);
        free(err);
}

static void test_dsa_refused(void **state) {
        char *err = check_refused(*state, "dsa", -EINVAL);

        assert_non_null(strstr(err, "DSA keys are not supported"));
        free(err);
}

static void test_passphrase_refused(void **state) {
        char *err;

        err = check_refused(*state, "secret", -EINVAL);
        assert_string_equal(err, "the key is passphrase-protected; sshtund runs unattended and "
                                 "cannot prompt: remove the passphrase with ssh-keygen -p");
        free(err);
        err = check_refused(*state, "secret-pem", -EINVAL);
        assert_non_null(strstr(err, "passphrase-protected"));
        free(err);
}

static void test_garbage_refused(void **state) {
        Fixture *fx = *state;
        char path[160], buf[8192];
        char *err;
        size_t n;

        write_file(key_path(fx, "garbage", path, sizeof path), "hello world\n", 12);
        err = check_refused(fx, "garbage", -EINVAL);
        assert_string_equal(err, "not an OpenSSH or PEM private key");
        free(err);

        /* A public key is not a private key. */
        err = check_refused(fx, "ed25519.pub", -EINVAL);
        assert_string_equal(err, "not an OpenSSH or PEM private key");
        free(err);

        /* A cut-off OpenSSH key: the armour is there, the body is not. */
        n = read_file(key_path(fx, "ed25519", path, sizeof path), buf, sizeof buf);
        memmove(buf + 100, buf + n - 40, 41);
        write_file(key_path(fx, "truncated", path, sizeof path), buf, strlen(buf));
        err = check_refused(fx, "truncated", -EINVAL);
        assert_string_equal(err, "the private key is corrupt");
        free(err);
}

static void test_not_a_file(void **state) {
        Fixture *fx = *state;
        char path[160], *err = NULL, *big;
        Identity *id = NULL;

        assert_int_equal(identity_load(key_path(fx, "missing", path, sizeof path), &id, &err), -ENOENT);
        assert_null(id);
        free(err);
        err = NULL;

        assert_int_equal(identity_load(fx->dir, &id, NULL), -EISDIR);
        assert_null(id);

        /* Larger than any key: refused before it is parsed. */
        big = malloc(70000);
        assert_non_null(big);
        memset(big, 'x', 70000);
        write_file(key_path(fx, "big", path, sizeof path), big, 70000);
        free(big);
        assert_int_equal(identity_load(path, &id, &err), -EFBIG);
        assert_null(id);
        assert_non_null(err);
        free(err);
}

static void test_mode(void **state) {
        Fixture *fx = *state;
        char path[160];
        Identity *id = NULL;

        key_path(fx, "ed25519", path, sizeof path);
        assert_int_equal(chmod(path, 0600), 0);
        assert_int_equal(identity_load(path, &id, NULL), 0);
        assert_false(identity_is_group_or_world_readable(id));
        assert_false(identity_is_world_readable(id));
        id = identity_free(id);
        assert_null(id);

        assert_int_equal(chmod(path, 0644), 0);
        assert_int_equal(identity_load(path, &id, NULL), 0);
        assert_true(identity_is_group_or_world_readable(id));
        assert_true(identity_is_world_readable(id));
        id = identity_free(id);

        assert_int_equal(chmod(path, 0640), 0);
        assert_int_equal(identity_load(path, &id, NULL), 0);
        assert_true(identity_is_group_or_world_readable(id));
        assert_false(identity_is_world_readable(id));
        id = identity_free(id);
        assert_int_equal(chmod(path, 0600), 0);

        assert_null(identity_free(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ed25519),
                cmocka_unit_test(test_ecdsa),
                cmocka_unit_test(test_ecdsa_pem),
                cmocka_unit_test(test_rsa_refused),
                cmocka_unit_test(test_dsa_refused),
                cmocka_unit_test(test_passphrase_refused),
                cmocka_unit_test(test_garbage_refused),
                cmocka_unit_test(test_not_a_file),
                cmocka_unit_test(test_mode),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
