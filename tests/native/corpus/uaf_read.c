/* expect: SIGSEGV "use-after-free READ" "freed 40-byte buffer" "freed at:" "READ of size 1 by thread"
 * options: uaf=1
 * Reading a freed block. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
/* The bug lives in trigger() (noinline, so it keeps a frame) so that
 * the report can name the faulting function. */
#define BUG __attribute__((noinline)) 
BUG int trigger(const volatile char *p) { return p[8]; }
#ifndef TWIN
int main(void) { char *p = calloc(40, 1); free(p); return trigger(p); }
#else   /* the bug-free twin */
int main(void) { char *p = calloc(40, 1); int r = trigger(p); free(p); return r; }
#endif
