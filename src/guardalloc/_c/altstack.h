/*
 * Alternate signal stacks for the threads that allocate guarded blocks.
 *
 * The fault handler runs with SA_ONSTACK: on the thread's alternate signal
 * stack when it has one. A thread gets one the first time it allocates a
 * guarded block (Arena, Pool, the native heap), so every thread that owns
 * guarded memory reports on a stack of known size. A thread that never
 * allocates but touches another thread's guarded block runs the handler on
 * its own stack: fine unless that stack is nearly exhausted. The first such
 * thread gets a static stack; each other one a mapping of its own (one VMA
 * per such thread), unmapped when the thread exits.
 */
#ifndef GUARDALLOC_ALTSTACK_H
#define GUARDALLOC_ALTSTACK_H

/* 1 once this thread was given a stack (or had one): every guarded
 * allocation reads it, inline, so the common case is one thread-local load
 * and no call into the core library. */
extern __thread int ga_altstack_asked __attribute__((tls_model("initial-exec")));

/* ga_altstack_ensure's work, the first time on a thread. */
void ga_altstack_setup(void);

/* Give the calling thread an alternate signal stack when it has none. Never
 * fails: without memory the thread keeps running the handler on its own
 * stack. Not async-signal-safe. */
static inline void ga_altstack_ensure(void)
{
    if (__builtin_expect(!ga_altstack_asked, 0))
        ga_altstack_setup();
}

#endif
