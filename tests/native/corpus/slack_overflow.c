/* expect: SIGABRT "heap corruption: 3 slack byte(s) after the block" "allocated at:" "main"
 * options:
 * With the default 16-byte alignment a 13-byte block has 3 bytes of padding
 * before the guard: an overflow that stays in them is found at free. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
/* The bug lives in trigger() (noinline, so it keeps a frame) so that
 * the report can name the faulting function. */
#define BUG __attribute__((noinline)) 
BUG void trigger(char *p, int n) { memset(p, 'x', n); }
#ifndef TWIN
int main(void) { char *p = malloc(13); trigger(p, 16); free(p); return 0; }
#else   /* the bug-free twin */
int main(void) { char *p = malloc(13); trigger(p, 13); free(p); return 0; }
#endif
