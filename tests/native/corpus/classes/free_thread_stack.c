/* expect: SIGABRT "bad-free" "is on the stack of thread" "(this thread)"
 * A thread frees an array on its own stack.
 * Built with -DTWIN: the bug-free twin, which must run silently. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *worker(void *arg)
{
#ifdef TWIN
    char *buf = malloc(64);
#else
    char buf[64];
#endif
    (void)arg;
    strcpy(buf, "thread");
    printf("%s\n", buf);
    free(buf);
    return NULL;
}

int main(void)
{
    pthread_t thread;
    if (pthread_create(&thread, NULL, worker, NULL) != 0)
        return 1;
    pthread_join(thread, NULL);
    return 0;
}
