/* expect: SIGSEGV "heap-buffer-overflow WRITE" "0 bytes past the end of a 256-byte buffer"
 * options: alignment=1
 * Overflow of an aligned_alloc block. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
/* The bug lives in trigger() (noinline, so it keeps a frame) so that
 * the report can name the faulting function. */
#define BUG __attribute__((noinline)) 
BUG void trigger(char *p, int i) { p[i] = 'x'; }
int main(void) {
    char *p = aligned_alloc(256, 256);
    if (p == NULL || ((unsigned long)p & 255)) return 3;
#ifndef TWIN
    trigger(p, 256); free(p); return 0;
#else   /* the bug-free twin */
    trigger(p, 255); free(p); return 0;
#endif
}
