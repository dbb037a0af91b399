/*
 * The memory access of one x86-64 instruction (see insn_decode.h): prefixes,
 * the opcode, ModRM/SIB/displacement and immediates for the length, and the
 * opcode tables (here for the integer maps, insn_tables.c for the vector
 * ones) for the size of the memory operand. An opcode that no table names is
 * unknown: the result is never a guess.
 */
#include <string.h>
#include "insn_decode.h"
#include "insn_tables.h"

/* The integer maps' entries: size class and access (insn_tables.h), then: */
enum {
    IM = 1 << 7,              /* a ModRM byte follows                        */
    I_B = 1 << 8,             /* imm8                                        */
    I_W = 2 << 8,             /* imm16                                       */
    I_Z = 3 << 8,             /* imm16 with 66 (and no REX.W), else imm32    */
    I_V = 4 << 8,             /* imm16/32/64 by operand size (mov r, imm)    */
    I_MOFFS = 5 << 8,         /* a 64-bit address (32-bit with 67)           */
    I_WB = 6 << 8,            /* imm16 then imm8 (enter)                     */
    I_D = 7 << 8,             /* rel32 (no form with 66: vendors disagree)   */
    IMM_MASK = 7 << 8,
    GRP = 1 << 11,            /* size and access depend on ModRM.reg         */
    STR = 1 << 12,            /* a string instruction                        */
    ADDR = 1 << 13,           /* computes an address, accesses nothing       */
    BAD = 1 << 14,            /* not decoded                                 */
    STK = 1 << 15,            /* an access to the stack                      */
    NOMEM = 1 << 16,          /* map 0F: an instruction with no operand in memory */
};

/* add, or, adc, sbb, and, sub, xor: Eb,Gb Ev,Gv Gb,Eb Gv,Ev AL,ib eAX,iz */
#define ALU_ROW(x) (S_1 | IM | A_RW), (S_V | IM | A_RW), (S_1 | IM | A_R), (S_V | IM | A_R), I_B, I_Z, x
#define CMP_ROW (S_1 | IM | A_R), (S_V | IM | A_R), (S_1 | IM | A_R), (S_V | IM | A_R), I_B, I_Z, BAD, BAD

