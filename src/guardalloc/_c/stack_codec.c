/*
 * Zigzag-varint delta coding of stacks (see stack_codec.h).
 */
#include "stack_codec.h"

/* Signed difference to unsigned: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ... so
 * that small differences of either sign take few bytes. Arithmetic on
 * uint64_t throughout: wrapping is defined, and decode undoes it exactly
 * for any pair of addresses (0 and UINTPTR_MAX included). */
static uint64_t ga_zigzag(uint64_t delta)
{
    return (delta << 1) ^ (uint64_t)-(int64_t)(delta >> 63);
}

static uint64_t ga_unzigzag(uint64_t z)
{
    return (z >> 1) ^ (uint64_t)-(int64_t)(z & 1);
}

static size_t ga_varint_put(uint64_t v, uint8_t *out)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

size_t ga_stack_encode(const uintptr_t *pcs, size_t n, uint8_t *out, size_t cap, size_t *stored)
{
    uint8_t one[GA_VARINT_MAX];
    uint64_t prev = 0;
    size_t used = 0, i, k;
    for (i = 0; i < n; i++) {
        uint64_t z = ga_zigzag((uint64_t)pcs[i] - prev);
        if (cap - used >= GA_VARINT_MAX) {
            used += ga_varint_put(z, out + used);   /* room for any: no copy */
        } else {
            k = ga_varint_put(z, one);
            if (k > cap - used)
                break;
            for (size_t j = 0; j < k; j++)
                out[used + j] = one[j];
            used += k;
        }
        prev = (uint64_t)pcs[i];
    }
    *stored = i;
    return used;
}

size_t ga_stack_decode(const uint8_t *in, size_t len, uintptr_t *pcs, size_t max)
{
    uint64_t prev = 0;
    size_t pos = 0, n = 0;
    while (n < max && pos < len) {
        uint64_t z = 0;
        unsigned shift = 0;
        size_t k;
        for (k = 0; k < GA_VARINT_MAX && pos + k < len; k++) {
            z |= (uint64_t)(in[pos + k] & 0x7f) << shift;
            shift += 7;
            if (!(in[pos + k] & 0x80))
                break;
        }
        if (k == GA_VARINT_MAX || pos + k == len)
            break;   /* too long, or cut off: malformed */
        pos += k + 1;
        prev += ga_unzigzag(z);
        pcs[n++] = (uintptr_t)prev;
    }
    return n;
}
