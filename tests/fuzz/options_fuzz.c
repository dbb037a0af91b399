/*
 * Fuzz target for the GUARDALLOC_OPTIONS parser (src/guardalloc/_c/options.c):
 * libFuzzer's entry point, also linked with replay.c into a plain program
 * that tests/test_options_fuzz.py runs over the checked-in corpus.
 *
 * Beyond "no crash", each input checks the parser's contract: the same
 * verdict whatever the message buffer (none, tiny, roomy); on failure the
 * options untouched and one NUL-terminated line naming GUARDALLOC_OPTIONS;
 * on success every value within its option's limits, and parsing the same
 * text again changes nothing.
 *
 * Fuzzing (from the repository root; the corpus grows in a scratch copy,
 * `-merge=1` folds what is new back into tests/fuzz/options_corpus):
 *   clang-19 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *       -Isrc/guardalloc/_c tests/fuzz/options_fuzz.c src/guardalloc/_c/options.c -o options_fuzz
 *   cp -r tests/fuzz/options_corpus /tmp/work
 *   ./options_fuzz -max_total_time=1200 -max_len=2048 -dict=tests/fuzz/options.dict /tmp/work
 *   ./options_fuzz -merge=1 tests/fuzz/options_corpus /tmp/work
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "options.h"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "options_fuzz: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* Every value in range, log_path a NUL-terminated string that fits. */
static void check_values(const ga_options_t *o)
{
    const ga_option_t *row;
    for (row = ga_option_table; row->name != NULL; row++) {
        const char *field = (const char *)o + row->offset;
        uint64_t v;
        int i, n = 0;
        switch (row->type) {
        case GA_OPT_BOOL:
            CHECK(*(const int *)field == 0 || *(const int *)field == 1);
            break;
        case GA_OPT_UINT:
        case GA_OPT_SIZE:
        case GA_OPT_POW2:
            v = *(const uint64_t *)field;
            CHECK(v >= row->min && v <= row->max);
            CHECK(row->type != GA_OPT_POW2 || (v & (v - 1)) == 0);
            break;
        case GA_OPT_CHOICE:
            i = *(const int *)field;
            while (row->choices[n] != NULL)
                n++;
            CHECK(i >= 0 && i < n);
            break;
        case GA_OPT_STRING:
            CHECK(memchr(field, '\0', row->max + 1) != NULL);
            break;
        }
    }
}

/* A message: NUL-terminated inside its buffer, one line of printable text. */
static void check_message(const char *err, size_t size, int failed)
{
    size_t n;
    if (size == 0)
        return;
    CHECK(memchr(err, '\0', size) != NULL);
    n = strlen(err);
    if (!failed) {
        CHECK(n == 0);
        return;
    }
    CHECK(strncmp(err, GA_OPTIONS_ENV ": ", n < 20 ? n : 20) == 0);
    CHECK(size < 21 || n >= 20);
    for (size_t i = 0; i < n; i++)
        CHECK((unsigned char)err[i] >= 0x20 && (unsigned char)err[i] != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ga_options_t defaults, roomy, tiny, none, again;
    char err[512], small[8];
    char *text = malloc(size + 1);
    int r_roomy, r_tiny, r_none;
    size_t small_len = size % sizeof(small);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    ga_options_defaults(&defaults);
    check_values(&defaults);
    roomy = tiny = none = defaults;
    r_roomy = ga_options_parse(text, &roomy, err, sizeof(err));
    r_tiny = ga_options_parse(text, &tiny, small, small_len);
    r_none = ga_options_parse(text, &none, NULL, 0);
    CHECK(r_roomy == 0 || r_roomy == -1);
    CHECK(r_roomy == r_tiny && r_roomy == r_none);
    CHECK(memcmp(&roomy, &tiny, sizeof(roomy)) == 0);
    CHECK(memcmp(&roomy, &none, sizeof(roomy)) == 0);
    check_message(err, sizeof(err), r_roomy != 0);
    check_message(small, small_len, r_roomy != 0);
    if (r_roomy != 0) {
        CHECK(memcmp(&roomy, &defaults, sizeof(roomy)) == 0);
    } else {
        check_values(&roomy);
        again = roomy;
        CHECK(ga_options_parse(text, &again, NULL, 0) == 0);
        CHECK(memcmp(&again, &roomy, sizeof(again)) == 0);
    }
    free(text);
    return 0;
}
