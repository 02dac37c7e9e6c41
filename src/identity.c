/* identity: reads the daemon's private key file once, recognises its format
 * and type, and refuses keys the nodes would reject or that need a prompt. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "hostkey.h"
#include "base64.h"
#include "identity.h"
#include "macro.h"
#include "sshwire.h"

/* A private key is a few KiB at most; anything larger is not a key. */
#define IDENTITY_SIZE_MAX (64u * 1024u)
#define KEY_TYPE_MAX 64

#define REASON_RSA                                                                             \
        "RSA keys are not supported: libssh2 1.10 signs only with SHA-1 (ssh-rsa), which "      \
        "OpenSSH 8.8 and later reject; use an ed25519 or ECDSA key (ssh-keygen -t ed25519)"
#define REASON_DSA                                                                             \
        "DSA keys are not supported: OpenSSH 7.0 and later reject them; use an ed25519 or "    \
        "ECDSA key (ssh-keygen -t ed25519)"
#define REASON_PASSPHRASE                                                                      \
        "the key is passphrase-protected; sshtund runs unattended and cannot prompt: remove "  \
        "the passphrase with ssh-keygen -p"
#define REASON_NOT_A_KEY "not an OpenSSH or PEM private key"
#define REASON_CORRUPT "the private key is corrupt"

#define OPENSSH_BEGIN "-----BEGIN OPENSSH PRIVATE KEY-----"
#define OPENSSH_END "-----END OPENSSH PRIVATE KEY-----"
#define OPENSSH_MAGIC "openssh-key-v1" /* followed by a NUL byte */

struct Identity {
        char *path;
        char *data; /* the file, NUL-terminated; wiped on free */
        size_t size;
        char type[KEY_TYPE_MAX];
        char fingerprint[HOSTKEY_FINGERPRINT_MAX];
        mode_t mode;
        EVP_PKEY *pkey;    /* the private key, parsed once: signing needs no decoding */
        const EVP_MD *md;  /* ECDSA's hash (RFC 5656 6.2.1); NULL for ed25519 */
        uint8_t *pub;      /* the SSH public key blob */
        size_t pub_len;
};

/* ECDSA curves: OpenSSL's group name, SSH's curve name, the hash it signs with. */
static const struct {
        const char *group;
        const char *curve;
        const char *md;
} ec_curves[] = {
        { "prime256v1", "nistp256", "SHA256" },
        { "secp384r1", "nistp384", "SHA384" },
        { "secp521r1", "nistp521", "SHA512" },
};

static int set_public_blob(Identity *id, const uint8_t *blob, size_t len) {
        id->pub = malloc(len);
        if (!id->pub)
                return -ENOMEM;
        memcpy(id->pub, blob, len);
        id->pub_len = len;
        return 0;
}

/* The ec_curves entry of SSH curve name 'curve', or -1. */
static int ec_curve_index(const char *curve) {
        for (size_t i = 0; i < ELEMENTSOF(ec_curves); i++)
                if (streq(curve, ec_curves[i].curve))
                        return (int) i;
        return -1;
}

typedef struct SecretBuf {
        uint8_t *buf;
        size_t len;
} SecretBuf;

static void secret_buf_done(SecretBuf *b) {
        if (b->buf) {
                OPENSSL_cleanse(b->buf, b->len);
                free(b->buf);
        }
}

static void evp_pkey_freep(EVP_PKEY **p) {
        EVP_PKEY_free(*p);
}

static void bio_freep(BIO **p) {
        BIO_free(*p);
}

static void param_bld_freep(OSSL_PARAM_BLD **p) {
        OSSL_PARAM_BLD_free(*p);
}

static void params_freep(OSSL_PARAM **p) {
        OSSL_PARAM_free(*p);
}

static void pkey_ctx_freep(EVP_PKEY_CTX **p) {
        EVP_PKEY_CTX_free(*p);
}

static void bn_clear_freep(BIGNUM **p) {
        BN_clear_free(*p);
}

static void md_ctx_freep(EVP_MD_CTX **p) {
        EVP_MD_CTX_free(*p);
}

static void ecdsa_sig_freep(ECDSA_SIG **p) {
        ECDSA_SIG_free(*p);
}

/* Refuses every passphrase request: the daemon cannot prompt. */
static int no_passphrase_cb(char *buf, int size, int rwflag, void *userdata) {
        return 0;
}

