/* A library whose constructor runs long (it runs under the loader's lock):
 * it tells its loader it has started through the pipe named by
 * $GUARDALLOC_TEST_CTOR_FD, then sleeps: 0.3 s, or until the process dies
 * with $GUARDALLOC_TEST_CTOR_BLOCK (a constructor waiting for something the
 * faulting thread would have done). */
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void slow(void)
{
    const char *fd = getenv("GUARDALLOC_TEST_CTOR_FD");
    if (fd != NULL)
        (void)!write(atoi(fd), "x", 1);
    if (getenv("GUARDALLOC_TEST_CTOR_BLOCK") != NULL)
        for (;;)
            pause();
    usleep(300 * 1000);
}
