/* The text form of a host key's fingerprint (see fingerprint.h). */
#include <string.h>

#include "fingerprint.h"

#define FINGERPRINT_BASE64_LEN 43 /* 32 bytes, unpadded */

bool fingerprint_is_valid(const char *s) {
        const char *b = s + strlen(FINGERPRINT_PREFIX);

        if (strncmp(s, FINGERPRINT_PREFIX, strlen(FINGERPRINT_PREFIX)) != 0 || strlen(b) != FINGERPRINT_BASE64_LEN)
                return false;
        for (; *b; b++)
                if (!((*b >= 'A' && *b <= 'Z') || (*b >= 'a' && *b <= 'z') || (*b >= '0' && *b <= '9') ||
                      *b == '+' || *b == '/'))
                        return false;
        return true;
}
