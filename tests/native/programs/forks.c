/* forks N: while a thread allocates and frees without pause, fork N times;
 * each child allocates, frees (the heap's lock was not left held) and
 * frees a block of its parent's. The parent checks every child's status. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;

static void *churn(void *arg)
{
    (void)arg;
    while (!stop) {
        char *p = malloc(100);
        p[0] = 1;
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 50, i;
    pthread_t t;
    char *parent = malloc(4000);
    memset(parent, 7, 4000);
    pthread_create(&t, NULL, churn, NULL);
    for (i = 0; i < n; i++) {
        pid_t pid = fork();
        int status;
        if (pid == 0) {
            char *p = malloc(200);
            memset(p, 1, 200);
            free(p);
            if (parent[3999] != 7)
                _exit(3);
            free(parent);
            _exit(0);
        }
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            printf("FAILED: child %d status %d\n", i, status);
            return 1;
        }
    }
    stop = 1;
    pthread_join(t, NULL);
    free(parent);
    puts("ok");
    return 0;
}
