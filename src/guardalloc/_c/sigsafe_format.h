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
    size_t len;
    int fd;        /* where ga_flush writes; -1: nowhere                  */
    int json;      /* 1: escape for the inside of a JSON string            */
} ga_line_t;

/* Write out what the line holds and empty it. */
GA_INTERNAL void ga_flush(ga_line_t *line);
/* One byte as it is (flushes a full buffer first). */
GA_INTERNAL void ga_put_byte(ga_line_t *line, char c);
/* A string; escaped for a JSON string when line->json. */
GA_INTERNAL void ga_put(ga_line_t *line, const char *s);
GA_INTERNAL void ga_put_dec(ga_line_t *line, unsigned long long v);
GA_INTERNAL void ga_put_ptr(ga_line_t *line, const void *p);   /* "0x..." */

#endif
