/*
 * libguardalloc_malloc: the preloadable allocator (LD_PRELOAD). It defines
 * malloc and its family, guards the sampled requests in the native heap
 * (heap.c) and hands everything else to the next allocator in the lookup
 * order (dlsym(RTLD_NEXT), normally glibc's). free() and realloc() route by
 * ownership -- a range check against the heap's one reservation -- so blocks
 * made before the library took over, or not sampled, keep working.
 *
 * Start-up: the first call (often from the dynamic loader or another
 * library's constructor, before our own constructor) initialises: resolve
 * the next allocator (dlsym allocates: those requests are served from a
 * small static bootstrap buffer), parse GUARDALLOC_OPTIONS (a bad option:
 * message, exit status 2; in a setuid program it is ignored, see
 * ga_options_env), reserve the heap, install the fault handler.
 *
 * No recursion: a thread-local depth counter sends every allocation made
 * while the library is inside itself (the fault registry's calloc,
 * pthread_atfork, the unwinder) to the next allocator.
 *
 * Families: the C++ operators (cxx_operators.c) allocate and free through
 * ga_new and ga_delete here, so that a guarded block records which family
 * made it (heap.h, GA_FAMILY_*) and a free by another family is reported.
 *
 * Bad frees: a pointer the heap does not own is handed to the next
 * allocator only when it may be one of its blocks (nonheap.h); a stack
 * array, a global, a literal or an address in some mapping is reported as a
 * bad-free instead.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "faults.h"
#include "guards.h"
#include "cxx_operators.h"
#include "heap.h"
#include "nonheap.h"
#include "options.h"
#include "report_file.h"

#define GA_EXPORT __attribute__((visibility("default")))
#define GA_TLS __thread __attribute__((tls_model("initial-exec")))

/* -- the next allocator --------------------------------------------------- */

static void *(*next_malloc)(size_t);
static void (*next_free)(void *);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static int (*next_posix_memalign)(void **, size_t, size_t);
static void *(*next_aligned_alloc)(size_t, size_t);
static void *(*next_memalign)(size_t, size_t);
static void *(*next_valloc)(size_t);
static void *(*next_pvalloc)(size_t);
static size_t (*next_usable_size)(void *);

/* -- bootstrap: what dlsym allocates before the next allocator is known --- */

#define GA_BOOT_SIZE (64 * 1024)
static char ga_boot[GA_BOOT_SIZE] __attribute__((aligned(64)));
static size_t ga_boot_used;

static int ga_is_boot(const void *p)
{
    return (const char *)p >= ga_boot && (const char *)p < ga_boot + GA_BOOT_SIZE;
}

/* 16-byte header holding the size, then the (zero-filled, never reused)
 * block. Freed bootstrap blocks are simply dropped. */
