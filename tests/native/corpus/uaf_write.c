/* expect: SIGSEGV "use-after-free WRITE" "freed 40-byte buffer" "freed at:" "WRITE of size 1 by thread"
 * options: uaf=1
 * Writing a freed block. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
/* The bug lives in trigger() (noinline, so it keeps a frame) so that
 * the report can name the faulting function. */
#define BUG __attribute__((noinline)) 
BUG void trigger(char *p) { p[0] = 1; }
#ifndef TWIN
int main(void) { char *p = malloc(40); free(p); trigger(p); return 0; }
#else   /* the bug-free twin */
int main(void) { char *p = malloc(40); trigger(p); free(p); return 0; }
#endif
