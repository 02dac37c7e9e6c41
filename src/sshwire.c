/* The SSH wire codec: bounds-checked getters over a read cursor and putters
 * into a fixed buffer. See sshwire.h for the contracts. */
#include <errno.h>
#include <string.h>

#include "sshwire.h"

void sshwire_reader_init(SshWireReader *r, const void *data, size_t len) {
        /* never a NULL cursor: even a zero-length step from it is undefined */
        static const uint8_t empty[1];

        *r = (SshWireReader) { .p = data && len > 0 ? data : empty, .left = data ? len : 0 };
}

size_t sshwire_reader_left(const SshWireReader *r) {
        return r->left;
}

static uint32_t peek_u32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | (uint32_t) p[3];
}

int sshwire_get_u8(SshWireReader *r, uint8_t *ret) {
        if (r->left < 1)
                return -EBADMSG;
        if (ret)
                *ret = r->p[0];
        r->p++;
        r->left--;
        return 0;
}

int sshwire_get_u32(SshWireReader *r, uint32_t *ret) {
        if (r->left < 4)
                return -EBADMSG;
        if (ret)
                *ret = peek_u32(r->p);
        r->p += 4;
        r->left -= 4;
        return 0;
}

/* The magnitude without its leading zero bytes. */
static void strip_zeros(const uint8_t **p, size_t *len) {
        while (*len > 0 && (*p)[0] == 0) {
                (*p)++;
                (*len)--;
        }
}

/* Where the string at the cursor is, without moving it. */
static int peek_string(const SshWireReader *r, const uint8_t **ret, size_t *ret_len) {
        uint32_t n;

        if (r->left < 4)
                return -EBADMSG;
        n = peek_u32(r->p);
        if (n > SSHWIRE_STRING_MAX || n > r->left - 4)
                return -EBADMSG;
        *ret = r->p + 4;
        *ret_len = n;
        return 0;
}

int sshwire_get_string(SshWireReader *r, const uint8_t **ret, size_t *ret_len) {
        const uint8_t *s;
        size_t n;
        int k;

        k = peek_string(r, &s, &n);
        if (k < 0)
                return k;
        if (ret)
                *ret = s;
        if (ret_len)
                *ret_len = n;
        r->p += 4 + n;
        r->left -= 4 + n;
        return 0;
}

int sshwire_get_cstring(SshWireReader *r, char *buf, size_t size) {
        const uint8_t *s;
        size_t n;
        int k;

        k = peek_string(r, &s, &n);
        if (k < 0)
                return k;
        if (n > 0 && memchr(s, 0, n))
                return -EBADMSG;
        if (n >= size)
                return -ENOBUFS;
        memcpy(buf, s, n);
        buf[n] = 0;
        r->p += 4 + n;
        r->left -= 4 + n;
        return 0;
}

int sshwire_get_mpint(SshWireReader *r, const uint8_t **ret, size_t *ret_len) {
        const uint8_t *s;
        size_t n;
        int k;

        k = peek_string(r, &s, &n);
        if (k < 0)
                return k;
        if (n > 0 && (s[0] & 0x80))
                return -EBADMSG; /* negative */
        r->p += 4 + n;
        r->left -= 4 + n;
        strip_zeros(&s, &n);
        if (ret)
                *ret = s;
        if (ret_len)
                *ret_len = n;
        return 0;
}

int sshwire_get_bytes(SshWireReader *r, size_t n, const uint8_t **ret) {
        if (n > r->left)
                return -EBADMSG;
        if (ret)
                *ret = r->p;
        r->p += n;
        r->left -= n;
        return 0;
}

bool sshwire_string_is(const uint8_t *s, size_t n, const char *text) {
        return n == strlen(text) && (n == 0 || memcmp(s, text, n) == 0);
}

void sshwire_writer_init(SshWireWriter *w, void *buf, size_t size) {
        *w = (SshWireWriter) { .buf = buf, .size = buf ? size : 0, .overflow = !buf };
}

/* Room for n more bytes, or the writer fails for good. */
static uint8_t *reserve(SshWireWriter *w, size_t n) {
        uint8_t *p;

        if (w->overflow || n > w->size - w->len) {
                w->overflow = true;
                return NULL;
        }
        p = w->buf + w->len;
        w->len += n;
        return p;
}

int sshwire_put_u8(SshWireWriter *w, uint8_t v) {
        uint8_t *p = reserve(w, 1);

        if (!p)
                return -ENOBUFS;
        p[0] = v;
        return 0;
}

int sshwire_put_u32(SshWireWriter *w, uint32_t v) {
        uint8_t *p = reserve(w, 4);

        if (!p)
                return -ENOBUFS;
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
        return 0;
}

int sshwire_put_bytes(SshWireWriter *w, const void *data, size_t len) {
        uint8_t *p = reserve(w, len);

        if (!p)
                return -ENOBUFS;
        if (len > 0)
                memcpy(p, data, len);
        return 0;
}

int sshwire_put_string(SshWireWriter *w, const void *data, size_t len) {
        if (len > SSHWIRE_STRING_MAX) {
                w->overflow = true;
                return -ENOBUFS;
        }
        if (sshwire_put_u32(w, (uint32_t) len) < 0)
                return -ENOBUFS;
        return sshwire_put_bytes(w, data, len);
}

int sshwire_put_cstring(SshWireWriter *w, const char *s) {
        return sshwire_put_string(w, s, strlen(s));
}

size_t sshwire_mpint_size(const uint8_t *magnitude, size_t len) {
        strip_zeros(&magnitude, &len);
        return 4 + len + (len > 0 && (magnitude[0] & 0x80) ? 1 : 0);
}

int sshwire_put_mpint(SshWireWriter *w, const uint8_t *magnitude, size_t len) {
        bool pad;

        strip_zeros(&magnitude, &len);
        pad = len > 0 && (magnitude[0] & 0x80);
        if (len + pad > SSHWIRE_STRING_MAX) {
                w->overflow = true;
                return -ENOBUFS;
        }
        if (sshwire_put_u32(w, (uint32_t) (len + pad)) < 0 || (pad && sshwire_put_u8(w, 0) < 0))
                return -ENOBUFS;
        return sshwire_put_bytes(w, magnitude, len);
}

int sshwire_writer_finish(const SshWireWriter *w, size_t *ret_len) {
        if (w->overflow)
                return -ENOBUFS;
        if (ret_len)
                *ret_len = w->len;
        return 0;
}

unsigned sshwire_mpint_bits(const uint8_t *magnitude, size_t len) {
        strip_zeros(&magnitude, &len);
        if (len == 0)
                return 0;
        return (unsigned) ((len - 1) * 8) + (unsigned) (32 - __builtin_clz((unsigned) magnitude[0]));
}