/* Maps a type name to the verdict: 0 accepted, else -EINVAL with reason. */
static int check_key_type(const char *type, const char **ret_reason) {
        static const char *const accepted[] = {
                "ssh-ed25519",
                "ecdsa-sha2-nistp256",
                "ecdsa-sha2-nistp384",
                "ecdsa-sha2-nistp521",
        };

        for (size_t i = 0; i < ELEMENTSOF(accepted); i++)
                if (streq(type, accepted[i]))
                        return 0;
        if (streq(type, "ssh-rsa"))
                *ret_reason = REASON_RSA;
        else if (streq(type, "ssh-dss"))
                *ret_reason = REASON_DSA;
        else
                *ret_reason = "unsupported key type; use an ed25519 or ECDSA key (ssh-keygen -t ed25519)";
        return -EINVAL;
}

/* Decodes the base64 between the OpenSSH armour lines (newlines allowed). */
static int openssh_decode(const char *begin, const char *end, SecretBuf *ret) {
        size_t cap = (size_t) (end - begin) + 1, n;
        uint8_t *out = malloc(cap);

        if (!out)
                return -ENOMEM;
        if (base64_decode(begin, (size_t) (end - begin), true, out, &n) < 0) {
                OPENSSL_cleanse(out, cap);
                free(out);
                return -EBADMSG;
        }
        ret->buf = out;
        ret->len = n;
        return 0;
}

/* The private half of an unencrypted openssh-key-v1 key, after its type
 * (OpenSSH's sshkey_private_serialize): ed25519 "string pub(32), string
 * seed(32) || pub(32)"; ECDSA "string curve, string Q, mpint d". */
static int openssh_private_key(Identity *id, SshWireReader *pr) {
        const uint8_t *a, *b, *c;
        size_t a_len, b_len, c_len;

        if (streq(id->type, "ssh-ed25519")) {
                if (sshwire_get_string(pr, &a, &a_len) < 0 || sshwire_get_string(pr, &b, &b_len) < 0 ||
                    a_len != 32 || b_len != 64 || memcmp(a, b + 32, 32) != 0)
                        return -EBADMSG;
                id->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, b, 32);
                if (!id->pkey) {
                        ERR_clear_error();
                        return -EBADMSG;
                }
                return 0;
        }

        _cleanup_(param_bld_freep) OSSL_PARAM_BLD *bld = NULL;
        _cleanup_(params_freep) OSSL_PARAM *params = NULL;
        _cleanup_(pkey_ctx_freep) EVP_PKEY_CTX *ctx = NULL;
        _cleanup_(bn_clear_freep) BIGNUM *d = NULL;
        const char *group;
        char curve[16];
        int k;

        if (sshwire_get_string(pr, &a, &a_len) < 0 || sshwire_get_string(pr, &b, &b_len) < 0 ||
            sshwire_get_string(pr, &c, &c_len) < 0 || a_len >= sizeof curve)
                return -EBADMSG;
        memcpy(curve, a, a_len);
        curve[a_len] = 0;
        k = ec_curve_index(curve);
        if (k < 0 || strlen(id->type) <= strlen("ecdsa-sha2-") || !streq(id->type + 11, curve))
                return -EBADMSG;
        group = ec_curves[k].group;
        id->md = EVP_get_digestbyname(ec_curves[k].md);
        if (!id->md)
                return -EBADMSG;

        d = BN_bin2bn(c, (int) c_len, NULL);
        bld = OSSL_PARAM_BLD_new();
        if (!d || !bld)
                return -ENOMEM;
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, b, b_len) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) != 1)
                return -ENOMEM;
        params = OSSL_PARAM_BLD_to_param(bld);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (!params || !ctx)
                return -ENOMEM;
        if (EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &id->pkey, EVP_PKEY_KEYPAIR, params) != 1) {
                ERR_clear_error();
                return -EBADMSG;
        }
        return 0;
}

/* openssh-key-v1 (PROTOCOL.key in OpenSSH): the public blob is in clear even
 * when the private section is encrypted, so the type is known either way. */
