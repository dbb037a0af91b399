/*
 * The C core alone, with no Python: alloc, free, the free-path result codes,
 * slack damage, the use-after-free quarantine, guard installation and a
 * fault report from the handler. Built and run by tests/test_c_core.py:
 *
 *     cc -I guardalloc/_c tests/c/test_core.c <the core's sources> -o test_core
 *     ./test_core madvise     (or mprotect)
 *
 * Prints one "ok" / "not ok" line per check (TAP) and exits 1 if any failed,
 * 2 if the kernel refused to set up an arena.
 */
#include "harness.h"
#include "report_internal.h"

#include <signal.h>
#include <sys/mman.h>

static int checks, failures;
static int pagemap_fd = -1;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        checks++;                                                     \
        if (cond) {                                                   \
            printf("ok %d - ", checks);                               \
        } else {                                                      \
            failures++;                                               \
            printf("not ok %d - (%s:%d: %s) ", checks, __FILE__,      \
                   __LINE__, #cond);                                  \
        }                                                             \
        printf(__VA_ARGS__);                                          \
        printf("\n");                                                 \
    } while (0)

/* Bit 58 of the page's /proc/self/pagemap entry: a guard region (Linux
 * 6.15+); -1 when it cannot be read. */
static int pagemap_guard(const void *p)
{
    uint64_t entry;
    off_t at = (off_t)((uintptr_t)p / ga_page_size() * sizeof entry);
    if (pagemap_fd < 0 || pread(pagemap_fd, &entry, sizeof entry, at) != (ssize_t)sizeof entry)
        return -1;
    return (int)(entry >> GA_PM_GUARD_BIT & 1);
}

/* Run fn(arg) in a forked child whose stderr goes to `out` (NUL-terminated,
 * truncated to size); the child's wait status. */
