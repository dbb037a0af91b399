/*
 * One access of each size, each by the one instruction its name says
 * (inline assembly: no compiler may widen, split or vectorize it), for
 * tests/test_access_size.py, which loads this file built as a shared
 * library with ctypes and points each function at a guard page. x86-64.
 */
#include <stdint.h>

void store1(void *p) { __asm__ volatile("movb $1, (%0)" : : "r"(p) : "memory"); }
void store2(void *p) { __asm__ volatile("movw $1, (%0)" : : "r"(p) : "memory"); }
void store4(void *p) { __asm__ volatile("movl $1, (%0)" : : "r"(p) : "memory"); }
void store8(void *p) { __asm__ volatile("movq $1, (%0)" : : "r"(p) : "memory"); }
void load8(void *p) { uint64_t v; __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(p) : "memory"); }
/* add to memory: a read-modify-write */
void add4(void *p) { __asm__ volatile("addl $1, (%0)" : : "r"(p) : "memory"); }
/* movdqu: SSE2, on every x86-64 */
void store16(void *p) { __asm__ volatile("pxor %%xmm0, %%xmm0\n\tmovdqu %%xmm0, (%0)" : : "r"(p) : "xmm0", "memory"); }
/* vmovdqu ymm: AVX (the caller checks the CPU has it) */
void store32(void *p)
{
    __asm__ volatile("vpxor %%xmm0, %%xmm0, %%xmm0\n\tvmovdqu %%ymm0, (%0)\n\tvzeroupper" : : "r"(p) : "xmm0", "memory");
}
/* vmovdqu8 zmm with an opmask of all ones: AVX512BW (the caller checks) */
__attribute__((target("avx512f,avx512bw"))) void store64_masked(void *p)
{
    __asm__ volatile("vpxord %%zmm0, %%zmm0, %%zmm0\n\tkxnorq %%k0, %%k0, %%k1\n\t"
                     "vmovdqu8 %%zmm0, (%0)%{%%k1%}\n\tvzeroupper" : : "r"(p) : "xmm0", "k1", "memory");
}
/* rep stosq of n quadwords */
void rep_stos8(void *p, uint64_t n)
{
    __asm__ volatile("xor %%eax, %%eax\n\trep stosq" : "+D"(p), "+c"(n) : : "rax", "memory");
}
