/* Watching a file for changes: inotify on its directory (an atomic
 * rename replaces the file's inode, so the file itself cannot be watched),
 * debounced, since a write or a rename comes as a burst of events. The
 * nodes_file and the known_hosts files are watched this way. */
#pragma once

#include <systemd/sd-event.h>

#include "macro.h"

typedef struct FileWatch FileWatch;

/* The file changed, appeared or went away; 'debounce' after the last event. */
typedef void (*FileWatchHandler)(FileWatch *w, const char *path, void *userdata);

/* Start watching 'path' (which need not exist; its directory must). */
int filewatch_new(sd_event *e, const char *path, usec_t debounce, FileWatchHandler handler, void *userdata,
                  FileWatch **ret);
/* Accepts NULL, returns NULL. */
FileWatch *filewatch_free(FileWatch *w);

