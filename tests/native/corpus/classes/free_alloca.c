/* expect: SIGABRT "bad-free" "attempting free on address which was not malloc()-ed"
 * and: "is on the stack of thread"
 * Freeing an alloca block.
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <alloca.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static void use(size_t n)
{
#ifdef TWIN
    char *p = malloc(n);
#else
    char *p = alloca(n);
#endif
    memset(p, 'a', n - 1);
    p[n - 1] = '\0';
    printf("%zu\n", strlen(p));
    free(p);
}

int main(void)
{
    use(40);
    return 0;
}
