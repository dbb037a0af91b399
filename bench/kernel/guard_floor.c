/*
 * The kernel's own floor for installing guards, without Python or guardalloc:
 * the same three ways to put a guard page after every one of N slots
 * (process_madvise() 1024 ranges per call, madvise() per guard,
 * mprotect(PROT_NONE) per guard), each on a fresh mapping, repeated; and
 * the calls of one use-after-free cycle of Arena(uaf=True): one madvise()
 * guard on the freed slot's (untouched) data page, and its share of one
 * process_madvise() lifting 1,024 such guards (uafcycle, per cycle).
 *
 *     cc -O2 -o guard_floor guard_floor.c && ./guard_floor [slots] [rounds]
 *
 * Prints one line per round: nanoseconds per guard for each method, in the
 * thread's CPU time (a busy machine's waits for a CPU do not count).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef __NR_process_madvise
#define __NR_process_madvise 440
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#define MADV_GUARD_INSTALL_ 102
#define MADV_GUARD_REMOVE_ 103

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);   /* waiting for a CPU counts on no side */
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Nanoseconds per use-after-free cycle: guard one slot's data page, lift
 * the guards of 1,024 such pages with one process_madvise(). */
static double uaf_cycles(int pidfd, size_t page, struct iovec *iov)
{
    size_t stride = 2 * page, slots = 1024, cycles = 64 * 1024, k = 0;
    char *base = mmap(NULL, page + slots * stride, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    double start;
    if (base == MAP_FAILED)
        return perror("mmap"), -1;
    start = now();
    for (size_t i = 0; i < cycles; i++) {
        char *data = base + page + (i % slots) * stride;
        if (madvise(data, page, MADV_GUARD_INSTALL_) != 0)
            return perror("madvise"), -1;
        iov[k].iov_base = data;
        iov[k].iov_len = page;
        if (++k == slots) {
            if (syscall(__NR_process_madvise, pidfd, iov, k, MADV_GUARD_REMOVE_, 0) < 0)
                return perror("process_madvise"), -1;
            k = 0;
        }
    }
    start = now() - start;
    munmap(base, page + slots * stride);
    return start / cycles * 1e9;
}

int main(int argc, char **argv)
{
    size_t slots = argc > 1 ? strtoul(argv[1], NULL, 10) : 30000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), stride = 2 * page;
    size_t size = page + slots * stride, guards = slots + 1;
    int pidfd = (int)syscall(__NR_pidfd_open, getpid(), 0);
    static struct iovec iov[1024];

    for (int round = 0; round < rounds; round++) {
        double seconds[3];
        for (int method = 0; method < 3; method++) {
            char *base = mmap(NULL, size, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            double start = now();
            size_t i = 0;
            if (base == MAP_FAILED)
                return perror("mmap"), 1;
            if (method == 0) {
                while (i < guards) {
                    size_t k = 0;
                    for (; k < 1024 && i + k < guards; k++) {
                        iov[k].iov_base = base + (i + k) * stride;
                        iov[k].iov_len = page;
                    }
                    if (syscall(__NR_process_madvise, pidfd, iov, k, MADV_GUARD_INSTALL_, 0) < 0)
                        return perror("process_madvise"), 1;
                    i += k;
                }
            } else {
                for (; i < guards; i++)
                    if ((method == 1 ? madvise(base + i * stride, page, MADV_GUARD_INSTALL_)
                                     : mprotect(base + i * stride, page, PROT_NONE)) != 0)
                        return perror(method == 1 ? "madvise" : "mprotect"), 1;
            }
            seconds[method] = now() - start;
            munmap(base, size);
        }
        double cycle = uaf_cycles(pidfd, page, iov);
        if (cycle < 0)
            return 1;
        printf("batched %.0f madvise %.0f mprotect %.0f uafcycle %.0f\n", seconds[0] / guards * 1e9,
               seconds[1] / guards * 1e9, seconds[2] / guards * 1e9, cycle);
    }
    return 0;
}
