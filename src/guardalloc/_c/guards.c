/*
 * Mappings and guard pages: every mmap, munmap, madvise, process_madvise and
 * mprotect guardalloc makes (see guards.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "guards.h"
#include "layout.h"

#ifndef __NR_process_madvise
#define __NR_process_madvise 440
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_memfd_create
#define __NR_memfd_create 319
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif

static size_t ga_page;

size_t ga_page_size(void)
{
    if (ga_page == 0) {
        long page = sysconf(_SC_PAGESIZE);
        ga_page = page > 0 ? (size_t)page : 4096;
    }
    return ga_page;
}

void *ga_map_anonymous(void *fixed, size_t size)
{
    void *p = mmap(fixed, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (fixed ? MAP_FIXED : 0), -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *ga_map_file(int fd, size_t size, int shared)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_NORESERVE, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *ga_reserve(void *fixed, size_t size)
{
    void *p = mmap(fixed, size, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (fixed ? MAP_FIXED : 0), -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int ga_unmap(void *addr, size_t size)
{
    return munmap(addr, size);
}

int ga_unlock(void *addr, size_t size)
{
    return munlock(addr, size);
}

int ga_discard(void *addr, size_t size)
{
    return madvise(addr, size, MADV_DONTNEED);
}

int ga_hugepage(void *addr, size_t size)
{
    return madvise(addr, size, MADV_HUGEPAGE);
}


/* process_madvise() needs a pidfd for ourselves. It is cached per process: a
 * forked child must not reuse its parent's pidfd, or it would guard the
 * parent. Threads call this without any lock, so the cache is one 64-bit
 * word, (pid << 32) | (fd + 1), replaced by compare-and-swap: a thread that
 * loses the race closes its own pidfd, and only the winner closes the one
 * inherited across fork. */
static uint64_t ga_pidfd_cache;

