/* A fault while another thread is inside dlopen(), holding the loader's lock
 * (the library's constructor runs under it): a handler that took that lock
 * (dladdr, libgcc's unwinder) would hang until the constructor returns, or
 * for ever (with argv[2] the constructor never returns). Without argv[2], another thread loads and unloads the library
 * in a loop and the fault comes at a random moment. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *plugin;
static int loop;

static void *load(void *arg)
{
    (void)arg;
    do {
        void *h = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
        if (h != NULL)
            dlclose(h);
    } while (loop);
    return NULL;
}

__attribute__((noinline)) void trigger(char *p, int n) { memset(p, 'x', n); }

int main(int argc, char **argv)
{
    pthread_t t;
    char *p = malloc(64), env[16], byte;
    int fds[2];
    if (argc < 2 || pipe(fds) != 0)
        return 2;
    plugin = argv[1];
    loop = argc < 3;
    snprintf(env, sizeof(env), "%d", fds[1]);
    setenv("GUARDALLOC_TEST_CTOR_FD", env, 1);
    if (!loop)
        setenv("GUARDALLOC_TEST_CTOR_BLOCK", "1", 1);
    pthread_create(&t, NULL, load, NULL);
    if (read(fds[0], &byte, 1) != 1)   /* the constructor runs: the loader's lock is held */
        return 2;
    if (loop)
        usleep((useconds_t)(rand() % 1000));
    trigger(p, 80);
    return 0;
}
