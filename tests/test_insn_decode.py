"""The fault handler's x86-64 decoder (src/guardalloc/_c/insn_decode.c)
against a disassembler: every instruction with a memory operand in libc,
libpython and numpy's core extension (the ones this interpreter loads),
disassembled by objdump (Intel syntax), must decode to the size objdump's
operand names (BYTE/WORD/.../ZMMWORD PTR) or to "unknown" -- never to
another size, never to another length. A sample of each library runs by
default, the whole libraries under ``-m slow``; both print the coverage.

The decoder runs as a filter program (tests/c/insn_decode_main.c) built
with the system compiler."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from fuzz_replay import compile_c

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "src" / "guardalloc" / "_c"
DRIVER = ROOT / "tests" / "c" / "insn_decode_main.c"
DECODER_SOURCES = [C_DIR / "insn_decode.c", C_DIR / "insn_tables.c"]
CFLAGS = ["-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Werror", f"-I{C_DIR}"]

pytestmark = pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64",
                                reason="an x86-64 decoder: compared on x86-64 Linux only")

READ, WRITE, STRING, REP, VECTOR, MASKED, BROADCAST, NO_ACCESS, STACK, GATHER = (1 << i for i in range(10))
SIZES = {"BYTE": 1, "WORD": 2, "DWORD": 4, "FWORD": 6, "QWORD": 8, "TBYTE": 10, "OWORD": 16,
         "XMMWORD": 16, "YMMWORD": 32, "ZMMWORD": 64}
OPERAND = re.compile(r"\b(BYTE|WORD|DWORD|FWORD|QWORD|TBYTE|OWORD|XMMWORD|YMMWORD|ZMMWORD) (PTR|BCST)\b")
LINE = re.compile(r"^\s*([0-9a-f]+):\t([0-9a-f]{2}(?: [0-9a-f]{2})*)\s*\t(.*)$")
PREFIXES = {"lock", "rep", "repz", "repe", "repnz", "repne", "bnd", "notrack", "data16", "addr32", "rex",
            "rex.W", "cs", "ds", "es", "ss", "fs", "gs", "xacquire", "xrelease", "{vex}", "{evex}"}
# Instructions whose memory operand is an address, never read or written.
ADDRESS_ONLY = re.compile(r"^(nop\w*|lea|prefetch\w*|clflush\w*|clwb|cldemote|endbr64)$")
STRING_OPS = {"movs", "stos", "lods", "cmps", "scas", "ins", "outs"}
# Moves, by mnemonic: a memory operand first is written, second is read.
MOVES = re.compile(r"^(v?mov\w*|movs[xb]\w*|v?pextr\w|v?pinsr\w|v?extract\w+|vpmov[^m]\w*)$")


@dataclass
class Instruction:
    code: str          # hex bytes, "48 89 07"
    mnemonic: str
    operands: str
    size: int | None   # bytes of the memory operand objdump names; None: none named
    rep: bool = False  # a rep/repe/repne prefix


@pytest.fixture(scope="module")
def decoder(tmp_path_factory):
    """The filter program: hex lines in, "RC LENGTH SIZE FLAGS" lines out."""
    return compile_c(CFLAGS, [DRIVER, *DECODER_SOURCES], tmp_path_factory.mktemp("insn") / "insn_decode")


def decode(program: Path, codes: list[str]) -> list[tuple[int, int, int, int]]:
    """(rc, length, size, flags) of each hex string."""
    proc = subprocess.run([str(program)], input="".join(c + "\n" for c in codes), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = [tuple(int(x, 16) if i == 3 else int(x) for i, x in enumerate(line.split()))
            for line in proc.stdout.splitlines()]
    assert len(rows) == len(codes)
    return rows


def _mapped(fragment: str) -> Path | None:
    """The file mapped into this process whose name contains fragment."""
    with open("/proc/self/maps", encoding="utf-8") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and fragment in os.path.basename(parts[5].strip()):
                return Path(parts[5].strip())
    return None


def libraries() -> dict[str, Path]:
    """libc, libpython (or the interpreter, when it is linked statically) and
    numpy's core extension, as this interpreter loads them."""
    found = {}
    libc = _mapped("libc.so")
    if libc is not None:
        found["libc"] = libc
    found["libpython"] = _mapped("libpython") or Path(os.path.realpath(sys.executable))
    try:
        from numpy._core import _multiarray_umath  # numpy 2
    except ImportError:
        try:
            from numpy.core import _multiarray_umath  # numpy 1
        except ImportError:
            _multiarray_umath = None
    if _multiarray_umath is not None:
        found["numpy"] = Path(_multiarray_umath.__file__)
    return found


