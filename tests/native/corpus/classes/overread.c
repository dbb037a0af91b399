/* Reading k bytes past the end of an n-byte block (argv: n k): the byte at
 * offset n + k - 1. Caught at the access (SIGSEGV, heap-buffer-overflow
 * READ) when that byte lies past the block's alignment padding; with
 * alignment=1 always. Built with -DTWIN: reads only the block's own bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static int peek(const volatile char *p, size_t i) { return p[i]; }

int main(int argc, char **argv)
{
    size_t n = argc > 2 ? strtoul(argv[1], NULL, 10) : 1, k = argc > 2 ? strtoul(argv[2], NULL, 10) : 1;
    char *p = malloc(n);
    int sum = 0;
    memset(p, 7, n);
#ifdef TWIN
    sum += peek(p, n - 1);
#else
    sum += peek(p, n + k - 1);
#endif
    printf("%d\n", sum);
    free(p);
    return 0;
}
