"""The packed form of recorded stacks (src/guardalloc/_c/stack_codec.c):
round trips of any address sequence (hypothesis, hostile values included),
the fixed budget keeping the innermost frames whole, and the decoder's fuzz
corpus (tests/fuzz/stack_codec_corpus, garbage the handler might read from
a damaged slot) replayed through tests/fuzz/stack_codec_fuzz.c, built with
the system compiler and again under ASan and UBSan."""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "src" / "guardalloc" / "_c"
FUZZ_DIR = ROOT / "tests" / "fuzz"
CORPUS = FUZZ_DIR / "stack_codec_corpus"
CODEC = C_DIR / "stack_codec.c"
CFLAGS = ["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", f"-I{C_DIR}"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
PACKED_CODE_BYTES = 190   # stacks.h: GA_PACKED_STACK_BYTES less its two header bytes
U64 = (1 << 64) - 1


def _system_compiler() -> list[str] | None:
    command = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if command and shutil.which(command[0]):
        return command
    return ["cc"] if shutil.which("cc") else None


@pytest.fixture(scope="module")
def codec(tmp_path_factory):
    """The codec built as a shared object and loaded with ctypes."""
    compiler = _system_compiler()
    if compiler is None:
        pytest.skip("no C compiler ($CC, sysconfig CC or cc)")
    lib = tmp_path_factory.mktemp("codec") / "libcodec.so"
    proc = subprocess.run([*compiler, *CFLAGS, "-shared", "-fPIC", str(CODEC), "-o", str(lib)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    so = ctypes.CDLL(str(lib))
    so.ga_stack_encode.restype = ctypes.c_size_t
    so.ga_stack_encode.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t, ctypes.c_char_p,
                                   ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    so.ga_stack_decode.restype = ctypes.c_size_t
    so.ga_stack_decode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint64),
                                   ctypes.c_size_t]
    return so


def encode(so, pcs: list[int], cap: int) -> tuple[bytes, int]:
    """(the code, addresses stored) for pcs in a budget of cap bytes."""
    arr = (ctypes.c_uint64 * max(len(pcs), 1))(*pcs)
    out = ctypes.create_string_buffer(cap + 1)
    stored = ctypes.c_size_t()
    used = so.ga_stack_encode(arr, len(pcs), out, cap, ctypes.byref(stored))
    assert used <= cap
    return out.raw[:used], stored.value


def decode(so, code: bytes, max_pcs: int) -> list[int]:
    arr = (ctypes.c_uint64 * (max_pcs + 1))(*([0] * max_pcs), 0xDEAD)
    n = so.ga_stack_decode(code, len(code), arr, max_pcs)
    assert n <= max_pcs and arr[max_pcs] == 0xDEAD   # nothing written past max
    return list(arr[:n])


hostile = st.one_of(st.integers(0, U64), st.sampled_from([0, 1, U64, U64 - 1, 1 << 63, (1 << 63) - 1]))
# Return addresses as real stacks have them: a few objects, nearby addresses.
realistic = st.builds(lambda base, offs: [base + o for o in offs],
                      st.integers(0x7F0000000000, 0x7FFFFFFF0000), st.lists(st.integers(0, 1 << 22), max_size=64))


@settings(max_examples=300, deadline=None)
@given(pcs=st.one_of(st.lists(hostile, max_size=64), realistic))
def test_round_trip(codec, pcs):
    """Every address sequence, huge deltas either way included, comes back."""
    code, stored = encode(codec, pcs, 64 * 10)
    assert stored == len(pcs)
    assert decode(codec, code, 64) == pcs


@settings(max_examples=300, deadline=None)
@given(pcs=st.lists(hostile, max_size=64), cap=st.integers(0, 200))
def test_budget_keeps_the_innermost_frames_whole(codec, pcs, cap):
    """A budget too small keeps a prefix (the innermost frames), and no torn
    address: what is left out is exactly the count the caller reports."""
    code, stored = encode(codec, pcs, cap)
    assert decode(codec, code, 64) == pcs[:stored]
    full, _ = encode(codec, pcs, 64 * 10)
    if stored < len(pcs):   # the next address did not fit whole
        assert len(full) > cap
        assert code == full[:len(code)]


def test_nearby_addresses_pack_small(codec):
    """The point of the coding: return addresses inside one library take at
    most 3 bytes each after the first (7 bytes), so 126 bytes hold
    40 of them where raw addresses would hold 15."""
    base = 0x7F3A12000000
    pcs = [base + 0x1000 * ((i * 37) % 97) for i in range(40)]
    code, stored = encode(codec, pcs, PACKED_CODE_BYTES)
    assert stored == 40 and len(code) <= 7 + 3 * 39


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=300), max_pcs=st.integers(0, 64))
def test_decoding_garbage_is_bounded(codec, garbage, max_pcs):
    """What a damaged slot holds decodes to at most max addresses, each from
    whole bytes of the input (at most one per byte)."""
    pcs = decode(codec, garbage, max_pcs)
    assert len(pcs) <= min(max_pcs, len(garbage))
    code, stored = encode(codec, pcs, 64 * 10)
    assert stored == len(pcs) and decode(codec, code, 64) == pcs


def _corpus() -> list[str]:
    files = sorted(str(p) for p in CORPUS.iterdir() if p.is_file())
    assert files, f"{CORPUS} is empty"
    return files


def _build_replay(compiler: list[str], flags: list[str], out: Path) -> subprocess.CompletedProcess:
    sources = [FUZZ_DIR / "stack_codec_fuzz.c", FUZZ_DIR / "replay.c", CODEC]
    return subprocess.run([*compiler, *CFLAGS, *flags, *map(str, sources), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)


def _replay(program: Path) -> None:
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    env.pop("LD_PRELOAD", None)
    proc = subprocess.run([str(program), *_corpus()], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_corpus_replays(tmp_path):
    """Every corpus file through the fuzz target, built with the system compiler."""
    compiler = _system_compiler()
    if compiler is None:
        pytest.skip("no C compiler ($CC, sysconfig CC or cc)")
    proc = _build_replay(compiler, [], tmp_path / "replay")
    assert proc.returncode == 0, proc.stderr
    _replay(tmp_path / "replay")


def test_corpus_replays_under_sanitizers(tmp_path):
    """The same under ASan and UBSan: reads past the input, shifts past 63."""
    candidates = [[name] for name in ("clang-19", "clang") if shutil.which(name)]
    system = _system_compiler()
    if system is not None:
        candidates.append(system)
    reasons = []
    for compiler in candidates:
        proc = _build_replay(compiler, SANITIZE, tmp_path / "replay-sanitized")
        if proc.returncode == 0:
            break
        reasons.append(f"{compiler[0]}: {proc.stderr.strip().splitlines()[-1:]}")
    else:
        pytest.skip("no compiler builds with -fsanitize=address,undefined "
                    f"({'; '.join(reasons) or 'no C compiler'})")
    _replay(tmp_path / "replay-sanitized")
