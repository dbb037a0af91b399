/* expect: SIGSEGV "heap-buffer-overflow WRITE" "0 bytes past the end of a 128-byte buffer"
 * options: alignment=1
 * Overflow of a posix_memalign block. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
/* The bug lives in trigger() (noinline, so it keeps a frame) so that
 * the report can name the faulting function. */
#define BUG __attribute__((noinline)) 
BUG void trigger(char *p, int i) { p[i] = 'x'; }
int main(void) {
    void *p;
    if (posix_memalign(&p, 64, 128) != 0 || ((unsigned long)p & 63)) return 3;
#ifndef TWIN
    trigger(p, 128); free(p); return 0;
#else   /* the bug-free twin */
    trigger(p, 127); free(p); return 0;
#endif
}
