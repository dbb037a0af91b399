/*
 * What "one object per guarded page" costs the code that uses the objects,
 * without Python or guardalloc: N 48-byte objects (a small Python object's
 * size), each visited once per pass (read-modify-write of its first and
 * third word: a reference count and a type pointer), in allocation order
 * (list iteration, the GC's traversal) and in a random order (dict and sort
 * access), laid out
 *
 *   packed     48 bytes apart (pymalloc's pools),
 *   exact      one per 8 KiB stride (page + guard page), right-aligned: the
 *              object ends at its page's end, where guardalloc puts it so
 *              that an overflow faults at the first byte past it. Every
 *              object's lines sit at the same page offset, so they share
 *              the same cache sets: the L1 (12-way, indexed by the page
 *              offset) keeps 12 of them, the L2 (1 MiB, 16-way, index bits
 *              6-15) 16 colours x 16 ways = 256, the L3 (index bits to ~20)
 *              a few thousand; past that every visit goes to memory,
 *   coloured   the same stride, each object 64 * (i % 63) bytes further from
 *              its page's end (what the exact guard forbids: it spreads the
 *              sets, leaving the TLB misses),
 *   coloured+thp  the same on transparent huge pages (what guard pages
 *              forbid too: a guard splits the huge page), leaving only the
 *              line per object.
 *
 *     cc -O2 -o locality locality.c && ./locality [objects] [passes]
 *
 * Prints one line per layout, "<layout>-order ns <layout>-random ns":
 * nanoseconds per object visited (best pass, thread CPU time).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define OBJECT 48
#define HUGE (2u << 20)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double pass(char **objects, const size_t *order, size_t n)
{
    double start = now();
    for (size_t k = 0; k < n; k++) {
        char *o = objects[order ? order[k] : k];
        (*(volatile uint64_t *)o)++;
        (*(volatile uint64_t *)(o + 16))++;
    }
    return (now() - start) / (double)n * 1e9;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 75000;
    int passes = argc > 2 ? atoi(argv[2]) : 20;
    static const char *names[] = {"packed", "exact", "coloured", "coloured+thp"};
    size_t *order = malloc(n * sizeof *order);
    char **objects = malloc(n * sizeof *objects);
    uint64_t x = 88172645463325252ull;
    if (order == NULL || objects == NULL)
        return perror("malloc"), 1;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {   /* Fisher-Yates, xorshift64 */
        size_t j, t;
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        j = x % (i + 1); t = order[i]; order[i] = order[j]; order[j] = t;
    }
    for (int layout = 0; layout < 4; layout++) {
        size_t stride = layout == 0 ? OBJECT : 8192;
        size_t len = n * stride + 2 * HUGE;
        char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        char *base;
        double best[2] = {1e30, 1e30};
        if (map == MAP_FAILED)
            return perror("mmap"), 1;
        base = (char *)(((uintptr_t)map + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
        madvise(base, len - HUGE, layout == 3 ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        for (size_t i = 0; i < n; i++) {
            size_t offset = layout == 0 ? 0 : 4096 - OBJECT;
            if (layout >= 2)
                offset -= 64 * (i % 63);
            objects[i] = base + i * stride + offset;
            memset(objects[i], 0, OBJECT);
        }
        for (int p = 0; p < passes; p++) {
            for (int random = 0; random < 2; random++) {
                double t = pass(objects, random ? order : NULL, n);
                if (t < best[random])
                    best[random] = t;
            }
        }
        printf("%s-order %.2f %s-random %.2f\n", names[layout], best[0], names[layout], best[1]);
        munmap(map, len);
    }
    return 0;
}
