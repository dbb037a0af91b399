/* dlopener LIBRARY [overflow]: dlopen a library, use its blocks. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    void *h = dlopen(argv[1], RTLD_NOW);
    int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "guardalloc_native_owns");
    char *(*block)(size_t);
    const char *(*loaded)(void);
    void (*overflow)(char *, size_t);
    char *p;
    if (h == NULL || owns == NULL)
        return 2;
    block = (char *(*)(size_t))dlsym(h, "plugin_block");
    loaded = (const char *(*)(void))dlsym(h, "plugin_loaded");
    overflow = (void (*)(char *, size_t))dlsym(h, "plugin_overflow");
    if (!owns(loaded()) || strcmp(loaded(), "loaded") != 0)
        return 3;
    p = block(24);
    if (!owns(p))
        return 4;
    if (argc > 2)
        overflow(p, 24);
    free(p);
    dlclose(h);
    puts("ok");
    return 0;
}
