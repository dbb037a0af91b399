/*
 * The only file that talks to the kernel about memory: mappings, guard pages
 * (MADV_GUARD_INSTALL / MADV_GUARD_REMOVE, batched with process_madvise),
 * mprotect, MADV_DONTNEED and MADV_HUGEPAGE. Everything here is plain C with
 * no Python, and everything the fault handler calls is async-signal-safe.
 *
 * Functions return 0, or -1 with errno set, unless they say otherwise.
 */
#ifndef GUARDALLOC_GUARDS_H
#define GUARDALLOC_GUARDS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Debian 12's headers (Linux 6.1) predate these. */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102   /* Linux 6.13 */
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif
/* process_madvise() takes at most UIO_MAXIOV ranges per call. */
#define GA_IOV_MAX 1024

/* Bit 58 of a /proc/PID/pagemap entry: the pte is a guard region (6.15). */
#define GA_PM_GUARD_BIT 58

/* PAGEMAP_SCAN (Linux 6.7) on /proc/PID/pagemap, from <linux/fs.h>; declared
 * under our own names so that newer headers cannot clash. */
struct ga_page_region {
    uint64_t start;
    uint64_t end;
    uint64_t categories;
};
struct ga_pm_scan_arg {
    uint64_t size;
    uint64_t flags;
    uint64_t start;
    uint64_t end;
    uint64_t walk_end;
    uint64_t vec;
    uint64_t vec_len;
    uint64_t max_pages;
    uint64_t category_inverted;
    uint64_t category_mask;
    uint64_t category_anyof_mask;
    uint64_t return_mask;
};
#define GA_PAGEMAP_SCAN _IOWR('f', 16, struct ga_pm_scan_arg)
/* PAGEMAP_SCAN category of guard regions (6.15+); older kernels reject the
 * bit with EINVAL. */
#define GA_PAGE_IS_GUARD (1ULL << 8)

/* The system page size (cached). */
size_t ga_page_size(void);

/* -- mappings ------------------------------------------------------------ */

/* A private anonymous read-write mapping (MAP_NORESERVE), at `fixed` when it
 * is not NULL (replacing what is there), else anywhere. NULL on failure. */
void *ga_map_anonymous(void *fixed, size_t size);
/* A read-write mapping of fd from offset 0, MAP_SHARED or MAP_PRIVATE. */
void *ga_map_file(int fd, size_t size, int shared);
/* Address space only: PROT_NONE, MAP_NORESERVE, at `fixed` when not NULL
 * (handing a range back to a reservation). NULL on failure. */
void *ga_reserve(void *fixed, size_t size);
int ga_unmap(void *addr, size_t size);
/* Undo mlockall(MCL_FUTURE) on a scratch mapping (locked memory refuses
 * guards). */
int ga_unlock(void *addr, size_t size);
/* The kernel may drop these pages (anonymous: they read back as zeros). */
int ga_discard(void *addr, size_t size);
/* Ask for transparent huge pages (what numpy does for large arrays). */
int ga_hugepage(void *addr, size_t size);

/* -- guards -------------------------------------------------------------- */

/* Guard (install = 1) or unguard one range with the given backend
 * (GA_BACKEND_MADVISE: guard markers; GA_BACKEND_MPROTECT: PROT_NONE, and
 * PROT_READ|PROT_WRITE to lift). Async-signal-safe. */
int ga_guard_range(void *addr, size_t len, int backend, int install);

/* Guard (or unguard) `count` ranges of `len` bytes, `stride` apart from
 * `first`. The madvise backend sends up to GA_IOV_MAX ranges per
 * process_madvise() call when `batched`, and falls back to one madvise() per
 * range when the kernel or a sandbox refuses the batched call. Adds the
 * system calls made to *syscalls. Returns 1 when every range went through
 * process_madvise(), 0 when some took a call of their own, -1 on failure. */
int ga_guard_strided(char *first, size_t stride, size_t count, size_t len,
                     int backend, int batched, int install, uint64_t *syscalls);

/* Guard (or unguard) up to GA_IOV_MAX ranges in one process_madvise() call:
 * the bytes advised, or -1 with errno (ENOSYS, EPERM: refused as a whole). */
long ga_guard_batch(const struct iovec *ranges, size_t n, int install);

/* Guard (or unguard) n ranges (any n): GA_IOV_MAX per process_madvise()
 * call with the madvise backend (one madvise() per range once the kernel or
 * a sandbox refuses the batched call), one mprotect() per range otherwise.
 * Adds the system calls made to *syscalls. */
int ga_guard_list(const struct iovec *ranges, size_t n, int backend, int install,
                  uint64_t *syscalls);

/* 1 once process_madvise() refused guard advice in this process. */
int ga_batching_refused(void);

/* A pidfd for this process (cached per process: a forked child opens its
 * own, or it would guard its parent), or -1. Thread-safe. */
int ga_self_pidfd(void);

/* memfd_create(name, MFD_CLOEXEC), for the probes. */
int ga_memfd(const char *name);

#endif
