/* expect: SIGSEGV "heap-buffer-overflow WRITE" "0 bytes past the end of a 11-byte buffer"
 * options: alignment=1
 * strcpy into malloc(strlen(s)): the terminating NUL lands past the end. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
/* The bug lives in trigger() (noinline, so it keeps a frame) so that
 * the report can name the faulting function. */
#define BUG __attribute__((noinline)) 
#ifndef TWIN
BUG char *trigger(const char *s) { char *d = malloc(strlen(s)); strcpy(d, s); return d; }
#else   /* the bug-free twin */
BUG char *trigger(const char *s) { char *d = malloc(strlen(s) + 1); strcpy(d, s); return d; }
#endif
int main(int argc, char **argv) { (void)argv; char *d = trigger(argc > 5 ? "x" : "hello world"); puts(d); free(d); return 0; }
