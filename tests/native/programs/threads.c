/* threads THREADS ITERATIONS: every thread allocates and frees blocks of
 * varied sizes, fills each with its own tag and checks the tag before it
 * frees (a block handed out twice would be overwritten by another thread).
 * Half of the frees happen in another thread (a shared exchange slot). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long iterations;
static char *volatile exchange[64];
static pthread_mutex_t exchange_lock = PTHREAD_MUTEX_INITIALIZER;

static void check(const char *p, size_t n, char tag)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != tag) {
            printf("FAILED: block %p overwritten\n", (void *)p);
            exit(1);
        }
}

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    uint64_t x = id * 2654435761u + 1;
    char *live[32] = {0};
    size_t sizes[32];
    long i;
    for (i = 0; i < iterations; i++) {
        int k;
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        k = (int)(x % 32);
        if (live[k]) {
            check(live[k], sizes[k], (char)id);
            if (x & 64) {
                /* Hand it to whoever frees next: cross-thread free. */
                char *other;
                pthread_mutex_lock(&exchange_lock);
                other = exchange[x % 64];
                exchange[x % 64] = live[k];
                pthread_mutex_unlock(&exchange_lock);
                memset(live[k], 0, 0);
                free(other);
            } else {
                free(live[k]);
            }
            live[k] = NULL;
        } else {
            sizes[k] = 1 + (size_t)(x >> 20) % 9000;
            live[k] = (x & 128) ? malloc(sizes[k]) : calloc(1, sizes[k]);
            memset(live[k], (char)id, sizes[k]);
        }
    }
    for (i = 0; i < 32; i++)
        free(live[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 8, i;
    pthread_t t[64];
    iterations = argc > 2 ? atol(argv[2]) : 20000;
    for (i = 0; i < n; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    for (i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    for (i = 0; i < 64; i++)
        free(exchange[i]);
    puts("ok");
    return 0;
}