static int in_child(void (*fn)(void *), void *arg, char *out, size_t size)
{
    int fds[2], status = 0;
    size_t got = 0;
    ssize_t n;
    pid_t pid;
    fflush(stdout);
    if (pipe(fds) != 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    while (got + 1 < size && (n = read(fds[0], out + got, size - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = 0;
    close(fds[0]);
    waitpid(pid, &status, 0);
    return status;
}

static int died_of(int status, int sig)
{
    return WIFSIGNALED(status) && WTERMSIG(status) == sig;
}

static void touch(void *p)
{
    *(volatile char *)p = 1;
}

static void touch_reported(void *p)
{
    ga_test_reports();
    *(volatile char *)p = 1;
}

struct corrupt_free { ga_arena_t *a; char *p; };

static void report_corruption(void *arg)
{
    struct corrupt_free *c = arg;
    ga_damage_t damage;
    if (ga_free(c->a, c->p, 1, &damage) == GA_ERR_CORRUPT)
        ga_report_free(GA_ERR_CORRUPT, c->p, c->a, ga_slot_of(c->a, c->p), &damage, NULL, 0);
}

static void test_alloc_and_free(int backend)
{
    ga_arena_t a;
    ga_damage_t damage;
    size_t page = ga_page_size(), i;
    uint64_t counts[4];
    long slot, again;
    char *p;
    int slack_ok = 1, zero_ok = 1;

    ga_test_arena(&a, 8, 1, 16, GA_ALIGN_RIGHT, backend, -1);
    CHECK(a.size == page + 8 * 2 * page, "8 one-page slots, 9 guard pages: %zu bytes", a.size);

    slot = ga_alloc(&a, 100, 1, 1, -1);
    CHECK(slot == 0, "the first allocation takes slot 0 (got %ld)", slot);
    p = ga_block_start(&a, slot);
    CHECK(p == a.base + page + page - 112, "right-aligned: 100 bytes padded to 112 end at the guard");
    for (i = 100; i < 112; i++)
        slack_ok &= (uint8_t)p[i] == GA_SLACK_BYTE;
    CHECK(slack_ok, "the 12 slack bytes hold the pattern 0x%02X", GA_SLACK_BYTE);
    CHECK(ga_live_slot_at(&a, p) == 0 && ga_live_slot_at(&a, p + 1) == -1,
          "ga_live_slot_at finds the block by its start only");
    CHECK(ga_slot_of(&a, a.base) == -1 && ga_slot_of(&a, p + 5) == 0, "ga_slot_of: a guard is no slot");
    memset(p, 0x5A, 100);

    CHECK(ga_free(&a, p + 1, 1, &damage) == GA_ERR_INVALID, "free of an interior pointer: GA_ERR_INVALID");
    CHECK(ga_free(&a, a.base, 1, &damage) == GA_ERR_INVALID, "free of a guard page address: GA_ERR_INVALID");
    CHECK(ga_free(&a, a.base - 16, 1, &damage) == GA_ERR_FOREIGN, "free below the arena: GA_ERR_FOREIGN");
    CHECK(ga_free(&a, a.base + a.size, 1, &damage) == GA_ERR_FOREIGN, "free above the arena: GA_ERR_FOREIGN");

    CHECK(ga_free(&a, p, 1, &damage) == GA_OK && damage.nbytes == 100 && damage.damaged == 0,
          "free: GA_OK, 100 bytes, slack intact");
    CHECK(ga_free(&a, p, 1, &damage) == GA_ERR_DOUBLE, "the same free again: GA_ERR_DOUBLE");

    again = ga_alloc(&a, 100, 1, 1, -1);
    CHECK(again == 0, "without uaf the freed slot is reused first (LIFO; got %ld)", again);
    for (i = 0; i < 100; i++)
        zero_ok &= p[i] == 0;
    CHECK(zero_ok, "zero=1 clears a slot that held data");
    CHECK(ga_free(&a, p, 1, &damage) == GA_OK, "free it again");

    slot = ga_alloc(&a, 64, 0, 0, -1);
    CHECK(ga_free(&a, ga_block_start(&a, slot), 1, &damage) == GA_ERR_OWNED,
          "raw_only refuses an object's block: GA_ERR_OWNED");
    CHECK(ga_free(&a, ga_block_start(&a, slot), 0, &damage) == GA_OK, "the owner frees it");

    /* Slack damage: freed, and reported back to the caller. */
    slot = ga_alloc(&a, 100, 1, 1, -1);
    p = ga_block_start(&a, slot);
    p[100] = 0;
    p[105] = 0;
    CHECK(ga_free(&a, p, 1, &damage) == GA_ERR_CORRUPT && damage.nbytes == 100
              && damage.first_offset == 100 && damage.damaged == 2,
          "a damaged slack: GA_ERR_CORRUPT, first offset 100, 2 bytes (got %zu, %zu)",
          damage.first_offset, damage.damaged);
    CHECK(ga_live_slot_at(&a, p) == -1, "the damaged block was freed all the same");

    for (i = 0; i < 8; i++)
        ga_alloc(&a, 1, 0, 1, -1);
    CHECK(ga_alloc(&a, 1, 0, 1, -1) == GA_ERR_FULL, "a full arena: GA_ERR_FULL");
    CHECK(ga_alloc(&a, 1, 0, 1, 3) == GA_ERR_NOT_FREE, "claiming a live slot: GA_ERR_NOT_FREE");
    ga_count_states(&a, counts);
    CHECK(counts[GA_SLOT_LIVE] == 8 && counts[GA_SLOT_FREE] == 0, "ga_count_states: 8 live");
    ga_unregister_arena(&a);
}

static void test_left_alignment(int backend)
{
    ga_arena_t a;
    char *p;
    ga_test_arena(&a, 2, 1, 1, GA_ALIGN_LEFT, backend, -1);
    p = ga_test_alloc(&a, 10, 1);
    CHECK(p == ga_slot_start(&a, 0), "left-aligned: the block starts right after the guard");
    ga_unregister_arena(&a);
}

static void test_quarantine(int backend)
{
    ga_arena_t a;
    ga_damage_t damage;
    uint64_t counts[4];
    char *s0, *s1, *s2;
    long next;
    int have_bit;

    ga_test_arena(&a, 4, 1, 16, GA_ALIGN_RIGHT, backend, 2);
    s0 = ga_test_alloc(&a, 32, 1);
    s1 = ga_test_alloc(&a, 32, 1);
    s2 = ga_test_alloc(&a, 32, 1);
    CHECK(ga_free(&a, s0, 1, &damage) == GA_OK, "uaf free: GA_OK");
    CHECK(a.slots[0].state == GA_SLOT_QUARANTINED && a.slots[0].flags & GA_FLAG_DATA_GUARDED,
          "the freed slot waits in quarantine, its data pages guarded");
    CHECK(ga_free(&a, s0, 1, &damage) == GA_ERR_DOUBLE, "a double free of a quarantined block: GA_ERR_DOUBLE");
    have_bit = backend == GA_BACKEND_MADVISE ? pagemap_guard(a.base) : -1;
    if (have_bit == 1)
        CHECK(pagemap_guard(s0) == 1 && pagemap_guard(s1) == 0,
              "pagemap bit 58: the quarantined slot's page is a guard, a live one is not");
    next = ga_alloc(&a, 32, 1, 1, -1);
    CHECK(next == 3, "a quarantined slot is not reused while fresh ones remain (got %ld)", next);
    ga_free(&a, s1, 1, &damage);
    ga_free(&a, s2, 1, &damage);
    /* Three freed, quarantine of 2: at least two wait; released slots leave
     * in batches (here: two beyond the limit), so all three wait still. */
    ga_count_states(&a, counts);
    CHECK(counts[GA_SLOT_QUARANTINED] == 3 && counts[GA_SLOT_FREE] == 0 && counts[GA_SLOT_LIVE] == 1,
          "at least `quarantine` freed slots wait; the batch is not full yet");
    CHECK(a.slots[0].state == GA_SLOT_QUARANTINED && a.slots[0].flags & GA_FLAG_DATA_GUARDED,
          "the oldest still waits, guarded");
    next = ga_alloc(&a, 32, 1, 1, -1);
    CHECK(next == 0 && !(a.slots[0].flags & GA_FLAG_DATA_GUARDED),
          "with no fresh slot left, the oldest is released (one batch) and reused, unguarded (got %ld)", next);
    if (have_bit == 1)
        CHECK(pagemap_guard(ga_slot_start(&a, 0)) == 0 && pagemap_guard(s1) == 1,
              "pagemap bit 58: reused slot unguarded, slot 1 still guarded");
    CHECK(a.uaf_syscalls == 4, "one guard call per uaf free, one per released batch (got %llu)",
          (unsigned long long)a.uaf_syscalls);
    ga_unregister_arena(&a);
}

static void test_guards(int backend)
{
    ga_arena_t a;
    char err[4096];
    size_t i;
    int status, have_bit, marked = 1;
    char *p;

    ga_test_arena(&a, 16, 2, 16, GA_ALIGN_RIGHT, backend, -1);
    if (backend == GA_BACKEND_MADVISE) {
        have_bit = pagemap_guard(a.base);
        if (have_bit == 1) {
            for (i = 0; i <= a.nslots; i++)
                marked &= pagemap_guard(a.base + i * a.stride) == 1;
            for (i = 0; i < a.nslots; i++)
                marked &= pagemap_guard(ga_slot_start(&a, i)) == 0
                          && pagemap_guard(ga_slot_start(&a, i) + ga_page_size()) == 0;
            CHECK(marked, "pagemap bit 58: 17 guard pages between and around 16 slots, none in the data");
        } else {
            printf("# pagemap bit 58 unreadable here: guards checked by faulting children only\n");
        }
        CHECK(a.guard_syscalls >= 1 && a.guard_syscalls <= 17, "guards installed in %llu call(s)",
              (unsigned long long)a.guard_syscalls);
    }
    status = in_child(touch, a.base + a.stride * 5, err, sizeof err);
    CHECK(died_of(status, SIGSEGV), "touching a guard page kills a child with SIGSEGV (status %#x)", status);
    p = ga_test_alloc(&a, 100, 1);
    status = in_child(touch, p + 99, err, sizeof err);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the buffer's last byte is writable");
    ga_unregister_arena(&a);
}

static void test_fault_reports(int backend)
{
    ga_arena_t a;
    ga_damage_t damage;
    struct corrupt_free c;
    char err[8192], expect[128];
    int status;
    char *p, *q;

    ga_test_arena(&a, 4, 1, 16, GA_ALIGN_RIGHT, backend, 4);
    p = ga_test_alloc(&a, 100, 1);

    status = in_child(touch_reported, p + 112, err, sizeof err);
    CHECK(died_of(status, SIGSEGV), "an overflow into the guard: the child dies of SIGSEGV");
    snprintf(expect, sizeof expect, "guardalloc: heap-buffer-overflow WRITE at %p", (void *)(p + 112));
    CHECK(strstr(err, expect) != NULL, "the handler reports \"%s\"", expect);
    CHECK(strstr(err, "12 bytes past the end of a 100-byte buffer") != NULL,
          "... 12 bytes past the end of a 100-byte buffer");
    CHECK(strstr(err, "slot 0 of 4") != NULL, "... in slot 0 of 4");

    /* The last byte of the guard before slot 0: below the live buffer. */
    status = in_child(touch_reported, a.base + a.guard_size - 1, err, sizeof err);
    snprintf(expect, sizeof expect, "guardalloc: heap-buffer-underflow WRITE at %p",
             (void *)(a.base + a.guard_size - 1));
    CHECK(died_of(status, SIGSEGV) && strstr(err, expect) != NULL, "below the first slot: \"%s\"", expect);
    CHECK(strstr(err, "bytes before the start of a 100-byte buffer") != NULL,
          "... bytes before the start of a 100-byte buffer");

    q = ga_test_alloc(&a, 64, 1);
    ga_free(&a, q, 1, &damage);
    status = in_child(touch_reported, q + 8, err, sizeof err);
    CHECK(died_of(status, SIGSEGV) && strstr(err, "guardalloc: use-after-free WRITE") != NULL,
          "a write to a freed block: \"use-after-free WRITE\"");
    CHECK(strstr(err, "8 bytes inside a freed 64-byte buffer") != NULL, "... 8 bytes inside a freed 64-byte buffer");

    q = ga_test_alloc(&a, 100, 1);
    q[101] = 7;
    c.a = &a;
    c.p = q;
    status = in_child(report_corruption, &c, err, sizeof err);
    snprintf(expect, sizeof expect, "guardalloc: heap corruption: 1 slack byte(s) after the block at %p", (void *)q);
    CHECK(WIFEXITED(status) && strstr(err, expect) != NULL
              && strstr(err, "the first at offset 101 (found when it was freed)") != NULL,
          "ga_report_free(GA_ERR_CORRUPT): \"%s ... offset 101\"", expect);
    ga_unregister_arena(&a);
}

/* The faulting instruction read at a PC and decoded (report_access.c): an
 * instruction that ends where the readable memory ends is read whole, one
 * cut by an unreadable page is not decoded, a PC in no readable page gives
 * no bytes; the access is named from the instruction only where the error
 * code gave none. */
static void test_access_decode(void)
{
    static const unsigned char store8[3] = {0x48, 0x89, 0x07};   /* mov [rdi], rax */
    size_t page = ga_page_size();
    char *two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ga_access_t st;
    CHECK(two != MAP_FAILED && mprotect(two + page, page, PROT_NONE) == 0, "two pages, the second PROT_NONE");
    memcpy(two + page - 3, store8, 3);
    memset(&st, 0, sizeof st);
    st.n = 1;
    st.pc[0] = two + page - 3 + 1;   /* stored plus one, as ga_walk_stack stores it */
    ga_access_decode(&st);
    CHECK(st.code_len == 3 && st.decoded && st.insn.size == 8 && (st.insn.flags & GA_INSN_WRITE),
          "an 8-byte store that ends at an unreadable page: 3 bytes read, size 8");
    CHECK(strcmp(ga_access_name("access", &st), "WRITE") == 0 && strcmp(ga_access_name("READ", &st), "READ") == 0,
          "no access from the error code: WRITE from the instruction; one from the error code stays");
    memcpy(two + page - 2, "\x48\xc7", 2);   /* mov qword [..], imm32: 5 more bytes */
    st.pc[0] = two + page - 2 + 1;
    ga_access_decode(&st);
    CHECK(st.code_len == 2 && !st.decoded && strcmp(ga_access_name("access", &st), "access") == 0,
          "an instruction cut by the unreadable page: not decoded, no access named");
    st.pc[0] = two + page + 1;
    ga_access_decode(&st);
    CHECK(st.code_len == 0 && !st.decoded, "a PC in an unreadable page: no bytes");
    st.n = 0;
    ga_access_decode(&st);
    CHECK(st.code_len == 0 && !st.decoded, "no PC: nothing read");
    munmap(two, 2 * page);
}

int main(int argc, char **argv)
{
    int backend = ga_test_backend(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
    printf("# backend %s\n", backend == GA_BACKEND_MADVISE ? "madvise" : "mprotect");
    test_alloc_and_free(backend);
    test_left_alignment(backend);
    test_quarantine(backend);
    test_guards(backend);
    test_fault_reports(backend);
    test_access_decode();
    printf("1..%d\n", checks);
    if (failures)
        printf("# %d of %d checks failed\n", failures, checks);
    return failures ? 1 : 0;
}
