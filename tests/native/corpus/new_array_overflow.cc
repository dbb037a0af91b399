/* expect: SIGSEGV "heap-buffer-overflow WRITE" "0 bytes past the end of a 40-byte buffer"
 * options: alignment=1
 * Writing one element past a new[] array (operator new[] -> malloc). */
#include <cstdio>
__attribute__((noinline)) void trigger(int *a, int i) { a[i] = 7; }
#ifndef TWIN
int main() { int *a = new int[10]; trigger(a, 10); delete[] a; return 0; }
#else   /* the bug-free twin */
int main() { int *a = new int[10]; trigger(a, 9); delete[] a; return 0; }
#endif
