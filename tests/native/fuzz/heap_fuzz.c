/*
 * Fuzz target for the malloc library's entry points with extreme sizes and
 * alignments: malloc, calloc, realloc, reallocarray, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc, free, malloc_usable_size.
 *
 * The input is a list of 18-byte records (op, modes, a, b); a and b become a
 * size, a count or an alignment through the modes (raw, near SIZE_MAX, near
 * PTRDIFF_MAX, within an alignment of SIZE_MAX, near a power of two, small).
 * Up to 16 blocks stay live across records. Each result is checked against
 * the C and glibc contracts, and a broken one abort()s:
 *   - a size no object can have (more than PTRDIFF_MAX, counting the
 *     alignment's padding) or an overflowing nmemb * size: NULL and ENOMEM
 *     (posix_memalign: ENOMEM, its output untouched);
 *   - a bad alignment: EINVAL (aligned_alloc, posix_memalign);
 *   - any other NULL: errno ENOMEM;
 *   - a block: aligned as asked (malloc and calloc: for any type that fits,
 *     unless GUARDALLOC_OPTIONS asks for less), malloc_usable_size >= its size, calloc's
 *     bytes zero, a realloc keeps the old bytes (first and last 16 checked),
 *     a failed realloc leaves the old block intact.
 * A loop or a hang is caught by the fuzzer's -timeout (and alarm() in the
 * replay driver).
 *
 * Two builds of this one file:
 *   - libFuzzer (clang): the library's C sources compiled in, so that this
 *     program's malloc is the library's and coverage reaches it:
 *       tests/native/fuzz/run_fuzzer.sh SECONDS
 *   - replay (any C compiler, -DGA_REPLAY): a main() that feeds files or
 *     directories of inputs through the built library (LD_PRELOAD); the
 *     tests replay the checked-in corpus this way (test_native_fuzz.py).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECORD 18
#define SLOTS 16
#define KEEP_LIMIT ((size_t)1 << 20)   /* larger blocks are checked and freed at once */
#define MARK 16
/* calloc with a possible total above this is not called: the next allocator
 * (glibc) really zero-fills such blocks, and the fuzzer's RSS would grow by
 * gigabytes. Impossible totals (overflow, > PTRDIFF_MAX) are always called. */
#define CALLOC_LIMIT ((size_t)64 << 20)

typedef struct {
    unsigned char *p;
    size_t n;
} block_t;

static block_t live[SLOTS];

/* Called through pointers: a compiler may not assume anything about their
 * results (alloc_align, which UBSan checks, is false for memalign(0, n);
 * a result NULL must be the library's, not folded away). */