static const unsigned ga_map1[256] = {
    /* 00 */ ALU_ROW(BAD), BAD,       ALU_ROW(BAD), BAD,   /* 0F: escape, handled first */
    /* 10 */ ALU_ROW(BAD), BAD,       ALU_ROW(BAD), BAD,
    /* 20 */ ALU_ROW(BAD), BAD,       ALU_ROW(BAD), BAD,
    /* 30 */ ALU_ROW(BAD), BAD,       CMP_ROW,
    /* 40: REX, taken as a prefix */
    BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
    /* 50: push r, pop r */
    S_D64 | A_W | STK, S_D64 | A_W | STK, S_D64 | A_W | STK, S_D64 | A_W | STK,
    S_D64 | A_W | STK, S_D64 | A_W | STK, S_D64 | A_W | STK, S_D64 | A_W | STK,
    S_D64 | A_R | STK, S_D64 | A_R | STK, S_D64 | A_R | STK, S_D64 | A_R | STK,
    S_D64 | A_R | STK, S_D64 | A_R | STK, S_D64 | A_R | STK, S_D64 | A_R | STK,
    /* 60: 63 movsxd, 68 push iz, 69 imul Gv,Ev,iz, 6A push ib, 6B imul ib, 6C-6F ins/outs */
    BAD, BAD, BAD, S_SX | IM | A_R, BAD, BAD, BAD, BAD,
    S_D64 | A_W | STK | I_Z, S_V | IM | A_R | I_Z, S_D64 | A_W | STK | I_B, S_V | IM | A_R | I_B,
    S_1 | A_W | STR, S_Z | A_W | STR, S_1 | A_R | STR, S_Z | A_R | STR,
    /* 70: jcc rel8 */
    I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B,
    /* 80 */
    S_1 | IM | GRP | I_B, S_V | IM | GRP | I_Z, BAD, S_V | IM | GRP | I_B,
    S_1 | IM | A_R, S_V | IM | A_R, S_1 | IM | A_RW, S_V | IM | A_RW,
    S_1 | IM | A_W, S_V | IM | A_W, S_1 | IM | A_R, S_V | IM | A_R,
    S_2 | IM | A_W, IM | ADDR, S_2 | IM | A_R, S_D64 | IM | GRP,
    /* 90: xchg, cbw, cwd, fwait, pushf, popf, sahf, lahf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, BAD, 0, S_D64 | A_W | STK, S_D64 | A_R | STK, 0, 0,
    /* A0: mov moffs, string instructions, test */
    S_1 | A_R | I_MOFFS, S_V | A_R | I_MOFFS, S_1 | A_W | I_MOFFS, S_V | A_W | I_MOFFS,
    S_1 | A_RW | STR, S_V | A_RW | STR, S_1 | A_R | STR, S_V | A_R | STR,
    I_B, I_Z, S_1 | A_W | STR, S_V | A_W | STR, S_1 | A_R | STR, S_V | A_R | STR, S_1 | A_R | STR, S_V | A_R | STR,
    /* B0: mov r, imm */
    I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_V, I_V, I_V, I_V, I_V, I_V, I_V, I_V,
    /* C0: shifts, ret, VEX, mov Ev,imm, enter, leave, retf, int */
    S_1 | IM | GRP | I_B, S_V | IM | GRP | I_B, S_D64 | A_R | STK | I_W, S_D64 | A_R | STK, BAD, BAD,
    S_1 | IM | GRP | I_B, S_V | IM | GRP | I_Z, S_D64 | A_W | STK | I_WB, S_D64 | A_R | STK, BAD, BAD, 0, I_B, BAD, BAD,
    /* D0: shifts, xlat, x87 (D8-DF: ga_x87) */
    S_1 | IM | GRP, S_V | IM | GRP, S_1 | IM | GRP, S_V | IM | GRP, BAD, BAD, BAD, S_1 | A_R,
    IM, IM, IM, IM, IM, IM, IM, IM,
    /* E0: loop, jrcxz, in, out, call, jmp */
    I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, S_D64 | A_W | STK | I_D, I_D, BAD, I_B, 0, 0, 0, 0,
    /* F0: int1, hlt, cmc, group 3, flags, groups 4 and 5 */
    BAD, 0, BAD, BAD, 0, 0, S_1 | IM | GRP, S_V | IM | GRP, 0, 0, 0, 0, 0, 0, S_1 | IM | GRP, S_V | IM | GRP,
};

/* The one-byte groups by ModRM.reg: access, and the size and immediate
 * where they differ from the opcode's; BAD: not decoded. */
static unsigned ga_group1(unsigned op, unsigned reg)
{
    switch (op) {
    case 0x80: case 0x81: case 0x83:
        return reg == 7 ? A_R : A_RW;                               /* cmp reads only */
    case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3:
        return reg == 6 ? BAD : A_RW;                               /* rol ... sar    */
    case 0xc6: case 0xc7:
        return reg == 0 ? A_W : BAD;                                /* mov Ev, imm    */
    case 0xf6: case 0xf7:
        if (reg <= 1)
            return A_R | (op == 0xf6 ? I_B : I_Z);                  /* test Ev, imm   */
        return reg == 2 || reg == 3 ? A_RW : A_R;                   /* not, neg; mul, div */
    case 0xfe:
        return reg <= 1 ? A_RW : BAD;                               /* inc, dec       */
    case 0xff:
        if (reg <= 1)
            return A_RW;                                            /* inc, dec       */
        if (reg == 2 || reg == 4)
            return A_R | S_8;                                       /* call, jmp *mem */
        return reg == 6 ? A_R | S_D64 : BAD;                        /* push Ev        */
    case 0x8f:
        return reg == 0 ? A_W : BAD;                                /* pop Ev; else XOP */
    }
    return BAD;
}

/* x87 memory forms, D8-DF by ModRM.reg: size and access; BAD for the
 * environment and state images (fldenv, fnsave, ...). */
