/*
 * GUARDALLOC_OPTIONS: one parser for the option string, in the convention of
 * ASAN_OPTIONS / SCUDO_OPTIONS ("name=value" pairs separated by ':' or ','),
 * shared by the Python extension (faults.pyx) and the preloadable native
 * library, which must parse it before the program runs and without Python.
 *
 * The parser is a table of options (options.c: ga_option_table): name, type,
 * where the value goes in ga_options_t, default, and limits. Adding an option
 * is one field in ga_options_t and one row in the table.
 *
 * No malloc, no stdio, no locale: safe before main and inside an allocator.
 */
#ifndef GUARDALLOC_OPTIONS_H
#define GUARDALLOC_OPTIONS_H

#include "layout.h"   /* GA_ALIGN_*: the align choices are stored as those values */
#include <stddef.h>
#include <stdint.h>

/* The environment variable the options are read from. */
#define GA_OPTIONS_ENV "GUARDALLOC_OPTIONS"

/* Longest log_path template (bytes, without the NUL). */
#define GA_LOG_PATH_MAX 1023

enum { GA_ON_FAULT_ABORT = 0, GA_ON_FAULT_CONTINUE = 1 };

typedef struct ga_options {
    uint64_t sample_rate;  /* guard one allocation in N; 1: all; 0: off        */
    uint64_t max_bytes;    /* bytes of guarded blocks at most (K/M/G suffixes)  */
    uint64_t alignment;    /* 0: by size (GA_AUTO_ALIGNMENT); 1 (byte-exact) or
                              a power of two up to 4096                         */
    int uaf;               /* 1: freed blocks are guarded (use-after-free)      */
    uint64_t quarantine;   /* freed slots kept guarded before reuse            */
    int on_fault;          /* GA_ON_FAULT_*                                     */
    int random;            /* 1: sample at random instead of every N-th        */
    int align;             /* GA_ALIGN_*: where a block sits in its slot        */
    int native_stacks;     /* 1: keep each block's alloc/free native stacks     */
    int alloc_dealloc_mismatch; /* 1: report new[]/free, malloc/delete...      */
    char log_path[GA_LOG_PATH_MAX + 1]; /* JSON reports; %p: pid; "" = none    */
} ga_options_t;

/* Value types of the table. */
typedef enum {
    GA_OPT_BOOL,    /* 0/1, true/false, yes/no, on/off                         */
    GA_OPT_UINT,    /* decimal, within [min, max]                              */
    GA_OPT_SIZE,    /* decimal with an optional K, M, G or T suffix (x1024)    */
    GA_OPT_POW2,    /* a power of two within [min, max], or 1; with min 0 also
                       "auto" (stored as 0)                                    */
    GA_OPT_CHOICE,  /* one of the names in choices (stored as its index)       */
    GA_OPT_STRING,  /* copied into a char[max + 1] field                        */
} ga_opt_type_t;

typedef struct ga_option {
    const char *name;
    ga_opt_type_t type;
    size_t offset;               /* offsetof(ga_options_t, field)            */
    const char *default_value;   /* parsed like a user's value               */
    uint64_t min, max;           /* UINT/SIZE/POW2: bounds; STRING: max len  */
    const char *const *choices;  /* CHOICE: NULL-terminated names            */
    const char *help;            /* one line, for messages and docs          */
} ga_option_t;

/* v in decimal into out (at least 21 bytes; no NUL); returns the digit
 * count. Async-signal-safe: the parser's messages and the fault reports use it. */
static inline size_t ga_format_dec(uint64_t v, char *out)
{
    char reversed[20];
    size_t n = 0, i;
    do {
        reversed[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        out[i] = reversed[n - 1 - i];
    return n;
}

/* alignment=auto: a block of n bytes is aligned to the smallest power of
 * two that is at least n, capped at 16 (GWP-ASan's rule: 1->1, 2->2, 3-4->4,
 * 5-8->8, 9+->16): enough for any C type that fits in n bytes, and
 * malloc(1), (2), (4), (8) are byte-exact. */
static inline size_t ga_auto_alignment(size_t n)
{
    size_t a = 1;
    while (a < n && a < 16)
        a <<= 1;
    return a;
}

/* The table, terminated by a row whose name is NULL. */
extern const ga_option_t ga_option_table[];

/* Fill *out with every option's default. */
void ga_options_defaults(ga_options_t *out);

/* 1 in secure-execution mode (getauxval(AT_SECURE): a setuid or setgid
 * program, or one that gained file capabilities), where the environment
 * belongs to a less privileged caller. */
int ga_secure_execution(void);

/* The one line (with its newline) said on stderr when secure-execution mode
 * ignores GUARDALLOC_OPTIONS. */
#define GA_SECURE_IGNORED_LINE \
    "guardalloc: secure-execution mode (setuid, setgid or file capabilities): " \
    GA_OPTIONS_ENV " ignored and removed from the environment; the defaults apply\n"

/* The GUARDALLOC_OPTIONS text to parse (secure_getenv), or NULL. In
 * secure-execution mode it is NULL whatever the environment holds: every
 * option either names a file, changes what a fault does or how much is
 * guarded, and the caller of a setuid program must steer none of them. Any
 * GUARDALLOC_OPTIONS is then also removed from environ, so that a program
 * the privileged process executes (after setuid(0), say) does not read it
 * either, and *ignored is set to 1 (else 0). It edits environ without the
 * environment lock: call it before main, as the native library does. */
const char *ga_options_env(int *ignored);

/* Parse text ("name=value:name=value", separators ':' ',' or blanks; a
 * value in "..." or '...' may hold separators; NULL or "" for none) over the
 * values already in *out (call ga_options_defaults first). Returns 0, or -1
 * with a NUL-terminated message naming the bad option in err (errlen bytes;
 * err may be NULL) and *out unchanged. */
int ga_options_parse(const char *text, ga_options_t *out, char *err, size_t errlen);

#endif