static int parse_openssh(Identity *id, const char *begin, const char **ret_reason) {
        _cleanup_(secret_buf_done) SecretBuf raw = {};
        const uint8_t *cipher, *kdf, *kdfopts, *pub, *priv, *ptype;
        size_t cipher_len, kdf_len, kdfopts_len, pub_len, priv_len, ptype_len;
        const char *end;
        uint32_t nkeys, check1, check2;
        SshWireReader r, pr;
        int k;

        begin += strlen(OPENSSH_BEGIN);
        end = strstr(begin, OPENSSH_END);
        if (!end)
                goto corrupt;
        if (openssh_decode(begin, end, &raw) < 0)
                goto corrupt;

        if (raw.len < sizeof(OPENSSH_MAGIC) || memcmp(raw.buf, OPENSSH_MAGIC, sizeof(OPENSSH_MAGIC)) != 0)
                goto corrupt;
        sshwire_reader_init(&r, raw.buf + sizeof(OPENSSH_MAGIC), raw.len - sizeof(OPENSSH_MAGIC));
        if (sshwire_get_string(&r, &cipher, &cipher_len) < 0 ||
            sshwire_get_string(&r, &kdf, &kdf_len) < 0 ||
            sshwire_get_string(&r, &kdfopts, &kdfopts_len) < 0 ||
            sshwire_get_u32(&r, &nkeys) < 0)
                goto corrupt;
        if (nkeys != 1) {
                *ret_reason = "the key file must hold exactly one key";
                return -EINVAL;
        }
        if (sshwire_get_string(&r, &pub, &pub_len) < 0 || sshwire_get_string(&r, &priv, &priv_len) < 0)
                goto corrupt;

        k = hostkey_type(pub, pub_len, id->type, sizeof id->type);
        if (k < 0)
                goto corrupt;
        k = check_key_type(id->type, ret_reason);
        if (k < 0)
                return k;

        if (!sshwire_string_is(cipher, cipher_len, "none")) {
                *ret_reason = REASON_PASSPHRASE;
                return -EINVAL;
        }
        if (!sshwire_string_is(kdf, kdf_len, "none"))
                goto corrupt;

        /* Unencrypted: the check words must agree and the private key must be
         * of the public key's type, or libssh2 fails later with less to say. */
        sshwire_reader_init(&pr, priv, priv_len);
        if (sshwire_get_u32(&pr, &check1) < 0 || sshwire_get_u32(&pr, &check2) < 0 || check1 != check2 ||
            sshwire_get_string(&pr, &ptype, &ptype_len) < 0 || !sshwire_string_is(ptype, ptype_len, id->type))
                goto corrupt;

        k = openssh_private_key(id, &pr);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                goto corrupt;
        k = set_public_blob(id, pub, pub_len);
        if (k < 0)
                return k;
        hostkey_fingerprint(pub, pub_len, id->fingerprint, sizeof id->fingerprint);
        return 0;

corrupt:
        *ret_reason = REASON_CORRUPT;
        return -EINVAL;
}

/* Builds the SSH public blob of an EC key (RFC 5656 section 3.1) to name
 * its type and compute the fingerprint ssh-keygen shows. */
static int ec_public_blob(Identity *id, EVP_PKEY *pkey, const char **ret_reason) {
        char group[64];
        uint8_t point[256], blob[512];
        size_t point_len = 0, blob_len = 0;
        SshWireWriter w;
        const char *curve = NULL, *md = NULL;

        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL) != 1) {
                *ret_reason = "unsupported ECDSA curve; use nistp256, nistp384 or nistp521";
                return -EINVAL;
        }
        for (size_t i = 0; i < ELEMENTSOF(ec_curves); i++)
                if (streq(group, ec_curves[i].group)) {
                        curve = ec_curves[i].curve;
                        md = ec_curves[i].md;
                }
        if (!curve) {
                *ret_reason = "unsupported ECDSA curve; use nistp256, nistp384 or nistp521";
                return -EINVAL;
        }

        /* SSH wants the uncompressed point whatever form the file used. */
        if (EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                           "uncompressed") != 1 ||
            EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                            sizeof point, &point_len) != 1 ||
            point_len == 0 || point[0] != 0x04) {
                *ret_reason = REASON_CORRUPT;
                return -EINVAL;
        }

        snprintf(id->type, sizeof id->type, "ecdsa-sha2-%s", curve);
        sshwire_writer_init(&w, blob, sizeof blob);
        (void) sshwire_put_cstring(&w, id->type);
        (void) sshwire_put_cstring(&w, curve);
        (void) sshwire_put_string(&w, point, point_len);
        if (sshwire_writer_finish(&w, &blob_len) < 0) {
                *ret_reason = REASON_CORRUPT;
                return -EINVAL;
        }
        hostkey_fingerprint(blob, blob_len, id->fingerprint, sizeof id->fingerprint);
        id->md = EVP_get_digestbyname(md);
        if (!id->md) {
                *ret_reason = "unsupported ECDSA curve; use nistp256, nistp384 or nistp521";
                return -EINVAL;
        }
        return set_public_blob(id, blob, blob_len);
}

