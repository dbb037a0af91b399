/* Allocation before main: in a constructor, which may run before the
 * library's own (the library initialises on first use). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *early;

__attribute__((constructor(101))) static void before_main(void)
{
    early = malloc(50);
    strcpy(early, "made before main");
}

int main(void)
{
    int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "guardalloc_native_owns");
    if (owns == NULL || !owns(early))
        return 1;
    puts(early);
    free(early);
    return 0;
}