static unsigned ga_x87(unsigned op, unsigned reg)
{
    static const unsigned forms[8][8] = {
        /* D8 m32fp */ {S_4 | A_R, S_4 | A_R, S_4 | A_R, S_4 | A_R, S_4 | A_R, S_4 | A_R, S_4 | A_R, S_4 | A_R},
        /* D9 fld, -, fst, fstp, fldenv, fldcw, fnstenv, fnstcw */
        {S_4 | A_R, BAD, S_4 | A_W, S_4 | A_W, BAD, S_2 | A_R, BAD, S_2 | A_W},
        /* DA m32int */ {S_4 | A_R, S_4 | A_R, S_4 | A_R, S_4 | A_R, S_4 | A_R, S_4 | A_R, S_4 | A_R, S_4 | A_R},
        /* DB fild, fisttp, fist, fistp, -, fld m80, -, fstp m80 */
        {S_4 | A_R, S_4 | A_W, S_4 | A_W, S_4 | A_W, BAD, S_10 | A_R, BAD, S_10 | A_W},
        /* DC m64fp */ {S_8 | A_R, S_8 | A_R, S_8 | A_R, S_8 | A_R, S_8 | A_R, S_8 | A_R, S_8 | A_R, S_8 | A_R},
        /* DD fld, fisttp, fst, fstp m64, frstor, -, fnsave, fnstsw */
        {S_8 | A_R, S_8 | A_W, S_8 | A_W, S_8 | A_W, BAD, BAD, BAD, S_2 | A_W},
        /* DE m16int */ {S_2 | A_R, S_2 | A_R, S_2 | A_R, S_2 | A_R, S_2 | A_R, S_2 | A_R, S_2 | A_R, S_2 | A_R},
        /* DF fild, fisttp, fist, fistp m16, fbld, fild m64, fbstp, fistp m64 */
        {S_2 | A_R, S_2 | A_W, S_2 | A_W, S_2 | A_W, S_10 | A_R, S_8 | A_R, S_10 | A_W, S_8 | A_W},
    };
    return forms[op - 0xd8][reg];
}

/* The integer and system instructions of map 0F, by opcode; 0: a vector
 * instruction (insn_tables.c). */
static unsigned ga_map2_int(unsigned op)
{
    if (op >= 0x40 && op <= 0x4f)
        return S_V | IM | A_R;                                      /* cmovcc         */
    if (op >= 0x80 && op <= 0x8f)
        return I_D;                                                 /* jcc rel32      */
    if (op >= 0x90 && op <= 0x9f)
        return S_1 | IM | A_W;                                      /* setcc          */
    if (op >= 0xc8 && op <= 0xcf)
        return NOMEM;                                               /* bswap          */
    switch (op) {
    case 0x05: case 0x06: case 0x07: case 0x08: case 0x09: case 0x0b: case 0x0e:
    case 0x30: case 0x31: case 0x32: case 0x33: case 0x34: case 0x35: case 0x37:
    case 0x77: case 0xa2: case 0xaa:
        return NOMEM;                                               /* syscall, rdtsc, emms, cpuid, ... */
    case 0x0d: case 0x18: case 0x19: case 0x1c: case 0x1d: case 0x1e: case 0x1f:
        return IM | ADDR;                                           /* prefetch, hint nops */
    case 0x00: case 0x01: case 0x02: case 0x03: case 0x0f: case 0x1a: case 0x1b:
    case 0x20: case 0x21: case 0x22: case 0x23: case 0x78: case 0x79: case 0xb2: case 0xb4: case 0xb5:
    case 0xb9: case 0xff:
        return BAD;                                                 /* system, MPX, 3DNow!, far pointers */
    case 0xa3: return S_V | IM | A_R;                               /* bt             */
    case 0xab: case 0xb3: case 0xbb: return S_V | IM | A_RW;        /* bts, btr, btc  */
    case 0xa4: case 0xac: return S_V | IM | A_RW | I_B;             /* shld, shrd ib  */
    case 0xa5: case 0xad: return S_V | IM | A_RW;                   /* shld, shrd cl  */
    case 0xa0: case 0xa8: return S_D64 | A_W | STK;                 /* push fs, gs    */
    case 0xa1: case 0xa9: return S_D64 | A_R | STK;                 /* pop fs, gs     */
    case 0xaf: return S_V | IM | A_R;                               /* imul Gv, Ev    */
    case 0xb0: return S_1 | IM | A_RW;                              /* cmpxchg        */
    case 0xb1: return S_V | IM | A_RW;
    case 0xb6: case 0xbe: return S_1 | IM | A_R;                    /* movzx, movsx   */
    case 0xb7: case 0xbf: return S_2 | IM | A_R;
    case 0xb8: case 0xbc: case 0xbd: return S_V | IM | A_R;         /* popcnt, bsf/tzcnt, bsr/lzcnt */
    case 0xba: return S_V | IM | GRP | I_B;                         /* bt* Ev, ib     */
    case 0xc0: return S_1 | IM | A_RW;                              /* xadd           */
    case 0xc1: return S_V | IM | A_RW;
    case 0xc3: return S_Y | IM | A_W;                               /* movnti         */
    case 0xae: case 0xc7: return IM | GRP;                          /* groups 15, 9   */
    }
    return 0;
}

