/* Strict base64 decoding for keys and known_hosts lines: the standard
 * alphabet, '=' padding only at the end, nothing else accepted. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decode s[0..n) into out, which must hold n * 3 / 4 bytes. With
 * skip_space, blanks and line breaks are ignored (PEM-style bodies);
 * without, the input must be whole 4-character groups when padded.
 * Returns 0 and the length, or -EBADMSG. The intermediate bits are wiped:
 * private keys pass through here. */
int base64_decode(const char *s, size_t n, bool skip_space, uint8_t *out, size_t *ret_len);
