/* A library that main dlopen()s: its constructor allocates, and it hands
 * out a malloc'ed block; plugin_overflow() writes one byte past it. */
#include <stdlib.h>
#include <string.h>

static char *made_at_load;

__attribute__((constructor)) static void loaded(void)
{
    made_at_load = malloc(32);
    strcpy(made_at_load, "loaded");
}

char *plugin_block(size_t n)
{
    char *p = malloc(n);
    memset(p, 'p', n);
    return p;
}

const char *plugin_loaded(void) { return made_at_load; }

__attribute__((noinline)) void plugin_overflow(char *p, size_t n) { p[n] = 0; }
