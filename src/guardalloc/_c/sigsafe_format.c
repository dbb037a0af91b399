/*
 * Async-signal-safe formatting for the reports: a fixed line buffer (on the
 * caller's stack) that is flushed with write(2), and numbers in decimal and
 * hex. No malloc, no stdio, no locks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "options.h"
#include "sigsafe_format.h"

static void ga_write_all(int fd, const char *s, size_t n)
{
    if (fd < 0)
        return;
    while (n > 0) {
        ssize_t done = write(fd, s, n);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        s += done;
        n -= (size_t)done;
    }
}

void ga_flush(ga_line_t *line)
{
    ga_write_all(line->fd, line->buf, line->len);
    line->len = 0;
}

void ga_line_init(ga_line_t *line, int fd, int json)
{
    /* mmap is a plain system call (no lock, no malloc): fine in a handler. */
    void *big = mmap(NULL, GA_REPORT_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    line->len = 0;
    line->fd = fd;
    line->json = json;
    if (big != MAP_FAILED) {
        line->buf = big;
        line->cap = GA_REPORT_MAX;
    } else {
        line->buf = line->text;
        line->cap = sizeof(line->text);
    }
}

void ga_line_init_small(ga_line_t *line, int fd, int json)
{
    line->len = 0;
    line->fd = fd;
    line->json = json;
    line->buf = line->text;
    line->cap = sizeof(line->text);
}

void ga_line_done(ga_line_t *line)
{
    ga_flush(line);
    if (line->buf != line->text)
        munmap(line->buf, line->cap);
    line->buf = line->text;
    line->cap = sizeof(line->text);
}

void ga_put_byte(ga_line_t *line, char c)
{
    if (line->len == line->cap)
        ga_flush(line);
    line->buf[line->len++] = c;
}

void ga_put(ga_line_t *line, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!line->json || (c >= 0x20 && c != '"' && c != '\\')) {
            ga_put_byte(line, (char)c);
        } else if (c == '\n') {
            ga_put_byte(line, '\\');
            ga_put_byte(line, 'n');
        } else if (c == '"' || c == '\\') {
            ga_put_byte(line, '\\');
            ga_put_byte(line, (char)c);
        } else {   /* other control characters: \u00XX */
            ga_put_byte(line, '\\');
            ga_put_byte(line, 'u');
            ga_put_byte(line, '0');
            ga_put_byte(line, '0');
            ga_put_byte(line, "0123456789abcdef"[c >> 4]);
            ga_put_byte(line, "0123456789abcdef"[c & 15]);
        }
    }
}

void ga_put_dec(ga_line_t *line, unsigned long long v)
{
    char digits[24];
    digits[ga_format_dec(v, digits)] = '\0';
    ga_put(line, digits);
}

static void ga_put_hex(ga_line_t *line, unsigned long long v)
{
    char digits[20];
    int n = 0;
    ga_put(line, "0x");
    do {
        digits[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n > 0) {
        char c[2] = {digits[--n], 0};
        ga_put(line, c);
    }
}

void ga_put_ptr(ga_line_t *line, const void *p)
{
    ga_put_hex(line, (unsigned long long)(uintptr_t)p);
}

void ga_line_copy(const ga_line_t *line, char *out, size_t size)
{
    size_t n = line->len < size - 1 ? line->len : size - 1;
    memcpy(out, line->buf, n);
    out[n] = '\0';
}
