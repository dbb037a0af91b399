/* Every kind of block glibc's malloc makes, freed and reallocated by threads
 * other than the one that made them: small ones in the main arena's brk heap
 * and in thread arenas' heaps, large mmapped chunks (also memalign'd ones,
 * whose chunk starts past the mapping's first page) and calloc'd ones.
 * Under the library at a sampling rate that leaves most to glibc, none of
 * them may be taken for memory no allocator made. Prints "ok". */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define SLOTS 128
static void *slots[THREADS][SLOTS];

static void *work(void *arg)
{
    long t = (long)arg;
    unsigned s = (unsigned)t * 7919u + 1;
    for (int r = 0; r < 4000; r++) {
        s = s * 1103515245u + 12345u;
        int i = (int)((s >> 8) % SLOTS);
        size_t n = (s >> 3) % 7 == 0 ? 200000 + s % 900000 : 1 + (s >> 5) % 3000;
        /* Take a block another thread made, free or grow it. */
        void *old = __atomic_exchange_n(&slots[(t + 1) % THREADS][i], NULL, __ATOMIC_ACQ_REL);
        if (old != NULL && (s & 4))
            old = realloc(old, n / 2 + 1);
        free(old);
        void *p = (s & 1) ? malloc(n) : (s & 2) ? calloc(1, n) : memalign(4096, n);
        memset(p, 1, n < 64 ? n : 64);
        free(__atomic_exchange_n(&slots[t][i], p, __ATOMIC_ACQ_REL));
    }
    return NULL;
}

int main(void)
{
    pthread_t threads[THREADS];
    /* A fixed threshold: every large block stays an mmapped chunk (glibc
     * would otherwise raise it after the first such free). */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    for (long t = 0; t < THREADS; t++)
        pthread_create(&threads[t], NULL, work, (void *)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < SLOTS; i++)
            free(slots[t][i]);
    puts("ok");
    return 0;
}
