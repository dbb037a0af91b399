/*
 * GUARDALLOC_OPTIONS parser (see options.h). Table-driven: ga_option_table
 * is the one list of options, their types, defaults and limits.
 *
 * It runs where malloc cannot be used (the native library parses before
 * main, inside its own malloc): no allocation, no stdio, no locale, only the
 * caller's buffers.
 */
#define _GNU_SOURCE           /* secure_getenv */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include "options.h"

extern char **environ;

static const char *const ga_on_fault_choices[] = {"abort", "continue", NULL};
/* In GA_ALIGN_* order (layout.h): the index stored is the arena's align. */
static const char *const ga_align_choices[] = {"left", "right", "random", NULL};

#define GA_ROW(name, type, default_value, min, max, choices, flags, help) \
    {#name, type, offsetof(ga_options_t, name), default_value, min, max, choices, help, flags},

const ga_option_t ga_option_table[] = {
    GA_OPTIONS(GA_ROW)
    {NULL, GA_OPT_BOOL, 0, NULL, 0, 0, NULL, NULL, 0},
};

/* ------------------------------------------------------------------------
 * A message into the caller's buffer, truncated to fit. */

typedef struct {
    char *buf;
    size_t size, len;
} ga_msg_t;

/* Control characters (a quoted value may hold a newline or an escape
 * sequence) become '?': a message stays one line and prints as it reads. */
static void ga_msg_put(ga_msg_t *m, const char *s, size_t n)
{
    while (n-- > 0 && *s) {
        unsigned char c = (unsigned char)*s;
        if (m->len + 1 < m->size)
            m->buf[m->len++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        s++;
    }
    if (m->size > 0)
        m->buf[m->len] = '\0';
}

static void ga_msg_str(ga_msg_t *m, const char *s)
{
    ga_msg_put(m, s, strlen(s));
}

static void ga_msg_dec(ga_msg_t *m, uint64_t v)
{
    char digits[24];
    ga_msg_put(m, digits, ga_format_dec(v, digits));
}

/* "GUARDALLOC_OPTIONS: <name...>: " -- the start of every message. */
static void ga_msg_start(ga_msg_t *m, const char *name, size_t name_len)
{
    ga_msg_str(m, GA_OPTIONS_ENV ": ");
    ga_msg_put(m, name, name_len);
    ga_msg_str(m, ": ");
}

/* ------------------------------------------------------------------------
 * Values. Each parser gets the value text [v, v + n) and returns 0 or -1
 * after writing the reason (the option name is already in the message). */

static int ga_parse_u64(const char *v, size_t n, uint64_t *out, size_t *used)
{
    uint64_t x = 0;
    size_t i = 0;
    while (i < n && v[i] >= '0' && v[i] <= '9') {
        unsigned d = (unsigned)(v[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
        i++;
    }
    if (i == 0)
        return -1;
    *out = x;
    *used = i;
    return 0;
}

static int ga_word_is(const char *v, size_t n, const char *word)
{
    return strlen(word) == n && strncmp(v, word, n) == 0;
}

static void ga_msg_range(ga_msg_t *m, const ga_option_t *o)
{
    ga_msg_str(m, " between ");
    ga_msg_dec(m, o->min);
    ga_msg_str(m, " and ");
    ga_msg_dec(m, o->max);
}

static int ga_parse_value(const ga_option_t *o, const char *v, size_t n, ga_options_t *out,
                          ga_msg_t *m)
{
    char *field = (char *)out + o->offset;
    uint64_t x = 0;
    size_t used = 0;
    switch (o->type) {
    case GA_OPT_BOOL:
        if (ga_word_is(v, n, "1") || ga_word_is(v, n, "true") || ga_word_is(v, n, "yes")
                || ga_word_is(v, n, "on"))
            *(int *)field = 1;
        else if (ga_word_is(v, n, "0") || ga_word_is(v, n, "false") || ga_word_is(v, n, "no")
                 || ga_word_is(v, n, "off"))
            *(int *)field = 0;
        else {
            ga_msg_str(m, "expected 0 or 1 (true/false, yes/no, on/off), not '");
            ga_msg_put(m, v, n);
            ga_msg_str(m, "'");
            return -1;
        }
        return 0;
    case GA_OPT_UINT:
    case GA_OPT_POW2:
    case GA_OPT_SIZE:
        if (o->type == GA_OPT_POW2 && o->min == 0 && ga_word_is(v, n, "auto")) {
            *(uint64_t *)field = 0;
            return 0;
        }
        if (ga_parse_u64(v, n, &x, &used) != 0) {
            ga_msg_str(m, "expected a whole number, not '");
            ga_msg_put(m, v, n);
            ga_msg_str(m, "'");
            return -1;
        }
        if (o->type == GA_OPT_SIZE && used + 1 == n) {
            int shift;
            switch (v[used] | 0x20) {   /* k, m, g, t in either case */
            case 'k': shift = 10; break;
            case 'm': shift = 20; break;
            case 'g': shift = 30; break;
            case 't': shift = 40; break;
            default: shift = -1;
            }
            if (shift < 0 || x > (UINT64_MAX >> shift)) {
                ga_msg_str(m, shift < 0 ? "unknown size suffix in '" : "too large: '");
                ga_msg_put(m, v, n);
                ga_msg_str(m, shift < 0 ? "' (use K, M, G or T)" : "'");
                return -1;
            }
            x <<= shift;
            used++;
        }
        if (used != n) {
            ga_msg_str(m, "expected a whole number");
            ga_msg_str(m, o->type == GA_OPT_SIZE ? " with an optional K/M/G/T suffix" : "");
            ga_msg_str(m, ", not '");
            ga_msg_put(m, v, n);
            ga_msg_str(m, "'");
            return -1;
        }
        if (x < o->min || x > o->max || (o->type == GA_OPT_POW2 && (x & (x - 1)) != 0)) {
            if (o->type == GA_OPT_POW2 && o->min == 0) {
                ga_msg_str(m, "expected auto (0) or a power of two between 1 and ");
                ga_msg_dec(m, o->max);
            } else {
                ga_msg_str(m, o->type == GA_OPT_POW2 ? "expected a power of two" : "expected a number");
                ga_msg_range(m, o);
            }
            ga_msg_str(m, ", not ");
            ga_msg_put(m, v, n);
            return -1;
        }
        *(uint64_t *)field = x;
        return 0;
    case GA_OPT_CHOICE: {
        int i;
        for (i = 0; o->choices[i] != NULL; i++) {
            if (ga_word_is(v, n, o->choices[i])) {
                *(int *)field = i;
                return 0;
            }
        }
        ga_msg_str(m, "expected one of ");
        for (i = 0; o->choices[i] != NULL; i++) {
            ga_msg_str(m, i ? ", " : "");
            ga_msg_str(m, o->choices[i]);
        }
        ga_msg_str(m, "; not '");
        ga_msg_put(m, v, n);
        ga_msg_str(m, "'");
        return -1;
    }
    case GA_OPT_STRING:
        if (n > o->max) {
            ga_msg_str(m, "longer than ");
            ga_msg_dec(m, o->max);
            ga_msg_str(m, " bytes");
            return -1;
        }
        memcpy(field, v, n);
        field[n] = '\0';
        return 0;
    }
    ga_msg_str(m, "bad option table entry");
    return -1;
}

static const ga_option_t *ga_find_option(const char *name, size_t n)
{
    const ga_option_t *o;
    for (o = ga_option_table; o->name != NULL; o++)
        if (ga_word_is(name, n, o->name))
            return o;
    return NULL;
}

/* One name=value into *out: 0, or -1 with the message in m. */
static int ga_set_one(const char *name, size_t name_len, const char *value, size_t value_len,
                      ga_options_t *out, ga_msg_t *m)
{
    const ga_option_t *o = ga_find_option(name, name_len);
    if (o == NULL) {
        ga_msg_start(m, name, name_len);
        ga_msg_str(m, "unknown option (known:");
        for (o = ga_option_table; o->name != NULL; o++) {
            ga_msg_str(m, " ");
            ga_msg_str(m, o->name);
        }
        ga_msg_str(m, ")");
        return -1;
    }
    ga_msg_start(m, o->name, strlen(o->name));
    if (ga_parse_value(o, value, value_len, out, m) != 0)
        return -1;
    m->len = 0;                 /* this one was fine: forget its prefix */
    if (m->size > 0)
        m->buf[0] = '\0';
    return 0;
}

void ga_options_defaults(ga_options_t *out)
{
    const ga_option_t *o;
    ga_msg_t m = {NULL, 0, 0};
    memset(out, 0, sizeof(*out));
    for (o = ga_option_table; o->name != NULL; o++)
        (void)ga_parse_value(o, o->default_value, strlen(o->default_value), out, &m);
}

static int ga_is_separator(char c)
{
    return c == ':' || c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int ga_options_parse(const char *text, ga_options_t *out, char *err, size_t errlen)
{
    ga_options_t parsed;
    ga_msg_t m = {err, errlen, 0};
    const char *p = text;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (text == NULL)
        return 0;
    memcpy(&parsed, out, sizeof(parsed));
    while (*p) {
        const char *name, *eq, *value, *end;
        while (ga_is_separator(*p))
            p++;
        if (!*p)
            break;
        name = p;
        while (*p && *p != '=' && !ga_is_separator(*p))
            p++;
        eq = p;
        if (*eq != '=') {
            ga_msg_start(&m, name, (size_t)(eq - name));
            ga_msg_str(&m, "expected name=value");
            return -1;
        }
        value = eq + 1;
        if (*value == '"' || *value == '\'') {
            /* A quoted value may hold separators (a log_path with ':'). */
            char quote = *value++;
            end = strchr(value, quote);
            if (end == NULL) {
                ga_msg_start(&m, name, (size_t)(eq - name));
                ga_msg_str(&m, "unterminated quote");
                return -1;
            }
        } else {
            end = value;
            while (*end && !ga_is_separator(*end))
                end++;
        }
        if (ga_set_one(name, (size_t)(eq - name), value, (size_t)(end - value), &parsed, &m) != 0)
            return -1;
        p = *end == '"' || *end == '\'' ? end + 1 : end;
    }
    memcpy(out, &parsed, sizeof(parsed));
    return 0;
}

int ga_options_set(const char *name, const char *value, ga_options_t *out, char *err,
                   size_t errlen)
{
    ga_options_t parsed;
    ga_msg_t m = {err, errlen, 0};
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    memcpy(&parsed, out, sizeof(parsed));
    if (ga_set_one(name, strlen(name), value, strlen(value), &parsed, &m) != 0)
        return -1;
    memcpy(out, &parsed, sizeof(parsed));
    return 0;
}

/* The width of the "name=default" column of the help text. */
#define GA_HELP_COLUMN 24

/* s appended to out as it is (newlines included, unlike a message), cut to
 * size - 1 bytes and NUL-terminated; *total counts it whole. */
static void ga_help_put(char *out, size_t size, size_t *total, const char *s)
{
    size_t n = strlen(s);
    if (*total + 1 < size) {
        size_t room = size - 1 - *total;
        memcpy(out + *total, s, n < room ? n : room);
        out[*total + (n < room ? n : room)] = '\0';
    }
    *total += n;
}

size_t ga_options_help(char *out, size_t size)
{
    size_t total = 0, column;
    const ga_option_t *o;
    if (size > 0)
        out[0] = '\0';
    ga_help_put(out, size, &total,
                GA_OPTIONS_ENV ": name=value pairs separated by ':'; each with its default:\n");
    for (o = ga_option_table; o->name != NULL; o++) {
        ga_help_put(out, size, &total, "  ");
        ga_help_put(out, size, &total, o->name);
        ga_help_put(out, size, &total, "=");
        ga_help_put(out, size, &total, o->default_value);
        column = strlen(o->name) + 1 + strlen(o->default_value);
        do
            ga_help_put(out, size, &total, " ");
        while (++column < GA_HELP_COLUMN);
        ga_help_put(out, size, &total, o->help);
        ga_help_put(out, size, &total, "\n");
    }
    return total;
}

int ga_log_path_expand(const char *t, const char *pid, char *out, size_t size)
{
    size_t n = 0;
    for (; *t; t++) {
        const char *piece = t;
        size_t k = 1, i;
        if (t[0] == '%' && t[1] == 'p') {
            piece = pid;
            k = strlen(pid);
            t++;
        } else if (t[0] == '%' && t[1] == '%') {
            t++;
        }
        for (i = 0; i < k; i++) {
            if (n + 1 >= size)
                return -1;
            out[n++] = piece[i];
        }
    }
    if (size == 0)
        return -1;
    out[n] = '\0';
    return 0;
}

int ga_secure_execution(void)
{
    return getauxval(AT_SECURE) != 0;
}

/* Remove every "name=..." entry from environ by moving the later pointers
 * down, as unsetenv does, but with neither its lock nor its allocator (the
 * caller may be inside malloc). Returns how many there were. */
static int ga_erase_env(const char *name)
{
    size_t n = strlen(name);
    char **from, **to;
    int erased = 0;
    if (environ == NULL)
        return 0;
    for (from = to = environ; *from != NULL; from++) {
        if (strncmp(*from, name, n) == 0 && (*from)[n] == '=')
            erased++;
        else
            *to++ = *from;
    }
    *to = NULL;
    return erased;
}

const char *ga_options_env(int *ignored)
{
    *ignored = 0;
    if (!ga_secure_execution())
        return secure_getenv(GA_OPTIONS_ENV);
    *ignored = ga_erase_env(GA_OPTIONS_ENV) > 0;
    return NULL;
}
