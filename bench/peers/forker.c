/* forker N ROUNDS: N live malloc(64) blocks, then ROUNDS x (fork, child
 * _exit, waitpid); prints the median fork+wait time in microseconds. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    long n = atol(argv[1]), i;
    int rounds = atoi(argv[2]), r;
    double t[1000];
    for (i = 0; i < n; i++) {
        char *p = malloc(64);
        if (p == NULL) {
            printf("failed %ld\n", i);
            return 1;
        }
        p[0] = 1;
    }
    for (r = 0; r < rounds && r < 1000; r++) {
        struct timespec a, b;
        pid_t pid;
        clock_gettime(CLOCK_MONOTONIC, &a);
        pid = fork();
        if (pid == 0)
            _exit(0);
        waitpid(pid, NULL, 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        t[r] = (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3;
    }
    qsort(t, (size_t)rounds, sizeof(double), cmp);
    printf("median_us %.1f\n", t[rounds / 2]);
    return 0;
}
