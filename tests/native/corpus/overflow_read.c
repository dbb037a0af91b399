/* expect: SIGSEGV "heap-buffer-overflow READ" "0 bytes past the end of a 13-byte buffer" "READ of size 1 by thread"
 * options: alignment=1
 * A one-byte overflow read. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
/* The bug lives in trigger() (noinline, so it keeps a frame) so that
 * the report can name the faulting function. */
#define BUG __attribute__((noinline)) 
BUG int trigger(const volatile char *p, int i) { return p[i]; }
#ifndef TWIN
int main(void) { char *p = calloc(13, 1); int r = trigger(p, 13); free(p); return r; }
#else   /* the bug-free twin */
int main(void) { char *p = calloc(13, 1); int r = trigger(p, 12); free(p); return r; }
#endif
