/*
 * The x86-64 decoder (src/guardalloc/_c/insn_decode.c) as a filter, for
 * tests/test_insn_decode.py: one instruction a line on stdin, as hex bytes
 * ("48 89 07" or "488907"), and for each one line on stdout:
 * "RC LENGTH SIZE FLAGS" (RC 0: decoded, -1: not; FLAGS: GA_INSN_* in hex).
 * A line that is not hex exits 2.
 *
 * With --rate, prints instead how many instructions per second the decoder
 * reads, over 20 passes through the whole input (a sanity figure for the
 * handler, which decodes one instruction per fault).
 */
#define _POSIX_C_SOURCE 199309L
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "insn_decode.h"

static int hex(int c)
{
    return isdigit(c) ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* One line of hex into code; its byte count, or -1 when it is not hex. */
static long parse(const char *s, unsigned char *code, size_t cap)
{
    size_t n = 0;
    while (*s != '\0' && *s != '\n') {
        if (*s == ' ') {
            s++;
            continue;
        }
        if (hex(s[0]) < 0 || hex(s[1]) < 0 || n == cap)
            return -1;
        code[n++] = (unsigned char)(hex(s[0]) * 16 + hex(s[1]));
        s += 2;
    }
    return (long)n;
}

static int rate(void)
{
    char text[4096];
    size_t count = 0, cap = 1 << 16, i, pass;
    unsigned char *all = malloc(cap * GA_INSN_MAX);
    size_t *len = malloc(cap * sizeof(size_t));
    struct timespec t0, t1;
    volatile unsigned sink = 0;
    double seconds;
    while (all != NULL && len != NULL && fgets(text, sizeof(text), stdin) != NULL) {
        long n;
        if (count == cap) {
            cap *= 2;
            all = realloc(all, cap * GA_INSN_MAX);
            len = realloc(len, cap * sizeof(size_t));
            if (all == NULL || len == NULL)
                break;
        }
        memset(all + count * GA_INSN_MAX, 0x90, GA_INSN_MAX);
        if ((n = parse(text, all + count * GA_INSN_MAX, GA_INSN_MAX)) < 0) {
            fprintf(stderr, "insn_decode_main: not hex: %s", text);
            return 2;
        }
        len[count++] = (size_t)n;
    }
    if (all == NULL || len == NULL || count == 0)
        return 2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (pass = 0; pass < 20; pass++)
        for (i = 0; i < count; i++) {
            ga_insn_t insn;
            ga_insn_decode(all + i * GA_INSN_MAX, len[i], &insn);
            sink += insn.size;
        }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%zu instructions x 20 passes in %.3f s: %.0f decoded per second\n", count, seconds,
           20.0 * (double)count / seconds);
    free(all);
    free(len);
    return 0;
}

int main(int argc, char **argv)
{
    char text[4096];
    if (argc == 2 && strcmp(argv[1], "--rate") == 0)
        return rate();
    while (fgets(text, sizeof(text), stdin) != NULL) {
        unsigned char code[64];
        ga_insn_t insn;
        long n = parse(text, code, sizeof(code));
        int rc;
        if (n < 0) {
            fprintf(stderr, "insn_decode_main: not hex: %s", text);
            return 2;
        }
        rc = ga_insn_decode(code, (size_t)n, &insn);
        printf("%d %u %u %x\n", rc, insn.length, insn.size, insn.flags);
    }
    return 0;
}
