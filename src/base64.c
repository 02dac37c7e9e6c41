/* Base64 decoding shared by the known_hosts reader and the identity reader.
 * Encoding is OpenSSL's EVP_EncodeBlock where needed. */
#include <errno.h>
#include <string.h>

#include "base64.h"

static int b64_value(unsigned char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int base64_decode(const char *s, size_t n, bool skip_space, uint8_t *out, size_t *ret_len) {
        uint32_t acc = 0;
        unsigned bits = 0;
        size_t len = 0, pad = 0;
        int r = 0;

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                int v;

                if (skip_space && (c == '\n' || c == '\r' || c == ' ' || c == '\t'))
                        continue;
                if (c == '=') {
                        pad++;
                        continue;
                }
                v = b64_value(c);
                if (v < 0 || pad > 0) {
                        r = -EBADMSG;
                        goto out;
                }
                acc = acc << 6 | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[len++] = (uint8_t) (acc >> bits);
                }
        }
        if (pad > 2 || bits >= 6 || (!skip_space && pad > 0 && (n % 4) != 0)) {
                r = -EBADMSG;
                goto out;
        }
        *ret_len = len;
out:
        explicit_bzero(&acc, sizeof(acc));
        return r;
}
