/* What every harness shares. Forced in with -include right after the
 * build's config.h, into the modules too: it takes back _FORTIFY_SOURCE,
 * which does not mix with ASan. Then the libFuzzer entry points. */
#pragma once

#undef _FORTIFY_SOURCE

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FNV-1a of the input: a split point or a limit that moves with every
 * mutation, yet is the same each time one input is replayed. */
static inline uint64_t fuzz_hash(const uint8_t *data, size_t size) {
        uint64_t h = UINT64_C(14695981039346656037);

        for (size_t i = 0; i < size; i++) {
                h ^= data[i];
                h *= UINT64_C(1099511628211);
        }
        return h;
}

/* A property failed: libFuzzer saves the input as a crash. */
#define fuzz_check(expr)                                                                       \
        do {                                                                                   \
                if (!(expr)) {                                                                 \
                        fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__,   \
                                #expr);                                                        \
                        abort();                                                               \
                }                                                                              \
        } while (0)
