/* Stacks from a signal context (see sigunwind.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>
#include "modules.h"
#include "sigunwind.h"

/* Frames more than this far above the interrupted stack pointer are taken
 * for garbage (a frame pointer register used for data). */
#define GA_STACK_SPAN (64u << 20)
#define GA_SCAN_BYTES (64u << 10)

int ga_safe_read(uintptr_t addr, void *out, size_t n)
{
    struct iovec local = {out, n}, remote = {(void *)addr, n};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n;
}

size_t ga_read_code(uintptr_t pc, unsigned char *out, size_t max)
{
    /* In two reads split at a 4 KiB boundary (the smallest page): an
     * instruction at the end of the last readable page is still read. */
    size_t first = 4096 - (pc & 4095);
    if (first > max)
        first = max;
    if (pc == 0 || !ga_safe_read(pc, out, first))
        return 0;
    if (first < max && ga_safe_read(pc + first, out + first, max - first))
        return max;
    return first;
}

int ga_regs_of_context(const void *ucontext, ga_regs_t *out)
{
#if defined(__x86_64__)
    const ucontext_t *uc = ucontext;
    if (uc == NULL)
        return -1;
    out->pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    out->sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    out->fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
    return 0;
#else
    (void)ucontext;
    (void)out;
    return -1;
#endif
}

#if defined(__x86_64__)
/* An address a call instruction returns to: in a loaded object, right after
 * a call (e8 rel32; ff /2 in its register, disp8, SIB, disp32 and
 * rip-relative forms). */
static int ga_is_return_address(uintptr_t ret)
{
    unsigned char b[7];
    if (ga_module_of((const void *)ret) == NULL || !ga_safe_read(ret - 7, b, 7))
        return 0;
    return b[2] == 0xe8                                       /* call rel32         */
        || (b[5] == 0xff && (b[6] & 0xf8) == 0xd0)            /* call *%reg         */
        || (b[4] == 0xff && (b[5] & 0x38) == 0x10)            /* call *d8(%reg)     */
        || (b[3] == 0xff && (b[4] & 0x38) == 0x10)            /* call *d8(sib)      */
        || (b[1] == 0xff && (b[2] & 0x38) == 0x10)            /* call *d32 / rip    */
        || (b[0] == 0xff && (b[1] & 0x38) == 0x10);           /* call *d32(sib)     */
}
#endif

size_t ga_walk_stack(const ga_regs_t *r, void **pcs, size_t max)
{
    size_t n = 0;
    if (r->pc == 0 || max == 0)
        return 0;
    pcs[n++] = (void *)(r->pc + 1);
#if defined(__x86_64__)
    {
        uintptr_t sp = r->sp, fp = r->fp, top = r->sp + GA_STACK_SPAN, word;
        /* A leaf that keeps no frame (libc's memset, strcpy) leaves its
         * return address at the stack pointer and the frame pointer at its
         * caller's frame, whose own return address would skip the caller. */
        if (n < max && ga_safe_read(sp, &word, sizeof(word)) && ga_is_return_address(word))
            pcs[n++] = (void *)word;
        while (n < max && fp != 0 && (fp & 7) == 0 && fp >= sp && fp < top) {
            uintptr_t frame[2];   /* the caller's frame pointer, the return address */
            if (!ga_safe_read(fp, frame, sizeof(frame)) || !ga_is_return_address(frame[1]))
                break;
            if ((void *)frame[1] != pcs[n - 1])
                pcs[n++] = (void *)frame[1];
            if (frame[0] <= fp)
                break;
            sp = fp;
            fp = frame[0];
        }
    }
#endif
    return n;
}

int ga_regs_of_outer_signal(uintptr_t sp, int n, ga_regs_t *out)
{
#if defined(__x86_64__)
    /* __restore_rt: mov $15, %rax (rt_sigreturn); syscall. The kernel puts
     * its address (sa_restorer) at the bottom of every signal frame, the
     * ucontext right above it. */
    static const unsigned char restorer[9] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
    uintptr_t words[64], at = sp & ~(uintptr_t)7, end = at + GA_SCAN_BYTES;
    int seen = 0;
    while (at < end) {
        size_t i;
        if (!ga_safe_read(at, words, sizeof(words)))
            return -1;
        for (i = 0; i < 64; i++) {
            unsigned char code[9];
            ucontext_t uc;
            uintptr_t w = words[i];
            if (ga_module_of((const void *)w) == NULL || !ga_safe_read(w, code, sizeof(code))
                    || memcmp(code, restorer, sizeof(code)) != 0)
                continue;
            if (++seen < n)
                continue;
            if (!ga_safe_read(at + 8 * i + 8, &uc, sizeof(uc)))
                return -1;
            return ga_regs_of_context(&uc, out);
        }
        at += sizeof(words);
    }
    return -1;
#else
    (void)sp;
    (void)n;
    (void)out;
    return -1;
#endif
}
