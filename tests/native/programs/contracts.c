/* The allocator contracts, checked from C under the library:
 *   contracts all        every check, sample_rate=1
 *   contracts exact      alignment=1: blocks end at the guard
 *   contracts sampled    sample_rate=2: foreign blocks keep working
 *   contracts max_bytes  max_bytes=64K: past it, the next allocator
 * Prints "ok" and exits 0, or names the failed check and exits 1. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAILED line %d: %s\n", __LINE__, #c); exit(1); } } while (0)

static int (*owns)(const void *);
/* alignment=1 is byte-exact: blocks end at the guard, so malloc's 16-byte
 * alignment is given up on purpose (as EF_ALIGNMENT=0 does). */
static int byte_exact;
/* alignment=16 given explicitly: every block at 16. */
static int align16;

/* The alignment a block of n bytes must have: by default (alignment=auto)
 * the smallest power of two at least n, capped at 16 -- enough for any type
 * that fits in n bytes (C17 7.22.3). */
static size_t want_alignment(size_t n)
{
    size_t a = 1;
    if (byte_exact)
        return 1;
    if (align16)
        return 16;
    while (a < n && a < 16)
        a <<= 1;
    return a;
}

static void check_all(void)
{
    size_t n, page = (size_t)sysconf(_SC_PAGESIZE);
    char *p, *q;
    void *v;
    int saved;
    for (n = 1; n <= 300; n++) {
        p = malloc(n);
        CHECK(p != NULL && owns(p));
        CHECK(((uintptr_t)p % want_alignment(n)) == 0);
        CHECK(malloc_usable_size(p) == n);            /* never more than may be touched */
        memset(p, 0xAB, n);
        free(p);
    }
    /* malloc(0): a unique pointer that free accepts. */
    p = malloc(0);
    q = malloc(0);
    CHECK(p != NULL && q != NULL && p != q);
    free(p);
    free(q);
    free(NULL);
    /* calloc: zeroed, also in a reused (dirty) slot; overflow gives ENOMEM. */
    p = malloc(64);
    memset(p, 0xFF, 64);
    free(p);
    p = calloc(8, 8);
    CHECK(p != NULL && owns(p));
    for (n = 0; n < 64; n++)
        CHECK(p[n] == 0);
    free(p);
    errno = 0;
    CHECK(calloc(SIZE_MAX / 2, 4) == NULL && errno == ENOMEM);
    /* malloc failure sets errno. */
    errno = 0;
    CHECK(malloc(SIZE_MAX / 2) == NULL && errno == ENOMEM);
    /* realloc. */
    p = realloc(NULL, 10);
    CHECK(p != NULL && owns(p));
    memcpy(p, "0123456789", 10);
    p = realloc(p, 5000);
    CHECK(p != NULL && memcmp(p, "0123456789", 10) == 0 && malloc_usable_size(p) == 5000);
    p = realloc(p, 4);
    CHECK(p != NULL && memcmp(p, "0123", 4) == 0 && malloc_usable_size(p) == 4);
    CHECK(realloc(p, 0) == NULL);                     /* glibc: freed */
    errno = 0;
    p = malloc(8);
    CHECK(realloc(p, SIZE_MAX / 2) == NULL && errno == ENOMEM);
    free(p);                                          /* still valid after a failed realloc */
    /* reallocarray. */
    errno = 0;
    CHECK(reallocarray(NULL, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    p = reallocarray(NULL, 10, 10);
    CHECK(p != NULL && malloc_usable_size(p) == 100);
    free(p);
    /* posix_memalign: powers of two, multiples of sizeof(void *). */
    for (n = sizeof(void *); n <= page; n *= 2) {
        saved = errno = 1234;
        CHECK(posix_memalign(&v, n, 100) == 0 && v != NULL && ((uintptr_t)v % n) == 0);
        CHECK(errno == saved);                        /* errno untouched */
        CHECK(owns(v) && malloc_usable_size(v) == 100);
        free(v);
    }
    v = (void *)1;
    CHECK(posix_memalign(&v, 3, 10) == EINVAL && v == (void *)1);
    CHECK(posix_memalign(&v, 4, 10) == EINVAL);
    CHECK(posix_memalign(&v, 2 * page, 10) == 0 && ((uintptr_t)v % (2 * page)) == 0);
    CHECK(!owns(v));                                  /* larger than a page: next allocator */
    free(v);
    /* aligned_alloc, memalign, valloc, pvalloc. */
    p = aligned_alloc(64, 100);
    CHECK(p != NULL && ((uintptr_t)p & 63) == 0 && owns(p));
    free(p);
    errno = 0;
    CHECK(aligned_alloc(24, 10) == NULL && errno == EINVAL);
    p = memalign(48, 10);                             /* rounded up to 64, as glibc does */
    CHECK(p != NULL && ((uintptr_t)p & 63) == 0);
    free(p);
    p = valloc(10);
    CHECK(p != NULL && ((uintptr_t)p % page) == 0 && malloc_usable_size(p) == 10);
    free(p);
    p = pvalloc(10);
    CHECK(p != NULL && ((uintptr_t)p % page) == 0 && malloc_usable_size(p) == page);
    free(p);
    CHECK(malloc_usable_size(NULL) == 0);
}

static void check_exact(void)
{
    size_t n, page = (size_t)sysconf(_SC_PAGESIZE);
    for (n = 1; n <= 100; n++) {
        char *p = malloc(n);
        CHECK(owns(p) && ((uintptr_t)(p + n) % page) == 0);   /* ends at the guard */
        free(p);
    }
}

static void check_sampled(void)
{
    char *p[8];
    int i, mine = 0, foreign = 0;
    for (i = 0; i < 8; i++) {
        p[i] = malloc(32);
        memset(p[i], i, 32);
        if (owns(p[i]))
            mine++;
        else
            foreign++;
    }
    CHECK(mine == 4 && foreign == 4);                 /* one in two, deterministic */
    for (i = 0; i < 8; i++) {
        p[i] = realloc(p[i], 64);
        CHECK(p[i][31] == i);
        CHECK(malloc_usable_size(p[i]) >= 64);
        free(p[i]);
    }
}

static void check_max_bytes(void)
{
    char *p[40];
    int i, mine = 0;
    for (i = 0; i < 40; i++) {
        p[i] = malloc(100);
        CHECK(p[i] != NULL);
        mine += owns(p[i]);
    }
    CHECK(mine == 16);                                /* 64 KiB of 4 KiB slots */
    for (i = 0; i < 40; i++)
        free(p[i]);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "all";
    const char *options = getenv("GUARDALLOC_OPTIONS");
    owns = (int (*)(const void *))dlsym(RTLD_DEFAULT, "guardalloc_native_owns");
    CHECK(owns != NULL);
    byte_exact = options != NULL && strstr(options, "alignment=1") != NULL
        && strstr(options, "alignment=16") == NULL;
    align16 = options != NULL && strstr(options, "alignment=16") != NULL;
    if (strcmp(mode, "all") == 0)
        check_all();
    else if (strcmp(mode, "exact") == 0)
        check_exact();
    else if (strcmp(mode, "sampled") == 0)
        check_sampled();
    else if (strcmp(mode, "max_bytes") == 0)
        check_max_bytes();
    else
        return 2;
    puts("ok");
    return 0;
}
