/*
 * Fuzz target for the stack decoder (src/guardalloc/_c/stack_codec.c), which
 * the fault handler runs over a slot's packed stack: libFuzzer's entry
 * point, also linked with replay.c into a plain program that
 * tests/test_stack_codec.py runs over the checked-in corpus.
 *
 * Beyond "no crash" on garbage, each input checks the codec's contract: the
 * decoder writes no address past max; re-encoding what it decoded gives
 * bytes that decode to the same addresses; and a budget cut short keeps a
 * whole prefix of them.
 *
 * Fuzzing (from the repository root):
 *   clang-19 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *       -Isrc/guardalloc/_c tests/fuzz/stack_codec_fuzz.c src/guardalloc/_c/stack_codec.c \
 *       -o stack_codec_fuzz
 *   cp -r tests/fuzz/stack_codec_corpus /tmp/work
 *   ./stack_codec_fuzz -max_total_time=600 -max_len=512 /tmp/work
 *   ./stack_codec_fuzz -merge=1 tests/fuzz/stack_codec_corpus /tmp/work
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "stack_codec.h"

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "stack_codec_fuzz: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

#define MAX 64
#define CANARY ((uintptr_t)0x5a5a5a5a5a5a5a5aull)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uintptr_t pcs[MAX + 1], again[MAX + 1];
    uint8_t code[MAX * GA_VARINT_MAX];
    size_t max = size > 0 ? data[0] % (MAX + 1) : MAX;
    size_t n, m, used, stored, cap;
    pcs[max] = CANARY;
    n = ga_stack_decode(size > 0 ? data + 1 : data, size > 0 ? size - 1 : 0, pcs, max);
    CHECK(n <= max);
    CHECK(pcs[max] == CANARY);
    /* Whatever decoded is a stack: it encodes whole and comes back the same. */
    used = ga_stack_encode(pcs, n, code, sizeof(code), &stored);
    CHECK(stored == n && used <= n * GA_VARINT_MAX);
    m = ga_stack_decode(code, used, again, MAX);
    CHECK(m == n && memcmp(pcs, again, n * sizeof(*pcs)) == 0);
    /* A smaller budget keeps the innermost addresses that fit, whole. */
    cap = size > 1 ? data[1] % (used + 1) : 0;
    used = ga_stack_encode(pcs, n, code, cap, &stored);
    CHECK(used <= cap && stored <= n);
    m = ga_stack_decode(code, used, again, MAX);
    CHECK(m == stored && memcmp(pcs, again, stored * sizeof(*pcs)) == 0);
    return 0;
}
