/* expect: SIGABRT "double-free of" "was freed already" "first freed at:"
 * options:
 * Freeing a block twice. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
/* The bug lives in trigger() (noinline, so it keeps a frame) so that
 * the report can name the faulting function. */
#define BUG __attribute__((noinline)) 
BUG void trigger(char *p) { free(p); }
#ifndef TWIN
int main(void) { char *p = malloc(24); free(p); trigger(p); return 0; }
#else   /* the bug-free twin */
int main(void) { char *p = malloc(24); trigger(p); return 0; }
#endif
