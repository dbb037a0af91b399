/* fork_storm NFORKS: fork NFORKS times while other threads make arenas
 * without pause -- one leaks malloc(1 MiB) blocks (each a new one-slot
 * arena) up to a bound, one allocates and frees blocks of every size class
 * up to 64 KiB, one creates and frees aligned blocks. Each child allocates
 * a small and a 1 MiB block (a new arena: the heap's and the registry's locks
 * must both be usable in the child), frees one of its parent's blocks and
 * exits 0. The parent checks every child's status and prints "ok".
 *
 * Watchdogs: the parent and each child arm alarm() (a hang dies of SIGALRM
 * instead of waiting for ever); the test also bounds the whole run. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define LEAK_BOUND 4096
#define PARENT_SECONDS 100
#define CHILD_SECONDS 20

static volatile int stop;
static char *leaked[LEAK_BOUND];
static int nleaked;

static void *make_large_arenas(void *arg)
{
    (void)arg;
    while (!stop && nleaked < LEAK_BOUND) {
        char *p = malloc(1 << 20);
        if (p == NULL)
            break;
        p[0] = 1;
        leaked[nleaked++] = p;
    }
    return NULL;
}

static void *churn_classes(void *arg)
{
    char *ring[64] = {0};
    unsigned i = 0;
    (void)arg;
    while (!stop) {
        size_t n = 1 + (i * 2654435761u) % (64 * 1024);
        free(ring[i % 64]);
        ring[i % 64] = malloc(n);
        if (ring[i % 64] != NULL)
            ring[i % 64][n - 1] = 1;
        i++;
    }
    for (i = 0; i < 64; i++)
        free(ring[i]);
    return NULL;
}

static void *churn_aligned(void *arg)
{
    (void)arg;
    while (!stop) {
        void *p = NULL;
        if (posix_memalign(&p, 4096, 3 * 4096 + 5) == 0) {
            memset(p, 2, 3 * 4096 + 5);
            free(p);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100, i;
    pthread_t t[3];
    char *parent = malloc(4000);
    alarm(PARENT_SECONDS);
    memset(parent, 7, 4000);
    pthread_create(&t[0], NULL, make_large_arenas, NULL);
    pthread_create(&t[1], NULL, churn_classes, NULL);
    pthread_create(&t[2], NULL, churn_aligned, NULL);
    for (i = 0; i < n; i++) {
        int status;
        pid_t pid = fork();
        if (pid == 0) {
            char *small, *large;
            alarm(CHILD_SECONDS);
            small = malloc(200);
            large = malloc(1 << 20);
            if (small == NULL || large == NULL)
                _exit(4);
            memset(small, 1, 200);
            large[(1 << 20) - 1] = 1;
            free(small);
            free(large);
            if (parent[3999] != 7)
                _exit(3);
            free(parent);
            _exit(0);
        }
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            printf("FAILED: child %d status %d\n", i, pid < 0 ? -1 : status);
            return 1;
        }
    }
    stop = 1;
    for (i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (i = 0; i < nleaked; i++)
        free(leaked[i]);
    free(parent);
    puts("ok");
    return 0;
}