/* PEM forms that OpenSSL parses: SEC1 "EC PRIVATE KEY" and PKCS#8. */
static int parse_pem(Identity *id, const char **ret_reason) {
        _cleanup_(evp_pkey_freep) EVP_PKEY *pkey = NULL;
        _cleanup_(bio_freep) BIO *bio = NULL;

        /* Legacy PEM encryption announces itself in a header. */
        if (strstr(id->data, "Proc-Type: 4,ENCRYPTED")) {
                *ret_reason = REASON_PASSPHRASE;
                return -EINVAL;
        }

        bio = BIO_new_mem_buf(id->data, (int) id->size);
        if (!bio)
                return -ENOMEM;
        pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase_cb, NULL);
        if (!pkey) {
                /* Leave no stale error for the next OpenSSL user (libssh2). */
                ERR_clear_error();
                *ret_reason = REASON_CORRUPT;
                return -EINVAL;
        }

        switch (EVP_PKEY_get_base_id(pkey)) {
        case EVP_PKEY_EC: {
                int k = ec_public_blob(id, pkey, ret_reason);
                if (k < 0)
                        return k;
                id->pkey = TAKE_PTR(pkey);
                return 0;
        }
        case EVP_PKEY_RSA:
        case EVP_PKEY_RSA_PSS:
                *ret_reason = REASON_RSA;
                return -EINVAL;
        case EVP_PKEY_DSA:
                *ret_reason = REASON_DSA;
                return -EINVAL;
        default:
                *ret_reason = "unsupported key in PEM form; use an ed25519 or ECDSA key in the "
                              "OpenSSH format (ssh-keygen -t ed25519)";
                return -EINVAL;
        }
}

/* Finds the first armour line, which names the format. */
static int parse_key(Identity *id, const char **ret_reason) {
        const char *begin = strstr(id->data, "-----BEGIN ");

        if (!begin) {
                *ret_reason = REASON_NOT_A_KEY;
                return -EINVAL;
        }
        if (strncmp(begin, OPENSSH_BEGIN, strlen(OPENSSH_BEGIN)) == 0)
                return parse_openssh(id, begin, ret_reason);
        if (strncmp(begin, "-----BEGIN RSA PRIVATE KEY-----", 31) == 0) {
                *ret_reason = REASON_RSA;
                return -EINVAL;
        }
        if (strncmp(begin, "-----BEGIN DSA PRIVATE KEY-----", 31) == 0) {
                *ret_reason = REASON_DSA;
                return -EINVAL;
        }
        if (strncmp(begin, "-----BEGIN ENCRYPTED PRIVATE KEY-----", 37) == 0) {
                *ret_reason = REASON_PASSPHRASE;
                return -EINVAL;
        }
        if (strncmp(begin, "-----BEGIN EC PRIVATE KEY-----", 30) == 0 ||
            strncmp(begin, "-----BEGIN PRIVATE KEY-----", 27) == 0)
                return parse_pem(id, ret_reason);

        *ret_reason = REASON_NOT_A_KEY;
        return -EINVAL;
}

/* Reads at most IDENTITY_SIZE_MAX bytes of a regular file into id. */
static int read_file(Identity *id, const char **ret_reason) {
        _cleanup_close_ int fd = -1;
        _cleanup_(secret_buf_done) SecretBuf big = {};
        struct stat st;
        size_t n = 0;

        /* O_NONBLOCK: a FIFO at this path must not hang the daemon. */
        fd = open(id->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode)) {
                *ret_reason = "not a regular file";
                return -EINVAL;
        }
        if (st.st_size > (off_t) IDENTITY_SIZE_MAX) {
                *ret_reason = "the file is larger than 64 KiB: not a private key";
                return -EFBIG;
        }

        /* Read into a fixed buffer so a file that grows is still bounded. */
        big.len = IDENTITY_SIZE_MAX + 1;
        big.buf = malloc(big.len);
        if (!big.buf)
                return -ENOMEM;
        while (n < big.len) {
                ssize_t l = read(fd, big.buf + n, big.len - n);
                if (l < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (l == 0)
                        break;
                n += (size_t) l;
        }
        if (n > IDENTITY_SIZE_MAX) {
                *ret_reason = "the file is larger than 64 KiB: not a private key";
                return -EFBIG;
        }
        if (memchr(big.buf, 0, n)) {
                *ret_reason = REASON_NOT_A_KEY;
                return -EINVAL;
        }

        id->data = malloc(n + 1);
        if (!id->data)
                return -ENOMEM;
        memcpy(id->data, big.buf, n);
        id->data[n] = 0;
        id->size = n;
        id->mode = st.st_mode;
        return 0;
}

