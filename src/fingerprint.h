/* The text form of a host key's fingerprint, as ssh-keygen -l prints it and
 * hostkey_fingerprint() makes it: "SHA256:" and 43 characters of unpadded
 * base64. Plain C (no OpenSSL): sshtunctl checks what an operator types
 * with the rule the daemon applies. */
#pragma once

#include <stdbool.h>

#define FINGERPRINT_PREFIX "SHA256:"

bool fingerprint_is_valid(const char *s);