def disassemble(path: Path, step: int = 1) -> list[Instruction]:
    """Every step-th line's instruction of path's executable sections, as
    objdump -M intel prints it."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed")
    proc = subprocess.run([objdump, "-d", "-M", "intel", "-w", str(path)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return _parse(proc.stdout, step)


def disassemble_bytes(code: bytes, tmp_path: Path) -> Instruction:
    """The first instruction of code, as objdump -M intel reads it."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed")
    raw = tmp_path / "code.bin"
    raw.write_bytes(code)
    proc = subprocess.run([objdump, "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel", "-w", str(raw)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return _parse(proc.stdout)[0]


def _parse(listing: str, step: int = 1) -> list[Instruction]:
    """The instructions of an objdump -w -M intel listing (every step-th line)."""
    out = []
    for line in listing.splitlines()[::step]:
        m = LINE.match(line)
        if not m:
            continue
        words = m.group(3).split()
        rep = False
        while words and words[0] in PREFIXES:
            rep |= words.pop(0).startswith("rep")
        if not words or words[0].startswith("(bad)"):
            continue
        operands = " ".join(words[1:])
        sizes = {SIZES[s] for s, _ in OPERAND.findall(operands)}
        out.append(Instruction(m.group(2), words[0], operands, sizes.pop() if len(sizes) == 1 else None, rep))
    return out


def compare(program: Path, instructions: list[Instruction]) -> dict:
    """Decode every instruction with a memory operand; the counts, and the
    instructions decoded wrongly."""
    memory = [i for i in instructions if "[" in i.operands or " PTR " in i.operands]
    rows = decode(program, [i.code for i in memory])
    counts: Counter = Counter()
    wrong = []
    for insn, (rc, length, size, flags) in zip(memory, rows):
        nbytes = len(insn.code.split())
        if rc == 0 and length != nbytes:
            wrong.append((insn, "length", length))
            continue
        if ADDRESS_ONLY.match(insn.mnemonic):
            counts["address only"] += 1
            if rc == 0 and (size or flags & (READ | WRITE)):
                wrong.append((insn, "an access", size))
            continue
        if insn.size is None:
            counts["no size named"] += 1
            continue
        counts["sized"] += 1
        if rc != 0 or size == 0:
            counts["unknown"] += 1
            counts[f"unknown {insn.mnemonic}"] += 1
            continue
        if size != insn.size:
            wrong.append((insn, "size", size))
            continue
        counts["decoded"] += 1
        expected_flags = {
            STRING: insn.mnemonic in STRING_OPS,
            REP: insn.mnemonic in STRING_OPS and insn.rep,
            MASKED: "{k" in insn.operands or insn.mnemonic.startswith(("vmaskmov", "vpmaskmov")),
            BROADCAST: " BCST " in insn.operands,
            GATHER: "gather" in insn.mnemonic or "scatter" in insn.mnemonic,
        }
        if re.search(r"\b[xyz]?mm\d", insn.operands):   # a vector register: a vector instruction
            expected_flags[VECTOR] = True
        for flag, expected in expected_flags.items():
            if bool(flags & flag) != expected:
                wrong.append((insn, f"flag {flag:#x}", flags))
        if MOVES.match(insn.mnemonic) and insn.operands.count("[") == 1:
            first_is_memory = "[" in insn.operands.split(",")[0] or "PTR" in insn.operands.split(",")[0]
            expected = WRITE if first_is_memory else READ
            if flags & (READ | WRITE) != expected:
                wrong.append((insn, "read/write", flags))
    return {"counts": counts, "wrong": wrong}


def _report(name: str, result: dict) -> str:
    c = result["counts"]
    pct = 100.0 * c["decoded"] / c["sized"] if c["sized"] else 0.0
    unknown = [f"{k[len('unknown '):]} {v}" for k, v in c.most_common() if k.startswith("unknown ")]
    top = ", ".join(unknown[:12])
    return (f"{name}: {c['sized']} instructions with a sized memory operand, {c['decoded']} decoded "
            f"({pct:.2f}%), {c['unknown']} unknown, {len(result['wrong'])} wrong; "
            f"address only {c['address only']}; most common unknown: {top}")


def _check(decoder, name: str, path: Path, step: int) -> None:
    instructions = disassemble(path, step)
    result = compare(decoder, instructions)
    print(_report(name, result))
    assert not result["wrong"], "\n".join(f"{why} {got}: {i.code}  {i.mnemonic} {i.operands}"
                                          for i, why, got in result["wrong"][:40])
    assert result["counts"]["sized"] > 0


@pytest.fixture(params=["libc", "libpython", "numpy"])
def library(request) -> tuple[str, Path]:
    """(name, path) of one library this interpreter loads."""
    path = libraries().get(request.param)
    if path is None:
        pytest.skip(f"{request.param} is not loaded by this interpreter")
    return request.param, path


def test_a_sample_of_each_library_decodes_to_objdumps_sizes(decoder, library):
    """Every 37th line of objdump's listing: never a wrong size or length."""
    _check(decoder, *library, step=37)


@pytest.mark.slow
def test_every_instruction_of_each_library_decodes_to_objdumps_sizes(decoder, library):
    _check(decoder, *library, step=1)


# Hand-picked encodings: (hex, length, size, flags that must be set, flags that must not).
CASES = [
    ("88 07", 2, 1, WRITE, READ),                                   # mov [rdi], al
    ("66 89 07", 3, 2, WRITE, READ),                                # mov [rdi], ax
    ("89 07", 2, 4, WRITE, READ),                                   # mov [rdi], eax
    ("48 89 07", 3, 8, WRITE, READ),                                # mov [rdi], rax
    ("48 01 07", 3, 8, READ | WRITE, 0),                            # add [rdi], rax
    ("48 39 07", 3, 8, READ, WRITE),                                # cmp [rdi], rax
    ("f3 48 ab", 3, 8, WRITE | STRING | REP, READ),                 # rep stos qword
    ("f3 a4", 2, 1, READ | WRITE | STRING | REP, 0),                # rep movsb
    ("ac", 1, 1, READ | STRING, REP | WRITE),                       # lodsb
    ("f2 ae", 2, 1, READ | STRING | REP, WRITE),                    # repne scasb
    ("0f 11 07", 3, 16, WRITE | VECTOR, READ),                      # movups [rdi], xmm0
    ("c5 fe 7f 07", 4, 32, WRITE | VECTOR, MASKED),                 # vmovdqu [rdi], ymm0
    ("62 f1 fe 48 7f 07", 6, 64, WRITE | VECTOR, MASKED),           # vmovdqu64 [rdi], zmm0
    ("62 f1 7f 49 7f 07", 6, 64, WRITE | VECTOR | MASKED, READ),    # vmovdqu8 [rdi]{k1}, zmm0
    ("c4 e2 7d 8e 07", 5, 32, WRITE | VECTOR | MASKED, READ),       # vpmaskmovd [rdi], ymm0, ymm0
    ("62 f1 7c 58 58 07", 6, 4, READ | VECTOR | BROADCAST, WRITE),  # vaddps zmm0, zmm0, [rdi]{1to16}
    ("48 8d 07", 3, 0, NO_ACCESS, READ | WRITE),                    # lea rax, [rdi]
    ("0f 18 0f", 3, 0, NO_ACCESS, READ | WRITE),                    # prefetcht0 [rdi]
    ("db 2f", 2, 10, READ, WRITE),                                  # fld tbyte [rdi]
    ("ff 37", 2, 8, READ, WRITE),                                   # push qword [rdi]
    ("48 0f c7 0f", 4, 16, READ | WRITE, 0),                        # cmpxchg16b [rdi]
    ("c4 e2 7d 90 04 8f", 6, 4, READ | VECTOR | GATHER, WRITE),     # vpgatherdd ymm0, [rdi+ymm1*4], ymm0
    ("62 f2 fd 49 a0 04 8f", 7, 8, WRITE | VECTOR | GATHER, READ),  # vpscatterdq [rdi+ymm1*4]{k1}, zmm0
    ("62 f2 7d 49 8b 07", 6, 64, WRITE | VECTOR | MASKED, READ),    # vpcompressd [rdi]{k1}, zmm0
]


@pytest.mark.parametrize("code,length,size,must,must_not", CASES)
def test_hand_picked_encodings(decoder, code, length, size, must, must_not):
    [(rc, got_length, got_size, flags)] = decode(decoder, [code])
    assert (rc, got_length, got_size) == (0, length, size)
    assert flags & must == must and not flags & must_not, hex(flags)


@pytest.mark.parametrize("code", [c for c, *_ in CASES])
def test_a_cut_instruction_is_unknown(decoder, code):
    """Fewer bytes than the instruction has: unknown, never a guess."""
    nbytes = code.split()
    rows = decode(decoder, [" ".join(nbytes[:k]) for k in range(len(nbytes))])
    assert all(row == (-1, 0, 0, 0) for row in rows), rows


def test_unknown_encodings_say_unknown(decoder):
    """FP16, far pointers, xsave areas, XOP and APX prefixes: no size."""
    codes = ["62 f5 7d 08 6e 07",      # vmovw xmm0, [rdi] (EVEX map 5)
             "ff 1f",                  # call far [rdi]
             "0f ae 27",               # xsave [rdi]
             "8f e9 78 e1 07",         # XOP vphsubbw
             "d5 10 89 07"]            # APX REX2
    assert [row[2] for row in decode(decoder, codes)] == [0] * len(codes)


def _random_encodings(rng: random.Random, n: int) -> list[bytes]:
    """n 15-byte strings that start like instructions: legacy prefixes
    (including the 66/REX.W and F2/F3 mixes compilers never emit) before a
    one-byte, 0F, 0F38 or 0F3A opcode, or a VEX or EVEX prefix of a known
    map; the rest random."""
    prefixes = [b"", b"\x66", b"\xf3", b"\xf2", b"\x48", b"\x66\x48", b"\xf3\x48", b"\x41", b"\x67",
                b"\xf0", b"\x64", b"\x66\xf2", b"\xf2\x66", b"\x48\x66"]
    out = []
    for _ in range(n):
        body = rng.randbytes(15)
        kind = rng.random()
        if kind < 0.25:
            head = rng.choice(prefixes) + b"\x0f"
        elif kind < 0.4:
            head = rng.choice(prefixes) + b"\x0f" + rng.choice([b"\x38", b"\x3a"])
        elif kind < 0.5:
            head = b"\xc5"
        elif kind < 0.6:
            head = bytes([0xc4, (rng.getrandbits(8) & 0xe0) | rng.choice([1, 2, 3])])
        elif kind < 0.8:
            p2 = rng.getrandbits(8)
            head = bytes([0x62, (rng.getrandbits(8) & 0xf0) | rng.choice([1, 2, 3]), rng.getrandbits(8) | 4,
                          p2 & ~0x20 if (p2 >> 5) & 3 == 3 else p2])
        else:
            head = rng.choice(prefixes)
        out.append((head + body)[:15])
    return out


def _mutated_vector_instructions(rng: random.Random, seeds: list[Instruction], n: int) -> list[bytes]:
    """n VEX/EVEX instructions of seeds with W, L, pp, EVEX.b and the opmask
    flipped at random: the same opcodes at other widths and element sizes."""
    out = []
    for _ in range(n):
        b = bytearray(bytes.fromhex(rng.choice(seeds).code.replace(" ", "")))
        w_byte, l_byte = (2, 3) if b[0] == 0x62 else (2, 2) if b[0] == 0xc4 else (None, 1)
        if w_byte is not None and rng.random() < 0.5:
            b[w_byte] ^= 0x80
        if rng.random() < 0.3:
            b[w_byte or 1] = (b[w_byte or 1] & ~3) | rng.getrandbits(2)   # pp
        if b[0] == 0x62:
            b[3] ^= 0x10 if rng.random() < 0.3 else 0                         # broadcast
            b[3] = (b[3] & ~0x67) | (rng.choice([0, 1, 2]) << 5) | rng.getrandbits(3)   # L'L, opmask
        elif rng.random() < 0.3:
            b[l_byte] ^= 0x04                                                 # L
        out.append(bytes(b)[:15])
    return out


def _random_check(decoder, tmp_path: Path, blobs: list[bytes]) -> int:
    """Decode each blob and compare with objdump's first instruction in it:
    returns how many were compared; fails on a wrong length or size."""
    # One file, one encoding every 32 bytes (int3 between): objdump's first
    # instruction at each 32-byte mark is the encoding's.
    raw = tmp_path / "random.bin"
    raw.write_bytes(b"".join(b + b"\xcc" * (32 - len(b)) for b in blobs))
    proc = subprocess.run([shutil.which("objdump") or pytest.skip("objdump (binutils) is not installed"),
                           "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel", "-w", str(raw)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    first = {}
    for line in proc.stdout.splitlines():
        m = LINE.match(line)
        if m and int(m.group(1), 16) % 32 == 0:
            first.setdefault(int(m.group(1), 16) // 32, line)
    pairs = [(k, _parse(line)) for k, line in sorted(first.items())]
    pairs = [(k, parsed[0]) for k, parsed in pairs if parsed]
    rows = decode(decoder, [blobs[k].hex() for k, _ in pairs])
    wrong, compared = [], 0
    for (k, insn), (rc, length, size, _flags) in zip(pairs, rows):
        # objdump's own views: a REX before a legacy prefix shown as an
        # instruction of its own, an fwait merged into the x87 instruction
        # after it (fstcw), invalid forms.
        if rc != 0 or insn.mnemonic.startswith("rex") or "(bad)" in insn.operands or "9b" in insn.code.split():
            continue
        compared += 1
        if length != len(insn.code.split()):
            wrong.append(f"length {length}: {blobs[k].hex(' ')}  {insn.mnemonic} {insn.operands}")
        elif size and insn.size and size != insn.size and not ADDRESS_ONLY.match(insn.mnemonic):
            wrong.append(f"size {size}: {insn.code}  {insn.mnemonic} {insn.operands}")
    assert not wrong, "\n".join(wrong[:40])
    return compared


def test_random_encodings_decode_to_objdumps_sizes(decoder, tmp_path):
    """Encodings no compiler emits (66 with REX.W, F2 and F3 together, any
    VEX/EVEX fields): never another length or size than objdump's."""
    assert _random_check(decoder, tmp_path, _random_encodings(random.Random(21), 4000)) > 1000


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_many_random_encodings_decode_to_objdumps_sizes(decoder, tmp_path, seed):
    assert _random_check(decoder, tmp_path, _random_encodings(random.Random(1000 + seed), 20000)) > 5000


@pytest.mark.slow
def test_numpys_vector_instructions_at_other_widths_decode_to_objdumps_sizes(decoder, tmp_path):
    """numpy's VEX and EVEX instructions with their width, element size,
    prefix, broadcast and opmask bits flipped: 60,000 of them."""
    path = libraries().get("numpy")
    if path is None:
        pytest.skip("numpy is not installed")
    seeds = [i for i in disassemble(path) if i.code.startswith(("62", "c4", "c5")) and i.size]
    blobs = _mutated_vector_instructions(random.Random(7), seeds, 60000)
    assert _random_check(decoder, tmp_path, blobs) > 30000
