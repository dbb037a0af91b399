/* expect: SIGABRT "double-free of" "was freed already" "first freed at:"
 * realloc() of a block that was freed already: a double free.
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(24), *q;
    strcpy(p, "realloc");
#ifdef TWIN
    q = realloc(p, 100);
#else
    free(p);
    q = realloc(p, 100);
#endif
    printf("%p\n", (void *)q);
    free(q);
    return 0;
}