/* The groups of map 0F by ModRM.reg, memory forms. */
static unsigned ga_group2(unsigned op, unsigned reg, unsigned pp, int rex_w)
{
    switch (op) {
    case 0xba:
        return reg == 4 ? A_R : reg >= 5 ? A_RW : BAD;              /* bt, bts, btr, btc */
    case 0xae:
        if (pp == 0 && reg == 2)
            return S_4 | A_R;                                       /* ldmxcsr        */
        if (pp == 0 && reg == 3)
            return S_4 | A_W;                                       /* stmxcsr        */
        if ((pp == 0 && reg == 7) || (pp == 1 && reg >= 6))
            return ADDR;                                            /* clflush, clwb, clflushopt */
        return BAD;                                                 /* fxsave, xsave, ... */
    case 0xc7:
        if (reg == 1 && pp == 0)
            return (rex_w ? S_16 : S_8) | A_RW;                     /* cmpxchg8b, cmpxchg16b */
        return BAD;
    }
    return BAD;
}

/* map 0F38 F0-FF without VEX: movbe, crc32, adcx, adox; BAD for the rest. */
static unsigned ga_map3_int(unsigned op, unsigned pp)
{
    if (op == 0xf0 || op == 0xf1) {
        if (pp == 3)
            return (op == 0xf0 ? S_1 : S_V) | IM | A_R;             /* crc32          */
        if (pp <= 1)
            return S_V | IM | (op == 0xf0 ? A_R : A_W);             /* movbe          */
    }
    if (op == 0xf6 && (pp == 1 || pp == 2))
        return S_Y | IM | A_R;                                      /* adcx, adox     */
    return BAD;
}

/* Bytes of a size class for this instruction (vec: the vector length), 0
 * when the class names none. */
static unsigned ga_size_of(unsigned cls, int opsize16, int rex_w, unsigned vec)
{
    switch (cls) {
    case S_1: return 1;
    case S_2: return 2;
    case S_4: return 4;
    case S_8: return 8;
    case S_10: return 10;
    case S_16: return 16;
    case S_32: return 32;
    case S_V: return rex_w ? 8 : opsize16 ? 2 : 4;
    case S_Z: return opsize16 && !rex_w ? 2 : 4;
    case S_D64: return opsize16 && !rex_w ? 2 : 8;
    case S_SX: return opsize16 && !rex_w ? 0 : 4;   /* 66 63: the SDM says m16, objdump m32 */
    case S_Y: return rex_w ? 8 : 4;
    case S_VEC: return vec;
    case S_HALF: return vec / 2;
    case S_QUARTER: return vec / 4;
    case S_EIGHTH: return vec / 8;
    case S_DUP: return vec == 16 ? 8 : vec;
    }
    return 0;
}

/* The ModRM byte at p and what follows it (SIB, displacement): its length,
 * or -1 when code ends first. *mem: 1 for a memory operand. */
static int ga_modrm_len(const unsigned char *p, const unsigned char *end, int *mem)
{
    unsigned mod, rm;
    int len = 1;
    if (p >= end)
        return -1;
    mod = p[0] >> 6;
    rm = p[0] & 7;
    *mem = mod != 3;
    if (mod == 3)
        return 1;
    if (rm == 4) {
        if (p + 1 >= end)
            return -1;
        len++;
        if (mod == 0 && (p[1] & 7) == 5)
            len += 4;                                               /* no base: disp32 */
    } else if (mod == 0 && rm == 5) {
        len += 4;                                                   /* rip-relative   */
    }
    len += mod == 1 ? 1 : mod == 2 ? 4 : 0;
    return len <= end - p ? len : -1;
}