static void *ga_boot_alloc(size_t n, size_t align)
{
    size_t start, used;
    if (align < 16)
        align = 16;
    do {
        used = __atomic_load_n(&ga_boot_used, __ATOMIC_RELAXED);
        start = ga_round_up(used + 16, align);
        if (start + n > GA_BOOT_SIZE || start + n < start) {
            errno = ENOMEM;
            return NULL;
        }
    } while (!__atomic_compare_exchange_n(&ga_boot_used, &used, start + n, 0,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    *(size_t *)(ga_boot + start - sizeof(size_t)) = n;
    return ga_boot + start;
}

static size_t ga_boot_size(const void *p)
{
    return *(const size_t *)((const char *)p - sizeof(size_t));
}

/* -- state ------------------------------------------------------------------ */

enum { GA_UNINIT = 0, GA_INITIALISING = 1, GA_READY = 2 };
static int ga_state;
static int ga_guarding;            /* 1 when the heap is up                  */
static ga_options_t ga_opts;
static GA_TLS int ga_depth;        /* >0: inside the library                 */
static GA_TLS uint64_t ga_counter; /* deterministic sampling, per thread      */
static GA_TLS uint64_t ga_rng;     /* random=1 sampling, per thread           */

static void ga_die_bad_options(const char *message)
{
    static const char tail[] = "\nguardalloc: fix GUARDALLOC_OPTIONS (name=value pairs separated by ':')\n";
    (void)!write(STDERR_FILENO, "guardalloc: ", 12);
    (void)!write(STDERR_FILENO, message, strlen(message));
    (void)!write(STDERR_FILENO, tail, sizeof(tail) - 1);
    _exit(2);
}

/* help=1, as ASan's: every option with its default and help on stderr;
 * the program then runs. */
static void ga_write_help(void)
{
    char text[4096];
    size_t n = ga_options_help(text, sizeof(text));
    (void)!write(STDERR_FILENO, text, n < sizeof(text) ? n : sizeof(text) - 1);
}

/* One line, exit status 2: the message says what to change. */
static void ga_die(const char *message)
{
    (void)!write(STDERR_FILENO, "guardalloc: ", 12);
    (void)!write(STDERR_FILENO, message, strlen(message));
    (void)!write(STDERR_FILENO, "\n", 1);
    _exit(2);
}

/* GUARDALLOC_OPTIONS. Before libc has set environ -- a .preinit_array
 * function that allocates, as the sanitizer runtimes do -- getenv sees
 * nothing: the value is read from /proc/self/environ instead, with plain
 * system calls (no stdio: it may allocate). */
static const char *ga_options_text(int *ignored)
{
    static char value[4096];
    static const char name[] = GA_OPTIONS_ENV "=";
    char chunk[4096];
    size_t matched = 0, len = 0;
    int in_value = 0, at_start = 1, fd;
    ssize_t got, i;
    if (environ != NULL)
        return ga_options_env(ignored);   /* secure_getenv; nothing in secure mode */
    *ignored = 0;
    if (ga_secure_execution())
        return NULL;   /* never the caller's options in a setuid program (options.h) */
    fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    while ((got = read(fd, chunk, sizeof(chunk))) > 0) {
        for (i = 0; i < got; i++) {
            char c = chunk[i];
            if (in_value) {
                if (c == '\0') {
                    close(fd);
                    value[len] = '\0';
                    return value;
                }
                if (len < sizeof(value) - 1)
                    value[len++] = c;
            } else if (c == '\0') {
                at_start = 1;
                matched = 0;
            } else if (at_start && c == name[matched]) {
                if (++matched == sizeof(name) - 1)
                    in_value = 1;
            } else {
                at_start = 0;
            }
        }
    }
    close(fd);
    if (!in_value)
        return NULL;
    value[len] = '\0';
    return value;
}

/* One line on stderr when log_path names a file reports will not be
 * written to (a symbolic link, another user's file: report_file.h). */
static void ga_say_if_log_path_refused(const char *log_path)
{
    char expanded[GA_LOG_PATH_MAX + 64], line[GA_LOG_PATH_MAX + 192];
    ga_rf_why_t why;
    size_t n;
    if (log_path[0] == '\0')
        return;
    why = ga_report_path_check(log_path, expanded, sizeof(expanded));
    if (why == GA_RF_OK)
        return;
    n = ga_report_file_message(line, sizeof(line) - 1, why == GA_RF_TOO_LONG ? log_path : expanded,
                               why, 0);
    line[n++] = '\n';
    (void)!write(STDERR_FILENO, line, n);
}

static void *ga_sym(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* The launcher that symbolizes reports (guardalloc exec, run --native)
 * hands its child the write end of a pipe as "FD:INODE": text reports go
 * there, raw, and come out of the launcher symbolized. The inode is checked
 * so that a descendant in which FD was closed and reused for another pipe
 * writes to stderr instead of into a stranger's pipe. */
#define GA_REPORT_PIPE_ENV "GUARDALLOC_REPORT_PIPE"

static void ga_use_report_pipe(const char *text)
{
    unsigned long long fd = 0, ino = 0;
    struct stat st;
    if (text == NULL || *text < '0' || *text > '9')
        return;
    for (; *text >= '0' && *text <= '9' && fd < (1u << 30); text++)
        fd = fd * 10 + (unsigned)(*text - '0');
    if (*text++ != ':' || *text < '0' || *text > '9')
        return;
    for (; *text >= '0' && *text <= '9' && ino < (1ull << 60); text++)
        ino = ino * 10 + (unsigned)(*text - '0');
    if (*text != '\0' || fstat((int)fd, &st) != 0 || !S_ISFIFO(st.st_mode) || st.st_ino != ino)
        return;
    ga_set_report_fd((int)fd);
}

static void ga_initialise(void)
{
    char err[512];
    const char *text;
    int ignored;
    ga_depth++;
    next_malloc = ga_sym("malloc");
    next_free = ga_sym("free");
    next_calloc = ga_sym("calloc");
    next_realloc = ga_sym("realloc");
    next_posix_memalign = ga_sym("posix_memalign");
    next_aligned_alloc = ga_sym("aligned_alloc");
    next_memalign = ga_sym("memalign");
    next_valloc = ga_sym("valloc");
    next_pvalloc = ga_sym("pvalloc");
    next_usable_size = ga_sym("malloc_usable_size");
    if (next_malloc == NULL || next_free == NULL || next_calloc == NULL || next_realloc == NULL
            || next_memalign == NULL) {
        static const char msg[] = "guardalloc: no next allocator (dlsym(RTLD_NEXT, \"malloc\") failed)\n";
        (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
        _exit(2);
    }
    ga_options_defaults(&ga_opts);
    text = ga_options_text(&ignored);
    if (ignored)
        (void)!write(STDERR_FILENO, GA_SECURE_IGNORED_LINE, sizeof(GA_SECURE_IGNORED_LINE) - 1);
    if (ga_options_parse(text, &ga_opts, err, sizeof(err)) != 0)
        ga_die_bad_options(err);
    if (ga_opts.help)
        ga_write_help();
    /* A heap that cannot be set up (max_bytes larger than the address space
     * holds) is an error like a bad option, not a silent run unguarded. */
    if (ga_opts.sample_rate > 0 && ga_heap_init(&ga_opts, err, sizeof(err)) != 0)
        ga_die(err);
    if (ga_opts.sample_rate > 0) {
        (void)ga_nonheap_init(next_malloc);
        /* JSON reports (docs/report-schema.json) beside the text one; in a
         * Python process guardalloc.faults reads the same option again. */
        ga_set_report_path(ga_opts.log_path);
        ga_say_if_log_path_refused(ga_opts.log_path);
        /* secure_getenv: a set-user-ID program does not take it from the caller. */
        ga_use_report_pipe(secure_getenv(GA_REPORT_PIPE_ENV));
        ga_reports_enable();
        ga_guarding = 1;
    }
    ga_depth--;
}

/* Make sure the library is initialised: 1 when the caller may use the next
 * allocator (or the heap), 0 when it must use the bootstrap buffer (this
 * thread is initialising). */
static int ga_ready(void)
{
    int state = __atomic_load_n(&ga_state, __ATOMIC_ACQUIRE);
    if (__builtin_expect(state == GA_READY, 1))
        return 1;
    if (state == GA_UNINIT && __atomic_compare_exchange_n(&ga_state, &state, GA_INITIALISING, 0,
                                                          __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        ga_initialise();
        __atomic_store_n(&ga_state, GA_READY, __ATOMIC_RELEASE);
        return 1;
    }
    if (ga_depth > 0)
        return 0;            /* our own initialisation (dlsym) is asking */
    while (__atomic_load_n(&ga_state, __ATOMIC_ACQUIRE) != GA_READY)
        sched_yield();       /* another thread is initialising */
    return 1;
}

__attribute__((constructor)) static void ga_constructor(void)
{
    /* Options are checked before main even if nothing allocates. */
    (void)ga_ready();
}

/* Should this request be guarded? */
static inline int ga_sampled(void)
{
    uint64_t rate = ga_opts.sample_rate;
    if (!ga_guarding || ga_depth > 0)
        return 0;
    if (rate == 1)
        return 1;
    if (ga_opts.random) {
        uint64_t x = ga_rng;
        if (x == 0)
            x = ((uint64_t)(uintptr_t)&ga_rng * 0x9E3779B97F4A7C15ull) ^ (uint64_t)getpid() ^ 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ga_rng = x;
        return x % rate == 0;
    }
    if (++ga_counter >= rate) {
        ga_counter = 0;
        return 1;
    }
    return 0;
}

static void *ga_guarded(size_t n, size_t alignment, int zero, int family)
{
    void *p;
    ga_depth++;
    p = ga_heap_alloc(n, alignment, zero, family);
    ga_depth--;
    return p;
}

/* Free a guarded block by a function of `family` (freed_by: its name in a
 * report, NULL for the family's own). */
static void ga_guarded_free(void *p, int family, const char *freed_by)
{
    ga_depth++;
    ga_heap_free(p, family, freed_by);
    ga_depth--;
}

/* A pointer the heap does not own, freed by `freed_by` ("free",
 * "operator delete"...): to the next allocator, unless it is surely not one
 * of its blocks -- then a bad-free report, and the memory is left alone. */
static void ga_free_foreign(void *p, const char *freed_by)
{
    ga_where_t where;
    ga_stack_t stack;
    if (ga_guarding && ga_depth == 0 && ga_nonheap_maybe(p)) {
        ga_depth++;
        if (ga_nonheap_classify(p, &where) != GA_MEM_HEAP) {
            if (ga_opts.native_stacks)
                ga_stack_capture(&stack);
            else
                memset(&stack, 0, sizeof(stack));
            ga_report_bad_free(p, &where, freed_by, &stack,
                               ga_opts.on_fault == GA_ON_FAULT_CONTINUE);
            if (ga_opts.on_fault != GA_ON_FAULT_CONTINUE)
                abort();
            ga_depth--;
            return;
        }
        ga_depth--;
    }
    next_free(p);
}

/* -- the interposed functions --------------------------------------------- */

/* No object may be larger than PTRDIFF_MAX (glibc refuses the same): such a
 * request, or one that alignment padding would carry past it, fails with
 * ENOMEM before any size is rounded (rounding near SIZE_MAX wraps). */
static inline int ga_too_big(size_t n, size_t alignment)
{
    return alignment > (size_t)PTRDIFF_MAX || n > (size_t)PTRDIFF_MAX - alignment;
}

static void *ga_enomem(void)
{
    errno = ENOMEM;
    return NULL;
}

GA_EXPORT void *malloc(size_t n)
{
    void *p;
    if (ga_too_big(n, 0))
        return ga_enomem();
    if (!ga_ready())
        return ga_boot_alloc(n, 16);
    if (ga_sampled() && (p = ga_guarded(n, 0, 0, GA_FAMILY_MALLOC)) != NULL)
        return p;
    return next_malloc(n);
}

GA_EXPORT void free(void *p)
{
    ga_delete(p, GA_FAMILY_MALLOC, "free");
}

GA_EXPORT void *calloc(size_t n, size_t size)
{
    size_t total;
    void *p;
    if (__builtin_mul_overflow(n, size, &total) || ga_too_big(total, 0))
        return ga_enomem();
    if (!ga_ready())
        return ga_boot_alloc(total, 16);   /* static: already zero */
    if (ga_sampled() && (p = ga_guarded(total, 0, 1, GA_FAMILY_MALLOC)) != NULL)
        return p;
    return next_calloc(n, size);
}

static size_t ga_old_size(void *p)
{
    if (ga_is_boot(p))
        return ga_boot_size(p);
    return ga_heap_usable_size(p);
}

/* realloc's release of the old block (a guarded or bootstrap one): a block
 * that new or new[] made is a mismatch named "realloc". */
static void ga_realloc_release(void *p)
{
    if (ga_heap_owns(p))
        ga_guarded_free(p, GA_FAMILY_MALLOC, "realloc");
    else
        free(p);
}

GA_EXPORT void *realloc(void *p, size_t n)
{
    void *q = NULL;
    size_t old;
    if (p == NULL)
        return malloc(n);
    if (ga_too_big(n, 0))
        return ga_enomem();  /* p untouched */
    if (!ga_is_boot(p) && !ga_heap_owns(p)) {
        ga_where_t where;
        if (!ga_ready())
            return NULL;
        if (ga_guarding && ga_depth == 0 && ga_nonheap_maybe(p)) {
            int kind;
            ga_depth++;
            kind = ga_nonheap_classify(p, &where);
            ga_depth--;
            if (kind != GA_MEM_HEAP) {
                ga_free_foreign(p, "realloc");   /* the report */
                errno = ENOMEM;
                return NULL;
            }
        }
        return next_realloc(p, n);
    }
    if (ga_heap_owns(p) && ga_heap_not_live(p)) {
        /* Freed already (or inside a block): the free reports it, as a
         * double or an invalid free, instead of copying from a free slot. */
        ga_guarded_free(p, GA_FAMILY_MALLOC, "realloc");
        errno = ENOMEM;
        return NULL;
    }
    if (n == 0) {            /* glibc's realloc(p, 0): free, NULL */
        ga_realloc_release(p);
        return NULL;
    }
    /* A guarded block stays guarded (so a shrinking realloc gets a block of
     * exactly the new size); a bootstrap block moves to the next allocator. */
    old = ga_old_size(p);
    if (ga_heap_owns(p) && ga_depth == 0)
        q = ga_guarded(n, 0, 0, GA_FAMILY_MALLOC);
    if (q == NULL) {
        if (!ga_ready())
            q = ga_boot_alloc(n, 16);
        else
            q = next_malloc(n);
    }
    if (q == NULL)
        return NULL;         /* errno from the allocator; p untouched */
    memcpy(q, p, old < n ? old : n);
    ga_realloc_release(p);
    return q;
}

GA_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, total);
}

static int ga_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* The aligned allocators; alignment already valid (a power of two). */
static void *ga_aligned(size_t alignment, size_t n)
{
    void *p;
    if (ga_too_big(n, alignment))
        return ga_enomem();
    if (!ga_ready())
        return ga_boot_alloc(n, alignment);
    if (ga_sampled() && (p = ga_guarded(n, alignment, 0, GA_FAMILY_MALLOC)) != NULL)
        return p;
    return next_memalign(alignment, n);
}

GA_EXPORT int posix_memalign(void **out, size_t alignment, size_t n)
{
    int saved = errno;
    void *p;
    if (!ga_pow2(alignment) || alignment % sizeof(void *) != 0)
        return EINVAL;
    p = ga_aligned(alignment, n);
    if (p == NULL) {
        int e = errno ? errno : ENOMEM;
        errno = saved;
        return e;
    }
    errno = saved;
    *out = p;
    return 0;
}

GA_EXPORT void *aligned_alloc(size_t alignment, size_t n)
{
    if (!ga_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return ga_aligned(alignment, n);
}

GA_EXPORT void *memalign(size_t alignment, size_t n)
{
    size_t a = 1;
    if (alignment > ((size_t)1 << 62)) {
        errno = EINVAL;
        return NULL;
    }
    while (a < alignment)    /* glibc rounds a bad alignment up */
        a <<= 1;
    return ga_aligned(a, n);
}

GA_EXPORT void *valloc(size_t n)
{
    return memalign(ga_page_size(), n);
}

GA_EXPORT void *pvalloc(size_t n)
{
    size_t page = ga_page_size();
    if (n > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    return memalign(page, ga_round_up(n ? n : 1, page));
}

GA_EXPORT size_t malloc_usable_size(void *p)
{
    if (p == NULL)
        return 0;
    if (ga_is_boot(p))
        return ga_boot_size(p);
    if (ga_heap_owns(p))
        return ga_heap_usable_size(p);
    if (!ga_ready() || next_usable_size == NULL)
        return 0;
    return next_usable_size(p);
}

/* -- for the C++ operators (cxx_operators.c) ------------------------------ */

void *ga_next_operator(const char *name)
{
    void *f;
    ga_depth++;
    f = ga_sym(name);
    ga_depth--;
    return f;
}

void ga_no_operator(const char *name)
{
    static const char msg[] = "guardalloc: out of memory in a C++ operator new, and no next ";
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)!write(STDERR_FILENO, name, strlen(name));
    (void)!write(STDERR_FILENO, "\n", 1);
    abort();
}

void *ga_new(size_t n, size_t alignment, int family)
{
    void *p;
    if (!ga_ready())
        return ga_boot_alloc(n, alignment);
    if (ga_sampled() && (p = ga_guarded(n, alignment, 0, family)) != NULL)
        return p;
    if (alignment == 0)
        return next_malloc(n ? n : 1);
    if (!ga_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return next_memalign(alignment, n ? n : 1);
}

void ga_delete(void *p, int family, const char *freed_by)
{
    if (p == NULL || ga_is_boot(p))
        return;
    if (ga_heap_owns(p)) {
        ga_guarded_free(p, family, freed_by);
        return;
    }
    if (ga_ready())
        ga_free_foreign(p, freed_by);
}

/* -- for guardalloc.native and the tests (ctypes) ------------------------- */

/* 1 when this process guards allocations. */
GA_EXPORT int guardalloc_native_active(void)
{
    (void)ga_ready();
    return ga_guarding;
}

/* The heap's counters: allocations, frees, live, refused, arenas,
 * mapped_bytes (heap.h's ga_heap_stats_t, as six uint64_t). */
GA_EXPORT void guardalloc_native_stats(uint64_t out[6])
{
    ga_heap_stats_t s;
    memset(&s, 0, sizeof(s));
    if (ga_guarding)
        ga_heap_stats(&s);
    out[0] = s.allocations;
    out[1] = s.frees;
    out[2] = s.live;
    out[3] = s.refused;
    out[4] = s.arenas;
    out[5] = s.mapped_bytes;
}

/* 1 when p lies in the guarded heap. */
GA_EXPORT int guardalloc_native_owns(const void *p)
{
    return ga_heap_owns(p);
}

/* The heap's reservation [*start, *end) (both NULL when not guarding): the
 * benchmarks count the VMAs inside it. */
GA_EXPORT void guardalloc_native_range(void **start, void **end)
{
    *start = ga_guarding ? ga_heap_start : NULL;
    *end = ga_guarding ? ga_heap_end : NULL;
}