static void *(*volatile do_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void *(*volatile do_memalign)(size_t, size_t) = memalign;

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c)) {                                                                    \
            fprintf(stderr, "heap_fuzz: check failed at line %d: %s\n", __LINE__, #c); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static uint64_t read64(const uint8_t *d)
{
    uint64_t v;
    memcpy(&v, d, sizeof(v));
    return v;
}

/* A size (or count) from v, shaped by mode. */
static size_t shape(unsigned mode, uint64_t v, size_t alignment)
{
    switch (mode & 7) {
    case 0: return (size_t)v;
    case 1: return SIZE_MAX - (size_t)(v & 0xFFFF);
    case 2: return ((size_t)1 << (v & 63)) - 2 + (size_t)((v >> 6) & 3);
    case 3: return (size_t)(v & 0xFFF);
    case 4: return (size_t)(v & 0xFFFFF);
    case 5: return (size_t)PTRDIFF_MAX - 0x8000 + (size_t)(v & 0xFFFF);
    case 6: return (size_t)(v & 0x3FFFFFF);
    default: return SIZE_MAX - (alignment ? alignment : 16) + 1 + (size_t)(v & 0xFF);
    }
}

/* An alignment from v: mostly powers of two, some not. */
static size_t shape_alignment(unsigned mode, uint64_t v)
{
    switch (mode & 3) {
    case 0: return (size_t)1 << (v & 63);
    case 1: return (size_t)v;
    case 2: return (size_t)1 << (v & 15);
    default: return ((size_t)1 << (v & 63)) + (size_t)((v >> 6) & 1) - (size_t)((v >> 7) & 1);
    }
}

static int pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* No object can be this large once aligned. */
static int too_big(size_t n, size_t alignment)
{
    return alignment > PTRDIFF_MAX || n > PTRDIFF_MAX - alignment;
}

static unsigned char mark_byte(size_t slot, size_t i)
{
    return (unsigned char)(0x41 + slot * 7 + i);
}

/* Marks in the first MARK bytes of the slot's block and, when they do not
 * overlap those, in its last MARK bytes. */
static void mark(size_t slot)
{
    block_t *b = &live[slot];
    size_t i;
    for (i = 0; i < MARK && i < b->n; i++)
        b->p[i] = mark_byte(slot, i);
    for (i = 0; i < MARK && b->n >= 2 * MARK; i++)
        b->p[b->n - 1 - i] = mark_byte(slot, MARK + i);
}

/* The first MARK bytes of q, and its last MARK ones when the block held them
 * all (n at least its old size), are still slot's marks. */
static void check_marks(size_t slot, const unsigned char *q, size_t n)
{
    block_t *b = &live[slot];
    size_t i;
    for (i = 0; i < MARK && i < b->n && i < n; i++)
        CHECK(q[i] == mark_byte(slot, i));
    if (n >= b->n && b->n >= 2 * MARK) {
        for (i = 0; i < MARK; i++)
            CHECK(q[b->n - 1 - i] == mark_byte(slot, MARK + i));
    }
}

static void release(size_t slot)
{
    free(live[slot].p);
    live[slot].p = NULL;
    live[slot].n = 0;
}

/* The alignment malloc, calloc and realloc owe a block of n bytes: that of
 * any type that fits (the largest power of two up to n, at most 16), or less
 * when GUARDALLOC_OPTIONS asks for a smaller alignment (alignment=1:
 * byte-exact blocks, on purpose). */
static size_t fundamental(size_t n)
{
    static size_t asked;
    size_t a = 1;
    if (asked == 0) {
        const char *o = getenv("GUARDALLOC_OPTIONS"), *at;
        asked = 16;
        for (at = o; at != NULL && (at = strstr(at, "alignment=")) != NULL; at++)
            if (at == o || at[-1] == ':')
                asked = (size_t)strtoul(at + 10, NULL, 10);
        if (asked == 0 || asked > 16)
            asked = 16;
    }
    while (a * 2 <= n && a * 2 <= asked)
        a *= 2;
    return a;
}

/* A block of n bytes aligned to `alignment`, or NULL with errno (already
 * checked against the contract by the caller): keep it or check-and-drop. */
static void take(size_t slot, void *q, size_t n, size_t alignment, int zeroed)
{
    unsigned char *p = q;
    CHECK(((uintptr_t)p & (alignment - 1)) == 0);
    CHECK(malloc_usable_size(p) >= n);
    if (zeroed && n > 0)
        CHECK(p[0] == 0 && p[n / 2] == 0 && p[n - 1] == 0);
    if (n > 0) {
        p[0] = 1;
        p[n - 1] = 1;
    }
    if (n > KEEP_LIMIT) {
        free(p);
        return;
    }
    release(slot);
    live[slot].p = p;
    live[slot].n = n;
    mark(slot);
}

static void one(const uint8_t *r)
{
    unsigned op = r[0] % 11, modes = r[1];
    size_t slot = (r[0] / 11) % SLOTS;
    size_t alignment = shape_alignment(modes >> 3, read64(r + 10));
    size_t n = shape(modes, read64(r + 2), alignment), m, total;
    int sz_over, rc, saved;
    void *q;
    errno = 0;
    switch (op) {
    case 0:   /* malloc */
        q = malloc(n);
        if (n > PTRDIFF_MAX)
            CHECK(q == NULL);
        if (q == NULL) {
            CHECK(errno == ENOMEM);
            return;
        }
        take(slot, q, n, fundamental(n), 0);
        return;
    case 1:   /* calloc */
        m = shape(modes >> 3, read64(r + 10), 0);
        sz_over = __builtin_mul_overflow(n, m, &total) || total > PTRDIFF_MAX;
        if (!sz_over && total > CALLOC_LIMIT)
            return;   /* a real zero-filled block of gigabytes: memory, not a contract */
        q = calloc(n, m);
        if (sz_over)
            CHECK(q == NULL);
        if (q == NULL) {
            CHECK(errno == ENOMEM);
            return;
        }
        take(slot, q, total, fundamental(total), 1);
        return;
    case 2:   /* realloc of a live block (or NULL) */
    case 9:   /* reallocarray */
        m = op == 9 ? shape(modes >> 3, read64(r + 10), 0) : 1;
        sz_over = __builtin_mul_overflow(n, m, &total) || total > PTRDIFF_MAX;
        q = op == 9 ? reallocarray(live[slot].p, n, m) : realloc(live[slot].p, n);
        if (q == NULL) {
            if (!sz_over && total == 0 && live[slot].p != NULL) {
                /* glibc's realloc(p, 0): p freed */
                live[slot].p = NULL;
                live[slot].n = 0;
                return;
            }
            CHECK(errno == ENOMEM);
            if (live[slot].p != NULL)
                check_marks(slot, live[slot].p, live[slot].n);   /* untouched */
            return;
        }
        CHECK(!sz_over);
        if (live[slot].p != NULL)
            check_marks(slot, q, total);
        live[slot].p = NULL;   /* moved into q */
        live[slot].n = 0;
        take(slot, q, total, fundamental(total), 0);
        return;
    case 3:   /* posix_memalign */
        q = (void *)&live;     /* must stay untouched on failure */
        saved = errno = 1234;
        rc = posix_memalign(&q, alignment, n);
        CHECK(errno == saved);
        if (!pow2(alignment) || alignment % sizeof(void *) != 0) {
            CHECK(rc == EINVAL && q == (void *)&live);
            return;
        }
        if (too_big(n, alignment))
            CHECK(rc == ENOMEM);
        if (rc != 0) {
            CHECK(rc == ENOMEM && q == (void *)&live);
            return;
        }
        take(slot, q, n, alignment, 0);
        return;
    case 4:   /* aligned_alloc */
        q = do_aligned_alloc(alignment, n);
        if (!pow2(alignment)) {
            CHECK(q == NULL && errno == EINVAL);
            return;
        }
        if (too_big(n, alignment))
            CHECK(q == NULL);
        if (q == NULL) {
            CHECK(errno == ENOMEM);
            return;
        }
        take(slot, q, n, alignment, 0);
        return;
    case 5: { /* memalign: a bad alignment is rounded up to a power of two */
        size_t a = 1;
        q = do_memalign(alignment, n);
        if (alignment > ((size_t)1 << 62)) {
            CHECK(q == NULL && (errno == EINVAL || errno == ENOMEM));
            return;
        }
        while (a < alignment)
            a <<= 1;
        if (too_big(n, a))
            CHECK(q == NULL);
        if (q == NULL) {
            CHECK(errno == ENOMEM);
            return;
        }
        take(slot, q, n, a, 0);
        return;
    }
    case 6:   /* valloc */
    case 7: { /* pvalloc */
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        q = op == 6 ? valloc(n) : pvalloc(n);
        if (too_big(n, page))
            CHECK(q == NULL);
        if (q == NULL) {
            CHECK(errno == ENOMEM);
            return;
        }
        take(slot, q, op == 7 ? (n ? (n + page - 1) / page * page : page) : n, page, 0);
        return;
    }
    case 8:   /* free */
        release(slot);
        return;
    default:  /* malloc_usable_size */
        if (live[slot].p != NULL) {
            CHECK(malloc_usable_size(live[slot].p) >= live[slot].n);
            check_marks(slot, live[slot].p, live[slot].n);
        }
        return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t i;
    for (i = 0; i + RECORD <= size; i += RECORD)
        one(data + i);
    for (i = 0; i < SLOTS; i++)
        release(i);
    return 0;
}

#ifdef GA_REPLAY
/* heap_fuzz_replay FILE_OR_DIR...: run every input, print "ok N". */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    static uint8_t buf[1 << 16];
    size_t n;
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    return 1;
}

int main(int argc, char **argv)
{
    int i, count = 0;
    alarm(120);   /* a hang dies of SIGALRM */
    for (i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            struct dirent **names;
            int k, n = scandir(argv[i], &names, NULL, alphasort);
            for (k = 0; k < n; k++) {
                char path[4096];
                if (names[k]->d_name[0] != '.') {
                    snprintf(path, sizeof(path), "%s/%s", argv[i], names[k]->d_name);
                    count += replay_file(path);
                }
                free(names[k]);
            }
            free(names);
        } else {
            count += replay_file(argv[i]);
        }
    }
    printf("ok %d\n", count);
    return 0;
}
#endif