int identity_load(const char *path, Identity **ret, char **ret_error) {
        Identity *id;
        const char *reason = NULL;
        int r;

        if (!path || !ret)
                return -EINVAL;

        id = calloc(1, sizeof *id);
        if (!id)
                return -ENOMEM;
        id->path = strdup(path);
        if (!id->path) {
                r = -ENOMEM;
                goto fail;
        }

        r = read_file(id, &reason);
        if (r < 0)
                goto fail;
        r = parse_key(id, &reason);
        if (r < 0)
                goto fail;

        *ret = id;
        return 0;

fail:
        if (ret_error)
                *ret_error = strdup(reason ? reason : strerror(-r));
        identity_free(id);
        return r;
}

Identity *identity_free(Identity *id) {
        if (!id)
                return NULL;
        if (id->data) {
                OPENSSL_cleanse(id->data, id->size + 1);
                free(id->data);
        }
        EVP_PKEY_free(id->pkey);
        free(id->pub);
        free(id->path);
        free(id);
        return NULL;
}

const char *identity_type(const Identity *id) {
        return id->type;
}

const char *identity_data(const Identity *id, size_t *ret_len) {
        if (ret_len)
                *ret_len = id->size;
        return id->data;
}

const char *identity_fingerprint(const Identity *id) {
        return id->fingerprint;
}

const char *identity_path(const Identity *id) {
        return id->path;
}

bool identity_is_world_readable(const Identity *id) {
        return (id->mode & 004) != 0;
}

bool identity_is_group_or_world_readable(const Identity *id) {
        return (id->mode & 077) != 0;
}

const uint8_t *identity_public_blob(const Identity *id, size_t *ret_len) {
        *ret_len = id->pub_len;
        return id->pub;
}

/* Appends 'bn' as an SSH mpint (RFC 4251 section 5). */
static int put_bignum(SshWireWriter *w, const BIGNUM *bn) {
        uint8_t buf[80]; /* nistp521: 66 bytes */
        int n;

        if (BN_num_bytes(bn) > (int) sizeof buf)
                return -ENOBUFS;
        n = BN_bn2bin(bn, buf);
        return sshwire_put_mpint(w, buf, (size_t) MAX(n, 0));
}

int identity_sign(const Identity *id, const uint8_t *data, size_t len, uint8_t *sig, size_t *ret_len) {
        _cleanup_(md_ctx_freep) EVP_MD_CTX *ctx = NULL;
        _cleanup_(ecdsa_sig_freep) ECDSA_SIG *es = NULL;
        uint8_t der[160];
        const uint8_t *q = der;
        const BIGNUM *r, *s;
        SshWireWriter w;
        size_t n;

        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (!id->md) {
                /* ed25519: the 64 bytes as they are */
                n = IDENTITY_SIGNATURE_MAX;
                if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, id->pkey) != 1 ||
                    EVP_DigestSign(ctx, sig, &n, data, len) != 1 || n != 64) {
                        ERR_clear_error();
                        return -EIO;
                }
                *ret_len = n;
                return 0;
        }

        /* ECDSA: DER from OpenSSL, "mpint r, mpint s" for SSH (RFC 5656 3.1.2) */
        n = sizeof der;
        if (EVP_DigestSignInit(ctx, NULL, id->md, NULL, id->pkey) != 1 ||
            EVP_DigestSign(ctx, der, &n, data, len) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        es = d2i_ECDSA_SIG(NULL, &q, (long) n);
        if (!es) {
                ERR_clear_error();
                return -EIO;
        }
        ECDSA_SIG_get0(es, &r, &s);
        if (BN_num_bytes(r) > 66 || BN_num_bytes(s) > 66)
                return -EIO;
        sshwire_writer_init(&w, sig, IDENTITY_SIGNATURE_MAX);
        (void) put_bignum(&w, r);
        (void) put_bignum(&w, s);
        return sshwire_writer_finish(&w, ret_len) < 0 ? -EIO : 0;
}
