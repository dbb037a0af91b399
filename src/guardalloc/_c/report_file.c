/*
 * Report files another user cannot turn against the process (report_file.h).
 * Only async-signal-safe calls: open, fstat, lstat, close, getpid, geteuid.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "options.h"      /* ga_format_dec */
#include "report_file.h"

int ga_report_path_expand(const char *t, char *out, size_t size, int *per_process)
{
    char pid[24];
    const char *s;
    *per_process = 0;
    for (s = t; *s; s++) {     /* a %p that is not the p of a %% */
        if (s[0] == '%' && (s[1] == 'p' || s[1] == '%')) {
            *per_process |= s[1] == 'p';
            s++;
        }
    }
    pid[ga_format_dec((uint64_t)getpid(), pid)] = '\0';
    return ga_log_path_expand(t, pid, out, size);   /* the one expansion (options.c) */
}

/* The rules an existing file must pass (report_file.h). */
static ga_rf_why_t ga_report_file_judge(const struct stat *st)
{
    if (S_ISLNK(st->st_mode))
        return GA_RF_SYMLINK;
    if (!S_ISREG(st->st_mode))
        return GA_RF_NOT_REGULAR;
    if (st->st_uid != geteuid())
        return GA_RF_NOT_OWNED;
    if (st->st_nlink != 1)
        return GA_RF_LINKED;
    if (st->st_mode & (S_IRWXG | S_IRWXO))
        return GA_RF_OPEN_TO_OTHERS;
    return GA_RF_OK;
}

int ga_report_file_open(const char *path, int per_process, ga_rf_why_t *why, int *open_errno)
{
    /* O_NONBLOCK: opening a FIFO for writing would wait for a reader. */
    const int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;
    int saved = errno, fd, e = 0;
    struct stat st;
    if (per_process) {
        fd = open(path, flags | O_CREAT | O_EXCL, 0600);
        if (fd >= 0) {            /* new, ours, 0600 (less with a umask) */
            *why = GA_RF_OK;
            errno = saved;
            return fd;
        }
        /* There already (an earlier process with this pid, or planted: a
         * symbolic link gives EEXIST here): the rules for an existing file. */
        fd = errno == EEXIST ? open(path, flags) : -1;
    } else {
        fd = open(path, flags | O_CREAT, 0600);
    }
    if (fd < 0) {
        e = errno;
        /* ELOOP: a symbolic link (O_NOFOLLOW); ENXIO: a FIFO with no reader
         * or a socket; EISDIR: a directory. */
        *why = e == ELOOP ? GA_RF_SYMLINK
             : e == ENXIO || e == EISDIR ? GA_RF_NOT_REGULAR : GA_RF_CANNOT_OPEN;
    } else if (fstat(fd, &st) != 0) {
        e = errno;
        *why = GA_RF_CANNOT_OPEN;
    } else {
        *why = ga_report_file_judge(&st);
    }
    if (*why != GA_RF_OK && fd >= 0) {
        close(fd);
        fd = -1;
    }
    if (open_errno != NULL)
        *open_errno = e;
    errno = saved;
    return fd;
}

ga_rf_why_t ga_report_path_check(const char *path_template, char *expanded, size_t size)
{
    struct stat st;
    int per_process, saved = errno;
    ga_rf_why_t why = GA_RF_OK;
    if (ga_report_path_expand(path_template, expanded, size, &per_process) != 0)
        return GA_RF_TOO_LONG;
    if (lstat(expanded, &st) == 0) {
        why = ga_report_file_judge(&st);
    } else if (errno == ENOENT) {
        /* Absent: a report creates it, if its directory lets it. */
        char dir[4096];
        const char *slash = strrchr(expanded, '/');
        size_t n = slash == NULL ? 0 : slash == expanded ? 1 : (size_t)(slash - expanded);
        if (n >= sizeof(dir))
            n = 0;
        memcpy(dir, n > 0 ? expanded : ".", n > 0 ? n : 1);
        dir[n > 0 ? n : 1] = '\0';
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
            why = GA_RF_NO_DIRECTORY;
        else if (access(dir, W_OK | X_OK) != 0)
            why = GA_RF_DIR_READ_ONLY;
    }
    errno = saved;
    return why;
}

typedef struct {
    char *buf;
    size_t size, len;
} ga_rf_msg_t;

static void ga_rf_put(ga_rf_msg_t *m, const char *s)
{
    for (; *s; s++) {
        if (m->len + 1 < m->size)
            m->buf[m->len++] = *s;
    }
}

static const char *ga_errno_words(int e)
{
    switch (e) {
    case ENOENT: return "its directory does not exist";
    case ENOTDIR: return "a part of it is not a directory";
    case EACCES:
    case EPERM: return "permission denied";
    case EROFS: return "read-only file system";
    case ENOSPC: return "no space left";
    case EMFILE:
    case ENFILE: return "too many open files";
    case ENAMETOOLONG: return "the name is too long";
    default: return NULL;
    }
}

size_t ga_report_file_message(char *out, size_t size, const char *path, ga_rf_why_t why,
                              int open_errno)
{
    ga_rf_msg_t m = {out, size, 0};
    const char *words;
    ga_rf_put(&m, "guardalloc: no JSON reports to ");
    ga_rf_put(&m, path);
    ga_rf_put(&m, ": ");
    switch (why) {
    case GA_RF_OK: ga_rf_put(&m, "(no reason)"); break;
    case GA_RF_SYMLINK: ga_rf_put(&m, "it is a symbolic link"); break;
    case GA_RF_NOT_REGULAR: ga_rf_put(&m, "it is not a regular file"); break;
    case GA_RF_NOT_OWNED: ga_rf_put(&m, "another user owns it"); break;
    case GA_RF_LINKED: ga_rf_put(&m, "it has other hard links"); break;
    case GA_RF_OPEN_TO_OTHERS:
        ga_rf_put(&m, "group or other users may read or write it (chmod 600 it)");
        break;
    case GA_RF_TOO_LONG: ga_rf_put(&m, "the path with the pid is too long"); break;
    case GA_RF_NO_DIRECTORY: ga_rf_put(&m, "its directory does not exist"); break;
    case GA_RF_DIR_READ_ONLY: ga_rf_put(&m, "its directory may not be written"); break;
    case GA_RF_CANNOT_OPEN:
        words = ga_errno_words(open_errno);
        if (words != NULL) {
            ga_rf_put(&m, "cannot open it: ");
            ga_rf_put(&m, words);
        } else {
            char digits[24];
            size_t n = ga_format_dec((uint64_t)(open_errno < 0 ? 0 : open_errno), digits);
            digits[n] = '\0';
            ga_rf_put(&m, "cannot open it (errno ");
            ga_rf_put(&m, digits);
            ga_rf_put(&m, ")");
        }
        break;
    }
    if (m.size > 0)
        m.buf[m.len] = '\0';
    return m.len;
}
