/* expect: SIGABRT "bad-free" "attempting free on address which was not malloc()-ed"
 * and: "is in a global or static variable" "free_static_local"
 * Freeing a static local array.
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static char *scratch(void)
{
#ifdef TWIN
    char *buf = malloc(48);
#else
    static char buf[48] = "static";
#endif
    strcpy(buf, "static local");
    return buf;
}

int main(void)
{
    char *p = scratch();
    printf("%s\n", p);
    free(p);
    return 0;
}