static int ga_is_legacy_prefix(unsigned b)
{
    return b == 0x66 || b == 0x67 || b == 0xf0 || b == 0xf2 || b == 0xf3 || b == 0x2e || b == 0x36
        || b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65;
}

/* Fill *out from the entry of a decoded instruction whose last byte is
 * p[-1]. */
static int ga_finish(const unsigned char *code, const unsigned char *p, const unsigned char *end,
                     unsigned entry, int mem, unsigned flags, int opsize16, int rex_w, unsigned vec,
                     ga_insn_t *out)
{
    if (p > end)
        return -1;
    if (mem && (entry & ADDR)) {
        flags |= GA_INSN_NO_ACCESS;
    } else if (mem) {
        out->size = ga_size_of(entry & S_MASK, opsize16, rex_w, vec);
        if (entry & A_R)
            flags |= GA_INSN_READ;
        if (entry & A_W)
            flags |= GA_INSN_WRITE;
        if ((flags & GA_INSN_STACK) && opsize16 && !rex_w)
            out->size = 0;   /* 16-bit stack operations: vendors disagree */
    }
    out->length = (unsigned)(p - code);
    out->flags = flags;
    return 0;
}

/* A VEX- or EVEX-encoded instruction; p at the byte after c4, c5 or 62. */
static int ga_decode_vex(const unsigned char *code, const unsigned char *p, const unsigned char *end,
                         unsigned first, ga_insn_t *out)
{
    ga_vex_t vex;
    unsigned entry, op, flags = GA_INSN_VECTOR;
    int mem, len;
    if (ga_vex_prefix(first, p, (size_t)(end - p), &vex) != 0)
        return -1;
    p += vex.prefix_len;
    if (p >= end)
        return -1;
    op = *p++;
    if (!vex.evex && vex.map == 1 && op == 0x77)
        return ga_finish(code, p, end, 0, 0, flags, 0, 0, 16, out);   /* vzeroupper, vzeroall */
    if (!vex.evex && vex.map == 1 && (op == 0x90 || op == 0x91) && vex.pp <= 1)
        /* kmovw/kmovq (none), kmovb/kmovd (66): an opmask to or from memory */
        entry = (vex.pp == 0 ? (vex.w ? S_8 : S_2) : (vex.w ? S_4 : S_1)) | (op == 0x90 ? A_R : A_W) | T_GPR;
    else
        entry = ga_vector_entry(vex.map, op, vex.pp, vex.evex ? GA_ENC_EVEX : GA_ENC_VEX, vex.w);
    if (entry == 0 || (len = ga_modrm_len(p, end, &mem)) < 0)
        return -1;
    p += len + ga_vector_has_imm8(vex.map, op);
    if (entry & T_GPR)
        flags = 0;
    if ((entry & T_ELEM) && mem)
        flags |= GA_INSN_GATHER;   /* the register forms are #UD */
    if (vex.evex && mem && vex.broadcast) {
        unsigned cls = entry & S_MASK;
        if (cls != S_VEC && cls != S_HALF)
            return -1;   /* no broadcast form */
        entry = (entry & ~(unsigned)S_MASK) | (vex.w ? S_8 : S_4);
        flags |= GA_INSN_BROADCAST;
    }
    if ((vex.evex && vex.mask) || (entry & T_MASKED))
        flags |= GA_INSN_MASKED;
    return ga_finish(code, p, end, entry & (S_MASK | A_RW), mem, flags, 0, (int)vex.w, vex.vec, out);
}

