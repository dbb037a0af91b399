"""The packed form of recorded stacks (src/guardalloc/_c/stack_codec.c):
round trips of any address sequence (hypothesis, hostile values included),
the fixed budget keeping the innermost frames whole, and the decoder's fuzz
corpus (tests/fuzz/stack_codec_corpus, garbage the handler might read from
a damaged slot) replayed through tests/fuzz/stack_codec_fuzz.c, built with
the system compiler and again under ASan and UBSan."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest
from fuzz_replay import compile_c, corpus, replay_plain, replay_sanitized
from hypothesis import given, settings, strategies as st

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "src" / "guardalloc" / "_c"
FUZZ_DIR = ROOT / "tests" / "fuzz"
CORPUS = FUZZ_DIR / "stack_codec_corpus"
CODEC = C_DIR / "stack_codec.c"
SOURCES = [FUZZ_DIR / "stack_codec_fuzz.c", CODEC]
CFLAGS = ["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", f"-I{C_DIR}"]
PACKED_CODE_BYTES = 190   # stacks.h: GA_PACKED_STACK_BYTES less its two header bytes
U64 = (1 << 64) - 1


@pytest.fixture(scope="module")
def codec(tmp_path_factory):
    """The codec built as a shared object and loaded with ctypes."""
    lib = compile_c([*CFLAGS, "-shared", "-fPIC"], [CODEC], tmp_path_factory.mktemp("codec") / "libcodec.so")
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


def test_corpus_replays(tmp_path):
    """Every corpus file through the fuzz target, built with the system compiler."""
    replay_plain(CFLAGS, SOURCES, corpus(CORPUS), tmp_path)


def test_corpus_replays_under_sanitizers(tmp_path):
    """The same under ASan and UBSan: reads past the input, shifts past 63."""
    replay_sanitized(CFLAGS, SOURCES, corpus(CORPUS), tmp_path)


def test_corpus_is_small():
    """Checked in as a regression corpus, kept minimal (libFuzzer -merge=1)."""
    files = corpus(CORPUS)
    assert len(files) <= 200
    assert sum(os.path.getsize(f) for f in files) <= 64 * 1024
