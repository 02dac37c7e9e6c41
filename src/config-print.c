/* sshtund -T: a Config written back as libconfig text that config_load()
 * reads to the same Config. The key tables drive it, each key type writing
 * what it reads (config-parse.c); this file lays the text out. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "config-internal.h"
#include "macro.h"

static void indent(Printer *w) {
        fputs(w->prefix, w->f);
        for (unsigned i = 0; i < w->depth; i++)
                fputs("  ", w->f);
}

void printer_key(Printer *w, const Key *k) {
        if (!w->one_line)
                indent(w);
        fprintf(w->f, "%s = ", k->name);
}

void printer_end(Printer *w) {
        fputs(w->one_line ? "; " : ";\n", w->f);
}

/* libconfig 1.5 reads \" \\ \n \r \t \f and \xHH in strings, and every
 * other byte as it is: control bytes are escaped (a newline would end a
 * comment early), the rest, UTF-8 included, is written as it is. */
void printer_string(Printer *w, const char *s) {
        fputc('"', w->f);
        for (const unsigned char *c = (const unsigned char *) (s ?: ""); *c; c++)
                switch (*c) {
                case '"':
                        fputs("\\\"", w->f);
                        break;
                case '\\':
                        fputs("\\\\", w->f);
                        break;
                case '\n':
                        fputs("\\n", w->f);
                        break;
                case '\r':
                        fputs("\\r", w->f);
                        break;
                case '\t':
                        fputs("\\t", w->f);
                        break;
                case '\f':
                        fputs("\\f", w->f);
                        break;
                default:
                        if (*c < ' ' || *c == 0x7f)
                                fprintf(w->f, "\\x%02x", *c);
                        else
                                fputc(*c, w->f);
                }
        fputc('"', w->f);
}

void printer_listen(Printer *w, const ListenAddress *a) {
        _cleanup_free_ char *v = listen_address_to_string(a);

        if (!v)
                w->error = -ENOMEM;
        printer_string(w, v);
}

void printer_hostport(Printer *w, const char *host, uint16_t port) {
        _cleanup_free_ char *v = hostport_join(host, port);

        if (!v)
                w->error = -ENOMEM;
        printer_string(w, v);
}

void printer_strv(Printer *w, char *const *v) {
        if (!v || !*v) {
                fputs("[ ]", w->f);
                return;
        }
        fputs("[ ", w->f);
        for (char *const *i = v; *i; i++) {
                if (i != v)
                        fputs(", ", w->f);
                printer_string(w, *i);
        }
        fputs(" ]", w->f);
}

/* The shortest form that reads back to the same double, with a point or an
 * exponent so that libconfig reads a float ("10.0", not the integer 10). */
void printer_double(Printer *w, double v) {
        char buf[64];

        for (int precision = 15; precision <= 17; precision++) {
                snprintf(buf, sizeof(buf), "%.*g", precision, v);
                if (strtod(buf, NULL) == v)
                        break;
        }
        if (!strpbrk(buf, ".eE"))
                strcat(buf, ".0");
        fputs(buf, w->f);
}

void printer_group(Printer *w, const void *base, const Key *keys) {
        if (w->one_line) {
                fputs("{ ", w->f);
                for (const Key *k = keys; k->name; k++)
                        k->type->print(w, base, k);
                fputs("}", w->f);
                return;
        }
        fputs("{\n", w->f);
        w->depth++;
        for (const Key *k = keys; k->name; k++)
                k->type->print(w, base, k);
        w->depth--;
        indent(w);
        fputs("}", w->f);
}

void printer_list(Printer *w, const void *elems, size_t n, size_t size, const Key *keys,
                  bool (*pick)(const void *elem)) {
        bool first = true, one_line = w->one_line;

        for (size_t i = 0; i < n; i++) {
                const void *e = (const char *) elems + i * size;

                if (pick && !pick(e))
                        continue;
                if (first) {
                        fputs("(\n", w->f);
                        w->depth++;
                        w->one_line = true;
                } else
                        fputs(",\n", w->f);
                first = false;
                indent(w);
                printer_group(w, e, keys);
        }
        if (first) {
                fputs("( )", w->f);
                return;
        }
        fputs("\n", w->f);
        w->one_line = one_line;
        w->depth--;
        indent(w);
        fputs(")", w->f);
}

_printf_(2, 3) void printer_line(Printer *w, const char *format, ...) {
        va_list ap;

        indent(w);
        va_start(ap, format);
        vfprintf(w->f, format, ap);
        va_end(ap);
        fputc('\n', w->f);
}

_printf_(2, 3) void printer_printf(Printer *w, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vfprintf(w->f, format, ap);
        va_end(ap);
}

int config_print(const Config *c, FILE *f) {
        Printer w = { .f = f, .prefix = "" };

        fputs("# The effective configuration (sshtund -T): every key with its value, the\n"
              "# defaults filled in. sshtund -t reads it back as it is.\n",
              f);
        for (const Key *k = config_keys; k->name; k++)
                k->type->print(&w, c, k);
        if (fflush(f) != 0 || ferror(f))
                return errno > 0 ? -errno : -EIO;
        return w.error;
}
