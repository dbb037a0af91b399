/*
 * Fuzz target for the fault handler's x86-64 decoder
 * (src/guardalloc/_c/insn_decode.c): libFuzzer's entry point, also linked
 * with replay.c into a plain program that tests/test_insn_fuzz.py runs over
 * the checked-in corpus.
 *
 * Beyond "no crash, no read past the input", each input checks the
 * decoder's contract: an unknown instruction leaves the result all zero; a
 * decoded one is 1 to 15 bytes long, within the input, and decodes the
 * same from exactly its own bytes (nothing past its end was used) and not
 * at all from one byte less; a size is one an x86 access can have; the flags
 * agree with each other (no access: no size, no read, no write; a rep: a
 * string instruction; a broadcast, gather or scatter: a 4- or 8-byte
 * element).
 *
 * Fuzzing (from the repository root; the corpus grows in a scratch copy,
 * `-merge=1` folds what is new back into tests/fuzz/insn_corpus):
 *   clang-19 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *       -Isrc/guardalloc/_c tests/fuzz/insn_fuzz.c src/guardalloc/_c/insn_decode.c \
 *       src/guardalloc/_c/insn_tables.c -o insn_fuzz
 *   cp -r tests/fuzz/insn_corpus /tmp/work
 *   ./insn_fuzz -max_total_time=600 -max_len=20 /tmp/work
 *   ./insn_fuzz -merge=1 tests/fuzz/insn_corpus /tmp/work
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "insn_decode.h"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "insn_fuzz: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                             \
        }                                                                        \
    } while (0)

#define KNOWN_FLAGS (GA_INSN_READ | GA_INSN_WRITE | GA_INSN_STRING | GA_INSN_REP | GA_INSN_VECTOR \
                     | GA_INSN_MASKED | GA_INSN_BROADCAST | GA_INSN_NO_ACCESS | GA_INSN_STACK | GA_INSN_GATHER)

static int is_access_size(unsigned size)
{
    return size == 0 || size == 1 || size == 2 || size == 4 || size == 8 || size == 10 || size == 16
        || size == 32 || size == 64;
}

/* Decode from a copy of exactly n bytes on the heap, so that AddressSanitizer
 * sees a read past them. */
static int decode_exact(const uint8_t *data, size_t n, ga_insn_t *out)
{
    unsigned char *copy = malloc(n ? n : 1);
    int rc;
    CHECK(copy != NULL);
    memcpy(copy, data, n);
    rc = ga_insn_decode(copy, n, out);
    free(copy);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ga_insn_t insn, again, shorter;
    int rc = decode_exact(data, size, &insn);
    static const ga_insn_t zero;
    if (rc != 0) {
        CHECK(rc == -1);
        CHECK(memcmp(&insn, &zero, sizeof(insn)) == 0);
        return 0;
    }
    CHECK(insn.length >= 1 && insn.length <= GA_INSN_MAX && insn.length <= size);
    CHECK(is_access_size(insn.size));
    CHECK((insn.flags & ~(unsigned)KNOWN_FLAGS) == 0);
    if (insn.flags & GA_INSN_NO_ACCESS)
        CHECK(insn.size == 0 && !(insn.flags & (GA_INSN_READ | GA_INSN_WRITE)));
    if (insn.flags & GA_INSN_REP)
        CHECK(insn.flags & GA_INSN_STRING);
    if (insn.flags & (GA_INSN_BROADCAST | GA_INSN_GATHER))
        CHECK(insn.size == 4 || insn.size == 8);
    if (insn.size > 0)
        CHECK(insn.flags & (GA_INSN_READ | GA_INSN_WRITE));
    CHECK(decode_exact(data, insn.length, &again) == 0);
    CHECK(memcmp(&insn, &again, sizeof(insn)) == 0);
    CHECK(decode_exact(data, insn.length - 1, &shorter) == -1);
    return 0;
}
