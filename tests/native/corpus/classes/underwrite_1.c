/* expect: SIGABRT "heap-buffer-underflow" "1 byte(s) before the start of a 32-byte buffer" "allocated at:"
 * Writing 1 byte(s) before a block: found at free (the default right placement).
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static void fill(char *p, long from, long to)
{
    for (long i = from; i < to; i++)
        p[i] = 'x';
}

int main(void)
{
    char *p = malloc(32);
#ifdef TWIN
    fill(p, 0, 32);
#else
    fill(p, -1, 32);
#endif
    printf("%c\n", p[0]);
    free(p);
    return 0;
}
