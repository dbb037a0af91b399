/* expect: SIGSEGV "heap-buffer-underflow WRITE" "1 bytes before the start of a 32-byte buffer" "WRITE of size 1 by thread"
 * options: align=left
 * Writing the byte before a block. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
/* The bug lives in trigger() (noinline, so it keeps a frame) so that
 * the report can name the faulting function. */
#define BUG __attribute__((noinline)) 
BUG void trigger(char *p, int i) { p[i] = 'x'; }
#ifndef TWIN
int main(void) { char *p = malloc(32); trigger(p, -1); free(p); return 0; }
#else   /* the bug-free twin */
int main(void) { char *p = malloc(32); trigger(p, 0); free(p); return 0; }
#endif
