# cython: language_level=3
"""Kernel constants and system calls that guardalloc uses, declared once.

Debian 12's headers (Linux 6.1) predate guard pages, PIDFD_SELF and
PAGEMAP_SCAN, so the values are supplied here when the headers lack them.
"""

from libc.stdint cimport uint64_t

cdef extern from *:
    """
    #include <errno.h>
    #include <fcntl.h>
    #include <signal.h>
    #include <sys/mman.h>
    #include <sys/syscall.h>
    #include <sys/uio.h>
    #include <unistd.h>
    #ifndef MADV_GUARD_INSTALL
    #define MADV_GUARD_INSTALL 102
    #endif
    #ifndef MADV_GUARD_REMOVE
    #define MADV_GUARD_REMOVE 103
    #endif
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
    /* process_madvise() takes at most UIO_MAXIOV ranges per call. */
    #define GA_IOV_MAX 1024
    /* Bit 58 of a /proc/PID/pagemap entry: the pte is a guard region (6.15). */
    #define GA_PM_GUARD_BIT 58

    static inline long ga_process_madvise(int pidfd, const struct iovec *iov,
                                          size_t n, int advice) {
        return syscall(__NR_process_madvise, pidfd, iov, n, advice, 0);
    }
    static inline int ga_pidfd_open(pid_t pid) {
        return (int)syscall(__NR_pidfd_open, pid, 0);
    }
    static inline int ga_memfd_create(const char *name) {
        return (int)syscall(__NR_memfd_create, name, MFD_CLOEXEC);
    }
    """
    const int MADV_GUARD_INSTALL
    const int MADV_GUARD_REMOVE
    const int MADV_DONTNEED
    const int GA_IOV_MAX
    const int GA_PM_GUARD_BIT
    const int PROT_NONE
    const int PROT_READ
    const int PROT_WRITE
    const int MAP_PRIVATE
    const int MAP_SHARED
    const int MAP_ANONYMOUS
    const int MAP_NORESERVE
    const int MAP_FIXED
    void* MAP_FAILED
    const int O_RDWR
    const int O_RDONLY
    const int O_CREAT
    const int O_CLOEXEC
    const int EINVAL
    const int EBADF
    const int ENOMEM
    const int ENOSYS
    const int EPERM
    const int EINTR
    const int EAGAIN
    const int _SC_PAGESIZE

    ctypedef int pid_t
    ctypedef long off_t

    struct iovec:
        void *iov_base
        size_t iov_len

    int errno
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset) nogil
    int munmap(void *addr, size_t length) nogil
    int madvise(void *addr, size_t length, int advice) nogil
    int mprotect(void *addr, size_t length, int prot) nogil
    int munlock(const void *addr, size_t length) nogil
    long sysconf(int name) nogil
    pid_t getpid() nogil
    int close(int fd) nogil
    int open(const char *path, int flags, int mode) nogil
    int ftruncate(int fd, off_t length) nogil
    long ga_process_madvise(int pidfd, const iovec *iov, size_t n, int advice) nogil
    int ga_pidfd_open(pid_t pid) nogil
    int ga_memfd_create(const char *name) nogil
