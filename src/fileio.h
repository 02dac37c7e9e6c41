/* Looking at a file before a library reads it: libconfig says only "file
 * I/O error" and OpenSSL "system lib" for a file that is missing, cannot be
 * read or is a directory, and either would wait on a FIFO. */
#pragma once

#include <sys/types.h>

/* Open 'path' for reading (non-blocking, so a FIFO does not wait for a
 * writer) and look at it: 0 and its type (S_IFREG, S_IFIFO, ...) in
 * *ret_type if not NULL; -EISDIR for a directory; -errno when it cannot be
 * opened (-ENOENT, -EACCES, ...). */
int fileio_check_readable(const char *path, mode_t *ret_type);
