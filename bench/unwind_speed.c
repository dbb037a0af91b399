/*
 * Stack capture speed: libgcc's _Unwind_Backtrace against libunwind's
 * caching unw_backtrace (and its uncached unw_step loop), from the same
 * frame, for bench/unwind_speed.py, which calls measure() at the bottom of
 * Python, numpy and gcc -O2 stacks. Build (from the repository root):
 *   cc -O2 -shared -fPIC bench/unwind_speed.c -o unwind_speed.so -lunwind -lgcc_s
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <stdint.h>
#include <time.h>
#include <unwind.h>

#define DEPTH 64

typedef struct {
    void **pc;
    int n;
} collected_t;

static _Unwind_Reason_Code one(struct _Unwind_Context *ctx, void *arg)
{
    collected_t *c = arg;
    uintptr_t ip = _Unwind_GetIP(ctx);
    if (ip == 0 || c->n == DEPTH)
        return _URC_END_OF_STACK;
    c->pc[c->n++] = (void *)ip;
    return _URC_NO_REASON;
}

static int with_libgcc(void **pc)
{
    collected_t c = {pc, 0};
    _Unwind_Backtrace(one, &c);
    return c.n;
}

static int with_unw_backtrace(void **pc)
{
    return unw_backtrace(pc, DEPTH);
}

static int with_unw_step(void **pc)
{
    unw_context_t uc;
    unw_cursor_t cursor;
    unw_word_t ip;
    int n = 0;
    unw_getcontext(&uc);
    unw_init_local(&cursor, &uc);
    while (n < DEPTH && unw_step(&cursor) > 0) {
        unw_get_reg(&cursor, UNW_REG_IP, &ip);
        pc[n++] = (void *)ip;
    }
    return n;
}

static int (*const unwinders[])(void **) = {with_libgcc, with_unw_backtrace, with_unw_step};

/* ns per stack of unwinder `which` (0 libgcc, 1 unw_backtrace, 2 unw_step)
 * over `iters` captures; *frames receives the frames of one. */
double measure(int which, int iters, int *frames)
{
    void *pc[DEPTH];
    struct timespec t0, t1;
    int n = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < iters; i++)
        n = unwinders[which](pc);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *frames = n;
    return ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / iters;
}
