/*
 * The fault reporter: the registry of live arenas and the SIGSEGV/SIGBUS
 * handler that explains a fault inside one of them.
 *
 * Registry. Arenas sit in fixed-size chunks that are mapped on demand and
 * never unmapped, so a signal handler running in any thread can walk the table
 * while another thread registers an arena: it sees each entry either empty or
 * pointing to a complete descriptor (pointers are published with release
 * stores and read with acquire loads).
 *
 * Handler. Everything it does is async-signal-safe: it reads the arena
 * descriptors, formats into a buffer on its own stack, and calls write(2),
 * sigaction(2), guards.c's ga_guard_range() and raise(3) -- no malloc, no stdio,
 * no locks, no Python. A fault it cannot attribute to an arena goes to the
 * disposition that was installed before it, unchanged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include <fcntl.h>
#include <time.h>
#include "faults.h"
#include "guards.h"
#include "options.h"
#include "stacks.h"

#define GA_CHUNK 1024
#define GA_CHUNKS 256
#define GA_MAX_ARENAS (GA_CHUNK * GA_CHUNKS)

/* The first chunk is static (no mapping, no VMA for the common case); the
 * others come from mmap, not malloc, which may be the native heap itself. */
static ga_arena_t *ga_first_chunk[GA_CHUNK];
static ga_arena_t **ga_chunks[GA_CHUNKS] = {ga_first_chunk};
static size_t ga_high_water;   /* entries ever used: the handler scans [0, this) */
static size_t ga_live;

/* Writers are serialized here: Python arenas register under the GIL, the
 * native heap's under its own mutex, both at once. Held around fork() (and
 * re-made in the child) so that a child never inherits it locked. */
static pthread_mutex_t ga_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t ga_registry_once = PTHREAD_ONCE_INIT;

static void ga_registry_prefork(void) { pthread_mutex_lock(&ga_registry_lock); }
static void ga_registry_postfork_parent(void) { pthread_mutex_unlock(&ga_registry_lock); }
static void ga_registry_postfork_child(void) { pthread_mutex_init(&ga_registry_lock, NULL); }

static void ga_registry_init(void)
{
    pthread_atfork(ga_registry_prefork, ga_registry_postfork_parent, ga_registry_postfork_child);
}

static int ga_register_locked(ga_arena_t *arena)
{
    size_t i;
    /* Reuse an empty entry below the high-water mark first. */
    for (i = 0; i < ga_high_water; i++) {
        ga_arena_t **chunk = ga_chunks[i / GA_CHUNK];
        if (chunk[i % GA_CHUNK] == NULL) {
            __atomic_store_n(&chunk[i % GA_CHUNK], arena, __ATOMIC_RELEASE);
            ga_live++;
            return 0;
        }
    }
    if (ga_high_water >= GA_MAX_ARENAS)
        return -1;
    if (ga_chunks[i / GA_CHUNK] == NULL) {
        ga_arena_t **chunk = ga_map_anonymous(NULL, GA_CHUNK * sizeof(*chunk));
        if (chunk == NULL)
            return -1;
        __atomic_store_n(&ga_chunks[i / GA_CHUNK], chunk, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&ga_chunks[i / GA_CHUNK][i % GA_CHUNK], arena, __ATOMIC_RELEASE);
    __atomic_store_n(&ga_high_water, i + 1, __ATOMIC_RELEASE);
    ga_live++;
    return 0;
}

int ga_register_arena(ga_arena_t *arena)
{
    int rc;
    pthread_once(&ga_registry_once, ga_registry_init);
    pthread_mutex_lock(&ga_registry_lock);
    rc = ga_register_locked(arena);
    pthread_mutex_unlock(&ga_registry_lock);
    return rc;
}

void ga_unregister_arena(ga_arena_t *arena)
{
    size_t i;
    pthread_mutex_lock(&ga_registry_lock);
    for (i = 0; i < ga_high_water; i++) {
        ga_arena_t **chunk = ga_chunks[i / GA_CHUNK];
        if (chunk[i % GA_CHUNK] == arena) {
            __atomic_store_n(&chunk[i % GA_CHUNK], NULL, __ATOMIC_RELEASE);
            ga_live--;
            break;
        }
    }
    pthread_mutex_unlock(&ga_registry_lock);
}

ga_arena_t *ga_find_arena(const void *addr)
{
    size_t i, n = __atomic_load_n(&ga_high_water, __ATOMIC_ACQUIRE);
    const char *p = (const char *)addr;
    for (i = 0; i < n; i++) {
        ga_arena_t **chunk = __atomic_load_n(&ga_chunks[i / GA_CHUNK], __ATOMIC_ACQUIRE);
        ga_arena_t *a;
        if (chunk == NULL)
            continue;
        a = __atomic_load_n(&chunk[i % GA_CHUNK], __ATOMIC_ACQUIRE);
        if (a != NULL && p >= a->base && p < a->base + a->size)
            return a;
    }
    return NULL;
}

size_t ga_registered_arenas(void)
{
    return ga_live;
}


/* ------------------------------------------------------------------------
 * Report formatting: a fixed buffer on the handler's stack, flushed with
 * write(2). */

typedef struct {
    char text[512];
    size_t len;
    int fd;        /* where ga_flush writes; -1: nowhere                  */
    int json;      /* 1: escape for the inside of a JSON string            */
} ga_line_t;

static int ga_text_fd = STDERR_FILENO;   /* where text reports go (ga_set_report_fd) */

static void ga_write_all(int fd, const char *s, size_t n)
{
    if (fd < 0)
        return;
    while (n > 0) {
        ssize_t done = write(fd, s, n);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        s += done;
        n -= (size_t)done;
    }
}

static void ga_flush(ga_line_t *line)
{
    ga_write_all(line->fd, line->text, line->len);
    line->len = 0;
}

static void ga_put_byte(ga_line_t *line, char c)
{
    if (line->len == sizeof(line->text))
        ga_flush(line);
    line->text[line->len++] = c;
}

static void ga_put(ga_line_t *line, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!line->json || (c >= 0x20 && c != '"' && c != '\\')) {
            ga_put_byte(line, (char)c);
        } else if (c == '\n') {
            ga_put_byte(line, '\\');
            ga_put_byte(line, 'n');
        } else if (c == '"' || c == '\\') {
            ga_put_byte(line, '\\');
            ga_put_byte(line, (char)c);
        } else {   /* other control characters: \u00XX */
            ga_put_byte(line, '\\');
            ga_put_byte(line, 'u');
            ga_put_byte(line, '0');
            ga_put_byte(line, '0');
            ga_put_byte(line, "0123456789abcdef"[c >> 4]);
            ga_put_byte(line, "0123456789abcdef"[c & 15]);
        }
    }
}

