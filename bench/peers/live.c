/* live N SIZE: keep N blocks of SIZE bytes live (each touched), stop at the
 * first failure. Prints "live K" every 1000 blocks (so a crash still shows
 * how far it got), then "done K vmas_added V vmas_total T": the VMAs it
 * added since main, and all of the process's; before it "heap_vmas H", the
 * VMAs inside guardalloc's heap reservation (-1 under another tool). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long vmas(void)
{
    char buf[65536];
    long n = 0;
    ssize_t got;
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return -1;
    while ((got = (ssize_t)fread(buf, 1, sizeof(buf), f)) > 0)
        for (ssize_t i = 0; i < got; i++)
            n += buf[i] == '\n';
    fclose(f);
    return n;
}

/* VMAs overlapping guardalloc's heap, or -1 without the library. */
static long heap_vmas(void)
{
    void (*range)(void **, void **) = (void (*)(void **, void **))dlsym(RTLD_DEFAULT, "guardalloc_native_range");
    unsigned long lo, hi;
    char *start, *end;
    long n = 0;
    FILE *f;
    if (range == NULL)
        return -1;
    range((void **)&start, (void **)&end);
    f = fopen("/proc/self/maps", "r");
    while (f != NULL && fscanf(f, "%lx-%lx%*[^\n]\n", &lo, &hi) == 2)
        n += lo < (unsigned long)end && hi > (unsigned long)start;
    if (f != NULL)
        fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    long n = atol(argv[1]), size = atol(argv[2]), i, before = vmas();
    char **keep = calloc((size_t)n, sizeof(char *));
    char line[64];
    for (i = 0; i < n; i++) {
        keep[i] = malloc((size_t)size);
        if (keep[i] == NULL)
            break;
        keep[i][0] = 1;
        if (i % 1000 == 999) {
            int len = snprintf(line, sizeof(line), "live %ld\n", i + 1);
            (void)!write(1, line, (size_t)len);
        }
    }
    {
        long after = vmas();
        printf("heap_vmas %ld\n", heap_vmas());
        printf("done %ld vmas_added %ld vmas_total %ld\n", i, after - before, after);
    }
    return 0;
}
