/* expect: SIGSEGV "heap-buffer-overflow WRITE" "0 bytes past the end of a 10-byte buffer"
 * options: alignment=1
 * Overflow of a block that realloc shrank (the old size is no longer valid). */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
/* The bug lives in trigger() (noinline, so it keeps a frame) so that
 * the report can name the faulting function. */
#define BUG __attribute__((noinline)) 
BUG void trigger(char *p, int i) { p[i] = 'x'; }
int main(void) {
    char *p = malloc(100);
    memset(p, 'a', 100);
    p = realloc(p, 10);
#ifndef TWIN
    trigger(p, 10); free(p); return 0;
#else   /* the bug-free twin */
    trigger(p, 9); free(p); return 0;
#endif
}
