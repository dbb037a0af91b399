/*
 * The SIGSEGV/SIGBUS handler that explains a fault inside an arena, its
 * installation, and the chain to the dispositions installed before it.
 *
 * Everything the handler does is async-signal-safe: it reads the arena
 * descriptors and the table of loaded objects, walks the faulting thread's
 * frame pointers (sigunwind.c), decodes the faulting instruction for the
 * access's size (report_access.c), formats into a buffer it maps for the report,
 * and calls write(2), sigaction(2), guards.c's ga_guard_range() and raise(3)
 * -- no malloc, no stdio, no locks (no dladdr, no libgcc unwinder: both take
 * the loader's lock), no Python. A fault it cannot attribute to an arena goes to
 * the disposition that was installed before it, unchanged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include "altstack.h"
#include "classify.h"
#include "continue_mode.h"
#include "guards.h"
#include "handler.h"
#include "modules.h"
#include "registry.h"
#include "report_context.h"
#include "report_internal.h"
#include "sigunwind.h"
#include "stacks.h"

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

/* The stack of the faulting access. From the kernel: walked from the
 * signal context. Passed on by a handler installed above ours (faulthandler
 * enabled after guardalloc: it dumps its traceback, puts ours back and
 * raise()s), the context is that of raise() inside that handler; the
 * fault's own context is one signal frame further up this thread's stack
 * (the first signal frame is raise()'s, the second the fault's). */
static void ga_access_stack(int from_kernel, const void *ucontext, ga_access_t *out)
{
    ga_regs_t r;
    int found = from_kernel ? ga_regs_of_context(ucontext, &r)
                            : ga_regs_of_outer_signal((uintptr_t)__builtin_frame_address(0), 2, &r);
    out->n = found == 0 ? ga_walk_stack(&r, out->pc, GA_ACCESS_DEPTH) : 0;
    ga_access_decode(out);   /* the access's size, from the faulting instruction */
    ga_pystack_capture(&out->py, 1);   /* reads checked: the frames may be half built */
}

/* A fault's two reports: the text one (written whole), then the JSON one
 * (with a log_path). */
static void ga_report(int sig, int si_code, const ga_arena_t *a, const char *addr,
                      const char *access, const ga_fault_t *f, int continuing, int from_kernel,
                      const void *ucontext)
{
    ga_access_t stack;
    ga_line_t line;
    ga_access_stack(from_kernel, ucontext, &stack);
    access = ga_access_name(access, &stack);
    ga_line_init(&line, ga_get_report_fd(), 0);
    ga_format_report(&line, sig, si_code, a, addr, access, f, continuing, &stack);
    ga_line_done(&line);
    ga_json_report(sig, si_code, a, addr, access, f, continuing, &stack);
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
    first = !ga_fault_reported_before(a, &f);
    if (a->on_fault_continue && f.guarded && ga_lift_and_retire(a, &f) == 0) {
        if (first) {
            ga_mark_reported(a, &f);
            ga_report(sig, info->si_code, a, addr, ga_access(ucontext), &f, 1, from_kernel, ucontext);
        }
        errno = saved_errno;
        return;
    }
    ga_report(sig, info->si_code, a, addr, ga_access(ucontext), &f, 0, from_kernel, ucontext);
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
    int i;
    ga_page_size();   /* cached now: the handler must not call sysconf() */
    /* The handler names code by loaded object: the table is built here,
     * where the loader's lock may be taken. */
    ga_modules_refresh();
    /* SA_ONSTACK runs the handler on the thread's alternate stack when it
     * has one; give one to this thread if it has none. */
    ga_altstack_ensure();
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
