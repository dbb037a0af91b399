/*
 * The kernel's own floor for installing guards, without Python or guardalloc:
 * the same three ways to put a guard page after every one of N slots
 * (process_madvise() 1024 ranges per call, madvise() per guard,
 * mprotect(PROT_NONE) per guard), each on a fresh mapping, repeated.
 *
 *     cc -O2 -o guard_floor guard_floor.c && ./guard_floor [slots] [rounds]
 *
 * Prints one line per round: nanoseconds per guard for each method.
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

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
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
        printf("batched %.0f madvise %.0f mprotect %.0f\n", seconds[0] / guards * 1e9,
               seconds[1] / guards * 1e9, seconds[2] / guards * 1e9);
    }
    return 0;
}
