/* expect: SIGABRT "bad-free" "attempting free on address which was not malloc()-ed"
 * and: "is in read-only data (a string literal or a constant)" "free_string_literal"
 * Freeing a string literal.
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static char *name(int copy)
{
    return copy ? strdup("literal") : (char *)"literal";
}

int main(void)
{
#ifdef TWIN
    char *p = name(1);
#else
    char *p = name(0);
#endif
    printf("%s\n", p);
    free(p);
    return 0;
}