int ga_self_pidfd(void)
{
    pid_t pid = getpid();
    uint64_t cur = __atomic_load_n(&ga_pidfd_cache, __ATOMIC_ACQUIRE);
    for (;;) {
        uint64_t next;
        int fd;
        if (cur != 0 && (pid_t)(cur >> 32) == pid)
            return (int)(uint32_t)cur - 1;
        fd = (int)syscall(__NR_pidfd_open, pid, 0);
        if (fd < 0)
            return -1;
        next = ((uint64_t)(uint32_t)pid << 32) | (uint32_t)(fd + 1);
        if (__atomic_compare_exchange_n(&ga_pidfd_cache, &cur, next, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            if (cur != 0)
                close((int)(uint32_t)cur - 1);   /* the parent's, inherited across fork */
            return fd;
        }
        close(fd);   /* another thread won: cur holds its entry now */
    }
}

int ga_memfd(const char *name)
{
    return (int)syscall(__NR_memfd_create, name, MFD_CLOEXEC);
}

/* Set once process_madvise() refuses guard advice (old kernel, seccomp). */
static int ga_refused;

int ga_batching_refused(void)
{
    return __atomic_load_n(&ga_refused, __ATOMIC_RELAXED);
}

int ga_guard_range(void *addr, size_t len, int backend, int install)
{
    if (backend == GA_BACKEND_MPROTECT)
        return mprotect(addr, len, install ? PROT_NONE : PROT_READ | PROT_WRITE);
    return madvise(addr, len, install ? MADV_GUARD_INSTALL : MADV_GUARD_REMOVE);
}

static long ga_process_madvise(int pidfd, const struct iovec *ranges, size_t n, int install)
{
    return syscall(__NR_process_madvise, pidfd, ranges, n,
                   install ? MADV_GUARD_INSTALL : MADV_GUARD_REMOVE, 0);
}

long ga_guard_batch(const struct iovec *ranges, size_t n, int install)
{
    int pidfd = ga_self_pidfd();
    if (pidfd < 0)
        return -1;
    return ga_process_madvise(pidfd, ranges, n, install);
}

int ga_guard_strided(char *first, size_t stride, size_t count, size_t len,
                     int backend, int batched, int install, uint64_t *syscalls)
{
    struct iovec iov[GA_IOV_MAX];
    size_t i = 0, k, n;
    int batch_einval = 0, pidfd = -1;
    if (len == 0 || count == 0 || backend == GA_BACKEND_NONE)
        return 0;
    if (backend == GA_BACKEND_MADVISE && batched && !ga_batching_refused())
        pidfd = ga_self_pidfd();   /* -1 (no descriptor to be had): one call per range */
    if (pidfd >= 0) {
        while (i < count) {
            long done;
            n = count - i < GA_IOV_MAX ? count - i : GA_IOV_MAX;
            for (k = 0; k < n; k++) {
                iov[k].iov_base = first + (i + k) * stride;
                iov[k].iov_len = len;
            }
            ++*syscalls;
            done = ga_process_madvise(pidfd, iov, n, install);
            if (done < 0) {
                int err = errno;
                if (err == EINTR || err == EAGAIN)
                    continue;
                if (err == ENOSYS || err == EPERM || err == EBADF) {
                    __atomic_store_n(&ga_refused, 1, __ATOMIC_RELAXED);   /* refused as a whole */
                    break;
                }
                if (err == EINVAL && i == 0) {
                    /* A kernel without batched guard advice, or memory the
                     * kernel will not guard at all (mlocked): the per-range
                     * madvise() below tells them apart. */
                    batch_einval = 1;
                    break;
                }
                return -1;
            }
            if (done == 0)
                break;   /* no progress: let madvise() report the error */
            /* A short count means an error after some ranges; the next call
             * resumes there and reports it. */
            i += (size_t)done / len;
        }
        if (i >= count)
            return 1;
    }
    for (; i < count; i++) {
        ++*syscalls;
        if (ga_guard_range(first + i * stride, len, backend, install) != 0)
            return -1;
        if (batch_einval) {
            /* madvise() takes what the batch did not. */
            __atomic_store_n(&ga_refused, 1, __ATOMIC_RELAXED);
            batch_einval = 0;
        }
    }
    return 0;
}

int ga_guard_list(const struct iovec *ranges, size_t n, int backend, int install,
                  uint64_t *syscalls)
{
    size_t i = 0;
    int pidfd = -1;
    if (backend == GA_BACKEND_NONE)
        return 0;
    /* One range: madvise() itself (process_madvise() costs more per call). */
    if (backend == GA_BACKEND_MADVISE && n > 1 && !ga_batching_refused())
        pidfd = ga_self_pidfd();
    while (pidfd >= 0 && i < n) {
        size_t k = n - i < GA_IOV_MAX ? n - i : GA_IOV_MAX, len = 0, j;
        long done;
        ++*syscalls;
        done = ga_process_madvise(pidfd, ranges + i, k, install);
        if (done < 0) {
            int err = errno;
            if (err == EINTR || err == EAGAIN)
                continue;
            if (err == ENOSYS || err == EPERM || err == EBADF || err == EINVAL) {
                /* Refused as a whole (EINVAL: an old kernel, or one range it
                 * will not take): madvise() below says which. */
                if (err != EINVAL)
                    __atomic_store_n(&ga_refused, 1, __ATOMIC_RELAXED);
                break;
            }
            return -1;
        }
        /* Skip the ranges done; a short count resumes at the first not done. */
        for (j = 0; j < k && len + ranges[i + j].iov_len <= (size_t)done; j++)
            len += ranges[i + j].iov_len;
        if (j == 0)
            break;   /* no progress: let madvise() report the error */
        i += j;
    }
    for (; i < n; i++) {
        ++*syscalls;
        if (ga_guard_range(ranges[i].iov_base, ranges[i].iov_len, backend, install) != 0)
            return -1;
    }
    return 0;
}
