/*
 * Async-signal-safe report formatting (sigsafe_format.c): a fixed line
 * buffer on the caller's stack, flushed with write(2). Private to the fault
 * reporter.
 */
#ifndef GUARDALLOC_SIGSAFE_FORMAT_H
#define GUARDALLOC_SIGSAFE_FORMAT_H

#include <stddef.h>
#include "internal.h"

typedef struct {
    char text[512];
    char *buf;     /* text, or a mapping that holds a whole report        */
    size_t cap;    /* bytes of buf                                         */
    size_t len;
    int fd;        /* where ga_flush writes; -1: nowhere                  */
    int json;      /* 1: escape for the inside of a JSON string            */
} ga_line_t;

/* A line that writes to fd (json: escaped for a JSON string). Writes a
 * whole report at once when it can map a buffer for one: one write(2) per
 * report, so that reports of processes sharing a file or a terminal never
 * interleave (a report larger than GA_REPORT_MAX, or a process that cannot
 * map 256 KiB, writes in pieces). ga_line_done writes it out and unmaps. */
#define GA_REPORT_MAX (256u * 1024)
GA_INTERNAL void ga_line_init(ga_line_t *line, int fd, int json);
GA_INTERNAL void ga_line_done(ga_line_t *line);
/* A line in its own 512 bytes only (a scratch line, or one flushed as it goes). */
GA_INTERNAL void ga_line_init_small(ga_line_t *line, int fd, int json);

/* What a line holds (one that was not flushed), NUL-terminated, into out
 * (cut to size): a title composed on a scratch line. */
GA_INTERNAL void ga_line_copy(const ga_line_t *line, char *out, size_t size);

/* Write out what the line holds and empty it. */
GA_INTERNAL void ga_flush(ga_line_t *line);
/* One byte as it is (flushes a full buffer first). */
GA_INTERNAL void ga_put_byte(ga_line_t *line, char c);
/* A string; escaped for a JSON string when line->json. */
GA_INTERNAL void ga_put(ga_line_t *line, const char *s);
GA_INTERNAL void ga_put_dec(ga_line_t *line, unsigned long long v);
GA_INTERNAL void ga_put_ptr(ga_line_t *line, const void *p);   /* "0x..." */

#endif
