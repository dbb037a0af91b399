/*
 * GUARDALLOC_OPTIONS: one parser for the option string, in the convention of
 * ASAN_OPTIONS / SCUDO_OPTIONS ("name=value" pairs separated by ':' or ','),
 * shared by the Python extension (faults.pyx) and the preloadable native
 * library, which must parse it before the program runs and without Python.
 *
 * The parser is a table of options (options.c: ga_option_table): name, type,
 * where the value goes in ga_options_t, default, limits and help. It is the
 * one source of every option: the Python side reads it through
 * guardalloc.faults (the launchers' flags, their validation, help=1 and the
 * docs table are made from it). The list of options is GA_OPTIONS below:
 * adding an option is one line there (and its test).
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

/* Every GUARDALLOC_OPTIONS key, once: X(name, parser type, default, min, max,
 * choices, flags, help). The field of ga_options_t (its C type follows from
 * the parser type) and the row of ga_option_table (options.c) are both made
 * from this list, so adding an option is one line here and its test; the
 * launchers' flags, help=1 and docs/native.md's table follow at run time. */
#define GA_OPTIONS(X) \
    X(sample_rate, GA_OPT_UINT, "5000", 0, UINT32_MAX, NULL, 0, \
      "guard one allocation in N (1: every one; 0: off)") \
    X(max_bytes, GA_OPT_SIZE, "1G", 0, UINT64_MAX, NULL, 0, \
      "guarded bytes at most; past it requests go to the next allocator (K/M/G/T suffixes)") \
    X(alignment, GA_OPT_POW2, "auto", 0, 4096, NULL, 0, \
      "block alignment: auto (by size: 1, 2, 4, 8, then 16 from 9 bytes), 1 (byte-exact) or a power of two") \
    X(uaf, GA_OPT_BOOL, "0", 0, 1, NULL, 0, \
      "guard freed blocks to catch use-after-free") \
    X(quarantine, GA_OPT_UINT, "4096", 0, UINT32_MAX, NULL, 0, \
      "with uaf=1: freed slots kept guarded before they are reused") \
    X(on_fault, GA_OPT_CHOICE, "abort", 0, 0, ga_on_fault_choices, 0, \
      "abort: report and die; continue: report once, lift the guard, go on") \
    X(random, GA_OPT_BOOL, "0", 0, 1, NULL, 0, \
      "sample at random (probability 1/sample_rate) instead of every N-th") \
    X(align, GA_OPT_CHOICE, "right", 0, 0, ga_align_choices, 0, \
      "right: blocks end at the guard (overflows); left: start after it; random: either") \
    X(native_stacks, GA_OPT_BOOL, "1", 0, 1, NULL, 0, \
      "record each guarded block's native allocation and free stacks for reports") \
    X(alloc_dealloc_mismatch, GA_OPT_BOOL, "1", 0, 1, NULL, 0, \
      "report a guarded block freed by the wrong family (new[] by free or delete, malloc by delete...)") \
    X(log_path, GA_OPT_STRING, "", 0, GA_LOG_PATH_MAX, NULL, 0, \
      "write a JSON report per fault to this file; %p becomes the process id") \
    X(help, GA_OPT_BOOL, "0", 0, 1, NULL, GA_OPTF_NO_FLAG, \
      "print every option, its default and its help at start, then run the program")

/* The C type of an option's field, by its parser type. */
#define GA_FIELD_GA_OPT_BOOL(name, max) int name
#define GA_FIELD_GA_OPT_CHOICE(name, max) int name             /* the index of the choice */
#define GA_FIELD_GA_OPT_UINT(name, max) uint64_t name
#define GA_FIELD_GA_OPT_SIZE(name, max) uint64_t name
#define GA_FIELD_GA_OPT_POW2(name, max) uint64_t name           /* 0: "auto" */
#define GA_FIELD_GA_OPT_STRING(name, max) char name[(max) + 1]
#define GA_FIELD(name, type, default_value, min, max, choices, flags, help) GA_FIELD_##type(name, max);

/* The options, parsed: one field per GA_OPTIONS line (GA_ON_FAULT_*, GA_ALIGN_*
 * for the choices; alignment 0 is by size, GA_AUTO_ALIGNMENT). */
typedef struct ga_options {
    GA_OPTIONS(GA_FIELD)
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
    unsigned flags;              /* GA_OPTF_*; 0 for most rows               */
} ga_option_t;

/* Row flags. */
enum {
    GA_OPTF_NO_FLAG = 1,         /* no command-line flag of the launchers    */
};

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

/* Set one option from its whole value text (no quoting: every byte is the
 * value) over the values in *out. Returns 0, or -1 with a message as
 * ga_options_parse writes it (the same rule, the same words) and *out
 * unchanged. */
int ga_options_set(const char *name, const char *value, ga_options_t *out, char *err,
                   size_t errlen);

/* Every option, its default and its help, one per line, into out (size
 * bytes, NUL-terminated, cut to fit). Returns the length of the whole
 * text (a size + 1 buffer holds it when the return value is >= size). */
size_t ga_options_help(char *out, size_t size);

/* A log_path template with %p replaced by pid (the process id in decimal,
 * or any text: the pytest plugin globs with "*") and %% by %, into out (size
 * bytes, NUL-terminated). Returns 0, or -1 when it does not fit.
 * Async-signal-safe. */
int ga_log_path_expand(const char *template_, const char *pid, char *out, size_t size);

#endif
