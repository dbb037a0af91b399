/*
 * The compact form of a recorded stack: code addresses as zigzag varints of
 * the difference from the previous address (the first from 0). Return
 * addresses of one stack sit mostly inside a few objects, so most deltas
 * take 2-4 bytes instead of 8 (the scheme GWP-ASan uses for its stacks).
 *
 * Pure arithmetic on caller-owned buffers: no lock, no malloc, no system
 * call, so the fault handler may decode. Decoding garbage is safe: it never
 * reads past the bytes it is given, never writes past max, and stops at a
 * varint longer than 10 bytes or cut off by the end of the input.
 */
#ifndef GUARDALLOC_STACK_CODEC_H
#define GUARDALLOC_STACK_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Longest encoding of one address: ceil(64 / 7) bytes. */
#define GA_VARINT_MAX 10

/* Encode pcs[0..n) into out (cap bytes), as many leading (innermost)
 * addresses as fit whole; *stored receives how many. Returns the bytes
 * written. */
size_t ga_stack_encode(const uintptr_t *pcs, size_t n, uint8_t *out, size_t cap, size_t *stored);

/* Decode up to max addresses from in[0..len) into pcs. Returns how many
 * were decoded (fewer than max when the input ends or is malformed). */
size_t ga_stack_decode(const uint8_t *in, size_t len, uintptr_t *pcs, size_t max);

#endif
