/*
 * The x86-64 decoder (src/guardalloc/_c/insn_decode.c) as a filter, for
 * tests/test_insn_decode.py: one instruction a line on stdin, as hex bytes
 * ("48 89 07" or "488907"), and for each one line on stdout:
 * "RC LENGTH SIZE FLAGS" (RC 0: decoded, -1: not; FLAGS: GA_INSN_* in hex).
 * A line that is not hex exits 2.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "insn_decode.h"

static int hex(int c)
{
    return isdigit(c) ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int main(void)
{
    char text[4096];
    while (fgets(text, sizeof(text), stdin) != NULL) {
        unsigned char code[64];
        size_t n = 0;
        const char *s = text;
        ga_insn_t insn;
        int rc;
        while (*s != '\0' && *s != '\n') {
            if (*s == ' ') {
                s++;
                continue;
            }
            if (hex(s[0]) < 0 || hex(s[1]) < 0 || n == sizeof(code)) {
                fprintf(stderr, "insn_decode_main: not hex: %s", text);
                return 2;
            }
            code[n++] = (unsigned char)(hex(s[0]) * 16 + hex(s[1]));
            s += 2;
        }
        rc = ga_insn_decode(code, n, &insn);
        printf("%d %u %u %x\n", rc, insn.length, insn.size, insn.flags);
    }
    return 0;
}
