/* expect: SIGABRT "bad-free" "attempting free on address which was not malloc()-ed"
 * and: "is in a global or static variable" "free_global"
 * Freeing a global array.
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char table[64];

int main(void)
{
#ifdef TWIN
    char *p = malloc(sizeof(table));
#else
    char *p = table;
#endif
    strcpy(p, "global");
    printf("%s\n", p);
    free(p);
    return 0;
}