static void ga_put_dec(ga_line_t *line, unsigned long long v)
{
    char digits[24];
    digits[ga_format_dec(v, digits)] = '\0';
    ga_put(line, digits);
}

static void ga_put_hex(ga_line_t *line, unsigned long long v)
{
    char digits[20];
    int n = 0;
    ga_put(line, "0x");
    do {
        digits[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n > 0) {
        char c[2] = {digits[--n], 0};
        ga_put(line, c);
    }
}

static void ga_put_ptr(ga_line_t *line, const void *p)
{
    ga_put_hex(line, (unsigned long long)(uintptr_t)p);
}


/* "guardalloc: heap corruption: N slack byte(s) ... (found when it was freed)" */
static void ga_put_corruption(ga_line_t *line, const void *ptr, const ga_damage_t *damage)
{
    ga_put(line, "guardalloc: heap corruption: ");
    ga_put_dec(line, damage->damaged);
    ga_put(line, " slack byte(s) after the block at ");
    ga_put_ptr(line, ptr);
    ga_put(line, " were overwritten, the first at offset ");
    ga_put_dec(line, damage->first_offset);
    ga_put(line, " (found when it was freed)\n");
}

/* ------------------------------------------------------------------------
 * What a fault address means, worked out from the arena layout (layout.h). */

enum {
    GA_KIND_OVERFLOW,    /* guard after a live buffer          */
    GA_KIND_UNDERFLOW,   /* guard before a live buffer         */
    GA_KIND_UAF,         /* data pages of a freed, guarded slot */
    GA_KIND_WILD,        /* anywhere else inside the arena     */
};

static const char *const ga_kind_names[] = {
    "heap-buffer-overflow", "heap-buffer-underflow", "use-after-free", "wild-access",
};

static const char *const ga_state_names[] = {"free", "live", "quarantined", "retired"};

typedef struct {
    int kind;
    int in_guard;      /* 1: the address is in the guard between left and right */
    int guarded;       /* 1: a guard (inter-slot or use-after-free) is in place */
    long slot;         /* the buffer the fault is blamed on, or -1          */
    long left, right;  /* around a guard: slot numbers, -1 / nslots = none  */
    int left_state, right_state;  /* their GA_SLOT_* at the time of the fault */
    char *guard_start; /* the guard (or guarded data pages) that was hit    */
    size_t guard_len;
} ga_fault_t;

static int ga_slot_state(const ga_arena_t *a, long i)
{
    return a->slots[i].state & 3;
}

/* Where random placement put a live slot's buffer. */
static int ga_ends_at_guard(const ga_arena_t *a, long i)
{
    const ga_slot_t *s = &a->slots[i];
    return s->offset + ga_round_up(s->nbytes, a->alignment) == a->slot_size;
}

static int ga_starts_at_guard(const ga_arena_t *a, long i)
{
    return a->slots[i].offset == 0;
}

static void ga_classify(const ga_arena_t *a, const char *addr, ga_fault_t *f)
{
    size_t off = (size_t)(addr - a->base), within;
    long n = (long)a->nslots;
    memset(f, 0, sizeof(*f));
    f->slot = -1;
    f->kind = GA_KIND_WILD;
    if (off < a->guard_size) {
        f->in_guard = 1;
        f->left = -1;
        f->right = 0;
        f->guard_start = a->base;
    } else {
        long k = (long)((off - a->guard_size) / a->stride);
        within = (off - a->guard_size) % a->stride;
        if (k >= n) {   /* cannot happen: size ends with the last guard */
            f->left = n - 1;
            f->right = n;
            f->in_guard = 1;
            f->guard_start = a->base + a->size - a->guard_size;
        } else if (within < a->slot_size) {
            const ga_slot_t *s = &a->slots[k];
            f->left = f->right = k;
            f->left_state = f->right_state = ga_slot_state(a, k);
            f->guard_start = ga_slot_start(a, (size_t)k);
            f->guard_len = a->slot_size;
            if (s->flags & GA_FLAG_DATA_GUARDED) {
                f->guarded = 1;
                if (ga_slot_state(a, k) != GA_SLOT_LIVE) {
                    f->kind = GA_KIND_UAF;
                    f->slot = k;
                }
            } else if (ga_slot_state(a, k) == GA_SLOT_LIVE) {
                f->slot = k;   /* SIGBUS: its file page is gone */
            }
            return;
        } else {
            f->in_guard = 1;
            f->left = k;
            f->right = k + 1;
            f->guard_start = ga_slot_start(a, (size_t)k) + a->slot_size;
        }
    }
    f->left_state = f->left >= 0 ? ga_slot_state(a, f->left) : GA_SLOT_FREE;
    f->right_state = f->right < n ? ga_slot_state(a, f->right) : GA_SLOT_FREE;
    /* A guard between left and right. */
    f->guard_len = a->guard_size;
    f->guarded = a->backend != GA_BACKEND_NONE && a->guard_size > 0
        && !(a->closed_from != NULL && addr >= a->closed_from)   /* PROT_NONE tail */
        && !(f->left >= 0 && (a->slots[f->left].flags & GA_FLAG_GUARD_AFTER_LIFTED))
        && !(f->right < n && (a->slots[f->right].flags & GA_FLAG_GUARD_BEFORE_LIFTED));
    {
        int left_live = f->left >= 0 && ga_slot_state(a, f->left) == GA_SLOT_LIVE;
        int right_live = f->right < n && ga_slot_state(a, f->right) == GA_SLOT_LIVE;
        /* The buffer the alignment puts against this guard first; the other
         * live neighbour next (a far overflow or underflow). */
        int blame_left;
        if (a->align == GA_ALIGN_RANDOM)
            blame_left = left_live && (!right_live || ga_ends_at_guard(a, f->left)
                                       || !ga_starts_at_guard(a, f->right));
        else
            blame_left = a->align == GA_ALIGN_RIGHT ? left_live : !right_live && left_live;
        if (blame_left) {
            f->kind = GA_KIND_OVERFLOW;
            f->slot = f->left;
        } else if (right_live) {
            f->kind = GA_KIND_UNDERFLOW;
            f->slot = f->right;
        }
    }
}


/* ------------------------------------------------------------------------
 * Report context set from Python (not from the handler): where the text and
 * the JSON reports go, and the test that is running. Strings are published
 * through two buffers and an index, so that a handler running in another
 * thread while one is set reads either the old or the new string whole. */

#define GA_TEST_MAX GA_LOG_PATH_MAX   /* bytes of a node id kept */

typedef struct {
    char text[2][GA_LOG_PATH_MAX + 1];
    int current;   /* index of the published string; -1: none */
} ga_pubstr_t;

static ga_pubstr_t ga_log_path = {{"", ""}, -1};
static ga_pubstr_t ga_test_id = {{"", ""}, -1};
static ga_pubstr_t ga_test_phase = {{"", ""}, -1};

static int ga_pubstr_set(ga_pubstr_t *p, const char *s, size_t max)
{
    int next;
    size_t n;
    if (s == NULL || *s == '\0') {
        __atomic_store_n(&p->current, -1, __ATOMIC_RELEASE);
        return 0;
    }
    n = strlen(s);
    if (n > max)
        return -1;
    next = __atomic_load_n(&p->current, __ATOMIC_ACQUIRE) == 0 ? 1 : 0;
    memcpy(p->text[next], s, n + 1);
    __atomic_store_n(&p->current, next, __ATOMIC_RELEASE);
    return 0;
}

static const char *ga_pubstr_get(ga_pubstr_t *p)
{
    int i = __atomic_load_n(&p->current, __ATOMIC_ACQUIRE);
    return i < 0 ? NULL : p->text[i];
}

int ga_set_report_path(const char *path_template)
{
    return ga_pubstr_set(&ga_log_path, path_template, GA_LOG_PATH_MAX);
}

const char *ga_get_report_path(void)
{
    return ga_pubstr_get(&ga_log_path);
}

void ga_set_report_test(const char *nodeid, const char *phase)
{
    /* Too long a node id is cut (a report with most of it beats none). */
    char cut[GA_TEST_MAX + 1];
    if (nodeid != NULL && strlen(nodeid) > GA_TEST_MAX) {
        memcpy(cut, nodeid, GA_TEST_MAX);
        cut[GA_TEST_MAX] = '\0';
        nodeid = cut;
    }
    ga_pubstr_set(&ga_test_id, nodeid, GA_TEST_MAX);
    ga_pubstr_set(&ga_test_phase, nodeid != NULL ? phase : NULL, 31);
}

const char *ga_get_report_test(void)
{
    return ga_pubstr_get(&ga_test_id);
}

void ga_set_report_fd(int fd)
{
    __atomic_store_n(&ga_text_fd, fd, __ATOMIC_RELAXED);
}

int ga_get_report_fd(void)
{
    return __atomic_load_n(&ga_text_fd, __ATOMIC_RELAXED);
}

/* "  test: <node id> (<phase>)" when a test runs. */
static void ga_put_test(ga_line_t *line)
{
    const char *test = ga_pubstr_get(&ga_test_id), *phase = ga_pubstr_get(&ga_test_phase);
    if (test == NULL)
        return;
    ga_put(line, "  test: ");
    ga_put(line, test);
    if (phase != NULL) {
        ga_put(line, " (");
        ga_put(line, phase);
        ga_put(line, ")");
    }
    ga_put(line, "\n");
}

static void ga_json_report(int sig, int si_code, const ga_arena_t *a, const char *addr,
                           const char *access, const ga_fault_t *f, int continuing, const void *pc);


/* ------------------------------------------------------------------------
 * The report. */


/* "0x7f..: function+0x1c (/lib/libfoo.so)" for one code address. */
static void ga_put_frame(ga_line_t *line, const void *pc)
{
    char frame[1024];
    ga_stack_format_frame(pc, frame, sizeof(frame));
    ga_put(line, frame);
}

/* One line per return address of a recorded stack:
 *     #0 0x7f...: function+0x1c (/lib/libfoo.so) */
static void ga_put_stack(ga_line_t *line, const ga_stack_t *s)
{
    size_t i, n = s != NULL ? ga_stack_len(s) : 0;
    for (i = 0; i < n; i++) {
        ga_put(line, "    #");
        ga_put_dec(line, i);
        ga_put(line, " ");
        /* A return address points after the call: look up the call. */
        ga_put_frame(line, (const char *)s->pc[i] - 1);
        ga_put(line, "\n");
    }
}

/* title, then the stack's frames (or " (no stack recorded)"). */
static void ga_put_titled_stack(ga_line_t *line, const char *title, const ga_stack_t *s)
{
    ga_put(line, title);
    ga_put(line, s == NULL || ga_stack_len(s) == 0 ? " (no stack recorded)\n" : "\n");
    ga_put_stack(line, s);
}

/* "==pid== guardalloc: <what> of <ptr>", the slot and buffer it falls in
 * (a may be NULL: outside every arena), the thread. */
static void ga_put_slot_error(ga_line_t *line, const char *what, const void *ptr,
                              const ga_arena_t *a, long slot)
{
    ga_put(line, "==");
    ga_put_dec(line, (unsigned long long)getpid());
    ga_put(line, "== guardalloc: ");
    ga_put(line, what);
    ga_put(line, " of ");
    ga_put_ptr(line, ptr);
    ga_put(line, "\n");
    ga_put_test(line);
    if (a != NULL && slot >= 0) {
        const ga_slot_t *s = &a->slots[slot];
        const char *start = ga_slot_start(a, (size_t)slot) + s->offset;
        ga_put(line, "  slot ");
        ga_put_dec(line, (unsigned long long)slot);
        ga_put(line, " (");
        ga_put(line, ga_state_names[s->state & 3]);
        ga_put(line, ") of arena ");
        ga_put_ptr(line, a->base);
        ga_put(line, ": ");
        ga_put(line, s->state == GA_SLOT_LIVE ? "its " : "its last ");
        ga_put_dec(line, s->nbytes);
        ga_put(line, "-byte buffer [");
        ga_put_ptr(line, start);
        ga_put(line, ", ");
        ga_put_ptr(line, start + s->nbytes);
        ga_put(line, ")");
        if ((const char *)ptr != start) {
            ga_put(line, ", the pointer ");
            ga_put_dec(line, (unsigned long long)((const char *)ptr > start
                                                  ? (const char *)ptr - start : start - (const char *)ptr));
            ga_put(line, (const char *)ptr > start ? " bytes inside it" : " bytes before it");
        } else if (s->state != GA_SLOT_LIVE) {
            ga_put(line, " was freed already");
        }
    } else {
        ga_put(line, "  inside the guarded heap but in no slot (a guard page or unused space)");
    }
    ga_put(line, "\n  in thread ");
    ga_put_dec(line, (unsigned long long)syscall(SYS_gettid));
    ga_put(line, "\n");
}

/* A slot's allocation (freed = 0) or free stacks under title: its Python
 * traceback, then its native stack (title + " (native)" after a Python
 * one); "(not recorded: ...)" when it has neither. */
static void ga_put_trace(ga_line_t *line, const ga_arena_t *a, const char *title, char **table,
                         long slot, int freed)
{
    const char *trace = table != NULL ? table[slot] : NULL;
    const ga_stack_t *native = ga_stacks_of(a, slot, freed);
    ga_put(line, title);
    if (trace == NULL && native != NULL) {
        ga_put(line, "\n");
        ga_put_stack(line, native);
        return;
    }
    if (trace == NULL) {
        ga_put(line, " (not recorded: ");
        ga_put(line, a->untraced_hint != NULL ? a->untraced_hint
                     : "Arena(tracebacks=True) or guardalloc.enable_tracebacks()");
        ga_put(line, ")\n");
        return;
    }
    ga_put(line, "\n");
    ga_put(line, trace);
    if (native != NULL) {
        size_t i;
        for (i = 0; title[i] != '\0' && title[i + 1] != '\0'; i++)   /* the title less its ':' */
            ga_put_byte(line, title[i]);
        ga_put(line, " (native):\n");
        ga_put_stack(line, native);
    }
}

static void ga_put_neighbour(ga_line_t *line, const ga_arena_t *a, long i, int state)
{
    if (i < 0 || i >= (long)a->nslots) {
        ga_put(line, "the arena's edge");
        return;
    }
    ga_put(line, "slot ");
    ga_put_dec(line, (unsigned long long)i);
    ga_put(line, " (");
    ga_put(line, ga_state_names[state & 3]);
    ga_put(line, ")");
}

/* The text report, written to fd (json: escaped for a JSON string); pc is
 * the faulting instruction when the kernel gave one. */
static void ga_format_report(int fd, int json, int sig, int si_code, const ga_arena_t *a,
                             const char *addr, const char *access, const ga_fault_t *f,
                             int continuing, const void *pc)
{
    ga_line_t line;
    size_t guard_pages = a->guard_size / ga_page_size();
    line.len = 0;
    line.fd = fd;
    line.json = json;

    ga_put(&line, "==");
    ga_put_dec(&line, (unsigned long long)getpid());
    ga_put(&line, "== guardalloc: ");
    ga_put(&line, sig == SIGBUS && !f->guarded ? "bus-error" : ga_kind_names[f->kind]);
    ga_put(&line, " ");
    ga_put(&line, access);
    ga_put(&line, " at ");
    ga_put_ptr(&line, addr);
    ga_put(&line, "\n");
    ga_put_test(&line);

    if (f->slot >= 0) {
        const ga_slot_t *s = &a->slots[f->slot];
        const char *start = ga_slot_start(a, (size_t)f->slot) + s->offset;
        const char *end = start + s->nbytes;
        const char *freed = f->kind == GA_KIND_UAF ? "freed " : "";
        ga_put(&line, "  ");
        if (addr >= end) {
            ga_put_dec(&line, (unsigned long long)(addr - end));
            ga_put(&line, " bytes past the end of a ");
        } else if (addr < start) {
            ga_put_dec(&line, (unsigned long long)(start - addr));
            ga_put(&line, " bytes before the start of a ");
        } else {
            ga_put_dec(&line, (unsigned long long)(addr - start));
            ga_put(&line, " bytes inside a ");
        }
        ga_put(&line, freed);
        ga_put_dec(&line, s->nbytes);
        ga_put(&line, "-byte buffer [");
        ga_put_ptr(&line, start);
        ga_put(&line, ", ");
        ga_put_ptr(&line, end);
        ga_put(&line, ")\n");
    } else if (f->in_guard) {
        ga_put(&line, "  guard page between ");
        ga_put_neighbour(&line, a, f->left, f->left_state);
        ga_put(&line, " and ");
        ga_put_neighbour(&line, a, f->right, f->right_state);
        ga_put(&line, ": no live buffer next to it\n");
    } else {
        ga_put(&line, "  inside the data of ");
        ga_put_neighbour(&line, a, f->left, f->left_state);
        ga_put(&line, ", which holds no live buffer\n");
    }
    if (sig == SIGBUS && !f->guarded)
        ga_put(&line, "  SIGBUS: the backing file no longer covers this page (truncated?)\n");

    ga_put(&line, "  arena ");
    ga_put_ptr(&line, a->base);
    if (f->slot >= 0) {
        ga_put(&line, ", slot ");
        ga_put_dec(&line, (unsigned long long)f->slot);
        ga_put(&line, " of ");
    } else {
        ga_put(&line, ", ");
    }
    ga_put_dec(&line, a->nslots);
    ga_put(&line, f->slot >= 0 ? " (slot " : " slots (slot ");
    ga_put_dec(&line, a->slot_size);
    ga_put(&line, " B, ");
    ga_put_dec(&line, guard_pages);
    ga_put(&line, guard_pages == 1 ? " guard page)\n" : " guard pages)\n");

    ga_put(&line, "  signal ");
    ga_put(&line, sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
    ga_put(&line, " (");
    if (sig == SIGSEGV)
        ga_put(&line, si_code == SEGV_MAPERR ? "SEGV_MAPERR: guard page"
                      : si_code == SEGV_ACCERR ? "SEGV_ACCERR: PROT_NONE page"
                      : "raised again by a handler installed later");
    else
        ga_put(&line, si_code == BUS_ADRERR ? "BUS_ADRERR" : "raised again by a handler installed later");
    ga_put(&line, ") in thread ");
    ga_put_dec(&line, (unsigned long long)syscall(SYS_gettid));
    ga_put(&line, "\n");
    if (pc != NULL) {
        ga_put(&line, "  faulting instruction: ");
        ga_put_frame(&line, pc);
        ga_put(&line, "\n");
    }

    if (f->slot >= 0) {
        ga_put_trace(&line, a, "  allocated at:", a->alloc_trace, f->slot, 0);
        if (f->kind == GA_KIND_UAF)
            ga_put_trace(&line, a, "  freed at:", a->free_trace, f->slot, 1);
    }
    if (continuing) {
        ga_put(&line, "  on_fault=\"continue\": guard lifted, slot(s) ");
        if (f->left >= 0 && f->left < (long)a->nslots)
            ga_put_dec(&line, (unsigned long long)f->left);
        if (f->in_guard && f->left >= 0 && f->right < (long)a->nslots)
            ga_put(&line, " and ");
        if (f->in_guard && f->right < (long)a->nslots)
            ga_put_dec(&line, (unsigned long long)f->right);
        ga_put(&line, " retired; the program goes on\n");
    }
    ga_flush(&line);
}

static void ga_report(int sig, int si_code, const ga_arena_t *a, const char *addr,
                      const char *access, const ga_fault_t *f, int continuing, const void *pc)
{
    ga_format_report(__atomic_load_n(&ga_text_fd, __ATOMIC_RELAXED), 0, sig, si_code, a, addr,
                     access, f, continuing, pc);
    ga_json_report(sig, si_code, a, addr, access, f, continuing, pc);
}


/* ------------------------------------------------------------------------
 * The JSON report (docs/report-schema.json): one object per fault, on one
 * line, appended to the log_path file. Same data as the text report, which
 * it carries whole in "text". */

#define GA_REPORT_SCHEMA_VERSION 2   /* 2: the reports of a free (ga_report_free) */

/* The log_path template expanded for this process (ga_log_path_expand).
 * -1 when no path is set or it does not fit. */
static int ga_expand_log_path(char *out, size_t size)
{
    const char *t = ga_pubstr_get(&ga_log_path);
    return t == NULL ? -1 : ga_log_path_expand(t, (uint64_t)getpid(), out, size);
}

static void ga_json_key(ga_line_t *line, const char *key)
{
    line->json = 0;
    ga_put(line, ",\"");
    ga_put(line, key);
    ga_put(line, "\":");
}

/* A JSON string (escaped), or null. */
static void ga_json_value(ga_line_t *line, const char *value)
{
    if (value == NULL) {
        ga_put(line, "null");
        return;
    }
    ga_put(line, "\"");
    line->json = 1;
    ga_put(line, value);
    line->json = 0;
    ga_put(line, "\"");
}

static void ga_json_str(ga_line_t *line, const char *key, const char *value)
{
    ga_json_key(line, key);
    ga_json_value(line, value);
}

static void ga_json_hex(ga_line_t *line, const char *key, const void *p)
{
    ga_json_key(line, key);
    ga_put(line, "\"");
    ga_put_ptr(line, p);
    ga_put(line, "\"");
}

static void ga_json_dec(ga_line_t *line, const char *key, unsigned long long v)
{
    ga_json_key(line, key);
    ga_put_dec(line, v);
}

/* A recorded native stack as an array of frames ("0x..: function+0x1c
 * (library)", innermost first), or null. */
static void ga_json_stack(ga_line_t *line, const ga_stack_t *s)
{
    size_t i, n = s != NULL ? ga_stack_len(s) : 0;
    if (n == 0) {
        ga_put(line, "null");
        return;
    }
    ga_put(line, "[");
    for (i = 0; i < n; i++) {
        ga_put(line, i ? ",\"" : "\"");
        line->json = 1;
        ga_put_frame(line, (const char *)s->pc[i] - 1);
        line->json = 0;
        ga_put(line, "\"");
    }
    ga_put(line, "]");
}

/* A slot's recorded traceback, or null. */
static const char *ga_trace_of(char **table, long slot)
{
    return table != NULL && slot >= 0 ? table[slot] : NULL;
}

/* Open the log_path file and start a report: schema_version, tool, kind,
 * access, address. Returns 0, or -1 when no report is to be written (no
 * log_path, or it cannot be opened). */
static int ga_json_begin(ga_line_t *line, const char *kind, const char *access, const void *addr)
{
    char path[GA_LOG_PATH_MAX + 64];
    if (ga_expand_log_path(path, sizeof(path)) != 0)
        return -1;
    line->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (line->fd < 0)
        return -1;
    line->len = 0;
    line->json = 0;
    ga_put(line, "{\"schema_version\":");
    ga_put_dec(line, GA_REPORT_SCHEMA_VERSION);
    ga_json_str(line, "tool", "guardalloc");
    ga_json_str(line, "kind", kind);
    ga_json_str(line, "access", access);
    ga_json_hex(line, "address", addr);
    return 0;
}

/* offset (of addr), size, buffer and slot of the blamed slot's buffer, or
 * nulls (slot < 0); then the arena (null when a is NULL). */
static void ga_json_buffer(ga_line_t *line, const ga_arena_t *a, long slot, const char *addr)
{
    if (a != NULL && slot >= 0) {
        const ga_slot_t *s = &a->slots[slot];
        const char *start = ga_slot_start(a, (size_t)slot) + s->offset;
        ga_json_key(line, "offset");
        if (addr < start)
            ga_put(line, "-");
        ga_put_dec(line, (unsigned long long)(addr < start ? start - addr : addr - start));
        ga_json_dec(line, "size", s->nbytes);
        ga_json_hex(line, "buffer", start);
        ga_json_dec(line, "slot", (unsigned long long)slot);
    } else {
        ga_json_key(line, "offset");
        ga_put(line, "null");
        ga_json_key(line, "size");
        ga_put(line, "null");
        ga_json_key(line, "buffer");
        ga_put(line, "null");
        ga_json_key(line, "slot");
        ga_put(line, "null");
    }
    ga_json_key(line, "arena");
    if (a == NULL) {
        ga_put(line, "null");
        return;
    }
    ga_put(line, "{\"base\":\"");
    ga_put_ptr(line, a->base);
    ga_put(line, "\",\"slots\":");
    ga_put_dec(line, a->nslots);
    ga_put(line, ",\"slot_size\":");
    ga_put_dec(line, a->slot_size);
    ga_put(line, ",\"guard_size\":");
    ga_put_dec(line, a->guard_size);
    ga_put(line, "}");
}

static void ga_json_pids(ga_line_t *line)
{
    ga_json_dec(line, "pid", (unsigned long long)getpid());
    ga_json_dec(line, "tid", (unsigned long long)syscall(SYS_gettid));
}

/* on_fault, then the running test (or null). */
static void ga_json_on_fault_and_test(ga_line_t *line, int continuing)
{
    const char *test = ga_pubstr_get(&ga_test_id), *phase = ga_pubstr_get(&ga_test_phase);
    ga_json_str(line, "on_fault", continuing ? "continue" : "abort");
    ga_json_key(line, "test");
    if (test != NULL) {
        ga_put(line, "{\"nodeid\":");
        ga_json_value(line, test);
        ga_json_str(line, "phase", phase);
        ga_put(line, "}");
    } else {
        ga_put(line, "null");
    }
}

/* faulting_instruction: pc symbolized, or null. */
static void ga_json_pc(ga_line_t *line, const void *pc)
{
    ga_json_key(line, "faulting_instruction");
    if (pc != NULL) {
        ga_put(line, "\"");
        line->json = 1;
        ga_put_frame(line, pc);
        line->json = 0;
        ga_put(line, "\"");
    } else {
        ga_put(line, "null");
    }
}

/* time, then the opening of "text": the caller writes the text report
 * (escaped) to line->fd and ends the report with ga_json_end. */
static void ga_json_time_and_text(ga_line_t *line)
{
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) == 0) {
        char ms[4] = {(char)('0' + now.tv_nsec / 100000000), (char)('0' + now.tv_nsec / 10000000 % 10),
                      (char)('0' + now.tv_nsec / 1000000 % 10), 0};
        ga_json_dec(line, "time", (unsigned long long)now.tv_sec);
        ga_put(line, ".");
        ga_put(line, ms);
    }
    ga_json_key(line, "text");
    ga_put(line, "\"");
    ga_flush(line);
}

