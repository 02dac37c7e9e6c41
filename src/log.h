/* Logging: journald when its socket exists, else stderr or syslog; levels
 * from syslog.h; errno-style error codes rendered with %m. */
#pragma once

#include <stdbool.h>
#include <stdlib.h>
#include <syslog.h>

#include "macro.h"

typedef enum LogTarget {
        LOG_TARGET_AUTO,
        LOG_TARGET_JOURNAL,
        LOG_TARGET_SYSLOG,
        LOG_TARGET_STDERR,
        _LOG_TARGET_MAX,
        _LOG_TARGET_INVALID = -1,
} LogTarget;

/* "auto" | "journal" | "syslog" | "stderr" → LogTarget, or -EINVAL. */
int log_target_from_string(const char *s);
const char *log_target_to_string(LogTarget t);

/* "err"/"error", "warning"/"warn", "notice", "info", "debug" → LOG_*, or -EINVAL. */
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);

/* Pick the sink (AUTO resolves to journal when /run/systemd/journal/socket
 * exists, else stderr) and the maximum level written. */
void log_setup(LogTarget target, int max_level);
int log_get_max_level(void);

/* 't' (CLOCK_REALTIME) as RFC 3339 local time with milliseconds and the
 * UTC offset ("2026-12-07T01:20:33.123+00:00"), the time stamp of lines
 * written to stderr; returns buf (48 bytes are plenty). */
const char *log_timestamp(usec_t t, char *buf, size_t size);

/* Write one message. 'error' is an errno value (sign ignored) made available
 * to %m; returns -abs(error) so callers can "return log_error_errno(r, ...)".
 * 'node' (may be NULL) is attached as the SSHTUND_NODE journal field. */
int log_internal(int level, int error, const char *node, const char *file, int line,
                 const char *func, const char *format, ...) _printf_(7, 8);

#define log_full_errno(level, error, ...)                                                     \
        ({                                                                                    \
                int _l_ = (level), _e_ = (error);                                             \
                (log_get_max_level() >= _l_)                                                  \
                        ? log_internal(_l_, _e_, NULL, __FILE__, __LINE__, __func__, __VA_ARGS__) \
                        : -abs(_e_);                                                          \
        })
#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)

#define log_error_errno(e, ...) log_full_errno(LOG_ERR, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_notice_errno(e, ...) log_full_errno(LOG_NOTICE, (e), __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, (e), __VA_ARGS__)
#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)

/* Messages about one node: prefixed with the node name, and tagged. */
#define log_node_full_errno(level, nodename, error, ...)                                       \
        ({                                                                                     \
                int _l_ = (level), _e_ = (error);                                              \
                (log_get_max_level() >= _l_)                                                   \
                        ? log_internal(_l_, _e_, (nodename), __FILE__, __LINE__, __func__, __VA_ARGS__) \
                        : -abs(_e_);                                                           \
        })
#define log_node(level, nodename, ...) (void) log_node_full_errno((level), (nodename), 0, __VA_ARGS__)

/* A token bucket for messages a peer can trigger at will: at most 'burst'
 * messages per 'interval'; the first one after a suppressed run reports how
 * many were dropped. Zero-initialise with the two limits set. */
typedef struct RateLimit {
        usec_t interval;
        unsigned burst;
        usec_t begin;
        unsigned num;
        unsigned suppressed;
} RateLimit;

/* True if a message may be written now. On true, *ret_suppressed (may be
 * NULL) receives the number of messages dropped since the last one. */
bool ratelimit_below(RateLimit *rl, unsigned *ret_suppressed);
