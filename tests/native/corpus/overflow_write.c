/* expect: SIGSEGV "heap-buffer-overflow WRITE" "0 bytes past the end of a 13-byte buffer" "WRITE of size 1 by thread"
 * options: alignment=1
 * A one-byte overflow write. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
/* The bug lives in trigger() (noinline, so it keeps a frame) so that
 * the report can name the faulting function. */
#define BUG __attribute__((noinline)) 
BUG void trigger(char *p, int i) { p[i] = 'x'; }
#ifndef TWIN
int main(void) { char *p = malloc(13); trigger(p, 13); free(p); return 0; }
#else   /* the bug-free twin */
int main(void) { char *p = malloc(13); trigger(p, 12); free(p); return 0; }
#endif
