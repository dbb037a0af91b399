/* expect: SIGABRT "invalid-free of" "8 bytes inside it"
 * options:
 * Freeing a pointer into the middle of a block. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
/* The bug lives in trigger() (noinline, so it keeps a frame) so that
 * the report can name the faulting function. */
#define BUG __attribute__((noinline)) 
BUG void trigger(char *p) { free(p + 8); }
#ifndef TWIN
int main(void) { char *p = malloc(24); trigger(p); return 0; }
#else   /* the bug-free twin */
int main(void) { char *p = malloc(24); free(p); return 0; }
#endif
