/* Log sinks (journal, syslog, stderr) and the process-wide level. The sink is
 * chosen once at start, before the loop, and only read afterwards. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "log.h"

/* Process-wide, set once at start: logging is the one place where a global
 * is the right shape (every module logs, none owns the sink). */
static LogTarget log_target = LOG_TARGET_STDERR;
static int log_max_level = LOG_INFO;
static bool syslog_open;

static const char *const target_names[_LOG_TARGET_MAX] = {
        [LOG_TARGET_AUTO] = "auto",
        [LOG_TARGET_JOURNAL] = "journal",
        [LOG_TARGET_SYSLOG] = "syslog",
        [LOG_TARGET_STDERR] = "stderr",
};

int log_target_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (int i = 0; i < _LOG_TARGET_MAX; i++)
                if (streq(s, target_names[i]))
                        return i;
        return -EINVAL;
}

const char *log_target_to_string(LogTarget t) {
        return t >= 0 && t < _LOG_TARGET_MAX ? target_names[t] : NULL;
}

static const struct {
        const char *name;
        int level;
} level_names[] = {
        { "err", LOG_ERR },        { "error", LOG_ERR }, { "warning", LOG_WARNING },
        { "warn", LOG_WARNING },   { "notice", LOG_NOTICE }, { "info", LOG_INFO },
        { "debug", LOG_DEBUG },
};

int log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (streq(s, level_names[i].name))
                        return level_names[i].level;
        return -EINVAL;
}

const char *log_level_to_string(int level) {
        switch (level) {
        case LOG_EMERG:
        case LOG_ALERT:
        case LOG_CRIT:
        case LOG_ERR:
                return "error";
        case LOG_WARNING:
                return "warning";
        case LOG_NOTICE:
                return "notice";
        case LOG_INFO:
                return "info";
        default:
                return "debug";
        }
}

void log_setup(LogTarget target, int max_level) {
        if (target == LOG_TARGET_AUTO) {
                struct stat st;
                target = stat("/run/systemd/journal/socket", &st) == 0 && S_ISSOCK(st.st_mode)
                                 ? LOG_TARGET_JOURNAL
                                 : LOG_TARGET_STDERR;
        }
        if (target == LOG_TARGET_SYSLOG && !syslog_open) {
                openlog("sshtund", LOG_PID | LOG_NDELAY, LOG_DAEMON);
                syslog_open = true;
        }
        log_target = target;
        log_max_level = max_level;
}

int log_get_max_level(void) {
        return log_max_level;
}

const char *log_timestamp(usec_t t, char *buf, size_t size) {
        time_t sec = (time_t) (t / USEC_PER_SEC);
        char date[32], zone[8];
        struct tm tm;

        if (!localtime_r(&sec, &tm) || strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0 ||
            strftime(zone, sizeof(zone), "%z", &tm) != 5) {
                snprintf(buf, size, "-");
                return buf;
        }
        /* RFC 3339: "+0100" is written "+01:00" */
        snprintf(buf, size, "%s.%03u%.3s:%s", date, (unsigned) (t % USEC_PER_SEC / USEC_PER_MSEC), zone, zone + 3);
        return buf;
}

int log_internal(int level, int error, const char *node, const char *file, int line,
                 const char *func, const char *format, ...) {
        char msg[2048];
        int saved_errno = errno;
        va_list ap;

        error = abs(error);
        errno = error; /* for %m */
        va_start(ap, format);
        vsnprintf(msg, sizeof(msg), format, ap);
        va_end(ap);

        switch (log_target) {
        case LOG_TARGET_JOURNAL: {
                char ffile[256], fline[32];
                snprintf(ffile, sizeof(ffile), "CODE_FILE=%s", file);
                snprintf(fline, sizeof(fline), "CODE_LINE=%d", line);
                if (node)
                        sd_journal_send_with_location(ffile, fline, func, "MESSAGE=%s%s%s", node,
                                                      ": ", msg, "PRIORITY=%d", level,
                                                      "SSHTUND_NODE=%s", node, error ? "ERRNO=%d" : NULL,
                                                      error, NULL);
                else
                        sd_journal_send_with_location(ffile, fline, func, "MESSAGE=%s", msg,
                                                      "PRIORITY=%d", level, error ? "ERRNO=%d" : NULL,
                                                      error, NULL);
                break;
        }
        case LOG_TARGET_SYSLOG:
                if (node)
                        syslog(level, "%s: %s", node, msg);
                else
                        syslog(level, "%s", msg);
                break;
        default: {
                const char *prefix = level <= LOG_ERR       ? "error: "
                                     : level == LOG_WARNING ? "warning: "
                                                            : "";
                char when[48];

                /* no journal to stamp it: the line carries its own time */
                fprintf(stderr, "%s sshtund: %s%s%s%s\n", log_timestamp(now_usec(CLOCK_REALTIME), when, sizeof(when)),
                        prefix, node ? node : "", node ? ": " : "", msg);
                break;
        }
        }

        errno = saved_errno;
        return -error;
}

bool ratelimit_below(RateLimit *rl, unsigned *ret_suppressed) {
        usec_t now = now_usec(CLOCK_MONOTONIC);

        if (rl->begin == 0 || now - rl->begin >= rl->interval) {
                unsigned s = rl->suppressed;
                rl->begin = now;
                rl->num = 1;
                rl->suppressed = 0;
                if (ret_suppressed)
                        *ret_suppressed = s;
                return true;
        }
        if (rl->num < rl->burst) {
                rl->num++;
                if (ret_suppressed)
                        *ret_suppressed = 0;
                return true;
        }
        rl->suppressed++;
        return false;
}
