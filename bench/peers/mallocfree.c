/* mallocfree N: N x (malloc(64), free) after a warm-up; prints the mean
 * nanoseconds per pair (what the library's per-call costs add up to). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000, i;
    struct timespec a, b;
    void *volatile p;
    for (i = 0; i < 1000; i++) {
        p = malloc(64);
        free(p);
    }
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < n; i++) {
        p = malloc(64);
        free(p);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.0f ns per malloc+free\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
    return 0;
}
