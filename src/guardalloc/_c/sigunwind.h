/*
 * Stacks from a signal context, for the fault handler: a frame-pointer walk
 * from the interrupted registers, and the search for a signal frame further
 * up the stack. Async-signal-safe and lock-free: no libgcc unwinder (its FDE
 * lookup takes the loader's lock), no malloc. Every read of the interrupted
 * stack goes through process_vm_readv() on the process itself, which answers
 * EFAULT for an unmapped or unreadable address instead of faulting; where
 * the kernel or a seccomp policy refuses that call, a stack is its PC alone.
 *
 * Limits: code built without frame pointers (-fomit-frame-pointer, the
 * default at -O1 and up on x86-64) ends the walk early or skips frames; the
 * walk stops at the first return address that no loaded object holds, that
 * follows no call instruction, or at a frame pointer that does not climb the
 * stack. x86-64 only; elsewhere a stack is its PC alone.
 */
#ifndef GUARDALLOC_SIGUNWIND_H
#define GUARDALLOC_SIGUNWIND_H

#include <stddef.h>
#include <stdint.h>

/* Copy n bytes from addr of this process, or fail (0) without faulting. */
int ga_safe_read(uintptr_t addr, void *out, size_t n);

typedef struct {
    uintptr_t pc, sp, fp;   /* instruction, stack and frame pointer */
} ga_regs_t;

/* The interrupted registers of a signal's ucontext. 0, or -1 (none). */
int ga_regs_of_context(const void *ucontext, ga_regs_t *out);

/* The registers of the n-th signal frame (1: the nearest) above the stack
 * pointer sp, found by scanning the stack for the kernel's signal
 * trampoline (__restore_rt) -- how a handler that another handler's raise()
 * called finds the fault's own context. 0, or -1 when there are fewer. */
int ga_regs_of_outer_signal(uintptr_t sp, int n, ga_regs_t *out);

/* The stack at r, innermost first, into pcs (at most max): pcs[0] is
 * r->pc + 1 and the others return addresses, so that every entry less one
 * is an address in the call (as ga_stack_t holds them). Returns the count
 * (at least 1 when r->pc is not 0). */
size_t ga_walk_stack(const ga_regs_t *r, void **pcs, size_t max);

/* Copy up to max bytes of code from pc into out without faulting: the bytes
 * up to the first unreadable page. Returns how many were copied. */
size_t ga_read_code(uintptr_t pc, unsigned char *out, size_t max);

#endif