static void ga_json_end(ga_line_t *line)
{
    ga_put(line, "\"}\n");
    ga_flush(line);
    close(line->fd);
}

static void ga_json_report(int sig, int si_code, const ga_arena_t *a, const char *addr,
                           const char *access, const ga_fault_t *f, int continuing, const void *pc)
{
    ga_line_t line;
    if (ga_json_begin(&line, sig == SIGBUS && !f->guarded ? "bus-error" : ga_kind_names[f->kind],
                      access, addr) != 0)
        return;
    ga_json_buffer(&line, a, f->slot, addr);
    ga_json_pids(&line);
    ga_json_str(&line, "signal", sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
    ga_json_str(&line, "si_code",
                sig == SIGSEGV ? (si_code == SEGV_MAPERR ? "SEGV_MAPERR"
                                  : si_code == SEGV_ACCERR ? "SEGV_ACCERR" : "passed-on")
                               : (si_code == BUS_ADRERR ? "BUS_ADRERR" : "passed-on"));
    ga_json_on_fault_and_test(&line, continuing);
    ga_json_key(&line, "stacks");
    ga_put(&line, "{\"allocated\":");
    ga_json_value(&line, ga_trace_of(a->alloc_trace, f->slot));
    ga_json_str(&line, "freed", ga_trace_of(f->kind == GA_KIND_UAF ? a->free_trace : NULL, f->slot));
    ga_json_key(&line, "allocated_native");
    ga_json_stack(&line, ga_stacks_of(a, f->slot, 0));
    ga_json_key(&line, "freed_native");
    ga_json_stack(&line, f->kind == GA_KIND_UAF ? ga_stacks_of(a, f->slot, 1) : NULL);
    ga_put(&line, "}");
    ga_json_pc(&line, pc);
    ga_json_time_and_text(&line);
    ga_format_report(line.fd, 1, sig, si_code, a, addr, access, f, continuing, pc);
    ga_json_end(&line);
}


/* ------------------------------------------------------------------------
 * Reports of a free (the native heap, the PyMem hooks): a double or invalid
 * free, or slack found damaged. The text on the text descriptor, then the
 * same as JSON. */

enum { GA_FREE_DOUBLE, GA_FREE_INVALID, GA_FREE_CORRUPT };
static const char *const ga_free_kinds[] = {"double-free", "invalid-free", "heap-buffer-overflow"};

/* The stack of the free that freed the slot before (a double free, or an
 * invalid free into a freed slot), this free's for damage found now, or NULL. */
static const ga_stack_t *ga_freed_stack(int error, const ga_arena_t *a, long slot,
                                        const ga_stack_t *this_free)
{
    if (error == GA_FREE_CORRUPT)
        return this_free;
    if (a == NULL || slot < 0 || (error != GA_FREE_DOUBLE && a->slots[slot].state == GA_SLOT_LIVE))
        return NULL;
    return ga_stacks_of(a, slot, 1);
}

/* The text report of a free, to fd (json: escaped for a JSON string). */
static void ga_format_free_report(int fd, int json, int error, const void *ptr, const ga_arena_t *a,
                                  long slot, const ga_damage_t *damage, const ga_stack_t *this_free)
{
    ga_line_t line;
    line.len = 0;
    line.fd = fd;
    line.json = json;
    if (error == GA_FREE_CORRUPT) {
        ga_put_corruption(&line, ptr, damage);
        ga_put_test(&line);
        if (a != NULL && slot >= 0) {
            ga_put(&line, "  slot ");
            ga_put_dec(&line, (unsigned long long)slot);
            ga_put(&line, " of arena ");
            ga_put_ptr(&line, a->base);
            ga_put(&line, "\n");
        }
        ga_put_titled_stack(&line, "  allocated at:", a != NULL ? ga_stacks_of(a, slot, 0) : NULL);
        ga_put_titled_stack(&line, "  freed at:", this_free);
    } else {
        ga_put_slot_error(&line, ga_free_kinds[error], ptr, a, slot);
        ga_put_titled_stack(&line, "  this free:", this_free);
        if (a != NULL && slot >= 0) {
            const ga_stack_t *freed = ga_freed_stack(error, a, slot, this_free);
            ga_put_titled_stack(&line, "  allocated at:", ga_stacks_of(a, slot, 0));
            if (error == GA_FREE_DOUBLE || freed != NULL)
                ga_put_titled_stack(&line, error == GA_FREE_DOUBLE ? "  first freed at:" : "  last freed at:",
                                    freed);
        }
    }
    ga_flush(&line);
}

void ga_report_free(int code, const void *ptr, const ga_arena_t *a, long slot,
                    const ga_damage_t *damage, const ga_stack_t *this_free, int continuing)
{
    ga_line_t line;
    const char *addr = (const char *)ptr;
    int error = code == GA_ERR_CORRUPT ? GA_FREE_CORRUPT
                : code == GA_ERR_DOUBLE ? GA_FREE_DOUBLE : GA_FREE_INVALID;
    if (a == NULL)
        slot = -1;
    if (error == GA_FREE_CORRUPT && a != NULL && slot >= 0)   /* blame the first damaged byte */
        addr = ga_slot_start(a, (size_t)slot) + a->slots[slot].offset + damage->first_offset;
    ga_format_free_report(__atomic_load_n(&ga_text_fd, __ATOMIC_RELAXED), 0, error, ptr, a, slot,
                          damage, this_free);
    if (ga_json_begin(&line, ga_free_kinds[error], "free", addr) != 0)
        return;
    ga_json_buffer(&line, a, slot, addr);
    if (error == GA_FREE_CORRUPT)
        ga_json_dec(&line, "damaged", damage->damaged);
    ga_json_pids(&line);
    ga_json_key(&line, "signal");
    ga_put(&line, "null");
    ga_json_key(&line, "si_code");
    ga_put(&line, "null");
    ga_json_on_fault_and_test(&line, continuing);
    ga_json_key(&line, "stacks");
    ga_put(&line, "{\"allocated\":null,\"freed\":null");
    ga_json_key(&line, "allocated_native");
    ga_json_stack(&line, a != NULL ? ga_stacks_of(a, slot, 0) : NULL);
    ga_json_key(&line, "freed_native");
    ga_json_stack(&line, ga_freed_stack(error, a, slot, this_free));
    ga_json_key(&line, "this_free_native");
    ga_json_stack(&line, this_free);
    ga_put(&line, "}");
    ga_json_pc(&line, NULL);
    ga_json_time_and_text(&line);
    ga_format_free_report(line.fd, 1, error, ptr, a, slot, damage, this_free);
    ga_json_end(&line);
}


/* ------------------------------------------------------------------------
 * Continue mode: lift the guard that was hit and retire the slots around it. */

static void ga_retire(ga_arena_t *a, long i, uint8_t extra_flags)
{
    ga_slot_t *s;
    uint8_t state;
    if (i < 0 || i >= (long)a->nslots)
        return;
    s = &a->slots[i];
    __atomic_fetch_or(&s->flags, (uint8_t)(GA_FLAG_RETIRE | extra_flags), __ATOMIC_RELAXED);
    /* A live slot becomes RETIRED when it is freed (GA_FLAG_RETIRE); a free
     * or quarantined one right now (the free stack and the quarantine ring
     * skip it). */
    state = __atomic_load_n(&s->state, __ATOMIC_RELAXED);
    if (state == GA_SLOT_FREE || state == GA_SLOT_QUARANTINED)
        __atomic_compare_exchange_n(&s->state, &state, (uint8_t)GA_SLOT_RETIRED, 0,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

static int ga_lift_and_retire(ga_arena_t *a, const ga_fault_t *f)
{
    if (ga_guard_range(f->guard_start, f->guard_len, a->backend, 0) != 0)
        return -1;
    if (f->in_guard) {
        ga_retire(a, f->left, GA_FLAG_GUARD_AFTER_LIFTED);
        ga_retire(a, f->right, GA_FLAG_GUARD_BEFORE_LIFTED);
    } else {
        __atomic_fetch_and(&a->slots[f->left].flags, (uint8_t)~GA_FLAG_DATA_GUARDED,
                           __ATOMIC_RELAXED);
        ga_retire(a, f->left, 0);
    }
    __atomic_fetch_add(&a->faults_continued, 1, __ATOMIC_RELAXED);
    return 0;
}

/* Remember that a report blamed these slots (continue mode reports once per
 * slot): the buffer's slot, or for a wild access the slots around it. */
static void ga_mark_reported(ga_arena_t *a, const ga_fault_t *f)
{
    long around[2] = {f->left, f->right};
    int i;
    if (f->slot >= 0) {
        __atomic_fetch_or(&a->slots[f->slot].flags, (uint8_t)GA_FLAG_FAULTED, __ATOMIC_RELAXED);
        return;
    }
    for (i = 0; i < 2; i++)
        if (around[i] >= 0 && around[i] < (long)a->nslots)
            __atomic_fetch_or(&a->slots[around[i]].flags, (uint8_t)GA_FLAG_FAULTED, __ATOMIC_RELAXED);
}


/* ------------------------------------------------------------------------
 * The handler and its installation. */

/* Per signal (SIGSEGV, SIGBUS): the disposition ours replaced, and whether
 * ours is installed (somewhere in the chain: a handler installed later may
 * sit on top and chain to it). */
typedef struct {
    int sig;
    struct sigaction prev;
    volatile sig_atomic_t installed;
} ga_chain_t;

static ga_chain_t ga_chains[2] = {{SIGSEGV}, {SIGBUS}};
static volatile sig_atomic_t ga_active;      /* reports are wanted */
/* The alternate signal stack given to the thread that enabled reports, when
 * it had none. Static, so it costs no mapping (and no VMA) of its own. */
static char ga_altstack[64 * 1024] __attribute__((aligned(64)));
static int ga_altstack_given;

static ga_chain_t *ga_chain(int sig)
{
    return sig == SIGBUS ? &ga_chains[1] : &ga_chains[0];
}

/* Put the previous disposition back in place of ours. */
static void ga_restore(ga_chain_t *chain)
{
    chain->installed = 0;
    sigaction(chain->sig, &chain->prev, NULL);
}

/* Hand a signal to the disposition installed before ours, as the kernel
 * would have. */
static void ga_pass_on(int sig, siginfo_t *info, void *ucontext)
{
    ga_chain_t *chain = ga_chain(sig);
    struct sigaction *prev = &chain->prev;
    int from_kernel = info->si_code > 0;
    if (prev->sa_handler == SIG_IGN) {
        /* A fault cannot be ignored: with SIG_IGN back in place the kernel
         * kills the process when the access re-executes. A signal someone
         * sent is simply ignored. */
        if (from_kernel)
            ga_restore(chain);
        return;
    }
    if (prev->sa_handler == SIG_DFL || (prev->sa_flags & SA_RESETHAND)) {
        /* Put it back: a fault re-executes and meets it; a signal someone
         * sent is sent again (it stays pending until we return). */
        ga_restore(chain);
        if (!from_kernel)
            raise(sig);
        return;
    }
    {
        sigset_t saved, one;
        pthread_sigmask(SIG_BLOCK, &prev->sa_mask, &saved);
        if (prev->sa_flags & SA_NODEFER) {
            sigemptyset(&one);
            sigaddset(&one, sig);
            pthread_sigmask(SIG_UNBLOCK, &one, NULL);
        }
        if (prev->sa_flags & SA_SIGINFO)
            prev->sa_sigaction(sig, info, ucontext);
        else
            prev->sa_handler(sig);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
    }
}

/* READ, WRITE or EXEC from the x86-64 page-fault error code. */
static const char *ga_access(const void *ucontext)
{
#if defined(__x86_64__)
    const ucontext_t *uc = ucontext;
    if (uc != NULL && uc->uc_mcontext.gregs[REG_TRAPNO] == 14) {
        long long err = uc->uc_mcontext.gregs[REG_ERR];
        if (err & 16)
            return "EXEC";
        return err & 2 ? "WRITE" : "READ";
    }
#else
    (void)ucontext;
#endif
    return "access";
}

/* A signal the process sent itself (raise) right after a page fault is a
 * handler installed above ours -- faulthandler, enabled after guardalloc --
 * passing that fault on: the kernel still holds the fault address in the
 * thread's cr2, and copies it (with the error code) into every signal frame.
 * The caller only believes it while the address is still a guard: the cr2
 * of a fault handled long ago (continue mode lifted its guard) is stale.
 * Limitation: a process that survives an arena fault through a handler of
 * its own (siglongjmp) and later raises SIGSEGV is reported again. */
static const char *ga_passed_on_fault(const siginfo_t *info, const void *ucontext)
{
#if defined(__x86_64__)
    const ucontext_t *uc = ucontext;
    if ((info->si_code == SI_TKILL || info->si_code == SI_USER)
            && info->si_pid == getpid() && uc != NULL
            && uc->uc_mcontext.gregs[REG_TRAPNO] == 14)
        return (const char *)(uintptr_t)uc->uc_mcontext.gregs[REG_CR2];
#else
    (void)info;
    (void)ucontext;
#endif
    return NULL;
}

/* The instruction that faulted, from the signal context. */
static const void *ga_fault_pc(const void *ucontext)
{
#if defined(__x86_64__)
    const ucontext_t *uc = ucontext;
    return uc != NULL ? (const void *)(uintptr_t)uc->uc_mcontext.gregs[REG_RIP] : NULL;
#else
    (void)ucontext;
    return NULL;
#endif
}

/* The faulting instruction. From the kernel: the signal context's. Passed
 * on by a handler installed above ours (faulthandler enabled after
 * guardalloc: it dumps its traceback, puts ours back and raise()s), the
 * context is that of raise() inside that handler; the fault's own context
 * is one signal frame further up this thread's stack: the unwinder finds
 * it (the first signal frame is raise()'s, the second the fault's). */
static const void *ga_faulting_pc(int from_kernel, const void *ucontext)
{
    return from_kernel ? ga_fault_pc(ucontext) : ga_stack_interrupted_pc(2);
}

static void ga_handler(int sig, siginfo_t *info, void *ucontext)
{
    int saved_errno = errno;
    int from_kernel = info->si_code > 0;
    const char *addr = NULL;
    ga_arena_t *a = NULL;
    ga_fault_t f;
    int first;

    if (ga_active) {
        addr = from_kernel ? (const char *)info->si_addr : ga_passed_on_fault(info, ucontext);
        if (addr != NULL)
            a = ga_find_arena(addr);
    }
    if (a == NULL) {
        ga_pass_on(sig, info, ucontext);
        errno = saved_errno;
        return;
    }
    ga_classify(a, addr, &f);
    if (!from_kernel && !f.guarded) {
        /* A stale cr2: that fault was handled long ago. */
        ga_pass_on(sig, info, ucontext);
        errno = saved_errno;
        return;
    }
    /* Continue mode reports the first fault of each slot only. */
    first = f.slot >= 0 ? !(a->slots[f.slot].flags & GA_FLAG_FAULTED)
          : !((f.left < 0 || (a->slots[f.left].flags & GA_FLAG_FAULTED))
              && (f.right >= (long)a->nslots || (a->slots[f.right].flags & GA_FLAG_FAULTED)));
    if (a->on_fault_continue && f.guarded && ga_lift_and_retire(a, &f) == 0) {
        if (first) {
            ga_mark_reported(a, &f);
            ga_report(sig, info->si_code, a, addr, ga_access(ucontext), &f, 1,
                      ga_faulting_pc(from_kernel, ucontext));
        }
        errno = saved_errno;
        return;
    }
    ga_report(sig, info->si_code, a, addr, ga_access(ucontext), &f, 0, ga_faulting_pc(from_kernel, ucontext));
    /* Die as without us: the previous disposition (faulthandler, a host's
     * handler, or SIG_DFL) meets the fault again when the access re-executes
     * (or the signal, raised again: it stays pending until we return). It
     * replaces ours even when another handler sits on top and called us,
     * or that handler would meet the fault, and call us, forever. */
    ga_restore(ga_chain(sig));
    if (!from_kernel && ga_chain(sig)->prev.sa_handler != SIG_IGN)
        raise(sig);
    errno = saved_errno;
}

static int ga_is_ours(const struct sigaction *act)
{
    return (act->sa_flags & SA_SIGINFO) && act->sa_sigaction == ga_handler;
}

static int ga_is_default(const struct sigaction *act)
{
    return act->sa_handler == SIG_DFL || act->sa_handler == SIG_IGN;
}

int ga_reports_handler_on_top(void)
{
    struct sigaction now;
    if (sigaction(SIGSEGV, NULL, &now) != 0)
        return 0;
    return ga_is_ours(&now);
}

int ga_reports_enable(void)
{
    struct sigaction act, now;
    stack_t current;
    int i;
    ga_page_size();   /* cached now: the handler must not call sysconf() */
    /* SA_ONSTACK runs the handler on the thread's alternate stack when it
     * has one; give one to this thread if it has none. */
    if (!ga_altstack_given && sigaltstack(NULL, &current) == 0 && (current.ss_flags & SS_DISABLE)) {
        stack_t mine;
        mine.ss_sp = ga_altstack;
        mine.ss_size = sizeof(ga_altstack);
        mine.ss_flags = 0;
        if (sigaltstack(&mine, NULL) == 0)
            ga_altstack_given = 1;
    }
    memset(&act, 0, sizeof(act));
    act.sa_sigaction = ga_handler;
    act.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&act.sa_mask);
    for (i = 0; i < 2; i++) {
        ga_chain_t *chain = &ga_chains[i];
        if (sigaction(chain->sig, NULL, &now) != 0)
            return -1;
        /* Installed, and still in the chain (maybe below another handler).
         * A default or ignored disposition means someone put back what was
         * there before us (faulthandler.disable(), enabled before us, does):
         * then install again. */
        if (chain->installed && !ga_is_default(&now))
            continue;
        if (ga_is_ours(&now)) {
            chain->installed = 1;   /* never record ourselves as previous */
            continue;
        }
        chain->prev = now;
        if (sigaction(chain->sig, &act, NULL) != 0)
            return -1;
        chain->installed = 1;
    }
    ga_active = 1;
    return 0;
}

void ga_reports_disable(void)
{
    struct sigaction now;
    int i;
    ga_active = 0;
    for (i = 0; i < 2; i++) {
        ga_chain_t *chain = &ga_chains[i];
        /* Restore the previous disposition only where ours is still the one
         * in place: a handler installed later keeps ours as its previous one
         * and may chain to it (inactive, ours passes everything on). */
        if (chain->installed && sigaction(chain->sig, NULL, &now) == 0 && ga_is_ours(&now))
            ga_restore(chain);
    }
}

int ga_reports_active(void)
{
    struct sigaction now;
    if (!ga_active || !ga_chains[0].installed)
        return 0;
    /* Someone may have put the default back behind our back. */
    return sigaction(SIGSEGV, NULL, &now) == 0 && !ga_is_default(&now);
}