int ga_insn_decode(const unsigned char *code, size_t n, ga_insn_t *out)
{
    const unsigned char *p = code, *end = code + (n < GA_INSN_MAX ? n : GA_INSN_MAX);
    int opsize16 = 0, addr32 = 0, rex = 0, rex_w = 0, mem = 0, len, map0f = 0;
    unsigned entry, flags = 0, pp, op, f2f3 = 0;
    memset(out, 0, sizeof(*out));

    /* Legacy prefixes; a REX counts only right before the opcode. */
    for (;; p++) {
        if (p >= end)
            return -1;
        if (ga_is_legacy_prefix(*p)) {
            opsize16 |= *p == 0x66;
            addr32 |= *p == 0x67;
            if (*p == 0xf2 || *p == 0xf3)
                f2f3 = *p;
            rex = rex_w = 0;
        } else if ((*p & 0xf0) == 0x40) {
            rex = 1;
            rex_w = (*p >> 3) & 1;
        } else {
            break;
        }
    }
    pp = f2f3 == 0xf3 ? 2 : f2f3 == 0xf2 ? 3 : opsize16 ? 1 : 0;
    op = *p++;
    if (op == 0xc4 || op == 0xc5 || op == 0x62) {
        if (opsize16 || f2f3 || rex)
            return -1;   /* #UD */
        if (ga_decode_vex(code, p, end, op, out) != 0) {
            memset(out, 0, sizeof(*out));
            return -1;
        }
        return 0;
    }
    if (op == 0x0f) {
        unsigned map = 1;
        if (p >= end)
            return -1;
        op = *p++;
        if (op == 0x38 || op == 0x3a) {
            map = op == 0x38 ? 2 : 3;
            if (p >= end)
                return -1;
            op = *p++;
        }
        map0f = 1;
        if (map == 2 && op >= 0xf0) {
            entry = ga_map3_int(op, pp);
        } else if (map == 1 && (entry = ga_map2_int(op)) != 0) {
            if (entry & NOMEM)
                return ga_finish(code, p, end, 0, 0, 0, 0, 0, 16, out);
        } else {
            entry = ga_vector_entry(map, op, pp, GA_ENC_LEGACY, (unsigned)rex_w);
            if (entry == 0 || (len = ga_modrm_len(p, end, &mem)) < 0)
                return -1;
            p += len + ga_vector_has_imm8(map, op);
            return ga_finish(code, p, end, entry & (S_MASK | A_RW), mem, GA_INSN_VECTOR,
                             opsize16, rex_w, 16, out);
        }
    } else if (op >= 0xd8 && op <= 0xdf) {
        if ((len = ga_modrm_len(p, end, &mem)) < 0)
            return -1;
        entry = mem ? ga_x87(op, (p[0] >> 3) & 7) : 0;
        if (entry & BAD)
            return -1;
        return ga_finish(code, p + len, end, entry, mem, 0, opsize16, rex_w, 16, out);
    } else {
        entry = ga_map1[op];
    }

    if (entry & BAD)
        return -1;
    if (entry & IM) {
        if ((len = ga_modrm_len(p, end, &mem)) < 0)
            return -1;
        if (entry & GRP) {
            unsigned reg = (p[0] >> 3) & 7;
            unsigned g = map0f ? ga_group2(op, reg, pp, rex_w) : ga_group1(op, reg);
            if (map0f && (op == 0xae || op == 0xc7) && !mem)
                g = NOMEM;   /* fences, rdrand, rdfsbase, ...: registers only */
            else if (g & BAD)
                return -1;
            if (!map0f && op == 0xff && (reg == 2 || reg == 4) && opsize16)
                return -1;   /* a 16-bit near call or jmp: vendors disagree */
            entry = (g & S_MASK ? (entry & ~(unsigned)S_MASK) | (g & S_MASK) : entry) & ~(unsigned)A_RW;
            entry |= g & (A_RW | ADDR | IMM_MASK);
        }
        p += len;
    } else {
        mem = (entry & A_RW) != 0;   /* an implicit operand: string, stack, moffs, xlat */
    }
    switch (entry & IMM_MASK) {
    case I_B: p += 1; break;
    case I_W: p += 2; break;
    case I_Z: p += opsize16 && !rex_w ? 2 : 4; break;   /* REX.W wins over 66 */
    case I_V: p += rex_w ? 8 : opsize16 ? 2 : 4; break;
    case I_MOFFS: p += addr32 ? 4 : 8; break;
    case I_WB: p += 3; break;
    case I_D:
        if (opsize16)
            return -1;
        p += 4;
        break;
    }
    if (entry & STR)
        flags |= GA_INSN_STRING | (f2f3 ? GA_INSN_REP : 0);
    if (entry & STK)
        flags |= GA_INSN_STACK;
    return ga_finish(code, p, end, entry, mem, flags, opsize16, rex_w, 16, out);
}
