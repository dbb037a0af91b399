/* Alternate signal stacks per thread (see altstack.h). */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include "altstack.h"
#include "guards.h"

/* Room for the handler: its report buffers (a few KiB) and what write(2),
 * process_vm_readv(2) and the chained handlers (faulthandler) need. */
#define GA_ALTSTACK_SIZE (64 * 1024)

/* initial-exec: reading it costs one load, and never allocates (the TLS of a
 * dlopen()ed library otherwise may, on a thread's first access). */
__thread int ga_altstack_asked __attribute__((tls_model("initial-exec")));
static pthread_key_t ga_altstack_key;
static pthread_once_t ga_altstack_once = PTHREAD_ONCE_INIT;
static int ga_key_ok;
/* The first thread's stack is static (the library's bss): a process whose
 * one thread allocates gets no mapping, and no VMA, for it. */
static char ga_first_stack[GA_ALTSTACK_SIZE] __attribute__((aligned(64)));
static int ga_first_taken;

/* At thread exit: stop using the stack, then unmap it (or hand the static
 * one back). */
static void ga_altstack_release(void *stack)
{
    stack_t off = {0};
    stack_t now;
    if (sigaltstack(NULL, &now) == 0 && now.ss_sp == stack) {
        off.ss_flags = SS_DISABLE;
        sigaltstack(&off, NULL);
    }
    if (stack == ga_first_stack)
        __atomic_store_n(&ga_first_taken, 0, __ATOMIC_RELEASE);
    else
        munmap(stack, GA_ALTSTACK_SIZE);
}

static void ga_altstack_init(void)
{
    ga_key_ok = pthread_key_create(&ga_altstack_key, ga_altstack_release) == 0;
}

void ga_altstack_setup(void)
{
    stack_t now, mine;
    void *stack;
    if (ga_altstack_asked)
        return;
    /* Set first: pthread_setspecific may allocate, and allocating comes back here. */
    ga_altstack_asked = 1;
    if (sigaltstack(NULL, &now) != 0 || !(now.ss_flags & SS_DISABLE))
        return;   /* it has one already (its own, faulthandler's, or ours) */
    pthread_once(&ga_altstack_once, ga_altstack_init);
    if (!ga_key_ok)
        return;
    {
        int free_ = 0;
        stack = __atomic_compare_exchange_n(&ga_first_taken, &free_, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)
            ? (void *)ga_first_stack : ga_map_anonymous(NULL, GA_ALTSTACK_SIZE);
    }
    if (stack == NULL)
        return;
    mine.ss_sp = stack;
    mine.ss_size = GA_ALTSTACK_SIZE;
    mine.ss_flags = 0;
    if (sigaltstack(&mine, NULL) != 0 || pthread_setspecific(ga_altstack_key, stack) != 0) {
        mine.ss_flags = SS_DISABLE;
        sigaltstack(&mine, NULL);
        ga_altstack_release(stack);
    }
}
