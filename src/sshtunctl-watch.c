/* sshtunctl --watch: one view shown again every interval, in place on a
 * terminal (as watch(1) does) and one frame after another elsewhere. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "sshtunctl-internal.h"

/* The terminal's size, or 80x24 when it does not say. */
static void terminal_size(unsigned *ret_cols, unsigned *ret_rows) {
        struct winsize ws = {};

        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0 || ws.ws_row == 0)
                ws = (struct winsize) { .ws_col = 80, .ws_row = 24 };
        *ret_cols = ws.ws_col;
        *ret_rows = ws.ws_row;
}

/* Put one line of the frame, cut at 'cols' characters (colour escapes take
 * none), then clear what is left of the terminal's line. */
static void put_line(FILE *out, const char *line, size_t len, unsigned cols) {
        unsigned shown = 0;
        bool cut = false;

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) line[i];

                if (c == '\033' && i + 1 < len && line[i + 1] == '[') {
                        size_t j = i + 2;

                        while (j < len && !((unsigned char) line[j] >= 0x40 && (unsigned char) line[j] <= 0x7e))
                                j++;
                        fwrite(line + i, 1, MIN(j + 1, len) - i, out);
                        i = j;
                        continue;
                }
                if ((c & 0xc0) != 0x80 && shown++ >= cols)
                        cut = true;
                if (!cut)
                        fputc(c, out);
        }
        fputs("\033[K", out);
}

/* Draw a frame over the last one: from the top left corner, as many lines
 * as the terminal holds (the last row stays free, so that nothing scrolls),
 * then clear the rest of the screen. */
static void draw_in_place(FILE *out, const char *frame, bool first) {
        unsigned cols, rows, row = 0;

        terminal_size(&cols, &rows);
        fputs(first ? "\033[H\033[2J" : "\033[H", out);
        while (*frame && row + 1 < rows) {
                size_t n = strcspn(frame, "\n");

                put_line(out, frame, n, cols);
                fputc('\n', out);
                row++;
                frame += n + (frame[n] == '\n');
        }
        fputs("\033[J", out);
}

/* The frame's first line: what runs, how often, and when this round ran. */
static void print_title(FILE *f, const char *title, usec_t interval) {
        char when[64] = "";
        time_t now = time(NULL);
        struct tm tm;

        if (localtime_r(&now, &tm))
                strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        fprintf(f, "Every %gs: sshtunctl %s   %s\n\n", (double) interval / USEC_PER_SEC, title, when);
}

static bool cancelled(int fd, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };

        for (;;) {
                int r = poll(&p, 1, timeout_ms);
                if (r < 0 && errno == EINTR)
                        continue;
                /* a poll that fails cannot wait: stop rather than spin */
                return r != 0;
        }
}

int ctl_watch(Ctl *ctl, const char *title, int (*view)(const Ctl *ctl), usec_t interval) {
        _cleanup_close_ int fd = -1;
        bool tty = isatty(STDOUT_FILENO), first = true;
        FILE *out = ctl->out, *err = ctl->err;
        sigset_t mask;

        /* SIGINT and SIGTERM end the watch: taken from a signalfd, which the
         * request's own poll watches too, so neither waits for a slow reply */
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return ctl_fail(ctl, EXIT_FAILURE, "cannot block signals: %m");
        fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (fd < 0)
                return ctl_fail(ctl, EXIT_FAILURE, "cannot watch for signals: %m");
        ctl->cancel_fd = fd;

        for (;;) {
                _cleanup_free_ char *frame = NULL;
                size_t size = 0;
                FILE *f = open_memstream(&frame, &size);

                if (!f)
                        return ctl_oom(ctl);
                print_title(f, title, interval);
                ctl->out = ctl->err = f;
                ctl->deadline = now_usec(CLOCK_MONOTONIC) + ctl->timeout;
                (void) view(ctl);
                ctl->out = out;
                ctl->err = err;
                if (ferror(f) | fclose(f))
                        return ctl_oom(ctl);
                if (cancelled(fd, 0))
                        break; /* the round was cut short: keep the last whole frame */

                if (tty)
                        draw_in_place(out, frame, first);
                else
                        fprintf(out, "%s%s", first ? "" : "\n", frame);
                if (fflush(out) != 0 || ferror(out))
                        return ctl_fail(ctl, EXIT_FAILURE, "failed to write the output: %m");
                first = false;

                if (cancelled(fd, (int) MIN(interval / USEC_PER_MSEC, (usec_t) 24 * 3600 * 1000)))
                        break;
        }
        ctl->cancel_fd = -1;
        return 0;
}
