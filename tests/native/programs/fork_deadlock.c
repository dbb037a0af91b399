/* The reproducer of the fork() deadlock: one thread allocates
 * 1 MiB blocks in a loop (each a new arena: the heap's lock, then the fault
 * registry's; as many as the heap's table of arenas holds) while main forks.
 * Prints "ok" after NFORKS forks (default 30: the arenas are made within
 * them; each fork costs more as they grow). Under
 * sample_rate=1:max_bytes=64G it hung in 5 of 5 runs when the fork handlers
 * took the two locks in the opposite order. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define ARENAS 16384

static void *allocate(void *arg)
{
    int i;
    (void)arg;
    for (i = 0; i < ARENAS; i++) {
        char *volatile p = malloc(1 << 20);   /* volatile: kept, not optimised out */
        if (p != NULL)
            p[0] = 1;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 30, i;
    pthread_t t;
    alarm(60);   /* a hang dies of SIGALRM */
    pthread_create(&t, NULL, allocate, NULL);
    for (i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid < 0 || waitpid(pid, NULL, 0) != pid) {
            puts("FAILED: fork or waitpid");
            return 1;
        }
    }
    puts("ok");
    return 0;
}
