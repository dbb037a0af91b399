/* expect: SIGABRT "bad-free" "is in a global or static variable" "freed by realloc"
 * realloc() of a global array: it was never malloc()-ed.
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char names[32] = "global";

int main(void)
{
#ifdef TWIN
    char *p = strdup(names);
#else
    char *p = names;
#endif
    p = realloc(p, 64);
    strcat(p, " grown");
    printf("%s\n", p);
    free(p);
    return 0;
}
