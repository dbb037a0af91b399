/*
 * Opening the file a JSON report goes to (log_path, set_report_path, the
 * pytest plugin's report directory) so that no other user can redirect the
 * writes or read them: reports carry heap, stack and code addresses.
 *
 * - The last component is never followed if it is a symbolic link (O_NOFOLLOW).
 * - A new file is created with mode 0600; a per-process file (a template
 *   with %p) with O_EXCL.
 * - An existing file (a shared log, or a per-process file left by an earlier
 *   process with the same pid) is used only if it is a regular file owned by
 *   the effective user, with no other hard link, that no group or other user
 *   may read or write.
 * - Opening never blocks (O_NONBLOCK: a FIFO planted at the path).
 *
 * Everything here is async-signal-safe: the fault handler opens the file.
 */
#ifndef GUARDALLOC_REPORT_FILE_H
#define GUARDALLOC_REPORT_FILE_H

#include <stddef.h>

/* Why a report file is not used. */
typedef enum {
    GA_RF_OK = 0,
    GA_RF_SYMLINK,          /* the path is a symbolic link                  */
    GA_RF_NOT_REGULAR,      /* a directory, FIFO, socket or device          */
    GA_RF_NOT_OWNED,        /* owned by another user than the effective one */
    GA_RF_LINKED,           /* more than one hard link                      */
    GA_RF_OPEN_TO_OTHERS,   /* group or others may read or write it         */
    GA_RF_TOO_LONG,         /* the expanded path does not fit               */
    GA_RF_CANNOT_OPEN,      /* open(2) failed otherwise (errno kept)        */
    GA_RF_NO_DIRECTORY,     /* absent, and its directory does not exist     */
    GA_RF_DIR_READ_ONLY,    /* absent, and its directory may not be written */
} ga_rf_why_t;

/* The template with %p replaced by the pid and %% by %, into out (size
 * bytes). Returns 0 and sets *per_process (1 when the template holds %p),
 * or -1 when it does not fit. */
int ga_report_path_expand(const char *path_template, char *out, size_t size, int *per_process);

/* Open path to append a report, under the rules above. Returns the file
 * descriptor, or -1 with *why set (errno is left as the caller had it; the
 * one of a failed open is in *open_errno, which may be NULL). */
int ga_report_file_open(const char *path, int per_process, ga_rf_why_t *why, int *open_errno);

/* Check path_template now as a report would use it, without creating
 * anything: the file it names in this process, if there is one, must pass
 * the rules. Returns GA_RF_OK or why it would not be used; the expanded
 * path is put in expanded (size bytes). */
ga_rf_why_t ga_report_path_check(const char *path_template, char *expanded, size_t size);

/* "guardalloc: no JSON reports to PATH: REASON" (no newline) into out, cut
 * to size bytes with a NUL. Returns its length. open_errno: for
 * GA_RF_CANNOT_OPEN. */
size_t ga_report_file_message(char *out, size_t size, const char *path, ga_rf_why_t why,
                              int open_errno);

#endif
